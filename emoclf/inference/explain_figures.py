"""Grad-CAM figure: the picture the model read, heat map overlays and every class's score, one row per face."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import numpy as np

from emoclf.inference.figures import score_bars, show_original, shown_names
from emoclf.utils.plotting import pyplot, safe_plot, save_figure

ALPHA = 0.45  # heat map opacity: the face stays recognisable under it


def _overlay(ax, view, cam: np.ndarray, title: str, winner: bool) -> None:
    side = view.width
    ax.imshow(view)
    # extent stretches the model-sized map over the larger picture; bilinear keeps it smooth.
    ax.imshow(cam, cmap="jet", alpha=ALPHA, vmin=0, vmax=1, interpolation="bilinear",
              extent=(-0.5, side - 0.5, side - 0.5, -0.5))
    if not cam.max() > 0:  # Grad-CAM keeps only evidence for the class; none at all leaves a blank map
        title += "\n(no positive evidence)"
    ax.set_title(title, fontsize=9, color="tab:orange" if winner else "black",
                 fontweight="bold" if winner else "normal")
    ax.axis("off")


def _row(fig, grid, row: int, col: int, ex, names: List[str], shown: Dict[str, str]) -> None:
    item = ex.record["faces"][row] if ex.record["faces"] else ex.record
    who = f"face {row + 1}" if ex.record["faces"] else "whole image"
    ax = fig.add_subplot(grid[row, col])
    ax.imshow(ex.views[row])
    kind = "crop framed by landmarks" if item.get("landmarks") else "square crop"
    ax.set_title(f"{who}: {kind}" if ex.record["faces"] else "whole image, as the model frames it", fontsize=9)
    ax.axis("off")
    for t, k in enumerate(ex.classes[row]):
        name = names[int(k)]
        _overlay(fig.add_subplot(grid[row, col + 1 + t]), ex.views[row], ex.maps[row, t],
                 f"Grad-CAM: {shown.get(name, name)} {item['scores'][name]:.2f}", name == item["label"])
    score_bars(fig.add_subplot(grid[row, col + 1 + len(ex.classes[row])]), item["scores"], item["label"],
               f"{who}: {shown.get(item['label'], item['label'])} ({item['score']:.2f})", shown)


@safe_plot
def plot_explanation(ex, class_names: List[str], out: Path) -> Path:
    """Original with face boxes (when faces were found), then per face: view, Grad-CAM overlay(s), scores."""
    plt = pyplot()
    rows = len(ex.views)
    lead = 1 if ex.crops else 0
    maps = ex.classes.shape[1]
    ratios = [min(2.0, 1.2 * rows)] * lead + [1.0] * (1 + maps) + [1.4]  # the original spans all rows
    fig = plt.figure(figsize=(2.5 * sum(ratios), max(3.0, 2.5 * rows + 0.5)))
    grid = fig.add_gridspec(rows, len(ratios), width_ratios=ratios)
    if lead:
        show_original(fig.add_subplot(grid[:, 0]), ex.original, ex.record)
    shown = shown_names(ex.record, class_names)  # the class names the run chose to show (output.class_names)
    for row in range(rows):
        _row(fig, grid, row, lead, ex, class_names, shown)
    fig.suptitle(f"{Path(ex.record['image']).name}  |  run {Path(ex.record['run']).name}  |  Grad-CAM on "
                 f"{ex.layer}", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, Path(out))
