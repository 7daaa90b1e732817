"""Markdown reports built from the files of a run folder."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List

from emoclf.runs.folder import (
    CLASSIFICATION_REPORT,
    CONFIG,
    CONFUSION_NORMALIZED_PNG,
    CONFUSION_PNG,
    CURVES,
    HISTORY,
    METRICS,
    REPORT,
)
from emoclf.utils.files import atomic_write_text


def percent(x) -> str:
    """0.6843 -> '68.43%'; not a number -> 'n/a'."""
    return f"{100 * x:.2f}%" if isinstance(x, (int, float)) else "n/a"


def metrics_table(m: Dict) -> List[str]:
    """Headline metrics as Markdown table lines."""
    rows = [
        ("accuracy", percent(m.get("accuracy"))),
        ("top-2 accuracy", percent(m.get("top2_accuracy"))),
        ("macro F1", percent(m.get("f1_macro"))),
        ("weighted F1", percent(m.get("f1_weighted"))),
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
        lines.append(f"| {name} | {v['support']} | {percent(v['recall'])} |")
    return lines


def write_run_report(folder: Path, title: str, notes: List[str] = ()) -> Path:
    """report.md for a run folder (or an evaluation folder inside one) from the files already there."""
    folder = Path(folder)
    m = json.loads((folder / METRICS).read_text(encoding="utf-8"))
    lines = [f"# {title}", ""]
    lines += [f"> {n}" for n in notes] + ([""] if notes else [])
    lines += metrics_table(m) + [""]
    if (folder / CURVES).is_file():
        lines += ["## Training curves", "", "![accuracy, macro F1 and loss per epoch](curves.png)", ""]
    if (folder / HISTORY).is_file():
        lines += ["Per-epoch numbers: [history.csv](history.csv).", ""]
    lines += ["## Confusion matrices", ""]
    for name, alt in ((CONFUSION_PNG, "counts"), (CONFUSION_NORMALIZED_PNG, "rows normalized")):
        if (folder / name).is_file():
            lines += [f"![confusion matrix, {alt}]({name})", ""]
    lines += ["## Per class", ""] + _per_class(m) + [""]
    if (folder / CLASSIFICATION_REPORT).is_file():
        report = (folder / CLASSIFICATION_REPORT).read_text(encoding="utf-8")
        lines += ["## Classification report (scikit-learn)", "", "```", report.rstrip(), "```", ""]
    lines += ["Every image's scores: [predictions.csv](predictions.csv).", ""]
    if (folder / CONFIG).is_file():
        lines += ["Resolved configuration: [config.yaml](config.yaml).", ""]
    path = folder / REPORT
    atomic_write_text(path, "\n".join(lines))
    return path


