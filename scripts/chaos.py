#!/usr/bin/env python
"""Chaos test: kill -9 `emoclf` at random moments and feed it hostile files; print what survived.

Every case runs the real command line (``python -m emoclf``) in a child process on a small generated dataset:

- ``train`` killed at a random moment (``--trials``), or while a checkpoint is being written, then continued with
  ``--resume`` (some trials are killed again while resuming); the history and metrics must equal those of an
  uninterrupted run with the same seed, and best.pt/last.pt must load at every moment;
- ``download``, ``inspect`` and ``compare`` killed at a random moment, then run again: the result must equal an
  uninterrupted one (reused when complete, redone otherwise);
- a disk that fills up while a checkpoint is written (a file size limit makes the write fail);
- a dataset with corrupt, truncated, empty, CMYK, 16-bit, palette, animated and huge images;
- hostile inputs: a checkpoint whose pickle would run code, zips with ``../``, absolute paths, symlinks or a bomb,
  YAML with object-building tags or billion-laughs aliases;
- unusual input (scripts/chaos_inputs.py): hostile values in model files, a full disk while the image cache is
  built, non-Latin and non-UTF-8 names, ``--set`` values with `` #``, ``--overwrite`` of a folder that is not a run's,
  two processes on one run folder, a letterbox bomb, a kill during the parallel cache build, /dev/zero, FIFOs and
  links as input, malformed files and SIGTERM.

Prints a markdown table: scenario | trials | faults injected | runs completed | results equal | files lost.

    python scripts/chaos.py --trials 20 --seed 0
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import random
import resource
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from emoclf.data.synthetic import make_dataset  # noqa: E402
from emoclf.runs.folder import is_finished  # noqa: E402
from emoclf.utils.files import load_checkpoint  # noqa: E402

CLASSES = ("angry", "happy", "sad")
TRAIN_SET = ["data.image_size=16", "model.width=4", "model.depth=2", "train.epochs=8", "train.batch_size=8",
             "train.device=cpu", "train.num_threads=1", "train.eval_batch_size=64"]
RUN_FILES = ["config.yaml", "best.pt", "last.pt", "history.csv", "curves.png", "confusion_matrix.png",
             "confusion_matrix_normalized.png", "classification_report.txt", "metrics.json", "predictions.csv",
             "report.md"]
# Wall-clock numbers and folder paths differ between any two runs; everything else must be equal.
TIMING_KEYS = {"seconds", "train_seconds", "inference_ms_per_image", "latency_ms_batch1", "created", "device",
               "measured_device", "measured_inference_ms_per_image", "run_dir", "scores_dir", "data_root", "out_dir",
               "cached"}


@dataclass
class Row:
    """One line of the table."""

    scenario: str
    trials: int = 0
    faults: int = 0
    completed: int = 0
    equal: int = 0
    lost: int = 0
    notes: List[str] = field(default_factory=list)

    def cells(self) -> List[str]:
        return [self.scenario, str(self.trials), str(self.faults), f"{self.completed}/{self.trials}",
                f"{self.equal}/{self.trials}", str(self.lost)]

    @property
    def ok(self) -> bool:
        return self.completed == self.trials and self.equal == self.trials and self.lost == 0 and not self.notes


class Chaos:
    """A work folder, a dataset and the reference (uninterrupted) results the trials are checked against."""

    def __init__(self, work: Path, rng: random.Random, log=print):
        self.work, self.rng, self.log = work, rng, log
        self.env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
                        PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
        self.data = make_dataset(work / "data", classes=CLASSES, train_per_class=24, val_per_class=6, size=24,
                                 seed=0)
        self.ref_seconds: Dict[str, float] = {}
        self.train_set = list(TRAIN_SET)

    # ----- processes
    def start(self, args: Sequence[str], cwd: Optional[Path] = None, limit_bytes: int = 0) -> subprocess.Popen:
        def preexec():
            if limit_bytes:
                resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
        return subprocess.Popen([sys.executable, "-m", "emoclf", *args], cwd=cwd or REPO, env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                                preexec_fn=preexec if limit_bytes else None)

    def run(self, args: Sequence[str], timeout: float = 600, **kw) -> subprocess.CompletedProcess:
        p = self.start(args, **kw)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, err = p.communicate()
        return subprocess.CompletedProcess(p.args, p.returncode, out.decode(errors="replace"),
                                           err.decode(errors="replace"))

    def timed(self, key: str, args: Sequence[str]) -> subprocess.CompletedProcess:
        start = time.perf_counter()
        res = self.run(args)
        self.ref_seconds[key] = time.perf_counter() - start
        if res.returncode != 0:
            raise RuntimeError(f"reference `emoclf {' '.join(args)}` failed:\n{res.stderr[-2000:]}")
        return res

    def kill_after(self, args: Sequence[str], delay: float, watch=None) -> bool:
        """Start a command and SIGKILL it after ``delay`` s (or when ``watch()`` says so); True when it was running."""
        p = self.start(args)
        deadline = time.perf_counter() + delay
        while time.perf_counter() < deadline and p.poll() is None:
            if watch is not None and watch():
                break
            time.sleep(0.0005 if watch is not None else 0.01)
        alive = p.poll() is None
        if alive:
            os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        return alive


# ----- train
def train_args(c: Chaos, name: str, out: Path, extra: Sequence[str] = ()) -> List[str]:
    sets = TRAIN_SET + [f"data.root={c.data}", f"output.dir={out}", f"output.name={name}", *extra]
    return ["train", "-c", "configs/cnn.yaml", *[a for s in sets for a in ("--set", s)]]


def history(run: Path) -> List[Dict[str, str]]:
    """history.csv without its wall-clock column."""
    with open(run / "history.csv", newline="") as fh:
        return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in csv.DictReader(fh)]


def strip_timing(value):
    if isinstance(value, dict):
        return {k: strip_timing(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [strip_timing(v) for v in value]
    return value


def metrics(run: Path) -> Dict:
    return strip_timing(json.loads((run / "metrics.json").read_text()))


def broken_checkpoints(run: Path) -> List[str]:
    """best.pt/last.pt that exist but do not load (truncated or damaged)."""
    bad = []
    for name in ("best.pt", "last.pt"):
        if (run / name).exists():
            try:
                load_checkpoint(run / name)
            except (ValueError, OSError):
                bad.append(name)
    return bad


def leftovers(folder: Path) -> List[str]:
    return sorted(p.name for p in folder.glob(".*.tmp")) if folder.exists() else []


def check_run(c: Chaos, run: Path, ref: Path, row: Row) -> None:
    """After the final --resume: complete, equal to the reference, nothing truncated or left behind."""
    missing = [f for f in RUN_FILES if not (run / f).is_file()] + broken_checkpoints(run)
    row.lost += len(missing)
    row.notes += [f"{run.name}: missing or damaged {', '.join(missing)}"] if missing else []
    if is_finished(run) and not missing:
        row.completed += 1
        if history(run) == history(ref) and metrics(run) == metrics(ref) and not leftovers(run):
            row.equal += 1
        else:
            row.notes.append(f"{run.name}: differs from the uninterrupted run" +
                             (f" (left {leftovers(run)})" if leftovers(run) else ""))


def resume_until_done(c: Chaos, args: List[str], run: Path, ref: Path, row: Row, kills: int) -> None:
    for _ in range(kills):  # kill the resume as well, at another random moment
        if c.kill_after(args + ["--resume"], c.rng.uniform(0, c.ref_seconds["train"])):
            row.faults += 1
        bad = broken_checkpoints(run)
        row.lost += len(bad)
        row.notes += [f"{run.name}: truncated {bad} after a kill"] if bad else []
    res = c.run(args + ["--resume"])
    if res.returncode != 0 or "Traceback" in res.stderr:
        row.notes.append(f"{run.name}: --resume exited {res.returncode}: {res.stderr.strip()[-300:]}")
    check_run(c, run, ref, row)


def train_trials(c: Chaos, trials: int, write_trials: Optional[int] = None) -> List[Row]:
    out = c.work / "runs"
    c.timed("train", train_args(c, "cold", out))  # the first run also warms the caches
    c.timed("train", train_args(c, "reference", out))  # its duration spreads the kills over a whole run
    ref = out / "reference"
    random_row = Row("train: kill -9 at a random moment, then --resume")
    if history(out / "cold") != history(ref) or metrics(out / "cold") != metrics(ref):
        random_row.notes.append("two uninterrupted runs with the same seed differ: nothing to compare against")
    for i in range(trials):
        name = f"random{i}"
        args = train_args(c, name, out)
        random_row.trials += 1
        if c.kill_after(args, c.rng.uniform(0, c.ref_seconds["train"])):
            random_row.faults += 1
        bad = broken_checkpoints(out / name)
        random_row.lost += len(bad)
        if is_finished(out / name) and [f for f in RUN_FILES if not (out / name / f).is_file()]:
            random_row.notes.append(f"{name}: a half-written run folder looks finished")
        resume_until_done(c, args, out / name, ref, random_row, kills=1 if i % 3 == 2 else 0)

    write_row = Row("train: kill -9 while a checkpoint is written")
    for i in range(max(2, trials // 5) if write_trials is None else write_trials):
        name = f"write{i}"
        run, args = out / name, train_args(c, name, out)
        write_row.trials += 1
        skip = c.rng.randint(0, 5)  # let a few checkpoint writes pass before the one that is cut
        seen = []

        def writing(run=run, seen=seen, skip=skip) -> bool:  # called within this iteration only
            tmp = [n for n in leftovers(run) if n.startswith((".last.pt", ".best.pt"))]
            if tmp and tmp[0] not in seen:
                seen.append(tmp[0])
            return len(seen) > skip and bool(tmp)

        if c.kill_after(args, 3 * c.ref_seconds["train"], watch=writing):
            write_row.faults += 1
        write_row.lost += len(broken_checkpoints(run))
        resume_until_done(c, args, run, ref, write_row, kills=0)
    return [random_row, write_row]


def disk_full(c: Chaos) -> Row:
    """A file size limit makes the next last.pt write fail: clear error, previous checkpoint intact."""
    row, out = Row("train: disk full while saving a checkpoint", trials=1), c.work / "runs"
    args = train_args(c, "diskfull", out)
    run = out / "diskfull"
    c.kill_after(args, 3 * c.ref_seconds["train"], watch=lambda: (run / "history.csv").is_file())
    if not (run / "last.pt").is_file():
        row.notes.append("diskfull: no last.pt to protect (the kill came too early)")
        return row
    before = hashlib.sha256((run / "last.pt").read_bytes()).hexdigest()
    limit = (run / "last.pt").stat().st_size - 1000  # the cache and best.pt fit, last.pt does not
    res = c.run(args + ["--resume"], limit_bytes=limit)
    row.faults += 1
    clear = res.returncode == 1 and "Could not write checkpoint" in res.stderr and "Traceback" not in res.stderr
    intact = hashlib.sha256((run / "last.pt").read_bytes()).hexdigest() == before and not broken_checkpoints(run)
    row.lost += 0 if intact else 1
    if not clear:
        row.notes.append(f"diskfull: exit {res.returncode}, stderr {res.stderr.strip()[-300:]}")
    res = c.run(args + ["--resume"])
    before_count = row.completed
    check_run(c, run, out / "reference", row)
    if not (clear and intact) and row.equal:
        row.equal -= 1
    if row.completed == before_count:
        row.notes.append(f"diskfull: the resume after the error failed: {res.stderr.strip()[-300:]}")
    return row


# ----- download, inspect, compare
def listing(root: Path) -> Dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_size for p in sorted(root.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)}


def download_trials(c: Chaos, trials: int) -> Row:
    big = make_dataset(c.work / "zipsrc" / "faces", classes=CLASSES, train_per_class=150, val_per_class=30,
                       size=64, seed=5)
    archive = c.work / "faces.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(big.rglob("*")):
            zf.write(p, "faces/" + p.relative_to(big).as_posix())
    expected = listing(big)
    c.timed("download", ["download", "--source", str(archive), "--dest", str(c.work / "dl-ref")])
    row = Row("download: kill -9 at a random moment, then again")
    for i in range(trials):
        dest = c.work / f"dl{i}"
        row.trials += 1
        force = []
        if i % 2:  # a complete earlier download is being replaced with --force when the kill comes
            c.run(["download", "--source", str(archive), "--dest", str(dest)])
            force = ["--force"]
        args = ["download", "--source", str(archive), "--dest", str(dest)]
        if c.kill_after(args + force, c.rng.uniform(0, 1.1 * c.ref_seconds["download"])):
            row.faults += 1
        res = c.run(args)
        if res.returncode != 0:
            row.notes.append(f"dl{i}: exit {res.returncode}: {res.stderr.strip()[-300:]}")
            continue
        row.completed += 1
        record = json.loads((dest / "emoclf-dataset.json").read_text())
        got = listing(dest / record["root"])
        row.lost += len(set(expected) - set(got))
        extra = [p.name for p in dest.iterdir() if p.name.startswith(".emoclf-partial")]
        if got == expected and not extra:
            row.equal += 1
        else:
            row.notes.append(f"dl{i}: {len(got)} files of {len(expected)}, leftovers {extra}")
    return row


def inspect_trials(c: Chaos, trials: int) -> Row:
    def report(out: Path) -> Dict:
        return strip_timing(json.loads((out / "inspect.json").read_text()))

    ref = c.work / "inspect-ref"
    c.timed("inspect", ["inspect", str(c.data), "--out", str(ref)])
    row = Row("inspect: kill -9 at a random moment, then again")
    for i in range(trials):
        out = c.work / f"inspect{i}"
        row.trials += 1
        if i % 2:
            c.run(["inspect", str(c.data), "--out", str(out)])
        if c.kill_after(["inspect", str(c.data), "--out", str(out)], c.rng.uniform(0, 1.1 * c.ref_seconds["inspect"])):
            row.faults += 1
        if out.exists() and not ((out / "inspect.json").is_file() and (out / "inspect.md").is_file()):
            row.lost += 1
            row.notes.append(f"inspect{i}: a partial report was left after the kill")
        res = c.run(["inspect", str(c.data), "--out", str(out)])
        if res.returncode == 0:
            row.completed += 1
            row.equal += int(report(out) == report(ref))
    return row


def compare_trials(c: Chaos, trials: int) -> Row:
    for name, width in (("tiny_a", 4), ("tiny_b", 6)):
        (c.work / f"{name}.yaml").write_text(f"model: {{name: cnn, width: {width}, depth: 2}}\n"
                                             f"output: {{name: {name}}}\n")

    def args(tag: str) -> List[str]:
        sets = ["data.image_size=16", "train.epochs=3", "train.batch_size=8", "train.device=cpu",
                "train.num_threads=1", f"data.root={c.data}", f"output.dir={c.work / tag}"]
        return ["compare", "--config", str(c.work / "tiny_a.yaml"), str(c.work / "tiny_b.yaml"),
                *[a for s in sets for a in ("--set", s)], "--out", str(c.work / tag / "comparison"), "--device", "cpu"]

    def rows(tag: str) -> List[Dict]:
        data = json.loads((c.work / tag / "comparison" / "comparison.json").read_text())
        return [strip_timing(r) for r in data["runs"]]

    c.timed("compare", args("cmp-ref"))
    row = Row("compare: kill -9 at a random moment, then again")
    for i in range(trials):
        row.trials += 1
        if c.kill_after(args(f"cmp{i}"), c.rng.uniform(0, 1.1 * c.ref_seconds["compare"])):
            row.faults += 1
        res = c.run(args(f"cmp{i}"))
        if res.returncode == 0:
            row.completed += 1
            row.equal += int(rows(f"cmp{i}") == rows("cmp-ref"))
            row.lost += sum(len(broken_checkpoints(c.work / f"cmp{i}" / n)) for n in ("tiny_a", "tiny_b"))
        else:
            row.notes.append(f"cmp{i}: exit {res.returncode}: {res.stderr.strip()[-300:]}")
    return row


# ----- bad images
def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb, read no further)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def add_odd_images(root: Path, seed: int = 0) -> Dict[str, List[str]]:
    """Add valid odd images (must be used) and broken ones (must be skipped); returns their names."""
    rng = np.random.default_rng(seed)
    face = np.asarray(Image.open(next((root / "train" / "happy").iterdir())).convert("RGB"))
    folder, val = root / "train" / "happy", root / "validation" / "sad"
    buf = io.BytesIO()
    Image.fromarray(face).save(buf, "JPEG")
    jpeg = buf.getvalue()
    odd = {
        "cmyk.jpg": lambda p: Image.fromarray(face).convert("CMYK").save(p, "JPEG"),
        "sixteen_bit.png": lambda p: Image.fromarray(face[..., 0].astype(np.uint16) * 257).save(p),
        "palette.png": lambda p: Image.fromarray(face).convert("P", palette=Image.Palette.ADAPTIVE).save(p),
        "animated.gif": lambda p: Image.fromarray(face).save(
            p, save_all=True, append_images=[Image.fromarray(255 - face)], duration=100, loop=0),
        "alpha.png": lambda p: Image.fromarray(face).convert("RGBA").save(p),
    }
    broken = {
        "zero_bytes.jpg": lambda p: p.write_bytes(b""),
        "truncated.jpg": lambda p: p.write_bytes(jpeg[: len(jpeg) * 3 // 4]),
        "random_bytes.jpg": lambda p: p.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()),
        "bomb_30000x30000.png": lambda p: p.write_bytes(png_header(30000, 30000)),
    }
    for name, make in odd.items():
        make(folder / name)
    for name, make in broken.items():
        make(folder / name)
    (val / "huge_9000x9000.png").write_bytes(png_header(9000, 9000))
    return {"odd": sorted(odd), "broken": sorted(list(broken) + ["huge_9000x9000.png"])}


def bad_images(c: Chaos) -> Row:
    root = make_dataset(c.work / "bad-data", classes=CLASSES, train_per_class=150, val_per_class=20, size=24, seed=7)
    names = add_odd_images(root)
    row = Row("train: dataset with 1% broken and odd images", trials=1, faults=len(names["odd"]) + len(names["broken"]))
    out = c.work / "bad-runs"
    res = c.run(["train", "-c", "configs/cnn.yaml", *[a for s in TRAIN_SET + [
        f"data.root={root}", f"output.dir={out}", "output.name=bad", "train.epochs=2"] for a in ("--set", s)]])
    run = out / "bad"
    if res.returncode != 0 or not is_finished(run):
        row.notes.append(f"bad images: exit {res.returncode}: {res.stderr.strip()[-300:]}")
        return row
    row.completed = 1
    listed = sorted(Path(line.split("\t")[0]).name for line in (run / "skipped_files.txt").read_text().splitlines())
    report = (run / "report.md").read_text()
    m = json.loads((run / "metrics.json").read_text())
    used = m["num_train_images"] == 3 * 150 + len(names["odd"]) and m["num_images"] == 3 * 20
    named = all(n in report and n in res.stderr for n in names["broken"])
    if listed == names["broken"] and used and named:
        row.equal = 1
    else:
        row.notes.append(f"bad images: skipped {listed}, train images {m['num_train_images']}, named {named}")
    return row


# ----- hostile inputs
class RunsCode:
    """Unpickling this would create a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def hostile_checkpoint(c: Chaos) -> Row:
    import torch

    row = Row("hostile checkpoint (pickle that runs code)")
    ref = c.work / "runs" / "reference"
    img = next((c.data / "validation" / "happy").iterdir())
    for legacy in (False, True):
        marker = c.work / f"pwned{int(legacy)}"
        evil = c.work / f"evil{int(legacy)}.pt"
        ckpt = load_checkpoint(ref / "best.pt")
        ckpt["metrics"] = RunsCode(marker)
        torch.save(ckpt, evil, _use_new_zipfile_serialization=not legacy)
        for args in (["evaluate", str(evil)], ["predict", str(img), "--run", str(evil), "--no-figure",
                                               "--out", str(c.work / "pred")]):
            row.trials += 1
            row.faults += 1
            res = c.run(args)
            refused = res.returncode == 2 and "Refusing to load" in res.stderr and "Traceback" not in res.stderr
            row.completed += int(refused)
            row.equal += int(refused and not marker.exists())
            if not refused or marker.exists():
                row.notes.append(f"{args[0]} {evil.name}: exit {res.returncode}, marker {marker.exists()}")
    return row


ZIP_KINDS = ("dotdot", "absolute", "symlink", "bomb")


def hostile_zip(folder: Path, kind: str) -> Path:
    """A zip with one dataset image and one hostile entry of ``kind`` (the bomb unpacks to 64 MiB)."""
    path = folder / f"{kind}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("faces/train/happy/a.png", b"x")
        if kind == "dotdot":
            zf.writestr("faces/../../escaped.txt", b"x")
        elif kind == "absolute":
            zf.writestr(str(folder / "escaped.txt"), b"x")
        elif kind == "symlink":
            info = zipfile.ZipInfo("faces/train/happy/link.png")
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
        else:
            with zf.open("faces/train/happy/zeros.png", "w", force_zip64=True) as fh:
                for _ in range(64):
                    fh.write(b"\0" * (1 << 20))
    return path


def hostile_zips(c: Chaos) -> Row:
    row = Row("hostile zip (../, absolute path, symlink, bomb)")
    cases = {kind: hostile_zip(c.work, kind) for kind in ZIP_KINDS}
    before = set(os.listdir(c.work))
    for kind, path in cases.items():
        dest = c.work / f"hostile-{kind}"
        row.trials += 1
        row.faults += 1
        res = c.run(["download", "--source", str(path), "--dest", str(dest), "--max-size", "0.01"])
        named = "Refusing" in res.stderr or "bomb" in res.stderr
        refused = res.returncode == 2 and "Traceback" not in res.stderr and named
        row.completed += int(refused)
        leaked = [n for n in set(os.listdir(c.work)) - before if n.startswith("escaped")] + \
            [n for n in ("escaped.txt",) if (c.work.parent / n).exists() or (c.work / n).exists()]
        empty = not dest.exists() or not listing(dest)
        row.equal += int(refused and empty and not leaked)
        if not (refused and empty and not leaked):
            row.notes.append(f"zip {kind}: exit {res.returncode}, leaked {leaked}, {res.stderr.strip()[-200:]}")
    return row


def billion_laughs() -> str:
    """YAML whose aliases expand to 9**9 (387 million) values."""
    names = "abcdefghi"
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    lines += [f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]" for p, n in zip(names, names[1:])]
    return "\n".join(lines + ["data: {drop_classes: *i}", ""])


def hostile_yaml(c: Chaos) -> Row:
    row = Row("hostile YAML (object tags, billion laughs)")
    laughs = billion_laughs()
    marker = c.work / "yaml-pwned"
    docs = {"apply": f"train: !!python/object/apply:os.mkdir ['{marker}']\n",
            "new": f"data: !!python/object/new:os.mkdir ['{marker}']\n",
            "name": "model: {name: !!python/name:os.system }\n",
            "laughs": laughs}
    for kind, text in docs.items():
        path = c.work / f"hostile-{kind}.yaml"
        path.write_text(text)
        row.trials += 1
        row.faults += 1
        start = time.perf_counter()
        res = c.run(["train", "-c", str(path)], timeout=60)
        clear = res.returncode == 2 and "Traceback" not in res.stderr and (
            "builds objects" in res.stderr or "expands to more than" in res.stderr)
        row.completed += int(clear)
        row.equal += int(clear and not marker.exists() and time.perf_counter() - start < 30)
        if not clear:
            row.notes.append(f"yaml {kind}: exit {res.returncode}: {res.stderr.strip()[-200:]}")
    return row


def odd_inputs():
    """scripts/chaos_inputs.py: hostile and unusual input, one row per class of input."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("chaos_inputs", Path(__file__).with_name("chaos_inputs.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def table(rows: List[Row]) -> str:
    head = ["scenario", "trials", "faults injected", "runs completed", "results equal", "files lost"]
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(["---"] + ["---:"] * 5) + " |"]
    return "\n".join(lines + ["| " + " | ".join(r.cells()) + " |" for r in rows])


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=20, help="kill -9 trials of `emoclf train` (default 20); the "
                    "other scenarios scale with it")
    ap.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    ap.add_argument("--work", help="work folder (default: a temporary one, deleted afterwards)")
    ap.add_argument("--json", help="also write the rows as JSON to this file")
    args = ap.parse_args(argv)
    if args.trials < 1:
        ap.error("--trials must be at least 1")
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="emoclf-chaos-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    try:
        rows = run_all(Chaos(work, random.Random(args.seed), log=lambda m: print(m, file=sys.stderr, flush=True)),
                       args.trials)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    print(table(rows))
    notes = [n for r in rows for n in r.notes]
    print(f"\n{time.time() - started:.0f} s, seed {args.seed}." + ("" if not notes else "\n" + "\n".join(notes)))
    if args.json:
        Path(args.json).write_text(json.dumps([vars(r) for r in rows], indent=2))
    return 0 if all(r.ok for r in rows) else 1


def run_all(c: Chaos, trials: int) -> List[Row]:
    """Every scenario; ``trials`` kills of train, the others scaled down from it."""
    rows = []
    steps = [("train", lambda: rows.extend(train_trials(c, trials))),
             ("disk full", lambda: rows.append(disk_full(c))),
             ("download", lambda: rows.append(download_trials(c, max(2, trials // 4)))),
             ("inspect", lambda: rows.append(inspect_trials(c, max(2, trials // 4)))),
             ("compare", lambda: rows.append(compare_trials(c, max(1, trials // 10)))),
             ("bad images", lambda: rows.append(bad_images(c))),
             ("hostile checkpoint", lambda: rows.append(hostile_checkpoint(c))),
             ("hostile zip", lambda: rows.append(hostile_zips(c))),
             ("hostile yaml", lambda: rows.append(hostile_yaml(c))),
             ("odd inputs", lambda: rows.extend(Row(**r) for r in odd_inputs().run(c)))]
    for name, step in steps:
        start = time.perf_counter()
        step()
        c.log(f"{name}: {time.perf_counter() - start:.0f} s")
    return rows


if __name__ == "__main__":
    sys.exit(main())
