"""Where a dataset comes from: a Google Drive link or id, an http(s) URL, a local archive, folder or CSV."""
from __future__ import annotations

import inspect
import os
import re
import shutil
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from emoclf.data.archive import HTML_HINT, folder_files
from emoclf.data.fercsv import is_fer_csv
from emoclf.utils.text import show
from emoclf.utils.version import __version__

DEFAULT_SOURCE = "https://drive.google.com/file/d/1aPHE00zkDhEV1waJKhaOJMdN6-lUc0iT/view?usp=sharing"
DRIVE_HOSTS = {"drive.google.com", "docs.google.com", "drive.usercontent.google.com"}
TIMEOUT_S = 60  # seconds without a byte before a download counts as failed
DRIVE_ID = re.compile(r"^[A-Za-z0-9_-]{20,}$")
OFFLINE_HINT = ("Without internet, download the file on another machine and pass it: "
                "`emoclf download --source path/to/archive.zip` (a folder or a fer2013.csv works too).")
DRIVE_PAGE = "https://drive.google.com/file/d/{}/view"  # what a browser opens to download a Drive file
# Exception class names, across requests/urllib3/gdown versions, that mean "no network".
NETWORK_ERRORS = ("ConnectionError", "ConnectTimeout", "NewConnectionError", "MaxRetryError", "NameResolutionError",
                  "gaierror", "Timeout", "TimeoutError", "timeout", "ProxyError", "URLError")


@dataclass
class Source:
    """A parsed ``--source``: kind is drive, url, archive, folder or csv."""

    kind: str
    value: str  # Drive file id, URL, or absolute path
    label: str  # as the user wrote it, for messages

    @property
    def path(self) -> Path:
        """The local path (archive, folder and csv sources)."""
        return Path(self.value)


def drive_id(url: str) -> Optional[str]:
    """The file id in a Drive share link (/file/d/ID/..., ?id=ID), or None."""
    parsed = urllib.parse.urlparse(url)
    m = re.search(r"/(?:file/)?d/([A-Za-z0-9_-]{10,})", parsed.path)
    if m:
        return m.group(1)
    ids = urllib.parse.parse_qs(parsed.query).get("id")
    return ids[0] if ids else None


def parse(text: str) -> Source:
    """Classify ``--source``; raises FileNotFoundError/ValueError naming what is accepted."""
    text = str(text).strip()
    if re.match(r"^https?://", text, re.IGNORECASE):
        if (urllib.parse.urlparse(text).hostname or "").lower() in DRIVE_HOSTS:
            file_id = drive_id(text)
            if not file_id:
                raise ValueError(f"No file id in the Google Drive link {show(text)}. Use a share link like "
                                 f"https://drive.google.com/file/d/FILE_ID/view, or pass the id alone.")
            return Source("drive", file_id, text)
        return Source("url", text, text)
    path = Path(text).expanduser()
    if path.is_dir():
        return Source("folder", str(path.resolve()), text)
    if path.is_file():
        if path.suffix.lower() == ".csv" and not is_fer_csv(path):
            raise ValueError(f"{show(text)} is a CSV without the FER2013 columns emotion,pixels,Usage.")
        return Source("csv" if path.suffix.lower() == ".csv" else "archive", str(path.resolve()), text)
    if DRIVE_ID.match(text):
        return Source("drive", text, text)
    raise FileNotFoundError(f"--source {show(text)} is not an existing file or folder, a Google Drive link or id, or "
                            f"an http(s) URL. Pass e.g. --source path/to/archive.zip or --source fer2013.csv.")


def identity(src: Source) -> dict:
    """What must match for a second download to be 'the same': the id/URL, or a local path with size and time."""
    if src.kind in ("drive", "url"):
        return {"kind": src.kind, "value": src.value}
    if src.kind == "folder":
        files = folder_files(src.path)  # links refused: never followed out of the folder or round a loop
        return {"kind": "folder", "value": src.value, "files": len(files),
                "bytes": sum(p.stat().st_size for p in files)}
    st = src.path.stat()
    return {"kind": src.kind, "value": src.value, "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


def is_network_error(exc: BaseException) -> bool:
    """True when ``exc`` or anything in its cause chain means the network could not be reached."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, (ConnectionError, socket.gaierror, socket.timeout, TimeoutError)):
            return True
        if any(name in type(exc).__name__ for name in NETWORK_ERRORS):
            return True
        if any(isinstance(a, BaseException) and is_network_error(a) for a in getattr(exc, "args", ())):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _failure(where: str, exc: BaseException, page: str = "") -> RuntimeError:
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    if is_network_error(exc):  # short: the library's long text helps no one offline; the fix does
        hint = (f"Open {page} in a browser to download the file, then pass it: `emoclf download --source "
                f"path/to/archive.zip` (a folder or a fer2013.csv works too)." if page else OFFLINE_HINT)
        return RuntimeError(f"Cannot reach {where}: the network is unreachable ({type(exc).__name__}). {hint}")
    return RuntimeError(f"Download from {where} failed ({type(exc).__name__}: {first}). {HTML_HINT}")


def _fetch_drive(file_id: str, folder: Path) -> Path:
    try:
        import gdown
    except ImportError:
        raise RuntimeError(f"gdown is not installed (pip install gdown). {OFFLINE_HINT}") from None
    kwargs = {"id": file_id, "output": str(folder) + os.sep, "quiet": not sys.stderr.isatty()}
    if "timeout" in inspect.signature(gdown.download).parameters:  # older gdown has no timeout and may wait forever
        kwargs["timeout"] = TIMEOUT_S
    try:
        out = gdown.download(**kwargs)
    except Exception as exc:  # gdown's exceptions differ between versions; all become one clear message
        raise _failure("drive.google.com", exc, DRIVE_PAGE.format(file_id)) from None
    if not out or not Path(out).is_file():  # older gdown returns None instead of raising
        raise RuntimeError(f"Google Drive did not return file {file_id}. {HTML_HINT}")
    return Path(out)


def _url_name(resp, url: str) -> str:
    name = resp.headers.get_filename() or Path(urllib.parse.urlparse(url).path).name
    name = Path(name.replace("\\", "/")).name
    return name if name and not name.startswith(".") else "download"


def _fetch_url(url: str, folder: Path) -> Path:
    request = urllib.request.Request(url, headers={"User-Agent": f"emoclf/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as resp:
            path = folder / _url_name(resp, url)
            with open(path, "wb") as out:
                shutil.copyfileobj(resp, out, 1 << 20)
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"{url} answered HTTP {exc.code} ({exc.reason}). Check the link, or download the file "
                           f"in a browser and pass it with --source path/to/archive.zip.") from None
    except (urllib.error.URLError, OSError) as exc:
        if isinstance(exc, OSError) and not isinstance(exc, urllib.error.URLError) and not is_network_error(exc):
            raise  # a local write failure (disk full), not the network
        raise _failure(urllib.parse.urlparse(url).hostname or url, exc, url) from None
    return path


def fetch(src: Source, folder: Path) -> Path:
    """The local file or folder of ``src``: remote sources are downloaded into ``folder``."""
    if src.kind in ("archive", "folder", "csv"):
        return src.path
    folder.mkdir(parents=True, exist_ok=True)
    return _fetch_drive(src.value, folder) if src.kind == "drive" else _fetch_url(src.value, folder)
