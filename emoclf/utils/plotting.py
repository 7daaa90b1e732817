"""Matplotlib without a display, atomic figure files, and plots that never stop a run."""
from __future__ import annotations

import errno
import functools
import logging
from pathlib import Path
from typing import Callable, List

import numpy as np

from emoclf.utils.files import atomic_path

log = logging.getLogger(__name__)


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def safe_plot(fn: Callable) -> Callable:
    """Run a plot; on any error log a warning and return None. A full disk is the exception: it is raised, so that
    a run is never counted as finished without its files (its --resume draws them again)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except OSError as exc:
            if exc.errno in DISK_FULL:
                raise
            log.warning("Could not draw %s: %s: %s", fn.__name__, type(exc).__name__, exc)
            return None
        except Exception as exc:  # a figure must never cost the user a finished run
            log.warning("Could not draw %s: %s: %s", fn.__name__, type(exc).__name__, exc)
            return None

    return wrapper


def save_figure(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format=path.suffix.lstrip("."))
    pyplot().close(fig)
    return path


def heatmap(ax, matrix: np.ndarray, names: List[str], normalized: bool, title: str) -> None:
    import seaborn as sns

    sns.heatmap(matrix, annot=True, fmt=".2f" if normalized else "d", cmap="Blues", xticklabels=names,
                yticklabels=names, ax=ax, vmin=0, vmax=1 if normalized else None, cbar=True, square=True,
                annot_kws={"fontsize": 8})
    if not normalized:  # counts: whole-number ticks on the colour bar (no 2.5 images)
        from matplotlib.ticker import MaxNLocator

        bar = ax.collections[0].colorbar
        bar.locator = MaxNLocator(integer=True)
        bar.update_ticks()
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)


def normalize_rows(cm: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (rows of zeros stay zero)."""
    sums = cm.sum(axis=1, keepdims=True).astype(float)
    return np.divide(cm, sums, out=np.zeros(cm.shape, dtype=float), where=sums > 0)
