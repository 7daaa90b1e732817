"""The figures of `emoclf inspect`: class distribution, sample grid and duplicate examples."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from emoclf.data.imaging import open_image
from emoclf.data.labels import canonical, merge_counts, ordered
from emoclf.utils.plotting import pyplot, safe_plot, save_figure


def _read_inspection(inspect_json: Path) -> dict:
    return json.loads(Path(inspect_json).read_text(encoding="utf-8"))


def shown_names(counts: dict) -> dict:
    """Canonical label -> how the figures name it: the dataset's own folder name(s) with the label, as in
    "alegria (happy)"; the label alone where the folder has that name."""
    folders: dict = {}
    for per_folder in counts.values():
        for folder in per_folder:
            found = folders.setdefault(canonical(folder), [])
            if folder not in found:
                found.append(folder)
    own = {label: "/".join(f for f in found if f != label) for label, found in folders.items()}
    return {label: f"{name} ({label})" if name else label for label, name in own.items()}


def _show(ax, path: Path, title: str = "") -> None:
    ax.imshow(np.asarray(open_image(path, grayscale=False)), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=7)


@safe_plot
def plot_class_distribution(inspect_json: Path, out: Path) -> Path:
    """Images per class, one bar chart per split, from ``emoclf inspect``'s inspect.json."""
    plt = pyplot()
    counts = _read_inspection(inspect_json)["counts"]
    per_split = {split: merge_counts(folders) for split, folders in counts.items()}
    classes = ordered({c for merged in per_split.values() for c in merged})
    names = shown_names(counts)
    width = max(4.0, 0.6 * len(classes) + 1.5)
    fig, axes = plt.subplots(1, len(per_split), figsize=(width * len(per_split), 4), squeeze=False)
    for ax, (split, merged) in zip(axes[0], per_split.items()):
        values = [merged.get(c, 0) for c in classes]
        ax.bar_label(ax.bar([names.get(c, c) for c in classes], values, color="tab:blue"), fontsize=8)
        ax.set_title(f"{split}: {sum(values)} images")
        ax.set_ylabel("images")
        ax.tick_params(axis="x", rotation=45)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, Path(out))


@safe_plot
def plot_sample_grid(inspect_json: Path, out: Path) -> Path:
    """One row of sample images per class, from the samples listed in inspect.json."""
    plt = pyplot()
    data = _read_inspection(inspect_json)
    samples, root = data["samples"], Path(data["root"])
    cols = max(len(v) for v in samples.values())
    names = shown_names(data["counts"])
    fig, axes = plt.subplots(len(samples), cols, figsize=(1.2 * cols + 0.8, 1.25 * len(samples)), squeeze=False)
    for row, (label, paths) in zip(axes, samples.items()):
        for ax in row:
            ax.axis("off")
        for ax, rel in zip(row, paths):
            ax.axis("on")
            _show(ax, root / rel)
        row[0].set_ylabel(names.get(label, label), rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle(f"samples per class ({next(iter(data['counts']))} split)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, Path(out))


@safe_plot
def plot_duplicate_examples(inspect_json: Path, out: Path, max_groups: int = 8, max_files: int = 4) -> Path:
    """Exact-duplicate groups side by side (leakage and conflicting labels first), captioned split/folder."""
    plt = pyplot()
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
    return save_figure(fig, Path(out))
