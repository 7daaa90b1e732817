"""Crash-safe file writing and safe checkpoint loading."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import pickle
import shutil
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, List

from emoclf.utils.text import finite_json

TMP_SUFFIX = ".tmp"


def current_umask() -> int:
    """The process's file-creation mask."""
    try:  # Linux shows it without changing it (no race with other threads)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere it can only be read by setting it; put it straight back
    os.umask(mask)
    return mask


def fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(folder, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on folders; the rename itself is still atomic
    finally:
        os.close(fd)


def write_error(path: Path, exc: OSError, what: str = "file") -> OSError:
    """An OSError (same errno) whose message names the file, the reason and that the old version is intact."""
    reason = exc.strerror or str(exc)
    hint = " Free some disk space and try again." if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else ""
    err = OSError(f"Could not write {what} {path}: {reason}. The previous {what}, if any, is intact.{hint}")
    err.errno = exc.errno
    return err


@contextmanager
def atomic_path(path: Path, what: str = "file", sync_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync it and rename it over ``path``.

    Readers see the old file or the whole new one, never a part; a failed write (disk full) leaves the old
    file as it was and no temporary file behind. The new file gets the usual permissions (0666 less the umask).
    ``sync_dir`` also fsyncs the folder, so that the rename itself survives a power cut.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        try:
            yield tmp_path
            with open(tmp_path, "rb+") as fh:
                os.fsync(fh.fileno())
            usual_file_mode(tmp_path)
            os.replace(tmp_path, path)
        except OSError as exc:
            raise write_error(path, exc, what) from None
        if sync_dir:
            fsync_dir(path.parent)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def file_digest(path: Path) -> str:
    """SHA-256 of a file's content (a copy keeps it; training the run again changes it)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def usual_file_mode(path: Path) -> None:
    """Give a file made by ``tempfile.mkstemp`` (0600) the permissions ``open`` would (0666 less the umask)."""
    os.chmod(path, 0o666 & ~current_umask())


def usual_folder_mode(folder: Path) -> None:
    """Give a folder made by ``tempfile.mkdtemp`` (0700) the permissions ``mkdir`` would (0777 less the umask)."""
    os.chmod(folder, 0o777 & ~current_umask())


def remove_stale_temps(folder: Path) -> List[Path]:
    """Delete the temporary files that a killed process left in ``folder``; return them."""
    stale = [p for p in Path(folder).glob(f".*{TMP_SUFFIX}") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def atomic_write_text(path: Path, text: str) -> None:
    """Write text so that readers see the old file or the whole new one, never a part. The file is UTF-8; a file
    name that is not (it came from the disk as it was) is written with backslash escapes, never fatal."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", errors="backslashreplace")


def atomic_write_json(path: Path, data: Any) -> None:
    """Write JSON atomically; NaN and infinities (a diverged loss) are written as null, so the file stays JSON."""
    atomic_write_text(path, json.dumps(finite_json(data), indent=2, sort_keys=False, allow_nan=False) + "\n")


def save_checkpoint(obj: dict, path: Path) -> None:
    """Save a checkpoint (tensors and plain data only) atomically: temporary file, fsync, rename."""
    import torch

    with atomic_path(path, "checkpoint", sync_dir=True) as tmp:
        try:
            torch.save(obj, tmp)
        except RuntimeError as exc:  # torch's writers report a full disk as a RuntimeError ("basic_ios::clear")
            reason = str(exc).splitlines()[0][:200]
            if _looks_full(reason, Path(tmp).parent, obj):
                raise OSError(errno.ENOSPC, f"the disk is full or a file size limit was reached ({reason})") from None
            raise OSError(errno.EIO, reason) from None


def _tensor_bytes(obj: Any) -> int:
    if hasattr(obj, "element_size") and hasattr(obj, "nelement"):
        return obj.element_size() * obj.nelement()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


def _looks_full(reason: str, folder: Path, obj: Any) -> bool:
    """Whether a failed torch.save was a full disk: its writer says so only as "file write failed" or an
    iostream error, so the free space decides too."""
    if any(word in reason.lower() for word in ("write", "iostream", "space")):
        return True
    try:
        return shutil.disk_usage(folder).free < _tensor_bytes(obj) + (1 << 20)
    except OSError:
        return False


def _foreign_kind(path: Path) -> str:
    """What ``path`` is when it is plainly not a torch.save file (a zip archive or a pickle), else ''."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    if not head:
        return "an empty file"
    if head[:1] == b"\x80":  # a pickle stream: torch's format before 1.6
        return ""
    if head != b"PK\x03\x04":
        return "an ONNX model" if path.suffix.lower() == ".onnx" else "neither a zip archive nor a pickle"
    if not zipfile.is_zipfile(path):
        return ""  # a cut-off zip: torch.load says it is damaged
    with zipfile.ZipFile(path) as zf:
        if any("/code/" in n for n in zf.namelist()):
            return "a TorchScript model"
    return ""


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint without running code from it (``weights_only=True``)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint not found: {path}.")
    kind = _foreign_kind(path)
    if kind:
        raise ValueError(f"{path} is not a PyTorch checkpoint ({kind}). Use a checkpoint written by emoclf "
                         f"(RUN/best.pt, RUN/last.pt) or a state dict saved with torch.save; files made by "
                         f"`emoclf export` are for running the model elsewhere, not for loading it back.")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ValueError(f"Refusing to load {path}: it contains objects other than tensors and plain data "
                         f"({str(exc).splitlines()[0][:200]}). Only load checkpoints written by emoclf or "
                         f"plain state dicts.") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"Checkpoint {path} is damaged or not a PyTorch file ({str(exc).splitlines()[0][:200]}). "
                         f"Use another checkpoint (last.pt or best.pt) or retrain.") from None
    if not isinstance(obj, dict):
        raise ValueError(f"Checkpoint {path} holds a {type(obj).__name__}, not a state dict.")
    return obj


def check_writable_folder(folder: Path, option: str = "--out") -> None:
    """Refuse, before any work, an output folder that is a file or cannot be written (the folder itself when it
    exists, else its nearest existing parent); nothing is created here."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{option} {folder} is a file; give a folder (it is made when missing).")
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise ValueError(f"{option} {folder}: {probe} is a file, so the folder cannot be made; choose another "
                         f"{option}.")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {folder}: {probe} is not writable by this user; choose another {option}.")
