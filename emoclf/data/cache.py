"""Decoded-image cache: every image decoded and resized once, stored as one uint8 array."""
from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from emoclf.data.imaging import load_array
from emoclf.utils.files import atomic_path, atomic_write_json

log = logging.getLogger(__name__)
CACHE_VERSION = 1
# Arrays above this share of RAM stay memory-mapped instead of being read into memory.
IN_MEMORY_SHARE = 0.25


def _decode_one(args: Tuple[str, int, bool, str]) -> Tuple[Optional[np.ndarray], str]:
    path, size, grayscale, aspect = args
    try:
        return load_array(path, size, grayscale, aspect), ""
    except Exception as exc:  # any decoder failure means "skip this file", never a crash
        return None, f"{type(exc).__name__}: {str(exc)[:120]}"


def cache_key(paths: Sequence[Path], size: int, grayscale: bool, aspect: str) -> str:
    """Key that changes when the files, their sizes or times, or the preprocessing change.

    The inode and the status-change time are in it because copies that keep times (``cp -p``, rsync, unzip) can
    give new content the old size and modification time; no tool can set a file's ctime back.
    """
    h = hashlib.sha1(f"v{CACHE_VERSION}|{size}|{int(grayscale)}|{aspect}".encode())
    for p in paths:
        st = os.stat(p)
        h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}|{st.st_ctime_ns}\n".encode())
    return h.hexdigest()[:20]


def default_cache_dir(root: Path) -> Path:
    """Cache beside the data when writable, else in the user's cache folder."""
    candidate = Path(root) / ".emoclf-cache"
    try:
        candidate.mkdir(parents=True, exist_ok=True)
        probe = candidate / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
        return candidate
    except OSError:
        return user_cache_dir()


def user_cache_dir() -> Path:
    """The user's cache folder for emoclf ($XDG_CACHE_HOME/emoclf, else ~/.cache/emoclf): where the decoded images
    of data the user did not train on go, so that scoring a folder of photos writes nothing into it."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "emoclf"


def _workers(n: int) -> int:
    if n < 2000:
        return 0
    return max(0, min(os.cpu_count() or 1, 8))


def parallel_map(fn: Callable, jobs: Sequence, desc: str) -> Iterator:
    """``fn`` over ``jobs`` in order with a progress bar; in a process pool when there are many."""
    from tqdm import tqdm

    workers = _workers(len(jobs))
    bar = dict(total=len(jobs), desc=desc, unit="img", leave=False, disable=None, mininterval=0.5)
    if workers <= 1:
        yield from tqdm(map(fn, jobs), **bar)
        return
    ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        yield from tqdm(pool.map(fn, jobs, chunksize=256), **bar)


def _decode_all(paths: Sequence[Path], size: int, grayscale: bool, aspect: str, desc: str):
    return parallel_map(_decode_one, [(str(p), size, grayscale, aspect) for p in paths], desc)


def _build(paths, size, grayscale, aspect, npy: Path, meta: Path, desc: str) -> None:
    channels = 1 if grayscale else 3
    failed: List[List[str]] = []
    with atomic_path(npy) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(paths), channels, size, size))
        for i, (arr, err) in enumerate(_decode_all(paths, size, grayscale, aspect, desc)):
            if arr is None:
                failed.append([str(paths[i]), err])
            else:
                out[i] = arr
        out.flush()
        del out
    atomic_write_json(meta, {"version": CACHE_VERSION, "count": len(paths), "failed": failed})


def load_images(paths: Sequence[Path], size: int, grayscale: bool, aspect: str,
                cache_dir: Path, desc: str = "decoding") -> Tuple[np.ndarray, List[List[str]]]:
    """Decoded images (N x C x S x S uint8; failed ones are zeros) and the [path, reason] of failures."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = cache_key(paths, size, grayscale, aspect)
    npy, meta = cache_dir / f"{key}.npy", cache_dir / f"{key}.json"
    if not (npy.is_file() and meta.is_file()):
        log.info("Decoding %d images into the cache %s", len(paths), npy)
        _build(paths, size, grayscale, aspect, npy, meta, desc)
    info = json.loads(meta.read_text(encoding="utf-8"))
    images = np.load(npy, mmap_mode="r")
    if images.shape[0] != len(paths) or info.get("count") != len(paths):
        raise ValueError(f"Image cache {npy} does not match the dataset; delete {cache_dir} and retry.")
    if images.nbytes < IN_MEMORY_SHARE * _total_memory():
        images = np.array(images)  # read into memory (a copy, writable)
    return images, info["failed"]


def _total_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30
