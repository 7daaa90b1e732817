"""Comparison figures, drawn from the files of several run folders; a failing plot only logs a warning."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from emoclf.runs.figures import epoch_axis, read_history
from emoclf.runs.folder import CONFUSION_CSV, HISTORY
from emoclf.runs.metrics import read_confusion_csv
from emoclf.runs.names import saved_display_names
from emoclf.utils.plotting import heatmap, normalize_rows, pyplot, safe_plot, save_figure

HEADLINE = [("accuracy", "accuracy"), ("top2_accuracy", "top-2 accuracy"), ("f1_macro", "macro F1"),
            ("f1_weighted", "weighted F1")]


@safe_plot
def plot_metric_bars(rows: List[Dict], out: Path) -> Path:
    """Grouped bars of the headline metrics per run, and inference milliseconds per image."""
    plt = pyplot()
    fig, (ax, ax_ms) = plt.subplots(1, 2, figsize=(13, 4.5), gridspec_kw={"width_ratios": [3, 1]})
    width = 0.8 / len(rows)
    x = np.arange(len(HEADLINE))
    for i, r in enumerate(rows):
        values = [r[k] or 0.0 for k, _ in HEADLINE]
        bars = ax.bar(x + (i - (len(rows) - 1) / 2) * width, values, width, label=r["run"])
        ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=7, padding=1)
    ax.set_xticks(x, [label for _, label in HEADLINE])
    ax.set_ylim(0, 1.18)
    ax.set_ylabel("validation score")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", ncol=min(len(rows), 4))
    ax.set_title("headline metrics")
    ms = [r["inference_ms_per_image"] for r in rows]
    bars = ax_ms.bar([r["run"] for r in rows], ms, color=[f"C{i}" for i in range(len(rows))])
    ax_ms.bar_label(bars, labels=[f"{v:.2f}" for v in ms], fontsize=7, padding=1)
    ax_ms.set_title(f"inference ms/image\n{rows[0]['device']}", fontsize=9)
    ax_ms.tick_params(axis="x", labelrotation=30)
    fig.tight_layout()
    return save_figure(fig, Path(out))


STAR_NOTE = ("Stars on accuracy and macro F1: each run's best epoch (highest validation macro F1, the weights in "
             "best.pt); on loss: each run's lowest validation loss")


def star_epoch(history: Dict[str, List[float]], key: str, best_epoch) -> Optional[int]:
    """Index of the starred epoch of a curve: the lowest loss on a loss curve (the best-F1 epoch can hold the
    worst loss), else the run's best epoch; None when that epoch is not in the history."""
    if key.endswith("loss") and history[key]:
        return int(np.argmin(history[key]))
    return history["epoch"].index(best_epoch) if best_epoch in history["epoch"] else None


@safe_plot
def plot_validation_curves(rows: List[Dict], out: Path) -> Path:
    """Validation accuracy, macro F1 and loss per epoch of every run on shared axes (stars: STAR_NOTE)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for i, r in enumerate(rows):
        path = Path(r["run_dir"]) / HISTORY
        if not path.is_file():
            continue
        h = read_history(path)
        for ax, key in zip(axes, ("val_acc", "val_f1", "val_loss")):
            ax.plot(h["epoch"], h[key], "o-", color=f"C{i}", markersize=3, label=r["run"])
            j = star_epoch(h, key, r.get("best_epoch"))
            if j is not None:
                ax.plot(h["epoch"][j], h[key][j], "*", color=f"C{i}", markersize=12)
    for ax, title in zip(axes, ("validation accuracy", "validation macro F1", "validation loss")):
        epoch_axis(ax)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.text(0.5, -0.02, STAR_NOTE, ha="center", va="top", fontsize=9)
    return save_figure(fig, Path(out))


@safe_plot
def plot_confusions(rows: List[Dict], out: Path) -> Path:
    """The runs' row-normalized confusion matrices side by side."""
    plt = pyplot()
    k = max(len(r["class_names"]) for r in rows)
    side = max(4.0, 0.6 * k + 2)
    fig, axes = plt.subplots(1, len(rows), figsize=((side + 1) * len(rows), side), squeeze=False)
    for ax, r in zip(axes[0], rows):
        names, cm = read_confusion_csv(Path(r["scores_dir"]) / CONFUSION_CSV)
        names = saved_display_names(Path(r["scores_dir"]), names)
        heatmap(ax, normalize_rows(cm), names, True, f"{r['run']} (macro F1 {r['f1_macro']:.2f})")
    fig.tight_layout()
    return save_figure(fig, Path(out))


def plot_comparison(rows: List[Dict], out_dir: Path) -> List[Path]:
    """Every comparison figure into ``out_dir``; returns those that were drawn."""
    out_dir = Path(out_dir)
    figures = [plot_metric_bars(rows, out_dir / "metrics.png"),
               plot_validation_curves(rows, out_dir / "validation_curves.png"),
               plot_confusions(rows, out_dir / "confusion_matrices.png")]
    return [f for f in figures if f is not None]
