"""comparison.md and the comparison's table columns."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List

from emoclf.runs.folder import COMPARISON_MD, REPORT
from emoclf.runs.report import folder_collapse_warning, percent
from emoclf.utils.files import atomic_write_text

# Column key, header in comparison.md; comparison.csv uses the keys as its header.
COLUMNS = [("run", "run"), ("model", "model"), ("tta", "TTA"), ("accuracy", "accuracy"), ("top2_accuracy", "top-2"),
           ("f1_macro", "macro F1"), ("f1_weighted", "weighted F1"), ("loss", "loss"), ("num_params", "parameters"),
           ("model_size_mb", "size (MB)"), ("train_seconds", "training (s)"),
           ("inference_ms_per_image", "inference (ms/image)"), ("latency_ms_batch1", "latency (ms, batch 1)"),
           ("best_epoch", "best epoch"), ("epochs_trained", "epochs"), ("image_size", "input (px)"),
           ("num_images", "images scored"), ("data_root", "data"), ("run_dir", "run folder")]


TIMING_BATCH = 32  # images per timed forward pass, the same for every run


def format_cell(key: str, value) -> str:
    """One value of the comparison table as shown: metrics in percent, times with two decimals."""
    if value is None:
        return "n/a"
    if key in ("accuracy", "top2_accuracy", "f1_macro", "f1_weighted"):
        return percent(value)
    if key == "loss":
        return f"{value:.4f}"
    if isinstance(value, float):
        return f"{value:.2f}"
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def collapse_warnings(rows: List[Dict]) -> List[str]:
    """One warning per run that predicts a single class (or nearly) on its evaluation data."""
    found = ((r["run"], folder_collapse_warning(Path(r["scores_dir"]))) for r in rows)
    return [f"{run}: {warning}" for run, warning in found if warning]


def comparison_table(rows: List[Dict], best: str) -> List[str]:
    """The comparison as Markdown table lines (best run in bold)."""
    cols = [(k, h) for k, h in COLUMNS if k not in ("data_root", "run_dir")]
    lines = ["| " + " | ".join(h for _, h in cols) + " |", "| --- " * len(cols) + "|"]
    for r in rows:
        cells = [format_cell(k, r.get(k)) for k, _ in cols]
        if r["run"] == best:
            cells[0] = f"**{cells[0]}**"
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def write_comparison_report(out_dir: Path, summary: Dict) -> Path:
    """comparison.md: warnings, table, best model, figures and links to each run's report."""
    out_dir, rows, best = Path(out_dir), summary["runs"], summary["best"]
    lines = [f"# Model comparison ({len(rows)} runs)", ""]
    warnings = summary["warnings"] + summary.get("collapsed", [])  # collapsed: runs that predict (nearly) one class
    lines += [f"> **Warning:** {w}" for w in warnings] + ([""] if warnings else [])
    lines += [f"Best model by macro F1: **{best['run']}** ({percent(best['f1_macro'])}).", ""]
    lines += comparison_table(rows, best["run"]) + [""]
    lines += [f"Scores are on each row's own evaluation data: a run's validation split, or the data an `emoclf "
              f"evaluate` folder scored ({', '.join(sorted({str(r['split']) for r in rows}))}). "
              f"Inference times were measured when this comparison was written, in one process on "
              f"{summary['device']}, in batches of {TIMING_BATCH} images (ms/image) and one image at a time "
              f"(latency), with every view of the row's test-time augmentation (TTA), taking turns and keeping "
              f"the best of three; training times come from each run's "
              f"metrics.json. Every number: [comparison.csv](comparison.csv).", "",
              "A run's own report.md shows another inference ms/image: the wall time of its own scoring (its "
              "validation images once, in batches of train.eval_batch_size, when it was trained or evaluated, "
              "perhaps on a busier machine); the numbers here were measured side by side and compare the runs.", ""]
    titles = {"metrics.png": "Headline metrics", "validation_curves.png": "Validation curves",
              "confusion_matrices.png": "Normalized confusion matrices"}
    captions = {"validation_curves.png": "Stars on accuracy and macro F1: each run's best epoch (highest validation "
                "macro F1: the weights kept in best.pt and scored above); on loss: each run's lowest validation "
                "loss, which may come at another epoch."}
    for name in summary["figures"]:
        lines += [f"## {titles.get(name, name)}", "", f"![{titles.get(name, name)}]({name})", ""]
        lines += [captions[name], ""] if name in captions else []
    lines += ["## Runs", ""]
    for r in rows:
        link = Path(os.path.relpath(Path(r["scores_dir"]) / REPORT, out_dir.resolve())).as_posix()
        lines.append(f"- {r['run']} ({r['model']}, data {r['data_root']}): [report]({link})")
    lines.append("")
    path = out_dir / COMPARISON_MD
    atomic_write_text(path, "\n".join(lines))
    return path
