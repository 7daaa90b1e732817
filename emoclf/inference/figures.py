"""The figure of one prediction: the photo with its face boxes, each crop, the model's input and its scores."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from emoclf.runs.names import saved_display_names
from emoclf.utils.plotting import pyplot, safe_plot, save_figure


def _show_input(ax, arr: np.ndarray, title: str) -> None:
    if arr.shape[0] == 1:
        ax.imshow(arr[0], cmap="gray", vmin=0, vmax=255)
    else:
        ax.imshow(arr.transpose(1, 2, 0))
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def shown_names(record: Dict, class_names: List[str]) -> Dict[str, str]:
    """Class -> the name the figure shows: the names the record's run saved (output.class_names), else the class."""
    run = Path(str(record.get("run") or ""))
    folder = run if run.is_dir() else run.parent if run.is_file() else None
    return dict(zip(class_names, saved_display_names(folder, class_names) if folder else class_names))


def score_bars(ax, scores: Dict[str, float], label: str, title: str, shown: Optional[Dict[str, str]] = None) -> None:
    """Horizontal bars of every class's probability, the winner in orange; ``shown``: the names to show."""
    names = list(scores)
    values = [scores[n] for n in names]
    colors = ["tab:orange" if n == label else "tab:blue" for n in names]
    ax.barh([(shown or {}).get(n, n) for n in names], values, color=colors)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    for i, v in enumerate(values):
        ax.text(min(v + 0.02, 0.85), i, f"{v:.2f}", va="center", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("probability")


def show_original(ax, original, record: Dict) -> None:
    from matplotlib.patches import Rectangle

    img = original.copy()
    img.thumbnail((1024, 1024))  # drawing a 12-Mpx photo is slow and no sharper on screen
    k = img.width / original.width
    ax.imshow(img)
    for i, face in enumerate(record["faces"], 1):
        x, y, w, h = (v * k for v in face["box"])
        ax.add_patch(Rectangle((x, y), w, h, fill=False, edgecolor="lime", linewidth=2))
        cx, cy, cw, ch = (v * k for v in face["crop"])
        ax.add_patch(Rectangle((cx, cy), cw, ch, angle=face.get("angle", 0.0), rotation_point="center", fill=False,
                               edgecolor="yellow", linewidth=1, linestyle="--"))
        for px, py in face.get("landmarks", []):
            ax.plot(px * k, py * k, "o", color="cyan", markersize=2)
        ax.text(x, max(y - 4, 0), f"{i}: {face['label']} {face['score']:.2f}", color="black", fontsize=8,
                bbox={"facecolor": "lime", "alpha": 0.8, "pad": 1, "edgecolor": "none"})
    note = "no face found: whole image scored" if record.get("fallback") else \
        f"{len(record['faces'])} face(s) ({record.get('face', 'haar')})" if record.get("face", "none") != "none" \
        or record["haar"] else "whole image"
    ax.set_title(f"original {original.width}x{original.height}\n{note}", fontsize=9)
    ax.axis("off")


@safe_plot
def plot_prediction(pred, class_names: List[str], out: Path) -> Path:
    """Original (with face boxes), each face crop, the model input and every class's score, one row per face."""
    plt = pyplot()
    rec = pred.record
    items = rec["faces"] or [rec]
    cols = 4 if pred.crops else 3
    height = max(3.2, 2.6 * len(items) + 0.4)
    # the photo spans every face row: its column widens with them, so that five faces do not shrink it to a thumbnail
    aspect = pred.original.width / max(pred.original.height, 1)
    ratios = [min(max(2.0, 0.9 * aspect * height / 2.7), 8.0)] + [1.0] * (cols - 2) + [1.4]
    fig = plt.figure(figsize=(2.7 * sum(ratios), height))
    grid = fig.add_gridspec(len(items), cols, width_ratios=ratios)
    show_original(fig.add_subplot(grid[:, 0]), pred.original, rec)
    shown = shown_names(rec, class_names)
    for row, item in enumerate(items):
        col = 1
        if pred.crops:
            ax = fig.add_subplot(grid[row, col])
            ax.imshow(pred.crops[row])
            kind = "crop framed by landmarks" if item.get("landmarks") else "square crop"
            ax.set_title(f"face {row + 1}: {kind}", fontsize=9)
            ax.axis("off")
            col += 1
        size = pred.inputs.shape[-1]
        _show_input(fig.add_subplot(grid[row, col]), pred.inputs[row], f"model input {size}x{size}")
        who = f"face {row + 1}" if rec["faces"] else "whole image"
        score_bars(fig.add_subplot(grid[row, col + 1]), item["scores"], item["label"],
                   f"{who}: {shown.get(item['label'], item['label'])} ({item['score']:.2f})", shown)
    truth = f"  |  true: {rec['true']}" if rec.get("true") else ""
    fig.suptitle(f"{Path(rec['image'] or 'image').name}{truth}  |  run {Path(rec['run']).name}", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, Path(out))
