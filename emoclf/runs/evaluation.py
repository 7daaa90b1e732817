"""`emoclf evaluate`: a finished run (or an ensemble of runs) scored on any labelled folder."""
from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Dict, Optional

from emoclf.data.augment import Normalizer
from emoclf.data.cache import user_cache_dir
from emoclf.data.dataset import labelled_split, load_split
from emoclf.runs.ensemble import ensemble_dir, load_runs, resolve_tta
from emoclf.runs.folder import BEST_CHECKPOINT, METRICS, as_run_list, skipped_note
from emoclf.runs.names import saved_display_names
from emoclf.runs.scoring import Scored, score
from emoclf.utils.files import file_digest

log = logging.getLogger(__name__)


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


def evaluation_folder(parent: Path, name: str, identity: Dict) -> Path:
    """``parent/name``, or ``name-2``, ``name-3``, ... when that folder holds another evaluation (another
    checkpoint, run, data folder, split or test-time augmentation): one evaluation never replaces another."""
    for n in range(1, 10_000):
        folder = parent / (name if n == 1 else f"{name}-{n}")
        try:
            held = json.loads((folder / METRICS).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            held = None  # no folder, or no finished evaluation in it
        if not isinstance(held, dict) or _same_evaluation(held, identity):
            if n > 1:
                log.info("%s holds another evaluation; writing to %s", parent / name, folder)
            return folder
    raise ValueError(f"Too many evaluations named {name} in {parent}; pass --out DIR.")


def _cache_config(data_cfg, data: Optional[str]):
    """The run's data settings, with the decoded-image cache of a --data folder (not trained on: the user's own
    photos, say) in the user's cache folder instead of inside that folder; data.cache_dir, when set, wins."""
    if data is None or data_cfg.cache_dir:
        return data_cfg
    cache = user_cache_dir()
    log.info("Decoded images of %s are cached in %s (set data.cache_dir to choose another folder)", data, cache)
    return dataclasses.replace(data_cfg, cache_dir=str(cache))


def evaluate_run(run, data: Optional[str] = None, split: Optional[str] = None, tta: Optional[str] = None,
                 device: str = "auto", out: Optional[str] = None) -> Dict:
    """Score a finished run (or several, averaged) on its own validation data or any labelled folder.

    Writes RUN/eval/<data>-<split>[-tta]/, or for several runs ensemble-<names>/<data>-<split>[-tta]/ beside the
    first; ``out`` replaces that parent folder.
    """
    runs = as_run_list(run)
    loaded = load_runs(runs, device)
    cfg = loaded.cfg
    root = Path(data) if data else Path(cfg.data.root)
    ev, info = labelled_split(root, split, loaded.class_names, cfg.data, cfg.seed, own_data=data is None)
    ev = load_split(ev, _cache_config(cfg.data, data), info["root"], info["split"])
    if len(ev) == 0:
        raise ValueError(f"No readable images of the model's classes ({', '.join(loaded.class_names)}) in {root}.")
    norm = Normalizer.for_preprocessing(loaded.preprocessing, next(loaded.model.parameters()).device,
                                        loaded.channels_last)
    tta, tta_name = resolve_tta(loaded, tta)  # None: as the run scores itself (its train.tta; each member its own)
    name = f"{Path(info['root']).name}-{info['split']}" + ("" if tta_name == "none" else f"-{tta_name}")
    if not loaded.members and loaded.checkpoint.name != BEST_CHECKPOINT:
        name += f"-{loaded.checkpoint.stem}"  # e.g. last.pt: not the run's best
    parent = Path(out) if out else (ensemble_dir(runs) if loaded.members else loaded.run_dir / "eval")
    what = f"Run {loaded.run_dir}" if not loaded.members else \
        f"Ensemble of {len(loaded.members)} runs ({', '.join(map(str, loaded.members))}; probabilities averaged)"
    notes = [f"{what} scored on {info['root']} ({info['split']}, {len(ev)} images)."] + info["notes"]
    extra = {"model": cfg.model.name if not loaded.members else "ensemble",
             "checkpoint": str(loaded.checkpoint.resolve()), "checkpoint_sha256": file_digest(loaded.checkpoint),
             "data_root": str(Path(info["root"]).resolve()), "split": info["split"],
             "excluded_images": info["excluded"], "skipped_images": len(ev.skipped), "tta": tta_name,
             "own_data": data is None, "display_names": saved_display_names(loaded.run_dir, loaded.class_names)}
    if loaded.members:
        extra["members"] = [str(Path(m).resolve()) for m in loaded.members]
    out_dir = evaluation_folder(parent, name, {k: extra.get(k) for k in SAME_EVALUATION})
    who = f"ensemble of {len(loaded.members)} runs" if loaded.members else cfg.run_name
    title = f"{who} on {out_dir.name}"
    if ev.skipped:
        notes.append(skipped_note(ev.skipped))
    metrics = score(loaded.model, norm, ev, loaded.class_names, cfg.train.eval_batch_size, tta, None,
                    Scored(out_dir, title, extra, notes))
    metrics["out_dir"] = str(out_dir)
    return metrics
