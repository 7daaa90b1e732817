"""Scoring a model on a split into a folder of metrics, figures and report.md; finishing a trained run."""
from __future__ import annotations

import logging
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

import torch
import torch.nn as nn

from emoclf.data.augment import Normalizer
from emoclf.data.dataset import Split
from emoclf.engine import check_tta, predict_logits, timed_inference
from emoclf.models import count_parameters
from emoclf.runs import checkpoint as ck
from emoclf.runs.figures import plot_run
from emoclf.runs.folder import BEST_CHECKPOINT, REPORT, SKIPPED_FILES, epochs_done, skipped_note
from emoclf.runs.metrics import write_eval_files
from emoclf.runs.names import display_names
from emoclf.runs.report import write_run_report
from emoclf.utils.files import atomic_write_text
from emoclf.utils.version import __version__

log = logging.getLogger(__name__)


def versions() -> Dict[str, str]:
    """Versions that shape the numbers."""
    import torchvision

    return {"emoclf": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "python": platform.python_version()}


def device_name(device: torch.device) -> str:
    """Human name of a device."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"{device.type} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


@dataclass
class Scored:
    """Where to write a scoring and what to say about it."""

    out_dir: Path
    title: str
    extra: Dict
    notes: List[str]


def score(model: nn.Module, norm: Normalizer, split: Split, class_names: List[str], batch_size: int,
          tta: str, dtype, target: Scored) -> Dict:
    """Predict a split, time it, write metrics files, plots and report.md; return the metrics.

    A folder that this call creates is removed again when it fails before writing anything into it."""
    created = not Path(target.out_dir).exists()
    try:
        return _score(model, norm, split, class_names, batch_size, tta, dtype, target)
    except BaseException:
        if created:
            _remove_if_empty(Path(target.out_dir))
        raise


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()  # only an empty folder: anything written stays, to be looked at
    except OSError:
        pass


def _score(model: nn.Module, norm: Normalizer, split: Split, class_names: List[str], batch_size: int,
           tta: str, dtype, target: Scored) -> Dict:
    start = time.perf_counter()
    logits = predict_logits(model, split.images, norm, batch_size, dtype, tta=tta, desc="scoring")
    elapsed = time.perf_counter() - start
    extra = {"tta": check_tta(tta), **target.extra,
             "inference_ms_per_image": 1000 * elapsed / max(len(split), 1), "inference_batch": batch_size,
             "latency_ms_batch1": timed_inference(model, split.images, norm, dtype, tta=tta) if len(split) else 0.0,
             "device": device_name(norm.device), "versions": versions()}
    metrics = write_eval_files(target.out_dir, split.paths, split.labels, logits, class_names, extra)
    plot_run(target.out_dir, target.title)
    write_run_report(target.out_dir, target.title, target.notes)
    return metrics


def finalize_run(trainer) -> Path:
    """Score the best checkpoint on validation and write every artifact of the run folder."""
    run_dir, cfg, s = trainer.run_dir, trainer.cfg, trainer.state
    best = ck.read(run_dir / BEST_CHECKPOINT)
    trainer.raw_model.load_state_dict(best["model_state"])
    notes = []
    if trainer.dataset.val_from_train:
        notes.append(f"No validation folder: {len(trainer.val)} images ({cfg.data.val_fraction:.0%} of train per "
                     f"class, seed {cfg.seed}) were held out for validation.")
    bad = trainer.train.skipped + trainer.val.skipped
    skipped = len(bad)
    if skipped:
        notes.append(skipped_note(bad) + " The full list with reasons is in skipped_files.txt.")
        atomic_write_text(run_dir / SKIPPED_FILES, "".join(f"{p}\t{why}\n" for p, why in bad))
    if s.stopped in ("time_limit", "early_stopping"):
        notes.append(f"Training stopped by {s.stopped.replace('_', ' ')} after {epochs_done(s)}.")
    extra = {"num_params": count_parameters(trainer.raw_model),
             "trainable_params": count_parameters(trainer.raw_model, trainable_only=True),
             "model_size_mb": round((run_dir / BEST_CHECKPOINT).stat().st_size / 1e6, 3),
             "train_seconds": round(s.train_seconds, 2), "best_epoch": s.best_epoch, "epochs_trained": s.epoch,
             "last_epoch_share": round(s.last_share, 4),
             "stopped": s.stopped or "completed", "model": cfg.model.name, "split": "validation",
             "data_root": str(Path(trainer.dataset.root).resolve()), "num_train_images": len(trainer.train),
             "skipped_images": skipped, "class_names_shown": cfg.output.class_names,
             "display_names": display_names(trainer.class_names, trainer.dataset.folder_names,
                                            cfg.output.class_names),
             "dataset_class_names": {c: trainer.dataset.folder_names.get(c, c) for c in trainer.class_names}}
    title = f"{cfg.run_name} ({cfg.model.name})"
    # In full precision whatever train.amp trained in, as `emoclf evaluate` and predict score: the run's own
    # figures are the ones a user reproduces (bf16 logits move an image or two across the decision line).
    score(trainer.raw_model, trainer.norm, trainer.val, trainer.class_names, cfg.train.eval_batch_size,
          cfg.train.tta, None, Scored(run_dir, title, extra, notes))
    log.info("Finished %s: report at %s", run_dir, run_dir / REPORT)
    return run_dir
