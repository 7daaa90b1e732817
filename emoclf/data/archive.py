"""Safe archive extraction: no entry may land outside the target, and a zip bomb stops at a size limit."""
from __future__ import annotations

import fnmatch
import lzma
import os
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from emoclf.utils.text import show

DEFAULT_MAX_GB = 50.0
MAX_GB_ENV = "EMOCLF_MAX_EXTRACT_GB"
# Finder and Windows leave these in archives; they are never part of a dataset.
JUNK = re.compile(r"(^|/)(__MACOSX|\.DS_Store|Thumbs\.db)(/|$)")
HTML_HINT = ("Google Drive serves such a page when a file is not shared publicly or its daily download quota "
             "is exceeded. Open the link in a browser, download the file, and pass it with "
             "`emoclf download --source path/to/archive.zip`.")


def max_bytes(limit_gb: Optional[float] = None) -> int:
    """The extraction size limit in bytes: the argument, else $EMOCLF_MAX_EXTRACT_GB, else 50 GB."""
    if limit_gb is None:
        text = os.environ.get(MAX_GB_ENV, "")
        try:
            limit_gb = float(text) if text else DEFAULT_MAX_GB
        except ValueError:
            raise ValueError(f"{MAX_GB_ENV}={show(text)} is not a number of gigabytes, e.g. {MAX_GB_ENV}=20.") from None
    if limit_gb <= 0:
        raise ValueError(f"The extraction limit must be a positive number of gigabytes, got {limit_gb}.")
    return int(limit_gb * 1e9)


def sniff(path: Path) -> str:
    """'zip', 'tar' or 'html' by content (never by name); raises ValueError for anything else."""
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(1024)
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html", b"<?xml")) or b"<html" in text[:512]:
        return "html"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")) and zipfile.is_zipfile(path):
        return "zip"
    if tarfile.is_tarfile(path):
        return "tar"
    if head.startswith(b"PK"):
        raise ValueError(f"'{path}' looks like a zip archive but is damaged (truncated download?). "
                         f"Download it again, or pass another file with --source.")
    raise ValueError(f"'{path}' is neither a zip nor a tar archive (first bytes: {head[:16]!r}). Pass a .zip, "
                     f".tar, .tar.gz, a folder or a fer2013.csv with --source.")


def safe_parts(name: str) -> List[str]:
    """Path components of an archive entry; raises ValueError for absolute paths and '..'."""
    norm = name.replace("\\", "/")
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm):
        raise ValueError(f"Refusing archive entry {show(name)}: absolute path.")
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"Refusing archive entry {show(name)}: it points outside the destination ('..').")
    return parts


def _target(root: Path, name: str) -> Optional[Path]:
    parts = safe_parts(name)
    if not parts:
        return None
    target = root.joinpath(*parts)
    real_root = os.path.realpath(root)
    if os.path.commonpath([real_root, os.path.realpath(target)]) != real_root:
        raise ValueError(f"Refusing archive entry {show(name)}: it resolves outside the destination.")
    return target


def _budget(total: int, limit: int, archive: Path) -> None:
    if total > limit:
        raise ValueError(f"'{archive}' unpacks to more than {limit / 1e9:g} GB: refused as a possible zip bomb. "
                         f"If you trust it, raise the limit with --max-size GB (or ${MAX_GB_ENV}).")


def _copy(src, dst: Path, total: int, limit: int, archive: Path) -> int:
    # Count real bytes as they are written: declared sizes in a hostile archive may lie.
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(dst, "wb") as out:
        while True:
            chunk = src.read(1 << 20)
            if not chunk:
                return total
            total += len(chunk)
            _budget(total, limit, archive)
            out.write(chunk)


def _zip_members(zf: zipfile.ZipFile, root: Path) -> List[Tuple[zipfile.ZipInfo, Path]]:
    members = []
    for info in zf.infolist():
        kind = stat.S_IFMT(info.external_attr >> 16)
        if kind == stat.S_IFLNK:
            raise ValueError(f"Refusing archive entry '{info.filename}': symbolic link.")
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise ValueError(f"Refusing archive entry '{info.filename}': not a regular file or folder.")
        target = _target(root, info.filename)
        if target is not None and not JUNK.search(info.filename.replace("\\", "/")):
            members.append((info, target))
    return members


def extract_zip(archive: Path, root: Path, limit: int) -> int:
    """Extract a zip into ``root`` after checking every entry; returns the bytes written."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = _zip_members(zf, root)
            declared = sum(i.file_size for i, _ in members)
            _budget(declared, limit, archive)
            _check_space(root, declared)
            total = 0
            for info, target in members:
                if info.is_dir() or info.filename.replace("\\", "/").endswith("/"):
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                with zf.open(info) as src:
                    total = _copy(src, target, total, limit, archive)
            return total
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        # A corrupt deflate stream raises zlib.error, not BadZipFile; an unknown method NotImplementedError.
        raise ValueError(f"'{archive}' is a damaged zip archive ({exc}). Download it again.") from None


def _check_space(root: Path, needed: int) -> None:
    free = shutil.disk_usage(root if root.exists() else root.parent).free
    if needed > free:
        raise OSError(f"Unpacking needs {needed / 1e9:.2f} GB but only {free / 1e9:.2f} GB are free under "
                      f"{root.parent}. Free some space or choose another --dest.")


def _check_tar_member(m: tarfile.TarInfo, root: Path) -> Optional[Path]:
    if m.issym() or m.islnk():
        raise ValueError(f"Refusing archive entry '{m.name}': link to '{m.linkname}'.")
    if not (m.isfile() or m.isdir()):
        raise ValueError(f"Refusing archive entry '{m.name}': device, pipe or other special file.")
    target = _target(root, m.name)
    data_filter = getattr(tarfile, "data_filter", None)
    if data_filter is not None and target is not None:  # Python 3.12+ and backports: a second opinion
        try:
            data_filter(m, str(root))
        except tarfile.FilterError as exc:
            raise ValueError(f"Refusing archive entry '{m.name}': {exc}.") from None
    return target


def extract_tar(archive: Path, root: Path, limit: int) -> int:
    """Extract a (compressed) tar into ``root``, member by member, refusing links and special files."""
    total = 0
    try:
        with tarfile.open(archive, "r:*") as tf:
            for m in tf:
                target = _check_tar_member(m, root)
                if target is None or JUNK.search(m.name):
                    continue
                if m.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                _budget(total + m.size, limit, archive)
                src = tf.extractfile(m)
                total = _copy(src, target, total, limit, archive)
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError) as exc:
        raise ValueError(f"'{archive}' is a damaged tar archive ({exc}). Download it again.") from None
    except OSError as exc:
        if exc.errno is not None:
            raise  # disk full or permission denied: a real failure, not a damaged archive
        # gzip and bz2 report a corrupt stream as an OSError without errno.
        raise ValueError(f"'{archive}' is a damaged tar archive ({exc}). Download it again.") from None
    return total


def extract(archive: Path, root: Path, limit: int) -> int:
    """Extract a zip or tar archive safely into ``root``; HTML pages and other files are refused."""
    kind = sniff(archive)
    if kind == "html":
        raise ValueError(f"'{archive}' is an HTML page, not an archive. {HTML_HINT}")
    return (extract_zip if kind == "zip" else extract_tar)(archive, root, limit)



def _refuse_link(entry: os.DirEntry, root: Path) -> None:
    rel = os.path.relpath(entry.path, root)
    try:
        points_to = os.readlink(entry.path)
    except OSError:
        points_to = "?"
    raise ValueError(f"Refusing {show(rel)} in the source folder {root}: a link (to {show(points_to)}). Links are "
                     f"refused as in archives, so nothing outside the folder is copied and no loop is followed: "
                     f"copy the real files in (e.g. cp -rL), or pass the folder the link points to.")


def folder_files(root: Path, skip: Sequence[str] = ()) -> List[Path]:
    """Every regular file under a source folder, walked without following links (names matching a ``skip``
    pattern are left out); a link or a special file is refused, as an archive entry of that kind would be."""
    root, files, stack = Path(root), [], [Path(root)]
    while stack:
        with os.scandir(stack.pop()) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            if any(fnmatch.fnmatch(entry.name, pattern) for pattern in skip):
                continue
            if entry.is_symlink() or getattr(entry, "is_junction", lambda: False)():
                _refuse_link(entry, root)
            if entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
            elif entry.is_file(follow_symlinks=False):
                files.append(Path(entry.path))
            else:
                raise ValueError(f"Refusing {show(os.path.relpath(entry.path, root))} in the source folder {root}: "
                                 f"a device, pipe or other special file. Remove it, or copy the images elsewhere.")
    return files


def copy_folder(src: Path, out: Path, limit: int, skip: Sequence[str] = ()) -> int:
    """Copy a source folder's regular files into ``out`` (links refused, see :func:`folder_files`), stopping at
    ``limit`` bytes as an archive would; returns the bytes copied."""
    total = 0
    files = folder_files(src, skip)
    out.mkdir(parents=True, exist_ok=True)
    for path in files:
        total += path.stat().st_size
        _budget(total, limit, src)
        target = out / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target, follow_symlinks=False)
    return total
