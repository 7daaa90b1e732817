"""Exclusive locks on folders between processes, released by the operating system when a process dies."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Optional

# How often a waiting lock (``wait=True``) tries again, in seconds.
LOCK_POLL_S = 0.2


def _try_lock(fd: int) -> bool:
    """Take an exclusive lock on an open file without waiting; False when another process holds it."""
    if sys.platform == "win32":
        import msvcrt

        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:  # a file system without flock (some network mounts): fall back to POSIX record locks
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
    return True


def _holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    pid = [line for line in text if line.startswith("pid ")]
    return f" ({pid[0]})" if pid else ""


class FileLock:
    """An exclusive lock on ``path`` (created when missing), held until :meth:`release` or the process's death.

    ``keep``: leave the file in place on release (a run folder's marker); otherwise it is removed, and a lock taken
    on a file that was removed meanwhile is taken again on the new one, so two processes never both hold it."""

    def __init__(self, path: Path, keep: bool = False):
        self.path, self.keep = Path(path), keep
        self.fd: Optional[int] = None

    def acquire(self, what: str, wait: bool = False) -> "FileLock":
        """Take the lock, or raise ValueError naming ``what`` (e.g. "The run folder outputs/cnn") when another
        process holds it; ``wait``: wait for that process instead."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            if _try_lock(fd):
                try:
                    same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
                except FileNotFoundError:
                    same = False
                if same or sys.platform == "win32":
                    self.fd = fd
                    self._note_holder()
                    return self
            holder = _holder(self.path)
            os.close(fd)
            if not wait:
                raise ValueError(f"{what} is in use by another emoclf process{holder}. Wait for it to finish, or "
                                 f"choose another folder; two processes writing one folder would mix their files.")
            time.sleep(LOCK_POLL_S)

    def _note_holder(self) -> None:
        """Write who holds the lock into the file, for the refusal message of a second process."""
        text = f"emoclf lock\npid {os.getpid()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode()
        try:
            if sys.platform == "win32":
                return  # the locked byte cannot be rewritten there; the message goes without the pid
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, text, 0)
        except OSError:
            pass

    def release(self) -> None:
        """Give the lock up (removing the file unless ``keep``); a no-op when not held."""
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        if not self.keep:
            try:
                self.path.unlink()  # before unlocking: a waiting process then retries on a new file
            except OSError:
                pass
        os.close(fd)  # closing drops the lock

    def __enter__(self) -> "FileLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self) -> None:
        if getattr(self, "fd", None) is not None:
            os.close(self.fd)


def is_locked(path: Path) -> bool:
    """Whether another process holds the lock on ``path`` now (False when there is no such file)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        return not _try_lock(fd)
    finally:
        os.close(fd)  # a probe that took the lock gives it straight back
