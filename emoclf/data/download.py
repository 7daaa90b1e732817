"""``emoclf download``: get a dataset from a Drive link, URL, archive, folder or fer2013.csv into ``data/``."""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from emoclf.data import archive, fercsv, sources
from emoclf.data import labels as lbl
from emoclf.data.dataset import MARKER, find_splits, is_hidden, subdirs
from emoclf.data.imaging import is_image_name
from emoclf.utils.files import atomic_write_json
from emoclf.utils.locks import FileLock, is_locked

log = logging.getLogger(__name__)
LOCK_FILE = ".emoclf-download.lock"  # held by the download writing into a destination, removed when it ends
PARTIAL = ".emoclf-partial-"  # hidden, so dataset discovery never mistakes a half-written folder for data
RECORD_FORMAT = 2  # 2: says which folder a download installed, and keeps every folder ever recorded in place
SPLIT_ORDER = ("train", "validation", "test")


@dataclass
class Result:
    """What `emoclf download` did: where the dataset root is and how many images each split/class holds."""

    dest: Path
    root: Path
    counts: Dict[str, Dict[str, int]]  # split -> class folder name -> images
    source: str
    already: bool = False
    seconds: float = 0.0
    notes: List[str] = field(default_factory=list)

    def summary(self) -> str:
        """Human-readable report: what happened, where the root is, and the count table."""
        if self.already:
            head = (f"Already there: {self.root} (from {self.source}). Nothing to do; pass --force to "
                    f"download and unpack it again.")
        else:
            head = f"Dataset from {self.source} ready in {self.seconds:.1f} s.\nDataset root: {self.root}"
        lines = [head, f"Recorded in {self.dest / MARKER}: `emoclf train` finds it with data.root={self.dest}.",
                 "", format_table(self.counts)]
        return "\n".join(lines + [f"Note: {n}" for n in self.notes])


def format_table(counts: Dict[str, Dict[str, int]]) -> str:
    """Per-class rows, per-split columns; a folder whose name is not the canonical label shows 'folder -> label'."""
    splits = [s for s in SPLIT_ORDER if s in counts] + sorted(set(counts) - set(SPLIT_ORDER))
    merged = {s: lbl.merge_counts(counts[s]) for s in splits}
    folders: Dict[str, set] = {}
    for split in splits:
        for folder in counts[split]:
            folders.setdefault(lbl.canonical(folder), set()).add(folder)
    names = {}
    for label, found in folders.items():
        other = sorted(f for f in found if f != label)
        names[label] = f"{'/'.join(other)} -> {label}" if other else label
    width = max([len("class"), len("total")] + [len(v) for v in names.values()])
    rows = [f"{'class':<{width}}" + "".join(f"{s:>12}" for s in splits)]
    for label in lbl.ordered(folders):
        rows.append(f"{names[label]:<{width}}" + "".join(f"{merged[s].get(label, 0):>12}" for s in splits))
    rows.append(f"{'total':<{width}}" + "".join(f"{sum(counts[s].values()):>12}" for s in splits))
    return "\n".join(rows)


def dataset_files(root: Path) -> List[Tuple[str, str, Path]]:
    """(split, class folder name, path) of every image under a dataset root; class folders alone count as train."""
    splits = find_splits(root) or {"train": root}
    found = []
    for split in [s for s in SPLIT_ORDER if s in splits]:  # find_splits only knows these three
        for class_dir in subdirs(splits[split]):
            files = sorted(p for p in class_dir.rglob("*") if is_image_name(p) and not is_hidden(p) and p.is_file())
            found.extend((split, class_dir.name, p) for p in files)
    return found


def tally(files: List[Tuple[str, str, Path]]) -> Dict[str, Dict[str, int]]:
    """Images per split and class folder of a :func:`dataset_files` list."""
    counts: Dict[str, Dict[str, int]] = {}
    for split, folder, _ in files:
        per_class = counts.setdefault(split, {})
        per_class[folder] = per_class.get(folder, 0) + 1
    return counts


def count_images(root: Path) -> Dict[str, Dict[str, int]]:
    """Images per split and class folder under a dataset root."""
    return tally(dataset_files(root))


def _is_class_folder_root(folder: Path) -> bool:
    known = [d for d in subdirs(folder) if lbl.canonical(d.name) in lbl.CANONICAL]
    return len(known) >= 2


def find_root(folder: Path, max_depth: int = 6) -> Optional[Path]:
    """The shallowest folder holding split folders (train/, validation/, ...), else emotion class folders."""
    level, fallback = [folder], None
    for _ in range(max_depth + 1):
        for d in level:
            if any(subdirs(s) for s in find_splits(d).values()):
                return d
            if fallback is None and _is_class_folder_root(d):
                fallback = d
        level = [s for d in level for s in subdirs(d)]
    return fallback


def _locate(unpacked: Path, what: str) -> Tuple[Path, Dict[str, Dict[str, int]]]:
    """The dataset root and its counts; raises ValueError when ``what`` holds no labelled images."""
    root = find_root(unpacked)
    if root is None:
        found = ", ".join(p.name for p in sorted(unpacked.iterdir())[:10]) or "nothing"
        raise ValueError(f"No dataset in {what}: expected train/<class>/ image folders (e.g. train/happy/001.jpg), "
                         f"optionally with validation/ and test/, or a fer2013.csv. It holds: {found}.")
    counts = count_images(root)
    if not any(n for per_class in counts.values() for n in per_class.values()):
        raise ValueError(f"The class folders under {root.name} in {what} hold no image files (.jpg, .png, ...).")
    return root, counts


def _inner_csv(unpacked: Path) -> Optional[Path]:
    # Kaggle's fer2013.tar.gz holds fer2013/fer2013.csv instead of image folders.
    for path in sorted(unpacked.rglob("*.csv")):
        if fercsv.is_fer_csv(path):
            return path
    return None


def _unpack(src: sources.Source, path: Path, work: Path, limit: int) -> Path:
    out = work / "unpacked"
    if src.kind == "folder":
        archive.copy_folder(path, out, limit, skip=(".emoclf-cache", PARTIAL + "*"))
        return out
    out.mkdir()
    if src.kind == "csv":
        fercsv.convert(path, out)
        return out
    log.info("Unpacking %s", path)
    archive.extract(path, out, limit)
    if find_root(out) is None:
        csv_path = _inner_csv(out)
        if csv_path is not None:
            log.info("Converting %s to image folders", csv_path.name)
            fercsv.convert(csv_path, out / "images")
            csv_path.unlink()
    return out


def _folder_name(src: sources.Source, fetched: Path) -> str:
    name = fetched.name if src.kind == "folder" else re.sub(r"(\.tar)?\.[A-Za-z0-9]{1,4}$", "", fetched.name)
    name = re.sub(r"[^\w.-]+", "_", name).strip("._")
    return name if name and name != Path(MARKER).stem else "dataset"


def _read_record(dest: Path) -> Optional[dict]:
    try:
        record = json.loads((dest / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _already_there(dest: Path, identity: dict, label: str) -> Optional[Result]:
    record = _read_record(dest)
    if not record or record.get("identity") != identity or not record.get("root"):
        return None
    root = dest / record["root"]
    if not root.is_dir():
        return None
    counts = count_images(root)
    result = Result(dest, root, counts, label, already=True)
    if counts != record.get("counts"):
        result.notes.append(f"the images under {root} differ from the download record (files added or removed "
                            f"since); pass --force to restore the original dataset.")
    return result


def _own_roots(record: dict) -> List[str]:
    """Dataset roots (relative to --dest) recorded in place: the user's own folders, kept in every later record."""
    roots = [r for r in record.get("own", []) if isinstance(r, str)]
    if record.get("in_place") and isinstance(record.get("root"), str) and record["root"] not in roots:
        roots.append(record["root"])
    return roots


def _installed_here(record: dict, target: Path, dest: Path) -> bool:
    """Whether the download record shows that `emoclf download` put ``target`` there."""
    if "installed" in record or "in_place" in record or record.get("format", 1) >= 2:
        return record.get("installed") == target.name
    # A record from before format 2 does not say; an archive or URL download was installed (a local folder may
    # have been recorded in place, so that one is not assumed).
    identity = record.get("identity") if isinstance(record.get("identity"), dict) else {}
    return bool(record.get("root")) and identity.get("kind") != "folder" and _inside(dest / record["root"], target)


def _check_target(target: Path, dest: Path, force: bool) -> None:
    if not target.exists():
        return
    record = _read_record(dest) or {}
    for own in _own_roots(record):
        if _inside(dest / own, target) or _inside(target, dest / own):
            raise ValueError(f"'{target}' holds a folder recorded in place as a dataset ({dest / own}: your own copy, "
                             f"not installed by `emoclf download`); it is never replaced, even with --force. Move "
                             f"it away or choose another --dest.")
    if force or record.get("installing") == target.name:  # installing: a download killed while moving it in
        return
    if not _installed_here(record, target, dest):
        raise ValueError(f"'{target}' already exists and the download record does not show that `emoclf download` "
                         f"installed it. Move it away, choose another --dest, or pass --force to delete and "
                         f"replace it.")


def _install(unpacked: Path, target: Path, dest: Path, work: Path) -> None:
    # From here on no record claims a complete dataset until the new one is fully in place; the interim record
    # names the folder being replaced, so that a download killed in between may replace it again.
    own = _own_roots(_read_record(dest) or {})
    atomic_write_json(dest / MARKER, {"format": RECORD_FORMAT, "installing": target.name, "own": own})
    if target.exists() or target.is_symlink():
        os.replace(target, work / "previous")
    os.replace(unpacked, target)


def _lock(dest: Path) -> FileLock:
    """Lock a download destination for this process: a second download into it is refused (the lock goes with the
    process, however it ends)."""
    return FileLock(dest / LOCK_FILE).acquire(f"The download destination {dest}")


def _clean_partials(dest: Path) -> None:
    for stale in dest.glob(PARTIAL + "*"):
        log.info("Removing %s left by an interrupted download", stale)
        shutil.rmtree(stale, ignore_errors=True)


def download(source: Optional[str] = None, dest: str = "data", force: bool = False,
             max_gb: Optional[float] = None) -> Result:
    """Fetch, check and unpack ``source`` into ``dest``, then record where the dataset root is."""
    dest_path, limit, started = Path(dest).expanduser(), archive.max_bytes(max_gb), time.time()
    if source is None:  # no --source: the dataset already recorded in dest, whatever its source
        record = _read_record(dest_path) or {}
        recorded = record.get("identity")
        if isinstance(recorded, dict) and force:  # --force alone: again from where it came (path, URL, Drive id)
            source = recorded.get("value")
        elif isinstance(recorded, dict):
            done = _already_there(dest_path, recorded, str(record.get("source", "?")))
            if done is not None:
                return done
    src = sources.parse(source or sources.DEFAULT_SOURCE)
    identity = sources.identity(src)
    if not force:
        done = _already_there(dest_path, identity, src.label)
        if done is not None:
            if not is_locked(dest_path / LOCK_FILE):  # a download running there owns its partial folder
                _clean_partials(dest_path)  # what a killed --force left behind
            return done
    if src.kind == "folder" and _inside(src.path, dest_path):
        with _lock(dest_path):
            return _record_in_place(src, dest_path, identity)
    if src.kind == "folder" and _inside(dest_path, src.path):
        raise ValueError(f"--dest '{dest_path}' lies inside the source folder '{src.path}'; choose a --dest "
                         f"outside it.")
    if dest_path.exists() and not dest_path.is_dir():
        raise ValueError(f"--dest '{dest_path}' is a file; pass a folder (default: data).")
    created = not dest_path.exists()
    dest_path.mkdir(parents=True, exist_ok=True)
    try:
        lock = _lock(dest_path)
    except ValueError:
        if created:
            dest_path.rmdir()
        raise
    try:
        _clean_partials(dest_path)  # under the lock: no other download is filling them
        work = Path(tempfile.mkdtemp(prefix=PARTIAL, dir=dest_path))
    except BaseException:
        lock.release()
        raise
    try:
        fetched = sources.fetch(src, work / "download")
        unpacked = _unpack(src, fetched, work, limit)
        root, counts = _locate(unpacked, src.label)
        target = dest_path / _folder_name(src, fetched)
        _check_target(target, dest_path, force)
        _install(unpacked, target, dest_path, work)
        final_root = target / root.relative_to(unpacked)
        _write_record(dest_path, final_root, identity, src.label, counts, installed=target.name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        lock.release()
        if created and not any(dest_path.iterdir()):
            dest_path.rmdir()  # a failed first download leaves no empty data/ behind
    return Result(dest_path, final_root, counts, src.label, seconds=time.time() - started)


def _write_record(dest: Path, root: Path, identity: dict, label: str, counts: Dict[str, Dict[str, int]],
                  installed: Optional[str] = None) -> None:
    """``installed``: the folder under ``dest`` that this download put there (None: a folder recorded in place).
    Folders recorded in place, now or by any earlier download into ``dest``, are listed under ``own``."""
    relative = os.path.relpath(root, dest)
    own = _own_roots(_read_record(dest) or {})
    if installed is not None:  # the folder now there is this download's, not the user's recorded earlier
        own = [r for r in own if not _inside(dest / r, dest / installed)]
    elif relative not in own:
        own.append(relative)
    record = {"format": RECORD_FORMAT, "root": relative, "source": label, "identity": identity,
              "counts": counts, "written": time.strftime("%Y-%m-%dT%H:%M:%S"), "own": own}
    record.update({"installed": installed} if installed is not None else {"in_place": True})
    atomic_write_json(dest / MARKER, record)


def _inside(path: Path, folder: Path) -> bool:
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([path, folder]) == folder


def _record_in_place(src: sources.Source, dest: Path, identity: dict) -> Result:
    root, counts = _locate(src.path, src.label)
    _write_record(dest, root, identity, src.label, counts)
    return Result(dest, root, counts, src.label, notes=[f"{src.path} is already inside {dest}: recorded, not copied."])
