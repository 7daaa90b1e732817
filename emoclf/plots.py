"""Every figure, drawn from files on disk; a failing plot logs a warning and never stops a run."""
from __future__ import annotations

import csv
import functools
import logging
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np

log = logging.getLogger(__name__)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def safe_plot(fn: Callable) -> Callable:
    """Run a plot; on any error log a warning and return None."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # a figure must never cost the user a finished run
            log.warning("Could not draw %s: %s: %s", fn.__name__, type(exc).__name__, exc)
            return None

    return wrapper


def read_history(path: Path) -> Dict[str, List[float]]:
    """history.csv as columns of floats."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return {k: [float(r[k]) for r in rows] for k in (rows[0].keys() if rows else [])}


def _save(fig, path: Path) -> Path:
    from .io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format=path.suffix.lstrip("."))
    _plt().close(fig)
    return path


@safe_plot
def plot_curves(history_csv: Path, out: Path, title: str = "") -> Path:
    """Accuracy, macro F1 and loss per epoch, train vs validation."""
    plt = _plt()
    h = read_history(history_csv)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, key, label in zip(axes, ("acc", "f1", "loss"), ("accuracy", "macro F1", "loss")):
        ax.plot(h["epoch"], h[f"train_{key}"], "o-", label="train", markersize=3)
        ax.plot(h["epoch"], h[f"val_{key}"], "o-", label="validation", markersize=3)
        ax.set_xlabel("epoch")
        ax.set_title(label)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, Path(out))


def _heatmap(ax, matrix: np.ndarray, names: List[str], normalized: bool, title: str) -> None:
    import seaborn as sns

    sns.heatmap(matrix, annot=True, fmt=".2f" if normalized else "d", cmap="Blues", xticklabels=names,
                yticklabels=names, ax=ax, vmin=0, vmax=1 if normalized else None, cbar=True, square=True,
                annot_kws={"fontsize": 8})
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)


def normalize_rows(cm: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (rows of zeros stay zero)."""
    sums = cm.sum(axis=1, keepdims=True).astype(float)
    return np.divide(cm, sums, out=np.zeros(cm.shape, dtype=float), where=sums > 0)


@safe_plot
def plot_confusion(confusion_csv: Path, out: Path, normalized: bool = False, title: str = "") -> Path:
    """Annotated confusion matrix: counts, or rows normalized to sum to 1."""
    from .evaluate import read_confusion_csv

    plt = _plt()
    names, cm = read_confusion_csv(confusion_csv)
    size = max(5.0, 0.8 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    matrix = normalize_rows(cm) if normalized else cm
    _heatmap(ax, matrix, names, normalized, title or ("normalized confusion matrix" if normalized else "confusion matrix"))
    fig.tight_layout()
    return _save(fig, Path(out))


def plot_run(folder: Path, title: str) -> None:
    """Curves (when a history exists) and both confusion matrices of a run or evaluation folder."""
    if (folder / "history.csv").is_file():
        plot_curves(folder / "history.csv", folder / "curves.png", title)
    plot_confusion(folder / "confusion_matrix.csv", folder / "confusion_matrix.png", False, f"{title}: counts")
    plot_confusion(folder / "confusion_matrix.csv", folder / "confusion_matrix_normalized.png", True,
                   f"{title}: rows normalized")
