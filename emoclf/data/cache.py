"""Decoded-image cache: every image decoded and resized once, stored as one uint8 array."""
from __future__ import annotations

import errno
import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from emoclf.data.imaging import load_array
from emoclf.utils.files import atomic_path, atomic_write_json, remove_stale_temps
from emoclf.utils.locks import FileLock

log = logging.getLogger(__name__)
CACHE_VERSION = 2  # 2: the letterbox resizes before padding (slightly other border pixels)
# Arrays above this share of RAM stay memory-mapped instead of being read into memory.
IN_MEMORY_SHARE = 0.25
LOCK_FILE = ".lock"  # held while a cache is built in the folder: one build at a time, stale temporary files known
PR_SET_PDEATHSIG = 1  # Linux prctl option: a signal for this process when its parent dies


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
        st = os.stat(p)  # the name as bytes: a file name that is not valid UTF-8 is a name like any other
        h.update(os.fsencode(p) + f"|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}|{st.st_ctime_ns}\n".encode())
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


def _die_with_parent(parent: int) -> None:
    """In a worker: end when the parent process dies (killed, even with SIGKILL), never live on as an orphan."""
    if sys.platform.startswith("linux"):
        try:  # the kernel sends SIGKILL to this worker the moment its parent dies
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before the signal was set up
        os._exit(1)

    def watch() -> None:  # elsewhere (and as a second guard): look every second
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def parallel_map(fn: Callable, jobs: Sequence, desc: str) -> Iterator:
    """``fn`` over ``jobs`` in order with a progress bar; in a process pool when there are many. The workers end
    with the parent process, whatever kills it."""
    from tqdm import tqdm

    workers = _workers(len(jobs))
    bar = {"total": len(jobs), "desc": desc, "unit": "img", "leave": False, "disable": None, "mininterval": 0.5}
    if workers <= 1:
        yield from tqdm(map(fn, jobs), **bar)
        return
    ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_die_with_parent,
                             initargs=(os.getpid(),)) as pool:
        yield from tqdm(pool.map(fn, jobs, chunksize=256), **bar)


def _decode_all(paths: Sequence[Path], size: int, grayscale: bool, aspect: str, desc: str):
    return parallel_map(_decode_one, [(str(p), size, grayscale, aspect) for p in paths], desc)


def _size(nbytes: int) -> str:
    return f"{nbytes / 1e9:.2f} GB" if nbytes >= 1e8 else f"{nbytes / 1e6:.1f} MB"


def _reserve(fh, nbytes: int, cache: Path) -> None:
    """Make sure the disk has room for the whole cache before writing it: a full disk is a clear error at the start,
    never a crash half-way (the cache is written with plain writes, not through a memory map)."""
    free = shutil.disk_usage(cache.parent).free
    if nbytes > free:
        raise OSError(errno.ENOSPC, f"No space left on device: the image cache needs {_size(nbytes)}, "
                                    f"{_size(free)} are free (set data.cache_dir to a folder on another disk)")
    if hasattr(os, "posix_fallocate"):
        try:
            os.posix_fallocate(fh.fileno(), 0, nbytes)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS, getattr(errno, "ENOTSUP", -1)):
                raise


def _build(paths, size, grayscale, aspect, npy: Path, meta: Path, desc: str) -> None:
    channels = 1 if grayscale else 3
    shape = (len(paths), channels, size, size)
    item = channels * size * size
    failed: List[List[str]] = []
    with atomic_path(npy, "image cache") as tmp, open(tmp, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "|u1", "fortran_order": False, "shape": shape})
        _reserve(fh, fh.tell() + len(paths) * item, npy)
        blank = bytes(item)
        for i, (arr, err) in enumerate(_decode_all(paths, size, grayscale, aspect, desc)):
            if arr is None:
                failed.append([str(paths[i]), err])
            fh.write(blank if arr is None else np.ascontiguousarray(arr, dtype=np.uint8).tobytes())
        fh.truncate()  # posix_fallocate never shrinks; the size is exact already, this only makes it certain
    atomic_write_json(meta, {"version": CACHE_VERSION, "count": len(paths), "failed": failed})


def _read(npy: Path, meta: Path, count: int) -> Tuple[np.ndarray, List[List[str]]]:
    """The cached images and failures; ValueError when the files are damaged or do not fit the dataset."""
    try:
        info = json.loads(meta.read_text(encoding="utf-8"))
        images = np.load(npy, mmap_mode="r")
        failed = info["failed"]
    except (OSError, ValueError, EOFError, KeyError, TypeError) as exc:
        raise ValueError(f"damaged ({type(exc).__name__}: {str(exc)[:120]})") from None
    if images.ndim != 4 or images.shape[0] != count or info.get("count") != count:
        raise ValueError(f"holds {images.shape[0] if images.ndim else '?'} images for a dataset of {count}")
    return images, failed


def load_images(paths: Sequence[Path], size: int, grayscale: bool, aspect: str,
                cache_dir: Path, desc: str = "decoding") -> Tuple[np.ndarray, List[List[str]]]:
    """Decoded images (N x C x S x S uint8; failed ones are zeros) and the [path, reason] of failures.

    One process builds a cache at a time (others wait for it, then read); temporary files left by a killed build
    are removed, and a damaged cache is named and built again."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = cache_key(paths, size, grayscale, aspect)
    npy, meta = cache_dir / f"{key}.npy", cache_dir / f"{key}.json"
    if not (npy.is_file() and meta.is_file()):
        with FileLock(cache_dir / LOCK_FILE).acquire(f"The image cache {cache_dir}", wait=True):
            for stale in remove_stale_temps(cache_dir):  # under the lock: no live build is writing them
                log.info("Removed %s, left by an interrupted cache build", stale)
            if not (npy.is_file() and meta.is_file()):  # another process may have built it while we waited
                log.info("Decoding %d images into the cache %s", len(paths), npy)
                _build(paths, size, grayscale, aspect, npy, meta, desc)
    try:
        images, failed = _read(npy, meta, len(paths))
    except ValueError as exc:
        log.warning("The image cache %s is %s; deleting it and decoding the images again.", npy, exc)
        with FileLock(cache_dir / LOCK_FILE).acquire(f"The image cache {cache_dir}", wait=True):
            npy.unlink(missing_ok=True)
            meta.unlink(missing_ok=True)
            _build(paths, size, grayscale, aspect, npy, meta, desc)
        try:
            images, failed = _read(npy, meta, len(paths))
        except ValueError as again:
            raise ValueError(f"The image cache {npy} is {again} even after building it again; delete {cache_dir} "
                             f"and retry, or set data.cache_dir to another folder.") from None
    if images.nbytes < IN_MEMORY_SHARE * _total_memory():
        images = np.array(images)  # read into memory (a copy, writable)
    return images, failed


def _total_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30
