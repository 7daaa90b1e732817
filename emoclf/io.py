"""Crash-safe file writing and safe checkpoint loading."""
from __future__ import annotations

import json
import os
import pickle
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync it and rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: Path, text: str) -> None:
    """Write text so that readers see the old file or the whole new one, never a part."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(path: Path, data: Any) -> None:
    """Write JSON atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def save_checkpoint(obj: dict, path: Path) -> None:
    """Save a checkpoint (tensors and plain data only) atomically."""
    import torch

    try:
        with atomic_path(path) as tmp:
            torch.save(obj, tmp)
    except OSError as exc:
        raise OSError(f"Could not write checkpoint {path}: {exc.strerror or exc}. "
                      f"Free disk space or choose another output.dir; the previous file is intact.") from None


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint without running code from it (``weights_only=True``)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint not found: {path}.")
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
