"""Side-by-side comparison of finished runs, training the ones that are missing."""
from __future__ import annotations

import csv
import json
import logging
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from emoclf.comparison.report import COLUMNS, TIMING_BATCH, collapse_warnings
from emoclf.config import Config, load_config
from emoclf.data.dataset import discover, resolve_root
from emoclf.runs.folder import (
    BEST_CHECKPOINT,
    COMPARISON_CSV,
    COMPARISON_JSON,
    CONFIG,
    HOW_TO_RUN,
    LAST_CHECKPOINT,
    METRICS,
    check_run_dir,
    config_changes,
    is_finished,
)
from emoclf.utils.files import atomic_path, atomic_write_json, file_digest
from emoclf.utils.yamlio import read_yaml

log = logging.getLogger(__name__)


def plan_run(cfg: Config, overwrite: bool = False) -> str:
    """What ``ensure_run`` will do for ``cfg`` ('reused', 'retrained', 'resumed' or 'trained'), raising now what
    it would refuse. A finished run is reused also when only how it runs differs (e.g. train.device)."""
    run_dir, diff = cfg.run_dir, config_changes(cfg.run_dir, cfg, ignore=HOW_TO_RUN)
    if is_finished(run_dir) and not diff:
        return "reused"
    resolve_root(Path(cfg.data.root))  # a run to train: missing data says more than a changed config
    if is_finished(run_dir):
        if not overwrite:
            raise ValueError(f"{run_dir} holds a finished run with another config ({'; '.join(diff[:4])}). "
                             f"Give the experiment another output.name in its YAML file, another output.dir "
                             f"(--set output.dir=DIR), or pass --overwrite to retrain it.")
        return "retrained"
    if (run_dir / LAST_CHECKPOINT).is_file():
        if diff and overwrite:
            return "retrained"
        check_run_dir(cfg, resume=True, overwrite=False)  # refuses a change that --resume cannot take
        return "resumed"
    return "trained"


def ensure_run(cfg: Config, overwrite: bool = False, action: str = "") -> Tuple[Path, str]:
    """A finished run of ``cfg``: reused, resumed or trained as ``plan_run`` says; and what was done."""
    from emoclf.training.trainer import train

    action = action or plan_run(cfg, overwrite)
    log.info("%s run %s", {"reused": "Reusing finished", "retrained": "Retraining", "resumed": "Resuming unfinished",
                           "trained": "Training missing"}[action], cfg.run_dir)
    if action != "reused":
        train(cfg, resume=action == "resumed", overwrite=action == "retrained")
    return cfg.run_dir, action


def runs_from_configs(paths: Sequence[str], overrides: Sequence[str] = (), overwrite: bool = False) -> List[Path]:
    """Run folders of the given config files (every override applied to each), training what is missing."""
    return train_missing(paths, [load_config(p, overrides) for p in paths], overwrite)


def train_missing(paths: Sequence[str], cfgs: Sequence[Config], overwrite: bool = False) -> List[Path]:
    """Run folders of ``cfgs`` (read from ``paths``, which messages name), training what is missing.

    Everything that would stop a run (its config, data and starting weights) is checked for every config
    before the first one trains."""
    from emoclf.models import check_model_name
    from emoclf.models.factory import starting_state

    for path, cfg in zip(paths, cfgs):
        try:
            check_model_name(cfg.model.name)
        except ValueError as exc:  # name the file: a comparison reads several
            raise ValueError(f"{path}: {exc}") from None
    seen: Dict[Path, str] = {}
    for path, cfg in zip(paths, cfgs):
        key = cfg.run_dir.resolve()
        if key in seen:
            raise ValueError(f"{seen[key]} and {path} both write to {cfg.run_dir}. Give them different "
                             f"output.name values in their YAML files (a --set applies to every config).")
        seen[key] = path
    actions = [plan_run(cfg, overwrite) for cfg in cfgs]
    for cfg, action in zip(cfgs, actions):
        if action != "reused":
            discover(cfg.data, cfg.seed, strict=action != "resumed")
            starting_state(cfg)  # loads (downloads once) the starting weights, or says why it cannot
    return [ensure_run(cfg, overwrite, action)[0] for cfg, action in zip(cfgs, actions)]


def _timing_input(preprocessing: Dict) -> np.ndarray:
    p = preprocessing
    shape = (TIMING_BATCH, 1 if p["grayscale"] else 3, p["image_size"], p["image_size"])
    return np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)


def time_inference(run_dirs: Sequence[Path], device: str = "auto", rounds: int = 3,
                   ttas: Optional[Sequence[str]] = None) -> List[Dict]:
    """Per run: ms per image (batches of TIMING_BATCH) and batch-1 latency, measured here, best of ``rounds``,
    with every view of its test-time augmentation (``ttas``, one mode per run; default none)."""
    from emoclf.data.augment import Normalizer
    from emoclf.engine import predict_logits, timed_inference
    from emoclf.runs.loading import load_run
    from emoclf.runs.scoring import device_name

    models = []
    for run_dir in run_dirs:
        loaded = load_run(run_dir, device)
        dev = next(loaded.model.parameters()).device
        models.append((loaded.model, Normalizer.for_preprocessing(loaded.preprocessing, dev),
                       _timing_input(loaded.preprocessing)))
    ttas = list(ttas) if ttas is not None else ["none"] * len(models)
    best = [{"inference_ms_per_image": float("inf"), "latency_ms_batch1": float("inf")} for _ in models]
    for _ in range(rounds):  # round-robin, keeping the fastest: other load on the machine hits every run alike
        for (model, norm, x), tta, b in zip(models, ttas, best):
            predict_logits(model, x, norm, TIMING_BATCH, tta=tta)  # warm-up
            start = time.perf_counter()
            predict_logits(model, x, norm, TIMING_BATCH, tta=tta)
            per_image = (time.perf_counter() - start) * 1000 / TIMING_BATCH
            b["inference_ms_per_image"] = min(b["inference_ms_per_image"], per_image)
            b["latency_ms_batch1"] = min(b["latency_ms_batch1"],
                                         timed_inference(model, x, norm, None, repeats=10, tta=tta))
    name = device_name(models[0][1].device) if models else ""
    return [dict(b, device=name) for b in best]


def _evaluated_run(folder: Path) -> Path:
    """The run that an `emoclf evaluate` result folder scored, else ``folder``.

    Found through the checkpoint its metrics.json names, or as RUN/eval/NAME; an evaluation of an earlier
    best.pt (the run trained again since) is refused rather than shown beside the new run's figures.
    """
    if is_finished(folder) or not (folder / METRICS).is_file():
        return folder
    m = json.loads((folder / METRICS).read_text(encoding="utf-8"))
    if m.get("members"):
        raise ValueError(f"{folder} scores an ensemble of runs; compare takes single runs or their evaluations.")
    named = Path(m["checkpoint"]) if isinstance(m.get("checkpoint"), str) and m["checkpoint"] else None
    candidates = [named] if named and named.is_absolute() else []
    if folder.parent.name == "eval":
        candidates.append(folder.parent.parent / (named.name if named else BEST_CHECKPOINT))
    if named and not named.is_absolute():
        candidates.append(named)  # written before paths were stored absolute: as typed, from here
    checkpoint = next((c for c in candidates if c.is_file() and is_finished(c.parent)), None)
    if checkpoint is None:
        if named is None:
            return folder
        raise FileNotFoundError(f"{folder} is an `emoclf evaluate` result, but the checkpoint it scored ({named}) is "
                                f"not in a finished run folder; compare shows a run's training figures beside the "
                                f"scores, so it needs that run.")
    if m.get("checkpoint_sha256") and m["checkpoint_sha256"] != file_digest(checkpoint):
        raise ValueError(f"{folder} scored an earlier {checkpoint.name} of {checkpoint.parent}, which was trained "
                         f"again since. Evaluate it again: emoclf evaluate {checkpoint.parent} --data "
                         f"{m.get('data_root', 'DIR')}")
    return checkpoint.parent


def collect(folder: Path) -> Dict:
    """One comparison row from a finished run folder, or from an `emoclf evaluate` result folder of one.

    A run gives its validation scores; an evaluation folder gives the scores it holds (e.g. on another
    dataset) with the run's training figures, config and validation curves.
    """
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"{folder} does not exist. Pass finished run folders (e.g. outputs/cnn) or "
                                f"`emoclf evaluate` result folders (RUN/eval/NAME).")
    run_dir = _evaluated_run(folder)
    if not is_finished(run_dir):
        raise FileNotFoundError(f"{folder} is not a finished emoclf run (needs metrics.json, report.md and "
                                f"best.pt) nor an `emoclf evaluate` result of one. Train it first, or compare with "
                                f"--config to train it.")
    m = json.loads((run_dir / METRICS).read_text(encoding="utf-8"))
    if run_dir != folder:
        m.update(json.loads((folder / METRICS).read_text(encoding="utf-8")))
    cfg = read_yaml(run_dir / CONFIG) if (run_dir / CONFIG).is_file() else {}
    row = {key: m.get(key) for key, _ in COLUMNS}
    row.update(run=run_dir.name if run_dir == folder else f"{run_dir.name} on {folder.name}",
               model=m.get("model", cfg.get("model", {}).get("name")),
               image_size=cfg.get("data", {}).get("image_size"), run_dir=str(run_dir.resolve()),
               scores_dir=str(folder.resolve()), class_names=list(m.get("class_names", [])), split=m.get("split"),
               measured_device=m.get("device"), measured_inference_ms_per_image=m.get("inference_ms_per_image"))
    return row


def consistency_warnings(rows: List[Dict]) -> List[str]:
    """Warnings when runs were scored on different data, splits or class lists."""
    warnings = []
    classes = {tuple(r["class_names"]) for r in rows}
    if len(classes) > 1:
        detail = "; ".join(f"{r['run']}: {', '.join(r['class_names'])}" for r in rows)
        warnings.append(f"The runs were evaluated on different classes ({detail}). Their metrics are not comparable.")
    data = {(r["data_root"], r["split"], r["num_images"]) for r in rows}
    if len(data) > 1:
        detail = "; ".join(f"{r['run']}: {r['data_root']} ({r['split']}, {r['num_images']} images)" for r in rows)
        warnings.append(f"The runs were evaluated on different data ({detail}). Compare them on the same data with "
                        f"`emoclf evaluate RUN --data DIR` and `emoclf compare RUN/eval/NAME ...`, or read the "
                        f"numbers with care.")
    ttas = {r["tta"] or "none" for r in rows}
    if len(ttas) > 1:
        detail = "; ".join(f"{r['run']}: {r['tta'] or 'none'}" for r in rows)
        warnings.append(f"The runs were scored with different test-time augmentation ({detail}); it changes "
                        f"accuracy and speed by itself. Score them alike with `emoclf evaluate RUN --tta MODE` and "
                        f"compare those folders, or read the numbers with care.")
    return warnings


def _unique_names(rows: List[Dict]) -> None:
    names = [r["run"] for r in rows]
    for r in rows:
        if names.count(r["run"]) > 1:
            r["run"] = f"{Path(r['run_dir']).parent.name}/{r['run']}"


def best_run(rows: List[Dict]) -> Dict:
    """The row with the highest macro F1 (ties: higher accuracy)."""
    return max(rows, key=lambda r: (r["f1_macro"] if r["f1_macro"] is not None else -1.0, r["accuracy"] or 0.0))


def write_comparison_csv(path: Path, rows: List[Dict]) -> None:
    """comparison.csv: one row per run, full-precision numbers."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow([k for k, _ in COLUMNS])
        writer.writerows([["" if r[k] is None else r[k] for k, _ in COLUMNS] for r in rows])


def compare_runs(run_dirs: Sequence[Path], out_dir: Path = Path("outputs/comparison"), device: str = "auto") -> Dict:
    """Write comparison.md/.csv/.json and the comparison figures for finished runs; return the summary."""
    from emoclf.comparison.figures import plot_comparison
    from emoclf.comparison.report import write_comparison_report

    unique = list(dict.fromkeys(Path(r).resolve() for r in run_dirs))  # runs or evaluation folders
    if len(unique) < 2:
        raise ValueError(f"emoclf compare needs at least two different runs; got {len(unique)} "
                         f"({', '.join(map(str, run_dirs)) or 'none'}). Pass run folders or --config files.")
    rows = [collect(r) for r in unique]
    _unique_names(rows)
    timings = time_inference([Path(r["run_dir"]) for r in rows], device, ttas=[r["tta"] or "none" for r in rows])
    for row, timing in zip(rows, timings):
        row.update(timing)  # one process, one device: the speeds are comparable
    best, warnings = best_run(rows), consistency_warnings(rows)
    collapsed = collapse_warnings(rows)  # kept apart: a run that learned little, not runs that cannot be compared
    for w in warnings + collapsed:
        log.warning("Warning: %s", w)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_comparison_csv(out_dir / COMPARISON_CSV, rows)
    figures = plot_comparison(rows, out_dir)
    summary = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "device": rows[0]["device"],
               "best": {"run": best["run"], "run_dir": best["run_dir"], "f1_macro": best["f1_macro"]},
               "warnings": warnings, "collapsed": collapsed, "figures": [f.name for f in figures], "runs": rows}
    write_comparison_report(out_dir, summary)
    atomic_write_json(out_dir / COMPARISON_JSON, summary)
    summary["out_dir"] = str(out_dir)
    return summary


def compare(runs: Sequence[str] = (), configs: Sequence[str] = (), overrides: Sequence[str] = (),
            out_dir: Path = Path("outputs/comparison"), overwrite: bool = False, device: str = "auto") -> Dict:
    """Train what the configs need, then compare those runs and the given run folders."""
    if overrides and not configs:
        raise ValueError("--set only applies to --config files; finished runs keep their own config.")
    run_dirs = [Path(r) for r in runs]
    if configs:
        for r in run_dirs:  # fail before spending time on training
            collect(r)
        run_dirs += runs_from_configs(configs, overrides, overwrite)
    return compare_runs(run_dirs, out_dir, device)
