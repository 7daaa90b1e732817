"""Dataset discovery, label mapping, splits and batch iteration over the decoded-image cache."""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from emoclf.config import DataConfig
from emoclf.data import labels as lbl
from emoclf.data.cache import default_cache_dir, load_images
from emoclf.data.imaging import is_image_name
from emoclf.utils.text import did_you_mean

log = logging.getLogger(__name__)

SPLIT_NAMES = {
    "train": ("train", "training"),
    "validation": ("validation", "val", "valid", "publictest"),
    "test": ("test", "testing", "privatetest"),
}
MARKER = "emoclf-dataset.json"  # written by `emoclf download`: where the dataset root is


@dataclass
class Split:
    """Files and labels of one split, with their decoded images once loaded."""

    paths: List[Path]
    labels: np.ndarray  # int64 indices into the class list
    images: Optional[np.ndarray] = None  # N x C x S x S uint8
    skipped: List[List[str]] = field(default_factory=list)  # [path, reason] of unreadable files

    def __len__(self) -> int:
        return len(self.paths)


def is_hidden(p: Path) -> bool:
    """Hidden files and folders (.name) and Python's (__pycache__): never data."""
    return p.name.startswith(".") or p.name.startswith("__")


def subdirs(folder: Path) -> List[Path]:
    """The visible sub-folders of ``folder``, sorted."""
    return sorted(d for d in folder.iterdir() if d.is_dir() and not is_hidden(d))


def find_splits(root: Path) -> Dict[str, Path]:
    """Map split name (train, validation, test) to its folder under ``root``."""
    found: Dict[str, Path] = {}
    for d in subdirs(root):
        for split, names in SPLIT_NAMES.items():
            if d.name.lower() in names and split not in found:
                found[split] = d
    return found


def _marked_root(folder: Path, marker: Path) -> Path:
    """The dataset root a download record names; it must lie inside the record's folder."""
    try:
        record = json.loads(marker.read_text(encoding="utf-8"))
        target = record.get("root") if isinstance(record, dict) else None
    except (OSError, ValueError):
        target = None
    if not isinstance(target, str) or not target:
        raise ValueError(f"{marker} names no dataset (a download that was interrupted, or a damaged file). Run "
                         f"`emoclf download` again, or pass --set data.root=PATH to the dataset folder.")
    resolved = (folder / target).resolve()
    inside = folder.resolve()
    if os.path.commonpath([str(inside), str(resolved)]) != str(inside):
        raise ValueError(f"{marker} points outside {folder} ({target!r}); refusing to follow it. Run "
                         f"`emoclf download` again, or pass --set data.root=PATH to the dataset folder.")
    return resolved


def resolve_root(root: Path, option: str = "data.root") -> Path:
    """The folder that holds the splits: follows a download marker or a single wrapping folder. ``option``: how
    the user gave the folder (data.root, --data), for the messages."""
    root = Path(root).expanduser()
    fix = ("Run `emoclf download` first or pass --set data.root=PATH to a folder with train/ and validation/ class "
           "folders." if option == "data.root" else "Pass a folder of class folders, or of split folders (train/, "
           "validation/, test/) holding them.")
    if not root.exists():
        raise FileNotFoundError(f"{option} '{root}' does not exist. {fix}")
    if not root.is_dir():
        raise ValueError(f"{option} '{root}' is a file. {fix}")
    for _ in range(4):
        marker = root / MARKER
        if marker.is_file() and not find_splits(root):
            root = _marked_root(root, marker)
            continue
        subs = subdirs(root)
        if find_splits(root) or len(subs) != 1 or not subdirs(subs[0]):
            return root
        root = subs[0]
    return root


def scan_folder(folder: Path) -> Tuple[Dict[str, List[Path]], int]:
    """Image files per canonical class under ``folder``/<class>/, and the count of non-image files."""
    per_class: Dict[str, List[Path]] = {}
    non_images = 0
    lbl.check_folder_names([d.name for d in subdirs(folder)], str(folder))
    for class_dir in subdirs(folder):
        name = lbl.canonical(class_dir.name)
        files = sorted(p for p in class_dir.rglob("*") if p.is_file() and not is_hidden(p))
        images = [p for p in files if is_image_name(p)]
        non_images += len(files) - len(images)
        if not images:
            raise ValueError(f"Class folder '{class_dir}' has no images. Add images, remove the folder, "
                             f"or leave the class out with --set data.drop_classes=[{name}].")
        if name in per_class:
            log.warning("Folders mapping to '%s' are merged (%s)", name, class_dir)
        per_class.setdefault(name, []).extend(images)
    return per_class, non_images


def _flatten(per_class: Dict[str, List[Path]], classes: Sequence[str]) -> Split:
    index = {c: i for i, c in enumerate(classes)}
    paths, ys = [], []
    for name in classes:
        for p in per_class.get(name, []):
            paths.append(p)
            ys.append(index[name])
    return Split(paths, np.asarray(ys, dtype=np.int64))


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """Indices (train, validation) holding out ``fraction`` of each class, seeded."""
    rng = np.random.default_rng(seed)
    train_idx, val_idx = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(len(idx) * fraction))
        k = min(max(k, 1), len(idx) - 1) if len(idx) >= 2 else 0
        val_idx.extend(idx[:k])
        train_idx.extend(idx[k:])
    return np.sort(np.asarray(train_idx, dtype=np.int64)), np.sort(np.asarray(val_idx, dtype=np.int64))


def _subset(split: Split, idx: np.ndarray) -> Split:
    return Split([split.paths[i] for i in idx], split.labels[idx])


def _check_drop(drop: Sequence[str], classes: set, strict: bool) -> None:
    """A ``data.drop_classes`` entry that is neither a known emotion nor a class folder here (a misspelling would
    drop nothing) is an error when ``strict``, else a warning; a known emotion these data lack is only mentioned."""
    for d in drop:
        name = lbl.canonical(d)
        if name in classes:
            continue
        if name in lbl.CANONICAL:
            log.info("data.drop_classes: no '%s' folder in these data; nothing to leave out for it.", d)
            continue
        problem = (f"data.drop_classes names '{d}', which is neither a class folder here nor a known emotion."
                   f"{did_you_mean(name, sorted(classes | set(lbl.CANONICAL)))} Classes found: "
                   f"{', '.join(lbl.ordered(classes))}.")
        if strict:
            raise ValueError(problem)
        log.warning("%s It leaves nothing out.", problem)


def _drop(per_class: Dict[str, List[Path]], drop: Sequence[str]) -> Dict[str, List[Path]]:
    gone = {lbl.canonical(d) for d in drop}
    return {k: v for k, v in per_class.items() if k not in gone}


@dataclass
class Dataset:
    """A discovered dataset: class list and splits (train, validation, maybe test)."""

    root: Path
    class_names: List[str]
    splits: Dict[str, Split]
    non_images: int = 0
    val_from_train: bool = False
    folder_names: Dict[str, str] = field(default_factory=dict)  # canonical label -> its class folder's own name


def class_folder_names(folder: Path) -> Dict[str, str]:
    """Canonical label -> the name of the class folder it was read from (alegria/: {"happy": "alegria"}); folders
    merged into one label are joined with '/'."""
    names: Dict[str, List[str]] = {}
    for d in subdirs(folder):
        names.setdefault(lbl.canonical(d.name), []).append(d.name)
    return {label: "/".join(found) for label, found in names.items()}


LAYOUTS = ("train/<class>/ and validation/<class>/ (val/, valid/ too; test/<class>/ optional); train/<class>/ alone "
           "(data.val_fraction of it held out for validation); or <class>/ folders directly (the same). "
           "See docs/data.md")


def lone_split_message(root: Path, split_dirs: Dict[str, Path]) -> str:
    """The error for a dataset with split folders but no train/: what it found and the layouts that train."""
    found = ", ".join(f"{d.name}/" for d in split_dirs.values())
    return (f"{root} holds {found} but no train/ folder, so there is nothing to train on. A dataset to train on is "
            f"laid out as {LAYOUTS}. Add train/<class>/ image folders beside {found}, or, to score a finished run on "
            f"these images, run `emoclf evaluate RUN --data {root}`.")


def discover(cfg: DataConfig, seed: int, strict: bool = True) -> Dataset:
    """Find splits and classes under ``cfg.root``; split train when there is no validation folder.

    ``strict=False`` (a run trained earlier, resumed or scored on its own data) only warns about a
    ``data.drop_classes`` entry that matches nothing, as such a run was trained with it."""
    root = resolve_root(Path(cfg.root))
    split_dirs = find_splits(root)
    if split_dirs and "train" not in split_dirs:
        raise ValueError(lone_split_message(root, split_dirs))
    if "train" not in split_dirs:
        split_dirs = {"train": root}  # class folders directly under root
    found, non_images = {}, 0
    for name, folder in split_dirs.items():
        found[name], n = scan_folder(folder)
        non_images += n
    _check_drop(cfg.drop_classes, {c for per_class in found.values() for c in per_class}, strict)
    scanned = {name: _drop(per_class, cfg.drop_classes) for name, per_class in found.items()}
    train_classes = lbl.ordered(scanned["train"])
    if len(train_classes) < 2:
        if cfg.drop_classes and len(lbl.ordered(found["train"])) >= 2:
            raise ValueError(f"data.drop_classes={list(cfg.drop_classes)} leaves {len(train_classes)} class(es) "
                             f"({', '.join(train_classes) or 'none'}) of {', '.join(lbl.ordered(found['train']))}; "
                             f"training needs at least 2. Drop fewer classes.")
        raise ValueError(f"Need at least 2 classes with images under {split_dirs['train']}; found {train_classes}. "
                         f"Point data.root at a folder with train/<class>/ image folders.")
    for name, per_class in scanned.items():
        extra = sorted(set(per_class) - set(train_classes))
        if extra:
            raise ValueError(f"The {name} split has classes that train lacks: {', '.join(extra)}. Add training "
                             f"images for them or leave them out with --set data.drop_classes=[{','.join(extra)}].")
        missing = [c for c in train_classes if c not in per_class]
        if missing and name != "train":
            log.warning("The %s split has no images of %s: its scores say nothing about %s.", name,
                        ", ".join(missing), "that class" if len(missing) == 1 else "those classes")
    splits = {name: _flatten(per_class, train_classes) for name, per_class in scanned.items()}
    ds = Dataset(root, train_classes, splits, non_images, folder_names=class_folder_names(split_dirs["train"]))
    if "validation" not in splits:
        tr, va = stratified_split(splits["train"].labels, cfg.val_fraction, seed)
        splits["validation"], splits["train"] = _subset(splits["train"], va), _subset(splits["train"], tr)
        ds.val_from_train = True
        log.info("No validation folder under %s: %d images (%.0f%% of train per class, seed %d) are held out for "
                 "validation (data.val_fraction)", root, len(va), 100 * cfg.val_fraction, seed)
    if non_images:
        log.warning("Skipped %d non-image files under %s", non_images, root)
    return ds


def load_split(split: Split, cfg: DataConfig, root: Path, desc: str) -> Split:
    """Decode a split's images (through the cache) and drop the unreadable ones, with one warning."""
    if not split.paths:  # nothing to decode: no cache folder made for it
        empty = np.zeros((0, 1 if cfg.grayscale else 3, cfg.image_size, cfg.image_size), dtype=np.uint8)
        return Split([], split.labels[:0], empty, [])
    cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir(root)
    images, failed = load_images(split.paths, cfg.image_size, cfg.grayscale, cfg.aspect, cache_dir, desc)
    if failed:
        bad = {f[0] for f in failed}
        keep = np.asarray([str(p) not in bad for p in split.paths])
        listed = "".join(f"\n  {path} ({why})" for path, why in failed[:10])
        more = f"\n  ... and {len(failed) - 10} more" if len(failed) > 10 else ""
        log.warning("Skipped %d unreadable image(s) in %s:%s%s", len(failed), desc, listed, more)
        idx = np.flatnonzero(keep)
        return Split([split.paths[i] for i in idx], split.labels[idx], images[idx], failed)
    return Split(split.paths, split.labels, images, [])


def class_counts(split: Split, num_classes: int) -> np.ndarray:
    """Images per class index."""
    return np.bincount(split.labels, minlength=num_classes)


def epoch_order(labels: np.ndarray, epoch: int, seed: int, balanced: bool) -> np.ndarray:
    """Sample order of one training epoch; the same for the same seed and epoch (resume-safe)."""
    rng = np.random.default_rng([seed, epoch])
    n = len(labels)
    if not balanced:
        return rng.permutation(n)
    counts = np.bincount(labels)
    weights = 1.0 / counts[labels]
    return rng.choice(n, size=n, replace=True, p=weights / weights.sum())


def batches(order: np.ndarray, batch_size: int, drop_tiny: bool = True) -> List[np.ndarray]:
    """Split an order into batches; a last batch of one image is dropped (BatchNorm cannot train on it)."""
    out = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if drop_tiny and len(out) > 1 and len(out[-1]) < 2:
        out.pop()
    return out


def canonical_split(name: str) -> str:
    """``val``, ``PublicTest``, ``testing`` ... -> validation, test; other names lower-cased."""
    return next((k for k, names in SPLIT_NAMES.items() if name.lower() in names), name.lower())


def _pick_split(root: Path, split: Optional[str]) -> Tuple[str, Path]:
    dirs = find_splits(root)
    if split:
        wanted = canonical_split(split)
        if wanted not in dirs:
            found = ", ".join(dirs) or "none (class folders only)"
            raise ValueError(f"No '{split}' split under {root}; found: {found}.")
        return wanted, dirs[wanted]
    for name in ("validation", "test"):
        if name in dirs:
            return name, dirs[name]
    if not dirs:
        return "all", root
    log.warning("Only a train split under %s: scoring the model on it", root)
    return "train", dirs["train"]


def labelled_split(root: Path, split: Optional[str], class_names: Sequence[str], cfg: DataConfig, seed: int,
                   own_data: bool) -> Tuple[Split, Dict]:
    """A split of any labelled folder mapped onto ``class_names``; other classes are counted and left out."""
    if own_data:
        ds = discover(cfg, seed, strict=False)
        name = canonical_split(split or "validation")
        if name not in ds.splits:
            raise ValueError(f"The run's data has no '{name}' split; choose one of {', '.join(ds.splits)}.")
        per_class = {c: [p for p, y in zip(ds.splits[name].paths, ds.splits[name].labels) if y == i]
                     for i, c in enumerate(ds.class_names)}
        root, folder = ds.root, ds.root
    else:
        root = resolve_root(Path(root), "--data")
        name, folder = _pick_split(root, split)
        per_class, _ = scan_folder(folder)
    excluded = {c: len(v) for c, v in per_class.items() if c not in class_names}
    notes = []
    if excluded:
        detail = ", ".join(f"{c} ({n})" for c, n in sorted(excluded.items()))
        log.warning("Left out %d images of classes the model does not know: %s", sum(excluded.values()), detail)
        notes.append(f"Left out {sum(excluded.values())} images of classes the model does not know: {detail}.")
    missing = [c for c in class_names if c not in per_class]
    if missing:
        notes.append(f"No images of the model's classes {', '.join(missing)} in this data.")
    kept = {c: v for c, v in per_class.items() if c in class_names}
    return _flatten(kept, list(class_names)), {"root": root, "split": name, "excluded": excluded, "notes": notes}
