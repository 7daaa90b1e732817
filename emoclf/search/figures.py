"""The figure of a search: each trial's validation macro F1, the best so far, and the pruned trials."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

from emoclf.utils.plotting import pyplot, safe_plot, save_figure


@safe_plot
def plot_trials(rows: List[Dict], path: Path) -> Optional[Path]:
    """trials.png: macro F1 per finished trial, pruned trials at their last reported epoch, and the best so far."""
    if not rows:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    done = [r for r in rows if r["state"] == "complete"]
    pruned = [r for r in rows if r["state"] == "pruned"]
    ax.scatter([r["trial"] for r in done], [r["f1_macro"] for r in done], label="finished", color="tab:blue")
    if pruned:
        ax.scatter([r["trial"] for r in pruned], [r["f1_macro"] or 0.0 for r in pruned], marker="x", color="tab:gray",
                   label="pruned: F1 of the epoch it stopped at")
    best, xs, ys = -1.0, [], []
    for r in sorted(rows, key=lambda r: r["trial"]):  # to the last trial, pruned ones too
        if r["state"] == "complete":
            best = max(best, r["f1_macro"])
        if best >= 0:
            xs.append(r["trial"])
            ys.append(best)
    if xs:
        ax.step(xs, ys, where="post", color="tab:orange", label="best finished so far")
    ax.set_xlabel("trial")
    ax.set_ylabel("validation macro F1")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    ax.set_title(f"{len(rows)} trials ({len(pruned)} pruned)")
    return save_figure(fig, path)
