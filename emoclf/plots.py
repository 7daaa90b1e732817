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


def epoch_axis(ax) -> None:
    """Label the x axis 'epoch' with whole-number ticks only (no epoch 1.5)."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


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
    from emoclf.utils.files import atomic_path

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
        epoch_axis(ax)
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
    from emoclf.runs.metrics import read_confusion_csv

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


def _read_inspection(inspect_json: Path) -> dict:
    import json

    return json.loads(Path(inspect_json).read_text(encoding="utf-8"))


def _show(ax, path: Path, title: str = "") -> None:
    from emoclf.data.imaging import open_image

    ax.imshow(np.asarray(open_image(path, grayscale=False)), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=7)


@safe_plot
def plot_class_distribution(inspect_json: Path, out: Path) -> Path:
    """Images per class, one bar chart per split, from ``emoclf inspect``'s inspect.json."""
    from emoclf.data.labels import merge_counts, ordered

    plt = _plt()
    counts = _read_inspection(inspect_json)["counts"]
    per_split = {split: merge_counts(folders) for split, folders in counts.items()}
    classes = ordered({c for merged in per_split.values() for c in merged})
    width = max(4.0, 0.6 * len(classes) + 1.5)
    fig, axes = plt.subplots(1, len(per_split), figsize=(width * len(per_split), 4), squeeze=False)
    for ax, (split, merged) in zip(axes[0], per_split.items()):
        values = [merged.get(c, 0) for c in classes]
        ax.bar_label(ax.bar(classes, values, color="tab:blue"), fontsize=8)
        ax.set_title(f"{split}: {sum(values)} images")
        ax.set_ylabel("images")
        ax.tick_params(axis="x", rotation=45)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _save(fig, Path(out))


@safe_plot
def plot_sample_grid(inspect_json: Path, out: Path) -> Path:
    """One row of sample images per class, from the samples listed in inspect.json."""
    plt = _plt()
    data = _read_inspection(inspect_json)
    samples, root = data["samples"], Path(data["root"])
    cols = max(len(v) for v in samples.values())
    fig, axes = plt.subplots(len(samples), cols, figsize=(1.2 * cols + 0.8, 1.25 * len(samples)), squeeze=False)
    for row, (label, paths) in zip(axes, samples.items()):
        for ax in row:
            ax.axis("off")
        for ax, rel in zip(row, paths):
            ax.axis("on")
            _show(ax, root / rel)
        row[0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle(f"samples per class ({next(iter(data['counts']))} split)", fontsize=10)
    fig.tight_layout()
    return _save(fig, Path(out))


@safe_plot
def plot_duplicate_examples(inspect_json: Path, out: Path, max_groups: int = 8, max_files: int = 4) -> Path:
    """Exact-duplicate groups side by side (leakage and conflicting labels first), captioned split/folder."""
    plt = _plt()
    data = _read_inspection(inspect_json)
    groups, root = data["groups"][:max_groups], Path(data["root"])
    if not groups:
        return None
    cols = min(max_files, max(len(g["files"]) for g in groups))
    fig, axes = plt.subplots(len(groups), cols, figsize=(1.8 * cols + 1.5, 1.9 * len(groups)), squeeze=False)
    for row, group in zip(axes, groups):
        for ax in row:
            ax.axis("off")
        for ax, f in zip(row, group["files"]):
            ax.axis("on")
            _show(ax, root / f["path"], f"{f['split']}/{f['folder']}")
        kinds = "\n".join(k.replace("-", " ") for k in group["kinds"])
        row[0].set_ylabel(f"{len(group['files'])} copies\n{kinds}", fontsize=7)
    fig.tight_layout()
    return _save(fig, Path(out))


def _show_input(ax, arr: np.ndarray, title: str) -> None:
    if arr.shape[0] == 1:
        ax.imshow(arr[0], cmap="gray", vmin=0, vmax=255)
    else:
        ax.imshow(arr.transpose(1, 2, 0))
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def _score_bars(ax, scores: Dict[str, float], label: str, title: str) -> None:
    names = list(scores)
    values = [scores[n] for n in names]
    colors = ["tab:orange" if n == label else "tab:blue" for n in names]
    ax.barh(names, values, color=colors)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    for i, v in enumerate(values):
        ax.text(min(v + 0.02, 0.85), i, f"{v:.2f}", va="center", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("probability")


def _show_original(ax, original, record: Dict) -> None:
    from matplotlib.patches import Rectangle

    img = original.copy()
    img.thumbnail((1024, 1024))  # drawing a 12-Mpx photo is slow and no sharper on screen
    k = img.width / original.width
    ax.imshow(img)
    for i, face in enumerate(record["faces"], 1):
        x, y, w, h = (v * k for v in face["box"])
        ax.add_patch(Rectangle((x, y), w, h, fill=False, edgecolor="lime", linewidth=2))
        cx, cy, cw, ch = (v * k for v in face["crop"])
        ax.add_patch(Rectangle((cx, cy), cw, ch, fill=False, edgecolor="yellow", linewidth=1, linestyle="--"))
        ax.text(x, max(y - 4, 0), f"{i}: {face['label']} {face['score']:.2f}", color="black", fontsize=8,
                bbox={"facecolor": "lime", "alpha": 0.8, "pad": 1, "edgecolor": "none"})
    note = "no face found: whole image scored" if record.get("fallback") else \
        f"{len(record['faces'])} face(s)" if record["haar"] else "whole image"
    ax.set_title(f"original {original.width}x{original.height}\n{note}", fontsize=9)
    ax.axis("off")


@safe_plot
def plot_prediction(pred, class_names: List[str], out: Path) -> Path:
    """Original (with face boxes), each face crop, the model input and every class's score, one row per face."""
    plt = _plt()
    rec = pred.record
    items = rec["faces"] or [rec]
    cols = 4 if pred.crops else 3
    ratios = [2.0] + [1.0] * (cols - 2) + [1.4]
    fig = plt.figure(figsize=(2.7 * sum(ratios), max(3.2, 2.6 * len(items) + 0.4)))
    grid = fig.add_gridspec(len(items), cols, width_ratios=ratios)
    _show_original(fig.add_subplot(grid[:, 0]), pred.original, rec)
    for row, item in enumerate(items):
        col = 1
        if pred.crops:
            ax = fig.add_subplot(grid[row, col])
            ax.imshow(pred.crops[row])
            ax.set_title(f"face {row + 1}: square crop", fontsize=9)
            ax.axis("off")
            col += 1
        size = pred.inputs.shape[-1]
        _show_input(fig.add_subplot(grid[row, col]), pred.inputs[row], f"model input {size}x{size}")
        who = f"face {row + 1}" if rec["faces"] else "whole image"
        _score_bars(fig.add_subplot(grid[row, col + 1]), item["scores"], item["label"],
                    f"{who}: {item['label']} ({item['score']:.2f})")
    fig.suptitle(f"{Path(rec['image']).name}  |  run {Path(rec['run']).name}", fontsize=10)
    fig.tight_layout()
    return _save(fig, Path(out))
