"""Markdown reports built from the files of a run folder."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from emoclf.runs.folder import (
    CLASSIFICATION_REPORT,
    CONFIG,
    CONFUSION_CSV,
    CONFUSION_NORMALIZED_PNG,
    CONFUSION_PNG,
    CURVES,
    HISTORY,
    METRICS,
    REPORT,
)
from emoclf.runs.metrics import read_confusion_csv
from emoclf.utils.files import atomic_write_text

log = logging.getLogger(__name__)
COLLAPSE_SHARE = 0.9  # one class taking this share of the predictions: the model has (nearly) collapsed
COLLAPSE_MIN_IMAGES = 10  # below this, one class winning most predictions may be chance


def collapse_warning(class_names: Sequence[str], cm: np.ndarray) -> Optional[str]:
    """A warning when a model predicts one class (or nearly) for images of several classes, with the likely
    causes; None otherwise. ``cm``: confusion counts, rows true, columns predicted."""
    n, true_counts, predicted = int(cm.sum()), cm.sum(1), cm.sum(0)
    if n < COLLAPSE_MIN_IMAGES or int((true_counts > 0).sum()) < 2:
        return None
    top = int(predicted.argmax())
    share, used = predicted[top] / n, int((predicted > 0).sum())
    if share < COLLAPSE_SHARE or predicted[top] <= true_counts.max():  # data that are mostly one class
        return None
    what = "a single class" if used == 1 else f"nearly a single class ({used} of {len(class_names)} predicted at all)"
    return (f"the model predicts {class_names[top]} for {share:.0%} of the {n} images: it has collapsed to {what}, "
            f"and its accuracy and F1 say little. Likely causes: too few epochs or a learning rate too high or low "
            f"(train.epochs, train.lr), classes of very different sizes (train.class_weights=balanced or "
            f"train.sampler=balanced), a frozen backbone (model.freeze=backbone), or images that do not show the "
            f"faces or their labels (look at them with emoclf inspect).")


def folder_collapse_warning(folder: Path) -> Optional[str]:
    """:func:`collapse_warning` of a run or evaluation folder (None when it has no confusion matrix)."""
    path = Path(folder) / CONFUSION_CSV
    if not path.is_file():
        return None
    names, cm = read_confusion_csv(path)
    return collapse_warning(names, cm)


def percent(x) -> str:
    """0.6843 -> '68.43%'; not a number -> 'n/a'."""
    return f"{100 * x:.2f}%" if isinstance(x, (int, float)) else "n/a"


def timing_note(m: Dict) -> str:
    """What the report's inference ms/image measured, and why comparison.md shows another number."""
    batch = f" in batches of {m['inference_batch']}" if m.get("inference_batch") else ""
    return (f"Inference ms/image: the wall time of this scoring of {m.get('num_images', 'the')} images{batch} on "
            f"{m.get('device', 'this device')}, divided by their number. "
            f"emoclf compare measures every run again in one process, in batches of 32, best of three, so its "
            f"comparison.md shows other (comparable) numbers.")


def metrics_table(m: Dict) -> List[str]:
    """Headline metrics as Markdown table lines."""
    rows = [
        ("accuracy", percent(m.get("accuracy"))),
        ("top-2 accuracy", percent(m.get("top2_accuracy"))),
        ("macro F1", percent(m.get("f1_macro"))),
        ("weighted F1", percent(m.get("f1_weighted"))),
        ("loss (cross-entropy)", f"{m['loss']:.4f}" if isinstance(m.get("loss"), (int, float)) else "n/a"),
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
    per_class = m.get("per_class", {})
    shown = m.get("display_names")
    shown = dict(zip(per_class, shown)) if isinstance(shown, list) and len(shown) == len(per_class) else {}
    for name, v in per_class.items():
        lines.append(f"| {shown.get(name, name)} | {v['support']} | {percent(v['recall'])} |")
    return lines


def write_run_report(folder: Path, title: str, notes: List[str] = ()) -> Path:
    """report.md for a run folder (or an evaluation folder inside one) from the files already there."""
    folder = Path(folder)
    m = json.loads((folder / METRICS).read_text(encoding="utf-8"))
    lines = [f"# {title}", ""]
    warning = folder_collapse_warning(folder)
    if warning:
        log.warning("Warning: %s: %s", title, warning)
        lines += [f"> **Warning:** {warning[0].upper()}{warning[1:]}", ""]
    lines += [f"> {n}" for n in notes] + ([""] if notes else [])
    lines += metrics_table(m) + [""]
    if "inference_ms_per_image" in m:
        lines += [timing_note(m), ""]
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


