"""``emoclf inspect``: class balance, samples, sizes and modes, unreadable files, exact duplicates and leakage."""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import time
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from emoclf.data import labels as lbl
from emoclf.data.cache import cache_key, default_cache_dir, parallel_map
from emoclf.data.dataset import resolve_root
from emoclf.data.download import dataset_files, tally
from emoclf.data.imaging import MAX_PIXELS
from emoclf.data.inspect_report import leak_text, write_report
from emoclf.utils.files import atomic_write_json, usual_folder_mode

log = logging.getLogger(__name__)
PROBE_VERSION = 2
LEAK_PAIRS = (("train", "validation"), ("train", "test"), ("validation", "test"))


class Probe(NamedTuple):
    """What one file holds; ``digest`` covers size, mode and the raw decoded pixels."""

    width: int
    height: int
    mode: str
    format: str
    digest: str
    error: str  # empty when the file decodes
    blank: bool  # every pixel the same colour


def probe(path: str) -> Probe:
    """Size, mode, format, pixel hash and blankness of one file, or the reason it cannot be decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                (w, h), mode, fmt = img.size, img.mode, img.format or "?"
                if w * h > MAX_PIXELS:
                    raise ValueError(f"{w}x{h} pixels exceeds the {MAX_PIXELS} limit")
                img.load()  # raises on truncated or corrupt data, which the header alone does not show
                digest = hashlib.blake2b(f"{w}x{h}|{mode}|".encode(), digest_size=16)
                digest.update(img.tobytes())
                extrema = img.getextrema()
                bands = extrema if isinstance(extrema[0], tuple) else (extrema,)
                blank = all(lo == hi for lo, hi in bands)
                return Probe(w, h, mode, fmt, digest.hexdigest(), "", blank)
    except Exception as exc:  # any decoder failure makes the file "unreadable", never a crash
        return Probe(0, 0, "", "", "", f"{type(exc).__name__}: {str(exc)[:160]}", False)


def probe_all(paths: Sequence[Path], cache_dir: Path) -> Tuple[List[Probe], bool]:
    """Probe every file once; results are cached by path, size and mtime. Returns (probes, from_cache)."""
    # cache_key's size/grayscale/aspect slots only need to differ from any image cache's.
    key = cache_key(paths, 0, False, f"inspect-v{PROBE_VERSION}")
    cached = Path(cache_dir) / f"inspect-{key}.json"
    if cached.is_file():
        try:
            probes = [Probe(*row) for row in json.loads(cached.read_text(encoding="utf-8"))]
            if len(probes) == len(paths):
                return probes, True
        except (ValueError, TypeError):
            pass  # a damaged cache file is rebuilt
    probes = list(parallel_map(probe, [str(p) for p in paths], "inspecting"))
    try:
        atomic_write_json(cached, probes)
    except OSError as exc:
        log.warning("Could not cache the inspection in %s: %s", cached, exc)
    return probes, False


def _groups(files: List[Tuple[str, str, Path]], probes: List[Probe]) -> List[List[int]]:
    by_hash: Dict[str, List[int]] = defaultdict(list)
    for i, p in enumerate(probes):
        if p.digest:
            by_hash[p.digest].append(i)
    return [g for g in by_hash.values() if len(g) > 1]


def _describe_group(group: List[int], files, root: Path) -> dict:
    splits = [files[i][0] for i in group]
    labels = {lbl.canonical(files[i][1]) for i in group}
    kinds = []
    if len(set(splits)) < len(splits):
        kinds.append("within-split")
    if len(set(splits)) > 1:
        kinds.append("leakage")
    if len(labels) > 1:
        kinds.append("conflicting-labels")
    members = [{"split": files[i][0], "folder": files[i][1], "label": lbl.canonical(files[i][1]),
                "path": files[i][2].relative_to(root).as_posix()} for i in group]
    # One member of each split/label first, so the first few shown already reveal leakage and conflicts.
    seen, first, rest = set(), [], []
    for m in members:
        (rest if (m["split"], m["label"]) in seen else first).append(m)
        seen.add((m["split"], m["label"]))
    return {"kinds": kinds, "files": first + rest}


def _leakage(files, probes) -> Dict[str, int]:
    hashes: Dict[str, set] = defaultdict(set)
    for (split, _, _), p in zip(files, probes):
        if p.digest:
            hashes[split].add(p.digest)
    out = {}
    for a, b in LEAK_PAIRS:
        if a in hashes and b in hashes:
            out[f"{b}_in_{a}"] = sum(1 for (s, _, _), p in zip(files, probes) if s == b and p.digest in hashes[a])
    return out


def _samples(files, probes, per_class: int, root: Path) -> Dict[str, List[str]]:
    pools: Dict[str, List[str]] = defaultdict(list)
    first_split = files[0][0]
    for (split, folder, path), p in zip(files, probes):
        if split == first_split and not p.error:
            pools[lbl.canonical(folder)].append(path.relative_to(root).as_posix())
    rng = np.random.default_rng(0)
    return {c: sorted(rng.choice(pools[c], size=min(per_class, len(pools[c])), replace=False).tolist())
            for c in lbl.ordered(pools)}


def _sizes(probes) -> List[dict]:
    counts = Counter((p.width, p.height, p.mode, p.format) for p in probes if not p.error)
    return [{"width": w, "height": h, "mode": m, "format": f, "images": n}
            for (w, h, m, f), n in counts.most_common()]


def analyse(root: Path, files: List[Tuple[str, str, Path]], probes: List[Probe], samples: int) -> dict:
    """Every number of the report, as plain JSON-ready data."""
    groups = sorted((_describe_group(g, files, root) for g in _groups(files, probes)),
                    key=lambda g: (-len(g["kinds"]), -len(g["files"]), g["files"][0]["path"]))
    rel = [path.relative_to(root).as_posix() for _, _, path in files]
    unreadable = [{"path": r, "error": p.error} for r, p in zip(rel, probes) if p.error]
    blank = [r for r, p in zip(rel, probes) if p.blank]
    return {"root": str(root), "images": len(files), "counts": tally(files), "sizes": _sizes(probes),
            "unreadable": unreadable, "blank": blank, "duplicate_groups": len(groups),
            "duplicate_extra_copies": sum(len(g["files"]) - 1 for g in groups),
            "leakage": _leakage(files, probes),
            "leakage_groups": sum("leakage" in g["kinds"] for g in groups),
            "conflicting_label_groups": sum("conflicting-labels" in g["kinds"] for g in groups),
            "within_split_groups": sum("within-split" in g["kinds"] for g in groups),
            "groups": groups, "samples": _samples(files, probes, samples, root)}


@dataclass
class Report:
    """Where the report is and its numbers."""

    out: Path
    data: dict
    seconds: float  # wall time of the whole command, figures included

    def summary(self) -> str:
        """A few lines for the terminal."""
        d = self.data
        leaks = leak_text(d["leakage"]) or "no second split"
        return (f"Inspected {d['images']} images under {d['root']} in {self.seconds:.1f} s "
                f"(scan {d['seconds']:.1f} s{', from the cache' if d['cached'] else ''}).\n"
                f"Unreadable: {len(d['unreadable'])}. Blank (one colour): {len(d['blank'])}. "
                f"Exact-duplicate groups: {d['duplicate_groups']} "
                f"({d['duplicate_extra_copies']} extra copies; {d['within_split_groups']} within a split). "
                f"Leakage: {leaks}. Conflicting labels: {d['conflicting_label_groups']} groups.\n"
                f"Report: {self.out / 'inspect.md'}")


def _dataset(folder: Optional[str], config: Optional[str]) -> Tuple[Path, Path]:
    cache_dir = None
    if config:
        from emoclf.config import load_config

        cfg = load_config(config)
        folder, cache_dir = cfg.data.root, cfg.data.cache_dir
    path = Path(folder or "data").expanduser()
    if not path.exists():
        raise FileNotFoundError(f"Dataset folder '{path}' does not exist. Run `emoclf download` first, or pass a "
                                f"folder with train/<class>/ images: emoclf inspect path/to/dataset.")
    root = resolve_root(path)
    return root, Path(cache_dir) if cache_dir else default_cache_dir(root)


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "inspect.json").is_file())):
        raise ValueError(f"--out '{out}' exists and is not an inspect report; choose another folder "
                         f"(it would be replaced).")


def _publish(tmp: Path, out: Path) -> None:
    # The old report moves aside first: a kill in between leaves no report rather than a mixed one.
    usual_folder_mode(tmp)
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        out.replace(old / out.name)
    tmp.replace(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def inspect_dataset(folder: Optional[str] = None, config: Optional[str] = None, out: str = "outputs/inspect",
                    samples: int = 8) -> Report:
    """Look at a dataset and write the report folder ``out`` (figures, inspect.md, inspect.json, CSVs)."""
    started = time.time()
    root, cache_dir = _dataset(folder, config)
    out_path = Path(out).expanduser()
    _check_out(out_path)
    if samples < 1:
        raise ValueError(f"--samples must be at least 1, got {samples}.")
    files = dataset_files(root)
    if not files:
        raise ValueError(f"No images under {root}: expected train/<class>/ (or <class>/) folders of image files.")
    probes, cached = probe_all([f[2] for f in files], cache_dir)
    data = analyse(root, files, probes, samples)
    data.update(seconds=time.time() - started, cached=cached)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    for stale in out_path.parent.glob(f".{out_path.name}.partial-*"):
        shutil.rmtree(stale, ignore_errors=True)  # left by a run that was killed
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_path.name}.partial-", dir=out_path.parent))
    try:
        write_report(tmp, data)
        _publish(tmp, out_path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Report(out_path, data, time.time() - started)
