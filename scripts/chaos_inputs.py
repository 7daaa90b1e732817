"""Hostile and unusual input for scripts/chaos.py: each case runs the real command line and must end in a clear
message (exit 2 for bad input, 1 for a failure such as a full disk), never a traceback, a crash or a hang, with
nothing half-written left and nothing of the user's lost.

Cases, one row per class of input:

- values inside model files: a checkpoint whose preprocessing asks for 100000 px or std 0, ONNX metadata with a
  huge size or a string for a number;
- a disk that fills up while the decoded-image cache is built (a 1 MB tmpfs, where Linux user namespaces allow);
- class folders named in other scripts (喜び, 悲しみ) and file names that are not valid UTF-8;
- ``--set`` values with `` #`` (YAML's comment mark);
- ``--overwrite`` into a folder that is not a run's, and two ``train`` processes on one run folder;
- a 39000 x 1000 PNG (a letterbox bomb): memory and time must stay small;
- a kill -9 while worker processes build the cache: they must die with it;
- special files and links as input: ``-c /dev/zero``, a FIFO, a folder with a symlink loop or a link to a file
  outside it given to ``download``;
- malformed files: a run's config.yaml edited into a list, then ``--resume``; a fer2013.csv field over 131,072
  characters; SIGTERM during training.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import numpy as np
from PIL import Image

from emoclf.data.synthetic import make_dataset
from emoclf.runs.folder import RUN_MARKER
from emoclf.utils.files import load_checkpoint
from emoclf.utils.locks import is_locked

REPO = Path(__file__).resolve().parents[1]
Outcome = Tuple[bool, bool, str]  # handled clearly, nothing lost or leaked, note
MAX_BOMB_MB = 1500  # peak memory of `predict` on the letterbox bomb: Python, torch and the image (was 6 GB)


def train_args(c, name: str, out: Path, extra=()) -> List[str]:
    """chaos.py's small training run, named ``name`` under ``out``, with more ``--set`` values."""
    sets = c.train_set + [f"data.root={c.data}", f"output.dir={out}", f"output.name={name}", *extra]
    return ["train", "-c", "configs/cnn.yaml", *[a for s in sets for a in ("--set", s)]]


def _clear(res, code: int, words: str = "") -> bool:
    """Exit ``code``, no traceback, and ``words`` in the message."""
    return res.returncode == code and "Traceback" not in res.stderr and words in res.stderr


def _note(name: str, res) -> str:
    return f"{name}: exit {res.returncode}: {res.stderr.strip()[-300:]}"


# ----- values inside model files
def model_values(c) -> List[Outcome]:
    import torch

    ref = c.work / "runs" / "reference" / "best.pt"
    img = next((c.data / "validation" / "happy").iterdir())
    out = []
    for name, change in (("image_size=100000", {"image_size": 100000}), ("std=[0]", {"std": [0.0]})):
        ckpt = load_checkpoint(ref)
        ckpt["preprocessing"].update(change)
        path = c.work / f"hostile-{len(out)}.pt"
        torch.save(ckpt, path)
        res = c.run(["predict", str(img), "--run", str(path), "--json", "--no-figure", "--out", str(c.work / "p")],
                    timeout=120)
        ok = _clear(res, 2, "preprocessing.") and "NaN" not in res.stdout
        out.append((ok, ok, "" if ok else _note(f"checkpoint {name}", res)))
    onnx_path = _hostile_onnx(c.work / "hostile.onnx")
    if onnx_path is not None:
        res = c.run(["predict", str(img), "--run", str(onnx_path), "--no-figure", "--out", str(c.work / "p")],
                    timeout=120)
        ok = _clear(res, 2, "preprocessing.image_size")
        out.append((ok, ok, "" if ok else _note("onnx image_size='big'", res)))
    return out


def _hostile_onnx(path: Path):
    try:
        import onnx
        from onnx import TensorProto, helper
    except ImportError:
        return None
    node = helper.make_node("Softmax", ["pixels"], ["probabilities"], axis=1)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 3])],
                              [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    meta = {"class_names": ["angry", "happy", "sad"], "image_size": "big", "grayscale": True, "aspect": "pad",
            "input_name": "pixels", "output_kind": "probabilities"}
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    onnx.save(model, str(path))
    return path


# ----- full disk while the cache is built
def cache_disk_full(c) -> List[Outcome]:
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None or \
            subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode != 0:
        return [(True, True, "cache disk full: skipped (no user namespaces to mount a small tmpfs)")]
    mnt = c.work / "tiny-disk"
    mnt.mkdir(exist_ok=True)
    args = train_args(c, "fullcache", c.work / "fullcache-runs", ["data.image_size=128", "data.grayscale=false",
                                                                  f"data.cache_dir={mnt}", "train.epochs=1"])
    inner = " ".join(f"'{a}'" for a in [sys.executable, "-m", "emoclf", *args])
    shell = f"mount -t tmpfs -o size=1m none {mnt} && {inner}; rc=$?; ls -a {mnt} >&2; exit $rc"
    res = subprocess.run(["unshare", "-rm", "sh", "-c", shell], capture_output=True, text=True, cwd=REPO,
                         env=c.env, timeout=300)
    ok = _clear(res, 1, "Could not write image cache") and "disk space" in res.stderr
    left = ".tmp" in res.stderr.split("Could not write", 1)[-1]
    return [(ok, ok and not left, "" if ok and not left else _note("cache on a full disk", res))]


# ----- names
def names(c) -> List[Outcome]:
    out = []
    root = make_dataset(c.work / "names-data", classes=("happy", "sad"), train_per_class=12, val_per_class=4, size=24,
                        seed=3, names={"happy": "喜び", "sad": "悲しみ"})
    src = next((root / "train" / "喜び").iterdir())
    shutil.copy(src, root / "train" / "喜び" / os.fsdecode(b"caf\xe9-\xff.png"))  # not valid UTF-8
    run_out = c.work / "names-runs"
    res = c.run(train_args(c, "names", run_out, [f"data.root={root}", "train.epochs=1"]))
    metrics = run_out / "names" / "metrics.json"
    classes = json.loads(metrics.read_text()).get("class_names", []) if metrics.is_file() else []
    ok = res.returncode == 0 and "Traceback" not in res.stderr
    equal = ok and sorted(classes) == ["喜び", "悲しみ"] if classes else ok
    out.append((ok, equal, "" if equal else _note(f"non-Latin class folders (classes {classes})", res)))
    pred = c.work / "names-pred"
    res = c.run(["predict", str(root / "train" / "喜び"), "--run", str(run_out / "names"), "--no-figure",
                 "--out", str(pred)])
    ok = res.returncode == 0 and "Traceback" not in res.stderr and (pred / "predictions.csv").is_file()
    out.append((ok, ok, "" if ok else _note("predict on a folder with a non-UTF-8 name", res)))
    return out


def set_comments(c) -> List[Outcome]:
    out = []
    res = c.run(train_args(c, "cut", c.work / "cut-runs", ["train.epochs=1 #2"]))
    ok = _clear(res, 2, "comment")
    out.append((ok, ok and not (c.work / "cut-runs" / "cut").exists(), "" if ok else _note("--set epochs=1 #2", res)))
    res = c.run(train_args(c, "cut", c.work / "cut-runs", [f"data.root={c.data} #2"]))
    ok = _clear(res, 2, f"{c.data} #2")  # the whole value used: that folder does not exist
    out.append((ok, ok, "" if ok else _note("--set data.root=... #2", res)))
    return out


# ----- run folders
def run_folders(c) -> List[Outcome]:
    out = []
    project = c.work / "project"
    project.mkdir(exist_ok=True)
    (project / "config.yaml").write_text("title: thesis\n")
    (project / "thesis.tex").write_text("chapter 1\n")
    res = c.run(train_args(c, "project", c.work, ["train.epochs=1"]) + ["--overwrite"])
    ok = _clear(res, 2, "not an emoclf run folder")
    kept = (project / "thesis.tex").is_file()
    out.append((ok, ok and kept, "" if ok and kept else _note("--overwrite into a project folder", res)))

    runs = c.work / "twice"
    args = train_args(c, "same", runs, ["train.epochs=4"])
    first = c.start(args)
    deadline = time.time() + 120
    while time.time() < deadline and not is_locked(runs / "same" / RUN_MARKER) and first.poll() is None:
        time.sleep(0.05)
    second = c.run(args + ["--resume"])
    first_out, first_err = first.communicate(timeout=600)
    ok = _clear(second, 2, "in use by another emoclf process") and first.returncode == 0
    history = (runs / "same" / "history.csv").read_text().splitlines() if (runs / "same" / "history.csv").is_file() \
        else []
    out.append((ok, ok and len(history) == 5, "" if ok else _note("two train into one folder", second)))
    return out


# ----- the letterbox
def letterbox_bomb(c) -> List[Outcome]:
    folder = c.work / "strip"
    folder.mkdir(exist_ok=True)
    Image.fromarray(np.full((1000, 39000), 128, np.uint8)).save(folder / "strip.png")  # 39 Mpx: under the cap
    # VmHWM is this program's own peak; ru_maxrss would also count the pages of the forked parent (a test
    # runner of 1.5 GB read as a 1.5 GB predict).
    measure = ("import resource, sys\nfrom emoclf.cli.app import main\ncode = main(sys.argv[1:])\n"
               "lines = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')]\n"
               "kb = int(lines[0].split()[1]) if lines else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
               "print('PEAK_KB', kb, file=sys.stderr)\nsys.exit(code)")
    start = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", measure, "predict", str(folder / "strip.png"), "--run",
                          str(c.work / "runs" / "reference"), "--no-figure", "--out", str(c.work / "strip-out")],
                         capture_output=True, text=True, cwd=REPO, env=c.env, timeout=300)
    seconds = time.perf_counter() - start
    peak_mb = int(res.stderr.split("PEAK_KB", 1)[1].split()[0]) / 1024 if "PEAK_KB" in res.stderr else -1
    ok = res.returncode == 0 and "Traceback" not in res.stderr
    note = f"letterbox bomb: predict took {seconds:.1f} s with a peak of {peak_mb:.0f} MB"
    return [(ok, ok and 0 < peak_mb < MAX_BOMB_MB, note if ok else _note(note, res))]


# ----- kill -9 during a parallel cache build
def _children(pid: int) -> List[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def orphaned_workers(c) -> List[Outcome]:
    if not Path("/proc/self/task").is_dir():
        return [(True, True, "orphaned workers: skipped (no /proc)")]
    root = make_dataset(c.work / "many", classes=("happy", "sad"), train_per_class=1100, val_per_class=10, size=24,
                        seed=4)
    args = train_args(c, "many", c.work / "many-runs", [f"data.root={root}", "train.epochs=1"])
    p = c.start(args)
    deadline, workers = time.time() + 120, []
    while time.time() < deadline and p.poll() is None and len(workers) < 2:
        time.sleep(0.05)
        workers = _children(p.pid)
    os.kill(p.pid, signal.SIGKILL)  # the parent only: its workers must notice by themselves
    p.communicate()
    time.sleep(3)
    alive = [w for w in workers if _alive(w)]
    for w in alive:
        os.kill(w, signal.SIGKILL)
    res = c.run(args)
    cache = root / ".emoclf-cache"
    left = sorted(x.name for x in cache.glob(".*.tmp")) if cache.is_dir() else []
    ok = len(workers) >= 2 and not alive
    return [(ok and res.returncode == 0, ok and not left,
             f"orphaned workers: {len(workers)} workers, {len(alive)} alive 3 s after the kill, temporary files left "
             f"{left}" if not (ok and not left) else "")]


# ----- special files and links
def special_inputs(c) -> List[Outcome]:
    out = []
    fifo = c.work / "pipe.yaml"
    if not fifo.exists() and hasattr(os, "mkfifo"):
        os.mkfifo(fifo)
    for name, path in (("-c /dev/zero", "/dev/zero"), ("-c FIFO", str(fifo))):
        start = time.perf_counter()
        res = c.run(["train", "-c", path], timeout=30)
        ok = _clear(res, 2, "not a regular file") and time.perf_counter() - start < 20
        out.append((ok, ok, "" if ok else _note(name, res)))
    src = make_dataset(c.work / "linked", classes=("happy", "sad"), train_per_class=3, val_per_class=1, size=16)
    loop = src / "train" / "loop"
    if not loop.is_symlink():
        loop.symlink_to(src / "train", target_is_directory=True)
    (c.work / "outside.png").write_bytes(b"secret")
    outside = src / "train" / "happy" / "outside.png"
    for name, link in (("symlink loop", loop), ("link to a file outside", outside)):
        if link == outside:
            loop.unlink()
            outside.symlink_to(c.work / "outside.png")
        start = time.perf_counter()
        dest = c.work / f"dl-{link.name}"
        res = c.run(["download", "--source", str(src), "--dest", str(dest)], timeout=60)
        ok = _clear(res, 2, "a link") and time.perf_counter() - start < 20 and len(res.stderr) < 2000
        out.append((ok, ok and not dest.exists(), "" if ok else _note(f"download of a folder with a {name}", res)))
    return out


def malformed_files(c) -> List[Outcome]:
    out = []
    run_out = c.work / "listcfg"
    args = train_args(c, "listcfg", run_out, ["train.epochs=3"])
    c.kill_after(args, 3 * c.ref_seconds["train"], watch=lambda: (run_out / "listcfg" / "last.pt").is_file())
    (run_out / "listcfg" / "config.yaml").write_text("- data\n- model\n")
    res = c.run(args + ["--resume"])
    ok = _clear(res, 2, "not a mapping")
    out.append((ok, ok, "" if ok else _note("config.yaml as a list, then --resume", res)))
    csv_path = c.work / "fer2013.csv"
    csv_path.write_text("emotion,pixels,Usage\n" + '3,"' + "1 " * 70000 + '",Training\n')
    res = c.run(["download", "--source", str(csv_path), "--dest", str(c.work / "fer-dest")])
    ok = _clear(res, 2, "not a valid CSV row")
    out.append((ok, ok and not (c.work / "fer-dest").exists(), "" if ok else _note("fer2013.csv long field", res)))
    term_out = c.work / "term"
    p = c.start(train_args(c, "term", term_out, ["train.epochs=50"]))
    deadline = time.time() + 120
    while time.time() < deadline and not (term_out / "term" / "history.csv").is_file() and p.poll() is None:
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    err = err.decode(errors="replace")
    ok = p.returncode == 143 and "stopped by SIGTERM" in err and "Traceback" not in err
    out.append((ok, ok and not list((term_out / "term").glob(".*.tmp")), "" if ok else f"SIGTERM: exit {p.returncode}"))
    return out


CASES: Dict[str, Callable] = {
    "values inside model files (size, std, ONNX metadata)": model_values,
    "disk full while building the image cache": cache_disk_full,
    "non-Latin class folders, non-UTF-8 file names": names,
    "--set values with ' #'": set_comments,
    "--overwrite of a non-run folder, two trains on one folder": run_folders,
    "letterbox bomb (39000 x 1000 PNG)": letterbox_bomb,
    "kill -9 during the parallel cache build": orphaned_workers,
    "/dev/zero, FIFO, symlink loop, link outside as input": special_inputs,
    "config.yaml as a list, long CSV field, SIGTERM": malformed_files,
}


def run(c) -> List[Dict]:
    """Every case above, as the fields of chaos.Row."""
    rows = []
    for scenario, case in CASES.items():
        outcomes = case(c)
        for ok, eq, note in outcomes:
            if note and ok and eq:
                c.log(note)  # a measurement or a skip, not a failure
        rows.append({"scenario": scenario, "trials": len(outcomes), "faults": len(outcomes),
                     "completed": sum(ok for ok, _, _ in outcomes), "equal": sum(ok and eq for ok, eq, _ in outcomes),
                     "lost": sum(not eq for _, eq, _ in outcomes),
                     "notes": [n for ok, eq, n in outcomes if n and not (ok and eq)]})
    return rows
