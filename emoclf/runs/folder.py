"""Run folders: preparing one, finishing one with every artifact, and scoring a finished one on any data."""
from __future__ import annotations

import json
import logging
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import AbstractSet, Dict, List, Optional

import torch
import torch.nn as nn

from emoclf import __version__
from emoclf.runs import checkpoint as ck
from emoclf.data.augment import Normalizer
from emoclf.config import Config, read_yaml, to_dict
from emoclf.data.dataset import Split, labelled_split, load_split
from emoclf.engine import check_tta, predict_logits, select_device, timed_inference, use_channels_last
from emoclf.runs.metrics import write_eval_files
from emoclf.utils.files import atomic_write_text, file_digest
from emoclf.models import count_parameters
from emoclf.plots import plot_run
from emoclf.report import write_run_report

log = logging.getLogger(__name__)
# Keys that change how a run is computed, not what it computes.
HOW_TO_RUN = {"train.device", "train.num_threads", "train.eval_batch_size", "train.compile"}
# Keys that may change between an interrupted run and its --resume.
RESUMABLE_CHANGES = HOW_TO_RUN | {"train.epochs", "train.time_limit", "train.early_stopping", "train.tta"}


def skipped_note(skipped: List[List[str]], shown: int = 10) -> str:
    """One sentence naming the unreadable images (the first ``shown`` of them, then a count)."""
    names = ", ".join(f"`{Path(p).name}`" for p, _ in skipped[:shown])
    more = f" and {len(skipped) - shown} more" if len(skipped) > shown else ""
    return f"{len(skipped)} unreadable image(s) were skipped: {names}{more}."


def minutes(value: float) -> str:
    """A time limit in minutes for people: 0.05 -> '3 s', 1.5 -> '1.5 min', 1440 -> '24 h'."""
    if value < 1:
        return f"{value * 60:.3g} s"
    return f"{value:.3g} min" if value < 60 else f"{value / 60:.3g} h"


def epochs_done(s) -> str:
    """A LoopState's epochs for people: '3 epochs', or '3 epochs (the last cut short at 41% of its images)'
    when the time limit ended it."""
    text = f"{s.epoch} epoch{'s' if s.epoch != 1 else ''}"
    return text + (f" (the last cut short at {s.last_share:.0%} of its images)" if s.last_share < 1 else "")


def is_finished(run_dir: Path) -> bool:
    """A run is finished once its metrics, report and best checkpoint exist."""
    run_dir = Path(run_dir)
    return all((run_dir / f).is_file() for f in ("metrics.json", "report.md", "best.pt"))


def flatten(d: Dict, prefix: str = "") -> Dict[str, object]:
    """A nested config dict as ``{"section.key": value}``."""
    out = {}
    for k, v in d.items():
        out.update(flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def config_changes(run_dir: Path, cfg: Config, ignore: AbstractSet[str] = frozenset()) -> List[str]:
    """``key: saved -> requested`` for each config value, other than the ``ignore`` keys, in which the run folder
    differs from ``cfg``."""
    saved = Path(run_dir) / "config.yaml"
    if not saved.is_file():
        return []
    old, new = flatten(read_yaml(saved)), flatten(to_dict(cfg))
    keys = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k) and k not in ignore]
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys]


def _check_compatible(run_dir: Path, cfg: Config) -> None:
    diff = config_changes(run_dir, cfg, ignore=RESUMABLE_CHANGES)
    if diff:
        raise ValueError(f"Cannot resume {run_dir}: the config differs from the interrupted run "
                         f"({', '.join(diff[:5])}). Resume with the same config, or start a new run with "
                         f"--set output.name=NEW.")
    changes = config_changes(run_dir, cfg)
    if changes:
        log.info("Resuming %s with changed settings: %s", run_dir, "; ".join(changes))


def refuse_changes_to_finished(cfg: Config) -> None:
    """--resume of a finished run: fine with its own config (nothing to do); a change could never apply."""
    changes = config_changes(cfg.run_dir, cfg, ignore=HOW_TO_RUN)
    if changes:
        raise ValueError(f"{cfg.run_dir} is already finished, so --resume cannot apply {'; '.join(changes[:4])}. "
                         f"Train a new run with these settings (--set output.name=NEW), or replace this one "
                         f"with --overwrite.")


def check_run_dir(cfg: Config, resume: bool, overwrite: bool) -> Optional[Path]:
    """Refuse to replace a run silently; return last.pt when resuming. Reads only (safe on every process)."""
    run_dir = cfg.run_dir
    if overwrite:
        if run_dir.exists() and any(run_dir.iterdir()) and not (
                (run_dir / "config.yaml").is_file() or (run_dir / "last.pt").is_file()):
            raise ValueError(f"{run_dir} exists but is not an emoclf run folder; refusing to delete it. "
                             f"Choose another output.dir or output.name.")
        return None
    if is_finished(run_dir):
        raise ValueError(f"{run_dir} already holds a finished run. Use another name (--set output.name=NEW), "
                         f"or pass --overwrite to replace it.")
    last = run_dir / "last.pt"
    if last.is_file():
        if not resume:
            raise ValueError(f"{run_dir} holds an unfinished run. Continue it with --resume, or replace it "
                             f"with --overwrite.")
        _check_compatible(run_dir, cfg)
        return last
    if resume:
        log.warning("Nothing to resume in %s (no last.pt); starting from the first epoch.", run_dir)
    return None


def apply_run_dir(cfg: Config, overwrite: bool) -> None:
    """Create the run folder (emptying it first with ``overwrite``); main process only."""
    if overwrite and cfg.run_dir.exists():
        shutil.rmtree(cfg.run_dir)
    cfg.run_dir.mkdir(parents=True, exist_ok=True)


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
    """Predict a split, time it, write metrics files, plots and report.md; return the metrics."""
    start = time.perf_counter()
    logits = predict_logits(model, split.images, norm, batch_size, dtype, tta=tta, desc="scoring")
    elapsed = time.perf_counter() - start
    extra = {"tta": check_tta(tta), **target.extra,
             "inference_ms_per_image": 1000 * elapsed / max(len(split), 1),
             "latency_ms_batch1": timed_inference(model, split.images, norm, dtype, tta=tta) if len(split) else 0.0,
             "device": device_name(norm.device), "versions": versions()}
    metrics = write_eval_files(target.out_dir, split.paths, split.labels, logits, class_names, extra)
    plot_run(target.out_dir, target.title)
    write_run_report(target.out_dir, target.title, target.notes)
    return metrics


def finalize_run(trainer) -> Path:
    """Score the best checkpoint on validation and write every artifact of the run folder."""
    run_dir, cfg, s = trainer.run_dir, trainer.cfg, trainer.state
    best = ck.read(run_dir / "best.pt")
    trainer.raw_model.load_state_dict(best["model_state"])
    notes = []
    if trainer.dataset.val_from_train:
        notes.append(f"No validation folder: {len(trainer.val)} images ({cfg.data.val_fraction:.0%} of train per "
                     f"class, seed {cfg.seed}) were held out for validation.")
    bad = trainer.train.skipped + trainer.val.skipped
    skipped = len(bad)
    if skipped:
        notes.append(skipped_note(bad) + " The full list with reasons is in skipped_files.txt.")
        atomic_write_text(run_dir / "skipped_files.txt", "".join(f"{p}\t{why}\n" for p, why in bad))
    if s.stopped in ("time_limit", "early_stopping"):
        notes.append(f"Training stopped by {s.stopped.replace('_', ' ')} after {epochs_done(s)}.")
    extra = {"num_params": count_parameters(trainer.raw_model),
             "trainable_params": count_parameters(trainer.raw_model, trainable_only=True),
             "model_size_mb": round((run_dir / "best.pt").stat().st_size / 1e6, 3),
             "train_seconds": round(s.train_seconds, 2), "best_epoch": s.best_epoch, "epochs_trained": s.epoch,
             "last_epoch_share": round(s.last_share, 4),
             "stopped": s.stopped or "completed", "model": cfg.model.name, "split": "validation",
             "data_root": str(Path(trainer.dataset.root).resolve()), "num_train_images": len(trainer.train),
             "skipped_images": skipped}
    title = f"{cfg.run_name} ({cfg.model.name})"
    score(trainer.raw_model, trainer.norm, trainer.val, trainer.class_names, cfg.train.eval_batch_size,
          cfg.train.tta, trainer.dtype, Scored(run_dir, title, extra, notes))
    log.info("Finished %s: report at %s", run_dir, run_dir / "report.md")
    return run_dir


@dataclass
class LoadedRun:
    """A finished run's model, ready for inference."""

    model: nn.Module
    cfg: Config
    class_names: List[str]
    preprocessing: Dict
    run_dir: Optional[Path]
    checkpoint: Path
    channels_last: bool = False
    members: Optional[List[Path]] = None  # the runs of an ensemble (see ensemble.load_runs); None: one run


def load_run(path: Path, device: str = "auto") -> LoadedRun:
    """Model of a run folder (its best.pt) or of a checkpoint file, on ``device``."""
    path = Path(path)
    if path.is_dir():
        ckpt_path = path / "best.pt"
        if not ckpt_path.is_file():
            raise FileNotFoundError(f"{path} has no best.pt: it is not a finished emoclf run. Train it first "
                                    f"(emoclf train) or pass another run folder.")
        if not is_finished(path):
            log.warning("%s is not a finished run (no report.md): using the best checkpoint so far. Finish it "
                        "with emoclf train --resume.", path)
    elif path.is_file():
        ckpt_path = path
    else:
        raise FileNotFoundError(f"Run not found: {path}. Pass a run folder such as outputs/cnn or a .pt checkpoint.")
    c = ck.read(ckpt_path)
    model, cfg = ck.model_from_checkpoint(c, str(ckpt_path))
    dev = select_device(device, "--device")
    channels_last = bool(c.get("channels_last", False)) if dev.type == "cpu" else use_channels_last("auto", dev)
    model = ck.to_device(model, dev, channels_last)
    return LoadedRun(model, cfg, list(c["class_names"]), c["preprocessing"],
                     ckpt_path.parent if path.is_file() else path, ckpt_path, channels_last)


# What makes two evaluations the same one: a new result replaces the folder only of the same evaluation.
# own_data: the run's own split (e.g. the training part of train/ when validation was held out of it) or --data.
SAME_EVALUATION = ("checkpoint", "members", "data_root", "split", "tta", "own_data")


def _same_evaluation(held: Dict, identity: Dict) -> bool:
    for key, value in identity.items():
        old = held.get(key)
        if key == "own_data" and old is None:
            continue  # written before it was recorded
        if key in ("checkpoint", "data_root") and isinstance(old, str):
            old = str(Path(old).resolve())  # written before paths were stored absolute: as typed, from here
        if key == "members" and isinstance(old, list):
            old = [str(Path(m).resolve()) for m in old]
        if old != value:
            return False
    return True


def _evaluation_folder(parent: Path, name: str, identity: Dict) -> Path:
    """``parent/name``, or ``name-2``, ``name-3``, ... when that folder holds another evaluation (another
    checkpoint, run, data folder, split or test-time augmentation): one evaluation never replaces another."""
    for n in range(1, 10_000):
        folder = parent / (name if n == 1 else f"{name}-{n}")
        try:
            held = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            held = None  # no folder, or no finished evaluation in it
        if not isinstance(held, dict) or _same_evaluation(held, identity):
            if n > 1:
                log.info("%s holds another evaluation; writing to %s", parent / name, folder)
            return folder
    raise ValueError(f"Too many evaluations named {name} in {parent}; pass --out DIR.")


def evaluate_run(run, data: Optional[str] = None, split: Optional[str] = None, tta: Optional[str] = None,
                 device: str = "auto", out: Optional[str] = None) -> Dict:
    """Score a finished run (or several, averaged) on its own validation data or any labelled folder.

    Writes RUN/eval/<data>-<split>[-tta]/, or for several runs ensemble-<names>/<data>-<split>[-tta]/ beside the
    first; ``out`` replaces that parent folder.
    """
    from emoclf.runs.ensemble import ensemble_dir, load_runs, resolve_tta
    from emoclf.inference.predict import as_run_list

    runs = as_run_list(run)
    lr = load_runs(runs, device)
    cfg = lr.cfg
    root = Path(data) if data else Path(cfg.data.root)
    ev, info = labelled_split(root, split, lr.class_names, cfg.data, cfg.seed, own_data=data is None)
    ev = load_split(ev, cfg.data, info["root"], info["split"])
    if len(ev) == 0:
        raise ValueError(f"No readable images of the model's classes ({', '.join(lr.class_names)}) in {root}.")
    norm = Normalizer(lr.preprocessing["mean"], lr.preprocessing["std"], next(lr.model.parameters()).device,
                      lr.channels_last)
    tta, tta_name = resolve_tta(lr, tta)  # None: as the run scores itself (its train.tta; each member its own)
    name = f"{Path(info['root']).name}-{info['split']}" + ("" if tta_name == "none" else f"-{tta_name}")
    if not lr.members and lr.checkpoint.name != "best.pt":
        name += f"-{lr.checkpoint.stem}"  # e.g. last.pt: not the run's best
    parent = Path(out) if out else (ensemble_dir(runs) if lr.members else lr.run_dir / "eval")
    what = f"Run {lr.run_dir}" if not lr.members else \
        f"Ensemble of {len(lr.members)} runs ({', '.join(map(str, lr.members))}; probabilities averaged)"
    notes = [f"{what} scored on {info['root']} ({info['split']}, {len(ev)} images)."] + info["notes"]
    extra = {"model": cfg.model.name if not lr.members else "ensemble",
             "checkpoint": str(lr.checkpoint.resolve()), "checkpoint_sha256": file_digest(lr.checkpoint),
             "data_root": str(Path(info["root"]).resolve()), "split": info["split"],
             "excluded_images": info["excluded"], "skipped_images": len(ev.skipped), "tta": tta_name,
             "own_data": data is None}
    if lr.members:
        extra["members"] = [str(Path(m).resolve()) for m in lr.members]
    out_dir = _evaluation_folder(parent, name, {k: extra.get(k) for k in SAME_EVALUATION})
    who = f"ensemble of {len(lr.members)} runs" if lr.members else cfg.run_name
    title = f"{who} on {out_dir.name}"
    if ev.skipped:
        notes.append(skipped_note(ev.skipped))
    metrics = score(lr.model, norm, ev, lr.class_names, cfg.train.eval_batch_size, tta, None,
                    Scored(out_dir, title, extra, notes))
    metrics["out_dir"] = str(out_dir)
    return metrics
