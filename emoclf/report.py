"""Markdown reports built from the files of a run folder."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List

from emoclf.utils.files import atomic_write_text


def _pct(x) -> str:
    return f"{100 * x:.2f}%" if isinstance(x, (int, float)) else "n/a"


def metrics_table(m: Dict) -> List[str]:
    """Headline metrics as Markdown table lines."""
    rows = [
        ("accuracy", _pct(m.get("accuracy"))),
        ("top-2 accuracy", _pct(m.get("top2_accuracy"))),
        ("macro F1", _pct(m.get("f1_macro"))),
        ("weighted F1", _pct(m.get("f1_weighted"))),
        ("loss (cross-entropy)", f"{m.get('loss', float('nan')):.4f}"),
        ("images scored", str(m.get("num_images", "n/a"))),
    ]
    for key, label in (("num_params", "parameters"), ("model_size_mb", "model size (MB)"),
                       ("train_seconds", "training time (s)"), ("best_epoch", "best epoch"),
                       ("epochs_trained", "epochs trained"), ("inference_ms_per_image", "inference ms/image"),
                       ("device", "device"), ("tta", "test-time augmentation")):
        if key in m:
            value = m[key]
            rows.append((label, f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else
                         f"{value:.2f}" if isinstance(value, float) else str(value)))
    return ["| metric | value |", "| --- | --- |"] + [f"| {a} | {b} |" for a, b in rows]


def _per_class(m: Dict) -> List[str]:
    lines = ["| class | images | recall |", "| --- | ---: | ---: |"]
    for name, v in m.get("per_class", {}).items():
        lines.append(f"| {name} | {v['support']} | {_pct(v['recall'])} |")
    return lines


def write_run_report(folder: Path, title: str, notes: List[str] = ()) -> Path:
    """report.md for a run folder (or an evaluation folder inside one) from the files already there."""
    folder = Path(folder)
    m = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    lines = [f"# {title}", ""]
    lines += [f"> {n}" for n in notes] + ([""] if notes else [])
    lines += metrics_table(m) + [""]
    if (folder / "curves.png").is_file():
        lines += ["## Training curves", "", "![accuracy, macro F1 and loss per epoch](curves.png)", ""]
    if (folder / "history.csv").is_file():
        lines += ["Per-epoch numbers: [history.csv](history.csv).", ""]
    lines += ["## Confusion matrices", ""]
    for name, alt in (("confusion_matrix.png", "counts"), ("confusion_matrix_normalized.png", "rows normalized")):
        if (folder / name).is_file():
            lines += [f"![confusion matrix, {alt}]({name})", ""]
    lines += ["## Per class", ""] + _per_class(m) + [""]
    if (folder / "classification_report.txt").is_file():
        report = (folder / "classification_report.txt").read_text(encoding="utf-8")
        lines += ["## Classification report (scikit-learn)", "", "```", report.rstrip(), "```", ""]
    lines += ["Every image's scores: [predictions.csv](predictions.csv).", ""]
    if (folder / "config.yaml").is_file():
        lines += ["Resolved configuration: [config.yaml](config.yaml).", ""]
    path = folder / "report.md"
    atomic_write_text(path, "\n".join(lines))
    return path


def _cell(key: str, value) -> str:
    if value is None:
        return "n/a"
    if key in ("accuracy", "top2_accuracy", "f1_macro", "f1_weighted"):
        return _pct(value)
    if key == "loss":
        return f"{value:.4f}"
    if isinstance(value, float):
        return f"{value:.2f}"
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def comparison_table(rows: List[Dict], best: str) -> List[str]:
    """The comparison as Markdown table lines (best run in bold)."""
    from emoclf.comparison.compare import COLUMNS

    cols = [(k, h) for k, h in COLUMNS if k not in ("data_root", "run_dir")]
    lines = ["| " + " | ".join(h for _, h in cols) + " |", "| --- " * len(cols) + "|"]
    for r in rows:
        cells = [_cell(k, r.get(k)) for k, _ in cols]
        if r["run"] == best:
            cells[0] = f"**{cells[0]}**"
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def write_comparison_report(out_dir: Path, summary: Dict) -> Path:
    """comparison.md: warnings, table, best model, figures and links to each run's report."""
    import os

    from emoclf.comparison.compare import TIMING_BATCH

    out_dir, rows, best = Path(out_dir), summary["runs"], summary["best"]
    lines = [f"# Model comparison ({len(rows)} runs)", ""]
    lines += [f"> **Warning:** {w}" for w in summary["warnings"]] + ([""] if summary["warnings"] else [])
    lines += [f"Best model by macro F1: **{best['run']}** ({_pct(best['f1_macro'])}).", ""]
    lines += comparison_table(rows, best["run"]) + [""]
    lines += [f"Scores are on each row's own evaluation data: a run's validation split, or the data an `emoclf "
              f"evaluate` folder scored ({', '.join(sorted({str(r['split']) for r in rows}))}). "
              f"Inference times were measured when this comparison was written, in one process on "
              f"{summary['device']}, in batches of {TIMING_BATCH} images (ms/image) and one image at a time "
              f"(latency), with every view of the row's test-time augmentation (TTA), taking turns and keeping "
              f"the best of three; training times come from each run's "
              f"metrics.json. Every number: [comparison.csv](comparison.csv).", ""]
    titles = {"metrics.png": "Headline metrics", "validation_curves.png": "Validation curves",
              "confusion_matrices.png": "Normalized confusion matrices"}
    for name in summary["figures"]:
        lines += [f"## {titles.get(name, name)}", "", f"![{titles.get(name, name)}]({name})", ""]
    lines += ["## Runs", ""]
    for r in rows:
        link = Path(os.path.relpath(Path(r["scores_dir"]) / "report.md", out_dir.resolve())).as_posix()
        lines.append(f"- {r['run']} ({r['model']}, data {r['data_root']}): [report]({link})")
    lines.append("")
    path = out_dir / "comparison.md"
    atomic_write_text(path, "\n".join(lines))
    return path
