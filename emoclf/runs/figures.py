"""The figures of a run folder, drawn from its files: training curves and confusion matrices."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, List, Optional

from emoclf.runs.folder import CONFUSION_CSV, CONFUSION_NORMALIZED_PNG, CONFUSION_PNG, CURVES, HISTORY
from emoclf.runs.metrics import read_confusion_csv
from emoclf.runs.names import saved_display_names
from emoclf.utils.plotting import heatmap, normalize_rows, pyplot, safe_plot, save_figure


def epoch_axis(ax) -> None:
    """Label the x axis 'epoch' with whole-number ticks only (no epoch 1.5)."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def read_history(path: Path) -> Dict[str, List[float]]:
    """history.csv as columns of floats."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return {k: [float(r[k]) for r in rows] for k in (rows[0].keys() if rows else [])}


@safe_plot
def plot_curves(history_csv: Path, out: Path, title: str = "") -> Path:
    """Accuracy, macro F1 and loss per epoch, train vs validation."""
    plt = pyplot()
    h = read_history(history_csv)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, key, label in zip(axes, ("acc", "f1", "loss"), ("accuracy", "macro F1", "loss")):
        ax.plot(h["epoch"], h[f"train_{key}"], "o-", label="train", markersize=3)
        ax.plot(h["epoch"], h[f"val_{key}"], "o-", label="validation", markersize=3)
        epoch_axis(ax)
        ax.set_title(label)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, Path(out))


@safe_plot
def plot_confusion(confusion_csv: Path, out: Path, normalized: bool = False, title: str = "",
                   shown: Optional[List[str]] = None) -> Path:
    """Annotated confusion matrix: counts, or rows normalized to sum to 1; ``shown``: the class names to show."""
    plt = pyplot()
    names, cm = read_confusion_csv(confusion_csv)
    names = shown if shown and len(shown) == len(names) else names
    size = max(5.0, 0.8 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    matrix = normalize_rows(cm) if normalized else cm
    default_title = "normalized confusion matrix" if normalized else "confusion matrix"
    heatmap(ax, matrix, names, normalized, title or default_title)
    fig.tight_layout()
    return save_figure(fig, Path(out))


def plot_run(folder: Path, title: str) -> None:
    """Curves (when a history exists) and both confusion matrices of a run or evaluation folder."""
    if (folder / HISTORY).is_file():
        plot_curves(folder / HISTORY, folder / CURVES, title)
    shown = saved_display_names(folder, read_confusion_csv(folder / CONFUSION_CSV)[0])
    plot_confusion(folder / CONFUSION_CSV, folder / CONFUSION_PNG, False, f"{title}: counts", shown)
    plot_confusion(folder / CONFUSION_CSV, folder / CONFUSION_NORMALIZED_PNG, True,
                   f"{title}: rows normalized", shown)
