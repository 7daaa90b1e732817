"""The run-folder contract: the files a run folder holds, when a run is finished, and guarding a run folder."""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import AbstractSet, Dict, List, Optional, Sequence, Tuple, Union

from emoclf.config import Config, to_dict
from emoclf.utils.locks import FileLock, is_locked
from emoclf.utils.yamlio import read_yaml

# The files of a run folder (docs/architecture.md says what each holds). An evaluation folder holds the same
# scoring files, without the checkpoints and the history.
CONFIG = "config.yaml"  # the resolved config
BEST_CHECKPOINT = "best.pt"  # weights of the epoch with the best validation macro F1, plus plain data
LAST_CHECKPOINT = "last.pt"  # weights and optimizer state after the latest epoch: what --resume continues
HISTORY = "history.csv"  # one row per epoch
CURVES = "curves.png"
CONFUSION_CSV = "confusion_matrix.csv"
CONFUSION_PNG = "confusion_matrix.png"
CONFUSION_NORMALIZED_PNG = "confusion_matrix_normalized.png"
CLASSIFICATION_REPORT = "classification_report.txt"
METRICS = "metrics.json"
PREDICTIONS = "predictions.csv"
REPORT = "report.md"
SKIPPED_FILES = "skipped_files.txt"
TRACKERS = "trackers.json"  # only with output.loggers: the tracker runs a --resume continues
TENSORBOARD_DIR = "tensorboard"  # only with output.loggers: [tensorboard]; the event files
# Written when a run starts: the proof that emoclf made the folder (only such a folder is ever replaced), and the
# file a training process locks, so that a second process cannot write into the same run.
RUN_MARKER = ".emoclf-run"
FINISHED_WHEN = (METRICS, REPORT, BEST_CHECKPOINT)  # a run is finished once all three exist
COMPARISON_JSON = "comparison.json"  # written by emoclf compare; names the best run
COMPARISON_CSV = "comparison.csv"
COMPARISON_MD = "comparison.md"  # the comparison as a page

log = logging.getLogger(__name__)
# Keys that change how a run is computed, not what it computes.
HOW_TO_RUN = {"train.device", "train.num_threads", "train.eval_batch_size", "train.compile", "output.loggers",
              "output.class_names"}
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
    return all((run_dir / f).is_file() for f in FINISHED_WHEN)


def flatten(d: Dict, prefix: str = "") -> Dict[str, object]:
    """A nested config dict as ``{"section.key": value}``."""
    out = {}
    for k, v in d.items():
        out.update(flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def config_changes(run_dir: Path, cfg: Config, ignore: AbstractSet[str] = frozenset()) -> List[str]:
    """``key: saved -> requested`` for each config value, other than the ``ignore`` keys, in which the run folder
    differs from ``cfg``."""
    saved = Path(run_dir) / CONFIG
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


def is_run_folder(run_dir: Path) -> bool:
    """Whether ``run_dir`` provably holds an emoclf run: its marker (written when a run starts), or, for runs of
    versions before the marker, config.yaml with a checkpoint (best.pt or last.pt) and a history.csv that starts
    with the epoch column. Only such a folder is replaced by --overwrite."""
    run_dir = Path(run_dir)
    if (run_dir / RUN_MARKER).is_file():
        return True
    if not (run_dir / CONFIG).is_file() or not any((run_dir / c).is_file() for c in (BEST_CHECKPOINT, LAST_CHECKPOINT)):
        return False
    try:
        with open(run_dir / HISTORY, encoding="utf-8") as fh:
            return fh.readline().startswith("epoch,")
    except (OSError, UnicodeDecodeError):
        return False


def _refuse_foreign(run_dir: Path) -> None:
    if run_dir.is_dir() and any(run_dir.iterdir()) and not is_run_folder(run_dir):
        raise ValueError(f"{run_dir} exists and is not an emoclf run folder (no {RUN_MARKER} marker, nor the "
                         f"config.yaml, checkpoint and history.csv of an earlier run); refusing to write into it or "
                         f"delete it. Choose another output.dir or output.name.")
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"{run_dir} is a file, not a run folder. Choose another output.dir or output.name.")


def check_run_dir(cfg: Config, resume: bool, overwrite: bool) -> Optional[Path]:
    """Refuse to replace a run silently, or to write into a folder that is not a run's; return last.pt when
    resuming. Reads only (safe on every process)."""
    run_dir = cfg.run_dir
    _refuse_foreign(run_dir)
    if is_locked(run_dir / RUN_MARKER):
        raise ValueError(f"The run folder {run_dir} is in use by another emoclf process. Wait for it to finish, or "
                         f"choose another output.name; two processes writing one run would mix their files.")
    if overwrite:
        return None
    if is_finished(run_dir):
        raise ValueError(f"{run_dir} already holds a finished run. Use another name (--set output.name=NEW), "
                         f"or pass --overwrite to replace it.")
    last = run_dir / LAST_CHECKPOINT
    if last.is_file():
        if not resume:
            raise ValueError(f"{run_dir} holds an unfinished run. Continue it with --resume, or replace it "
                             f"with --overwrite.")
        _check_compatible(run_dir, cfg)
        return last
    if resume:
        log.warning("Nothing to resume in %s (no last.pt); starting from the first epoch.", run_dir)
    return None


def apply_run_dir(cfg: Config, overwrite: bool) -> FileLock:
    """Create the run folder (emptying it first with ``overwrite``) and lock it for this process; main process
    only. Returns the lock: hold it for the whole run (the operating system drops it if the process dies)."""
    run_dir = cfg.run_dir
    _refuse_foreign(run_dir)  # again: the folder may have changed while the data loaded
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(run_dir / RUN_MARKER, keep=True).acquire(f"The run folder {run_dir}")
    if overwrite:
        for entry in run_dir.iterdir():  # everything but the marker this process holds locked
            if entry.name == RUN_MARKER:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    return lock


def _best_of_comparison(path: Path) -> Optional[Path]:
    try:
        best = json.loads(path.read_text(encoding="utf-8")).get("best", {}).get("run_dir")
    except (OSError, ValueError, AttributeError):
        return None
    return Path(best) if best and (Path(best) / BEST_CHECKPOINT).is_file() else None


def as_run_list(run: Union[str, Path, Sequence]) -> List[Path]:
    """One run (a path) or several, for an ensemble (a sequence of paths), as a list of paths."""
    return [Path(run)] if isinstance(run, (str, Path)) else [Path(r) for r in run]


def comparison_files(outputs: Path = Path("outputs")) -> List[Path]:
    """The comparison.json files under ``outputs`` (at most two folders down), newest first."""
    outputs = Path(outputs)
    found = [p for pattern in (COMPARISON_JSON, f"*/{COMPARISON_JSON}", f"*/*/{COMPARISON_JSON}")
             for p in outputs.glob(pattern)]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def finished_runs(outputs: Path = Path("outputs")) -> List[Path]:
    """The finished run folders under ``outputs`` (at most two folders down), newest first."""
    outputs = Path(outputs)
    metrics = [p for pattern in (f"*/{METRICS}", f"*/*/{METRICS}") for p in outputs.glob(pattern)]
    finished = [m for m in metrics if is_finished(m.parent)]
    return [m.parent for m in sorted(finished, key=lambda p: p.stat().st_mtime, reverse=True)]


def default_run(outputs: Path = Path("outputs")) -> Tuple[Path, str]:
    """Best run of the latest comparison under ``outputs``, else its newest finished run; and why it was chosen."""
    outputs = Path(outputs)
    for comp in comparison_files(outputs):
        best = _best_of_comparison(comp)
        if best is not None:
            return best, f"best run of {comp}"
    finished = finished_runs(outputs)
    if not finished:
        raise FileNotFoundError(f"No finished run under {outputs.resolve()} to predict with (looked for comparisons "
                                f"and run folders there; --runs-dir, default: outputs/ of the folder you are in). Run "
                                f"emoclf from the project folder, pass --runs-dir PROJECT/outputs or --run "
                                f"PROJECT/outputs/cnn (a run folder or a .pt checkpoint), or train one (emoclf train "
                                f"-c configs/cnn.yaml).")
    return finished[0], f"newest finished run under {outputs}"
