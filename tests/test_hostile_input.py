"""Hostile and unusual input: values in model files, full disks, odd names, two processes, links, special files."""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, fast_config
from PIL import Image

from emoclf.cli import app as cli
from emoclf.config import load_config, parse_override
from emoclf.data import cache as cache_mod
from emoclf.data import dataset as data_mod
from emoclf.data import download as dl
from emoclf.data import imaging
from emoclf.data import labels as lbl
from emoclf.data.synthetic import make_dataset
from emoclf.runs import checkpoint as ck
from emoclf.runs import folder as rf
from emoclf.utils import files as eio
from emoclf.utils.locks import FileLock, is_locked
from emoclf.utils.text import json_line
from emoclf.utils.yamlio import MAX_YAML_BYTES, read_yaml


def _cli(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A random-init CNN checkpoint (no training): enough to test what is read from the file."""
    from emoclf.models.factory import architecture

    out = tmp_path_factory.mktemp("ck")
    cfg = load_config(str(REPO / "configs" / "cnn.yaml"), [f"output.dir={out}", "output.name=tiny",
                                                           "data.image_size=16", "model.width=4", "model.depth=2"])
    torch.manual_seed(0)
    path = out / "tiny" / "best.pt"
    ck.save(ck.make_checkpoint(architecture(cfg, 3), cfg, ["angry", "happy", "sad"], 1, {}), path)
    return path


@pytest.fixture(scope="module")
def face_png(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "face.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(path)
    return path


# ----- 1, 10: values inside a checkpoint or an exported model


HOSTILE_PREPROCESSING = {"huge": {"image_size": 100000}, "text": {"image_size": "big"},
                         "zero_std": {"std": [0.0]}, "nan_mean": {"mean": [float("nan")]},
                         "aspect": {"aspect": "stretch"}, "channels": {"mean": [0.5, 0.5]}}


@pytest.mark.parametrize("case", sorted(HOSTILE_PREPROCESSING))
def test_preprocessing_in_a_checkpoint_is_checked_like_a_config(tiny_checkpoint, face_png, tmp_path, capsys, case):
    c = torch.load(tiny_checkpoint, weights_only=True)
    c["preprocessing"].update(HOSTILE_PREPROCESSING[case])
    bad = tmp_path / "bad.pt"
    torch.save(c, bad)
    with pytest.raises(ValueError, match=r"preprocessing\.(image_size|std|mean|aspect)"):
        ck.read(bad)
    code, out, err = _cli(["predict", face_png, "--run", bad, "--no-figure", "--out", tmp_path / "p", "--json"],
                          capsys)
    assert code == 2 and "damaged or was not written by emoclf" in err and out == ""


@pytest.mark.parametrize("names", [[], ["a", "a", "b"], ["x" * 1000], [1, 2, 3], "abc"])
def test_class_names_in_a_checkpoint_are_checked(tiny_checkpoint, tmp_path, names):
    c = torch.load(tiny_checkpoint, weights_only=True)
    c["class_names"] = names
    torch.save(c, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="class_names must be a list"):
        ck.read(tmp_path / "bad.pt")


def _onnx_file(path: Path, meta: dict) -> Path:
    """A tiny valid ONNX model (softmax of a constant) carrying ``meta`` as emoclf metadata."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    node = helper.make_node("Softmax", ["pixels"], ["probabilities"], axis=1)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 3])],
                              [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    onnx.save(model, str(path))
    return path


GOOD_META = {"class_names": ["angry", "happy", "sad"], "image_size": 16, "grayscale": True, "aspect": "pad",
             "input_name": "pixels", "output_kind": "probabilities", "tta": "none", "mean": [0.5], "std": [0.5]}


@pytest.mark.parametrize("change", [{"image_size": 100000}, {"image_size": "big"}, {"std": [0]},
                                    {"class_names": "abc"}, {"grayscale": "maybe"}, {"tta": 3}])
def test_metadata_of_an_onnx_model_is_checked_like_a_config(tmp_path, face_png, capsys, change):
    from emoclf.inference.onnx_predict import OnnxPredictor

    path = _onnx_file(tmp_path / "m.onnx", {**GOOD_META, **change})
    with pytest.raises(ValueError, match="damaged|must be"):
        OnnxPredictor(path)
    code, out, err = _cli(["predict", face_png, "--run", path, "--no-figure", "--out", tmp_path / "p", "--json"],
                          capsys)
    assert code == 2 and out == ""


def test_json_output_never_holds_nan():
    line = json_line({"scores": {"happy": float("nan"), "sad": float("inf")}, "score": 0.5, "faces": [(1.0,)]})
    assert json.loads(line) == {"scores": {"happy": None, "sad": None}, "score": 0.5, "faces": [[1.0]]}
    assert "NaN" not in line and "Infinity" not in line


# ----- 2, 9, 8, 13: the decoded-image cache


def _unshare_ok() -> bool:
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode == 0


BUILD_IN_TMPFS = """
import sys, subprocess
from pathlib import Path
from emoclf.data.cache import load_images
paths = sorted(Path(sys.argv[1]).rglob("*.png"))
try:
    load_images(paths, 64, False, "pad", Path(sys.argv[2]))
except OSError as exc:
    print("ERROR", exc)
    sys.exit(1)
print("OK")
"""


@pytest.mark.skipif(not _unshare_ok(), reason="needs Linux user namespaces to mount a small tmpfs")
def test_full_disk_while_building_the_cache_is_a_clear_error_and_leaves_no_temporary_file(tmp_path):
    data = make_dataset(tmp_path / "d", classes=("angry", "happy"), train_per_class=60, val_per_class=0, size=64,
                        val_dir=None)  # 120 RGB images of 64 px: 1.5 MB of cache for a 1 MB disk
    cache, script = tmp_path / "mnt", tmp_path / "build.py"
    cache.mkdir()
    script.write_text(BUILD_IN_TMPFS)
    shell = (f"mount -t tmpfs -o size=1m none {cache} && {sys.executable} {script} {data} {cache}; rc=$?; "
             f"ls -a {cache}; exit $rc")
    res = subprocess.run(["unshare", "-rm", "sh", "-c", shell], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert res.returncode == 1, (res.returncode, res.stdout, res.stderr)  # not -7 (SIGBUS) nor 135
    assert "Could not write image cache" in res.stdout and "Free some disk space" in res.stdout
    assert ".tmp" not in res.stdout.split("ERROR", 1)[1]  # the listing of the cache folder after the failure


def test_a_write_failure_during_the_cache_build_leaves_no_temporary_file(tmp_path, monkeypatch):
    data = make_dataset(tmp_path / "d", classes=("angry", "happy"), train_per_class=5, val_per_class=0, size=24,
                        val_dir=None)
    paths = sorted(data.rglob("*.png"))

    def decode(*_):
        yield np.zeros((3, 16, 16), np.uint8), ""
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache_mod, "_decode_all", decode)
    with pytest.raises(OSError, match="Could not write image cache .*Free some disk space"):
        cache_mod.load_images(paths, 16, False, "pad", tmp_path / "cache")
    assert [p.name for p in (tmp_path / "cache").iterdir()] == []


def test_a_cache_too_big_for_the_free_space_is_refused_before_writing(tmp_path, monkeypatch):
    data = make_dataset(tmp_path / "d", classes=("angry", "happy"), train_per_class=5, val_per_class=0, size=24,
                        val_dir=None)
    monkeypatch.setattr(cache_mod.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9 - 100, 100))
    with pytest.raises(OSError, match="needs .* MB, 0.0 MB are free .*data.cache_dir"):
        cache_mod.load_images(sorted(data.rglob("*.png")), 16, False, "pad", tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_damaged_cache_is_named_and_built_again_and_stale_temporary_files_are_removed(tmp_path, caplog):
    data = make_dataset(tmp_path / "d", classes=("angry", "happy"), train_per_class=4, val_per_class=0, size=24,
                        val_dir=None)
    paths, cache = sorted(data.rglob("*.png")), tmp_path / "cache"
    first, _ = cache_mod.load_images(paths, 16, False, "pad", cache)
    npy = next(cache.glob("*.npy"))
    npy.write_bytes(b"\x93NUMPY garbage")
    (cache / ".0123.npy.tmp").write_bytes(b"left by a killed build")
    again, _ = cache_mod.load_images(paths, 16, False, "pad", cache)
    assert np.array_equal(first, again) and str(npy) in caplog.text and "decoding the images again" in caplog.text
    cache_mod.load_images(paths, 8, False, "pad", cache)  # a new build removes what a killed one left
    assert not list(cache.glob(".*.tmp"))


def test_file_names_that_are_not_utf8_are_read_like_any_other(tmp_path):
    data = make_dataset(tmp_path / "d", classes=("angry", "happy"), train_per_class=3, val_per_class=0, size=24,
                        val_dir=None)
    src = next((data / "train" / "happy").iterdir())
    odd = data / "train" / "happy" / os.fsdecode(b"caf\xe9-\xff.png")  # Latin-1 bytes: not valid UTF-8
    shutil.copy(src, odd)
    paths = sorted(p for p in data.rglob("*") if p.is_file())
    images, failed = cache_mod.load_images(paths, 16, False, "pad", tmp_path / "cache")
    assert len(images) == len(paths) == 7 and failed == []
    eio.atomic_write_text(tmp_path / "list.txt", f"{odd}\n")  # e.g. skipped_files.txt, predictions.csv
    assert "\\udce9" in (tmp_path / "list.txt").read_text(encoding="utf-8")


ORPHANS = """
import sys, time
from emoclf.data import cache
cache._workers = lambda n: 2
def slow(x):
    time.sleep(60)
for _ in cache.parallel_map(slow, list(range(8)), "x"):
    pass
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads child processes from /proc")
def test_cache_workers_die_with_their_parent(tmp_path):
    script = tmp_path / "orphans.py"
    script.write_text(ORPHANS)
    parent = subprocess.Popen([sys.executable, str(script)], env=dict(os.environ, PYTHONPATH=str(REPO)))
    children_file = Path(f"/proc/{parent.pid}/task/{parent.pid}/children")
    deadline, children = time.time() + 30, []
    while time.time() < deadline and len(children) < 2:
        time.sleep(0.2)
        children = children_file.read_text().split()
    assert len(children) >= 2
    parent.kill()
    parent.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(Path(f"/proc/{c}").exists() for c in children):
        time.sleep(0.2)
    alive = [c for c in children if Path(f"/proc/{c}").exists()
             and "Z" not in Path(f"/proc/{c}/stat").read_text().split()[2]]
    assert alive == []


# ----- 3: class folder names


def test_class_folders_with_non_latin_names_stay_distinct_classes(tmp_path):
    root = tmp_path / "faces"
    for name in ("喜び", "悲しみ", "Счастье", "alegría"):
        folder = root / "train" / name
        folder.mkdir(parents=True)
        Image.new("L", (8, 8), 1).save(folder / "a.png")
    per_class, _ = data_mod.scan_folder(root / "train")
    assert sorted(per_class) == sorted(["喜び", "悲しみ", "счастье", "happy"])
    assert lbl.canonical("ＨＡＰＰＹ") == "happy" and lbl.canonical("0_Überrascht") == "uberrascht"


def test_two_folders_that_give_one_class_without_being_aliases_are_refused(tmp_path):
    root = tmp_path / "train"
    for name in ("Foo", "foo", "happy", "alegria"):
        (root / name).mkdir(parents=True)
        Image.new("L", (8, 8), 1).save(root / name / "a.png")
    with pytest.raises(ValueError, match="'Foo', 'foo' .* all mean the class 'foo'"):
        data_mod.scan_folder(root)
    shutil.rmtree(root / "Foo")
    per_class, _ = data_mod.scan_folder(root)  # happy/ and alegria/ are aliases: merged as before
    assert sorted(per_class) == ["foo", "happy"] and len(per_class["happy"]) == 2


# ----- 4: --set values


def test_a_set_value_is_never_cut_short_by_a_yaml_comment(tmp_path):
    cfg = load_config("configs/cnn.yaml", ["data.root=/data/faces #2", "output.name=exp #2", "output.dir=yes"])
    assert cfg.data.root == "/data/faces #2" and cfg.output.name == "exp #2" and cfg.output.dir == "yes"
    with pytest.raises(ValueError, match="comment, so only 3 would be used"):
        parse_override("train.epochs=3 #2")
    with pytest.raises(ValueError, match="comment"):
        parse_override("data.mean=[0.5] # gray")
    assert parse_override("output.name='exp #2'") == {"output": {"name": "exp #2"}}
    assert parse_override("train.amp=off") == {"train": {"amp": False}}  # choices: YAML's reading, as before
    assert parse_override("output.name=null") == {"output": {"name": None}}


# ----- 5, 6: run folders: only provable ones replaced, one process at a time


def _cfg(tmp_path, name="run"):
    return fast_config(tmp_path / "data", tmp_path, name)


def test_overwrite_replaces_only_provable_run_folders(tmp_path):
    cfg = _cfg(tmp_path, "thesis")
    (cfg.run_dir).mkdir()
    (cfg.run_dir / "config.yaml").write_text("title: my thesis\n")
    (cfg.run_dir / "thesis.tex").write_text("chapter 1")
    for overwrite in (True, False):
        with pytest.raises(ValueError, match="is not an emoclf run folder"):
            rf.check_run_dir(cfg, resume=False, overwrite=overwrite)
        with pytest.raises(ValueError, match="is not an emoclf run folder"):
            rf.apply_run_dir(cfg, overwrite=overwrite)
    assert (cfg.run_dir / "thesis.tex").read_text() == "chapter 1"

    old = _cfg(tmp_path, "old")  # a run of a version before the marker: config, checkpoint and history
    old.run_dir.mkdir()
    for name, text in (("config.yaml", "data: {}\n"), ("last.pt", "x"), ("history.csv", "epoch,train_loss\n1,2\n")):
        (old.run_dir / name).write_text(text)
    assert rf.is_run_folder(old.run_dir) and rf.check_run_dir(old, resume=False, overwrite=True) is None
    lock = rf.apply_run_dir(old, overwrite=True)
    assert [p.name for p in old.run_dir.iterdir()] == [rf.RUN_MARKER]
    lock.release()
    assert rf.is_run_folder(old.run_dir)  # the marker stays: the folder is provably a run's from now on


def test_a_second_process_on_one_run_folder_is_refused(tmp_path):
    cfg = _cfg(tmp_path)
    lock = rf.apply_run_dir(cfg, overwrite=False)
    try:
        with pytest.raises(ValueError, match="in use by another emoclf process"):
            rf.check_run_dir(cfg, resume=True, overwrite=False)
        with pytest.raises(ValueError, match=r"in use by another emoclf process \(pid"):
            rf.apply_run_dir(cfg, overwrite=True)
        assert (cfg.run_dir / rf.RUN_MARKER).is_file()
    finally:
        lock.release()
    rf.apply_run_dir(cfg, overwrite=False).release()


HOLD = """
import sys, time
from emoclf.utils.locks import FileLock
lock = FileLock(sys.argv[1]).acquire("x")
print("held", flush=True)
time.sleep(120)
"""


def test_a_lock_goes_with_a_killed_process_and_a_download_destination_is_locked(tmp_path):
    dest = tmp_path / "data"
    dest.mkdir()
    partial = dest / (dl.PARTIAL + "other")
    partial.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(dest / dl.LOCK_FILE)], stdout=subprocess.PIPE,
                              env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        assert holder.stdout.readline().strip() == b"held"
        src = make_dataset(tmp_path / "src", classes=("angry", "happy"), train_per_class=2, val_per_class=1, size=16)
        with pytest.raises(ValueError, match=f"download destination {dest} is in use .*pid {holder.pid}"):
            dl.download(str(src), str(dest))
        assert partial.is_dir()  # the running download's partial folder is left alone
    finally:
        holder.kill()
        holder.wait()
    assert not is_locked(dest / dl.LOCK_FILE)
    result = dl.download(str(src), str(dest))
    assert result.root.is_dir() and not (dest / dl.LOCK_FILE).exists() and not partial.exists()


def test_a_lock_file_removed_while_waiting_is_taken_on_the_new_file(tmp_path):
    first = FileLock(tmp_path / "l").acquire("x")
    got = []
    waiter = threading.Thread(target=lambda: got.append(FileLock(tmp_path / "l").acquire("x", wait=True)))
    waiter.start()
    time.sleep(0.5)
    assert not got
    first.release()
    waiter.join(10)
    assert got and (tmp_path / "l").is_file()
    with pytest.raises(ValueError, match="in use"):
        FileLock(tmp_path / "l").acquire("x")
    got[0].release()


# ----- 7: the letterbox


def test_the_letterbox_never_makes_a_canvas_bigger_than_the_target(tmp_path, monkeypatch):
    real_new, sizes = Image.new, []

    def new(mode, size, *a, **k):
        sizes.append(size)
        return real_new(mode, size, *a, **k)

    Image.new("L", (3900, 390), 200).save(tmp_path / "strip.png")
    monkeypatch.setattr(imaging.Image, "new", new)
    arr = imaging.load_array(tmp_path / "strip.png", 48, True, "pad")
    assert arr.shape == (1, 48, 48) and max(max(s) for s in sizes) <= 48
    assert arr[0, 24, 24] == 200 and arr[0, 0, 24] == 0  # the strip in the middle, black bars around it


# ----- 10, 11: configs and CSV files


def test_a_config_holding_a_list_is_a_clear_error(tmp_path):
    (tmp_path / "config.yaml").write_text("- data\n- model\n")
    with pytest.raises(ValueError, match="holds a YAML list, not a mapping"):
        read_yaml(tmp_path / "config.yaml")
    cfg = _cfg(tmp_path)
    with pytest.raises(ValueError, match="not a mapping"):
        rf.config_changes(tmp_path, cfg)  # what --resume reads from a run folder


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_or_device_as_config_is_refused_without_reading(tmp_path):
    os.mkfifo(tmp_path / "pipe.yaml")
    done = []
    reader = threading.Thread(target=lambda: done.append(pytest.raises(ValueError, read_yaml, tmp_path / "pipe.yaml")),
                              daemon=True)
    reader.start()
    reader.join(5)
    assert done and "not a regular file" in str(done[0].value)
    if Path("/dev/zero").exists():
        with pytest.raises(ValueError, match="not a regular file"):
            read_yaml(Path("/dev/zero"))
    big = tmp_path / "big.yaml"
    with open(big, "wb") as fh:
        fh.truncate(MAX_YAML_BYTES + 1)
    with pytest.raises(ValueError, match=f"{MAX_YAML_BYTES + 1} bytes"):
        read_yaml(big)


def test_a_fer2013_field_over_the_csv_limit_is_a_clear_error(tmp_path):
    from emoclf.data.fercsv import convert

    path = tmp_path / "fer2013.csv"
    path.write_text("emotion,pixels,Usage\n" + '3,"' + "1 " * 70000 + '",Training\n')
    with pytest.raises(ValueError, match="line 2: not a valid CSV row .*field larger than field limit"):
        convert(path, tmp_path / "out")
    path.write_text("emotion,pixels,Usage\n" + "9" * 200000 + ",1 2 3 4,Training\n")
    with pytest.raises(ValueError) as info:
        convert(path, tmp_path / "out")
    assert len(str(info.value)) < 400  # a huge value is shown cut short


# ----- 12: links in a source folder


def test_links_in_a_source_folder_are_refused_as_in_archives(tmp_path):
    src = make_dataset(tmp_path / "src", classes=("angry", "happy"), train_per_class=2, val_per_class=1, size=16)
    secret = tmp_path / "secret.png"
    secret.write_bytes((src / "train" / "happy" / os.listdir(src / "train" / "happy")[0]).read_bytes())
    (src / "train" / "happy" / "link.png").symlink_to(secret)
    with pytest.raises(ValueError, match="Refusing .*link.png.* a link"):
        dl.download(str(src), str(tmp_path / "dest"))
    (src / "train" / "happy" / "link.png").unlink()
    (src / "train" / "loop").symlink_to(src / "train", target_is_directory=True)
    start = time.perf_counter()
    with pytest.raises(ValueError, match="loop") as info:
        dl.download(str(src), str(tmp_path / "dest"))
    assert time.perf_counter() - start < 5 and len(str(info.value)) < 600
    assert not (tmp_path / "dest").exists()
    (src / "train" / "loop").unlink()
    assert dl.download(str(src), str(tmp_path / "dest")).root.is_dir()


# ----- 13: smaller ones


def test_an_iostream_error_while_checkpointing_says_the_disk_is_full(tmp_path, monkeypatch):
    def save(obj, f, *a, **k):
        Path(f).write_bytes(b"PK half")
        raise RuntimeError("basic_ios::clear: iostream error")

    monkeypatch.setattr(torch, "save", save)
    with pytest.raises(OSError, match=r"Could not write checkpoint .*last\.pt: the disk is full .*Free some disk"):
        eio.save_checkpoint({"x": torch.zeros(3)}, tmp_path / "last.pt")
    assert list(tmp_path.iterdir()) == []


def test_sigterm_ends_a_command_with_a_message(capsys, monkeypatch):
    def stopped(args):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        return 0

    monkeypatch.setattr(cli, "cmd_models", stopped)
    before = signal.getsignal(signal.SIGTERM)
    code, _, err = _cli(["models"], capsys)
    assert code == 143 and "stopped by SIGTERM" in err
    assert signal.getsignal(signal.SIGTERM) == before


def test_a_huge_value_in_a_config_is_refused_with_a_short_message(tmp_path, capsys):
    for key in ("data: {root: ", "model: {name: ", "output: {dir: "):
        (tmp_path / "big.yaml").write_text(key + "x" * 200_000 + "}\n")
        code, _, err = _cli(["train", "-c", tmp_path / "big.yaml"], capsys)
        assert code == 2 and "200000 characters long" in err and len(err) < 1000


def test_a_validation_split_without_a_training_class_is_warned_about(tmp_path, caplog):
    root = make_dataset(tmp_path / "d", classes=("angry", "happy", "sad"), train_per_class=3, val_per_class=2, size=16)
    shutil.rmtree(root / "validation" / "sad")
    ds = data_mod.discover(fast_config(root, tmp_path).data, 0)
    assert ds.class_names == ["angry", "happy", "sad"]
    assert "The validation split has no images of sad" in caplog.text


def test_demo_data_refuses_an_empty_set(tmp_path, capsys):
    code, _, err = _cli(["demo-data", tmp_path / "demo", "--per-class", "0"], capsys)
    assert code == 2 and "--per-class must be at least 1" in err and not (tmp_path / "demo").exists()


def test_predict_refuses_an_out_that_cannot_be_written_before_scoring(tiny_checkpoint, face_png, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    for out in (tmp_path / "file", tmp_path / "file" / "sub"):
        code, _, err = _cli(["predict", face_png, "--run", tiny_checkpoint, "--out", out], capsys)
        assert code == 2 and "--out" in err and "file" in err
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not os.access(locked, os.W_OK):  # root may write anyway
            code, _, err = _cli(["predict", face_png, "--run", tiny_checkpoint, "--out", locked / "x"], capsys)
            assert code == 2 and "not writable" in err
    finally:
        locked.chmod(0o700)


def test_a_full_disk_while_plotting_is_raised_and_any_other_plot_error_is_a_warning(tmp_path):
    from emoclf.utils.plotting import safe_plot

    @safe_plot
    def full():
        raise eio.write_error(tmp_path / "curves.png", OSError(errno.ENOSPC, "No space left on device"))

    @safe_plot
    def broken():
        raise ValueError("a plotting bug")

    with pytest.raises(OSError, match=r"curves\.png.*Free some disk space"):
        full()  # the run is then not finished: its --resume draws the figures again
    assert broken() is None


def test_a_run_whose_figures_meet_a_full_disk_is_not_finished_and_resume_finishes_it(small_faces, tmp_path,
                                                                                      monkeypatch, capsys):
    from emoclf.runs import figures as plotting  # where the run's figures are saved

    real, calls = plotting.save_figure, []

    def full(fig, path):
        calls.append(path)
        raise eio.write_error(Path(path), OSError(errno.ENOSPC, "No space left on device"))

    monkeypatch.setattr(plotting, "save_figure", full)
    argv = ["train", "-c", "configs/cnn.yaml", "--set", f"data.root={small_faces}", "--set", f"output.dir={tmp_path}",
            "--set", "output.name=figs", "--set", "train.epochs=1", "--set", "data.image_size=16",
            "--set", "model.width=4", "--set", "model.depth=2"]
    code, _, err = _cli(argv, capsys)
    assert calls and code == 1 and "Free some disk space" in err and not rf.is_finished(tmp_path / "figs")
    monkeypatch.setattr(plotting, "save_figure", real)
    code, _, err = _cli(argv + ["--resume"], capsys)
    assert code == 0 and rf.is_finished(tmp_path / "figs") and (tmp_path / "figs" / "curves.png").is_file(), err


def test_a_failed_evaluation_leaves_no_empty_folder(trained_run, faces, tmp_path, monkeypatch):
    from emoclf.runs import scoring
    from emoclf.runs.evaluation import evaluate_run

    def full_disk(out_dir, *args, **kwargs):
        Path(out_dir).mkdir(parents=True)  # as the first atomic write does, before the disk turns out to be full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(scoring, "write_eval_files", full_disk)
    with pytest.raises(OSError):
        evaluate_run(trained_run, data=str(faces), out=str(tmp_path / "scores"))
    assert not any((tmp_path / "scores").glob("*")), list((tmp_path / "scores").glob("*"))


def test_a_diverged_loss_leaves_valid_json_and_a_readable_report(tmp_path):
    from emoclf.runs.report import write_run_report
    from emoclf.utils.files import atomic_write_json

    atomic_write_json(tmp_path / "metrics.json", {"accuracy": 0.5, "loss": float("nan"), "x": [float("inf"), 1.0]})
    text = (tmp_path / "metrics.json").read_text()
    assert json.loads(text) == {"accuracy": 0.5, "loss": None, "x": [None, 1.0]} and "NaN" not in text
    write_run_report(tmp_path, "diverged")
    assert "| loss (cross-entropy) | n/a |" in (tmp_path / "report.md").read_text()
