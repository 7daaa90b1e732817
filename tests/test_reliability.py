"""Kills, full disks, broken images and hostile files: a run survives, and no file can run code or escape."""
from __future__ import annotations

import errno
import json
import os
import random
import stat
import tempfile
import time
from pathlib import Path

import pytest
import torch
from conftest import fast_config, script_module

from emoclf.cli import app as cli
from emoclf.data import dataset as data_mod
from emoclf.data import download as dl
from emoclf.data.synthetic import make_dataset
from emoclf.runs import scoring
from emoclf.runs.folder import is_finished
from emoclf.training import trainer as train_mod
from emoclf.training.trainer import train
from emoclf.utils import files as eio
from emoclf.utils.yamlio import read_yaml

chaos = script_module("chaos")


def _cli(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


# ----- atomic files


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_writes_respect_the_umask_and_leave_no_temporary_file(tmp_path, umask):
    old = os.umask(umask)
    try:
        eio.atomic_write_text(tmp_path / "a.txt", "hello")
        eio.save_checkpoint({"x": torch.zeros(2)}, tmp_path / "c.pt")
        made = Path(tempfile.mkdtemp(dir=tmp_path))
        eio.usual_folder_mode(made)
    finally:
        os.umask(old)
    for name in ("a.txt", "c.pt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE(made.stat().st_mode) == 0o777 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["a.txt", "c.pt"]


def test_checkpoint_is_fsynced_as_file_and_folder_before_and_after_the_rename(tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def spy(fd):
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        return real(fd)

    monkeypatch.setattr(eio.os, "fsync", spy)
    eio.save_checkpoint({"x": torch.ones(3)}, tmp_path / "last.pt")
    assert synced == ["file", "dir"]
    assert torch.equal(eio.load_checkpoint(tmp_path / "last.pt")["x"], torch.ones(3))


@pytest.mark.parametrize("failure", ["oserror", "torch_writer"])
def test_disk_full_while_saving_is_a_clear_error_and_the_previous_checkpoint_is_intact(
        small_faces, tmp_path, monkeypatch, capsys, failure):
    real_save, calls, before = torch.save, [], {}
    run = tmp_path / "full"

    def save(obj, f, *a, **k):
        calls.append(Path(f).name)
        if len(calls) <= 2:  # epoch 1: best.pt and last.pt go through
            return real_save(obj, f, *a, **k)
        before.update({n: (run / n).read_bytes() for n in ("best.pt", "last.pt")})
        Path(f).write_bytes(b"PK\x03\x04 half a checkpoint")  # the disk filled up part way through
        if failure == "oserror":
            raise OSError(errno.ENOSPC, "No space left on device")
        raise RuntimeError("[enforce fail at inline_container.cc:783] . PytorchStreamWriter failed writing file "
                           "data/3: file write failed")

    monkeypatch.setattr(torch, "save", save)
    argv = ["train", "-c", "configs/cnn.yaml", "--set", f"data.root={small_faces}", "--set", f"output.dir={tmp_path}",
            "--set", "output.name=full", "--set", "train.epochs=3", "--set", "data.image_size=16",
            "--set", "model.width=4", "--set", "model.depth=2"]
    code, _, err = _cli(argv, capsys)
    assert code == 1
    assert "Could not write checkpoint" in err and "intact" in err and "disk space" in err
    for name, content in before.items():
        assert (run / name).read_bytes() == content
        assert eio.load_checkpoint(run / name)["epoch"] == 1
    assert not list(run.glob(".*.tmp")) and not is_finished(run)
    monkeypatch.setattr(torch, "save", real_save)
    code, _, _ = _cli(argv + ["--resume"], capsys)
    assert code == 0 and is_finished(run)


# ----- kills at the awkward moments, simulated in process


def _history(run):
    return chaos.history(run)


def test_kill_between_last_checkpoint_and_history_of_the_final_epoch(small_faces, tmp_path, monkeypatch):
    full = train(fast_config(small_faces, tmp_path, "full", epochs=3))
    real = train_mod._write_history

    def die_at_the_end(run_dir, history):
        if len(history) == 3:
            raise KeyboardInterrupt  # last.pt of epoch 3 is written, history.csv is not
        real(run_dir, history)

    monkeypatch.setattr(train_mod, "_write_history", die_at_the_end)
    with pytest.raises(KeyboardInterrupt):
        train(fast_config(small_faces, tmp_path, "cut", epochs=3))
    monkeypatch.setattr(train_mod, "_write_history", real)
    run = tmp_path / "cut"
    (run / ".best.pt.abc123.tmp").write_bytes(b"left by a kill")
    assert len(_history(run)) == 2 and not is_finished(run)
    train(fast_config(small_faces, tmp_path, "cut", epochs=3), resume=True)
    assert _history(run) == _history(full)
    assert chaos.metrics(run) == chaos.metrics(full)
    assert not list(run.glob(".*.tmp"))


def test_kill_during_the_final_report_is_not_mistaken_for_a_finished_run(small_faces, tmp_path, monkeypatch):
    full = train(fast_config(small_faces, tmp_path, "full", epochs=2))

    def die(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(scoring, "write_run_report", die)  # metrics.json and plots exist, report.md does not
    with pytest.raises(KeyboardInterrupt):
        train(fast_config(small_faces, tmp_path, "cut", epochs=2))
    monkeypatch.undo()
    run = tmp_path / "cut"
    assert (run / "metrics.json").is_file() and not is_finished(run)
    with pytest.raises(ValueError, match="--resume"):
        train(fast_config(small_faces, tmp_path, "cut", epochs=2))
    train(fast_config(small_faces, tmp_path, "cut", epochs=2), resume=True)
    assert is_finished(run) and _history(run) == _history(full) and chaos.metrics(run) == chaos.metrics(full)


def test_download_killed_while_moving_into_place_is_redone(tmp_path, monkeypatch):
    src = make_dataset(tmp_path / "src" / "faces", classes=("angry", "happy"), train_per_class=3, val_per_class=1,
                       size=16)
    dest = tmp_path / "data"
    first = dl.download(str(src), str(dest))
    real = dl._write_record

    def die(*args, **kwargs):
        raise KeyboardInterrupt  # the new folder is in place, its record is not

    monkeypatch.setattr(dl, "_write_record", die)
    with pytest.raises(KeyboardInterrupt):
        dl.download(str(src), str(dest), force=True)
    monkeypatch.setattr(dl, "_write_record", real)
    with pytest.raises(ValueError, match="interrupted"):
        data_mod.resolve_root(dest)
    again = dl.download(str(src), str(dest))
    assert not again.already and again.counts == first.counts and again.root == first.root
    assert data_mod.resolve_root(dest) == first.root.resolve()


def test_a_download_record_cannot_point_outside_its_folder(tmp_path):
    make_dataset(tmp_path / "elsewhere", classes=("angry", "happy"), train_per_class=2, val_per_class=1, size=16)
    dest = tmp_path / "data"
    dest.mkdir()
    (dest / data_mod.MARKER).write_text(json.dumps({"root": "../elsewhere"}))
    with pytest.raises(ValueError, match="points outside"):
        data_mod.resolve_root(dest)


# ----- broken and odd images


def test_broken_and_odd_images_train_and_the_skipped_ones_are_named(tmp_path, caplog):
    root = make_dataset(tmp_path / "bad", classes=("angry", "happy", "sad"), train_per_class=150, val_per_class=20,
                        size=24, seed=7)
    names = chaos.add_odd_images(root)
    run = train(fast_config(root, tmp_path / "out", "bad", epochs=1))
    m = json.loads((run / "metrics.json").read_text())
    assert m["skipped_images"] == len(names["broken"]) == 5  # 1% of the 500 files
    assert m["num_train_images"] == 450 + len(names["odd"]) and m["num_images"] == 60
    listed = sorted(Path(line.split("\t")[0]).name for line in (run / "skipped_files.txt").read_text().splitlines())
    assert listed == names["broken"]
    report = (run / "report.md").read_text()
    assert all(n in report for n in names["broken"]) and not any(n in report for n in names["odd"])
    assert all(n in caplog.text for n in names["broken"])
    assert stat.S_IMODE((run / "skipped_files.txt").stat().st_mode) == 0o666 & ~_umask()


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ----- hostile files


def _evil_checkpoint(good: Path, path: Path, marker: Path, legacy: bool) -> Path:
    ckpt = eio.load_checkpoint(good)
    ckpt["metrics"] = chaos.RunsCode(marker)
    torch.save(ckpt, path, _use_new_zipfile_serialization=not legacy)
    return path


@pytest.mark.parametrize("legacy", [False, True])
def test_a_checkpoint_whose_pickle_runs_code_is_refused(runs, tmp_path, capsys, legacy):
    marker = tmp_path / "pwned"
    evil = _evil_checkpoint(runs.cnn / "best.pt", tmp_path / "evil.pt", marker, legacy)
    img = next((runs.root / "validation" / "happy").iterdir())
    for argv in (["evaluate", evil, "--device", "cpu"],
                 ["predict", img, "--run", evil, "--no-figure", "--out", tmp_path / "pred", "--device", "cpu"]):
        code, _, err = _cli(argv, capsys)
        assert code == 2 and "Refusing to load" in err and "tensors and plain data" in err
        assert not marker.exists()
    run = tmp_path / "evil_run"
    run.mkdir()
    _evil_checkpoint(runs.cnn / "best.pt", run / "best.pt", marker, legacy)
    code, _, err = _cli(["evaluate", run, "--device", "cpu"], capsys)
    assert code == 2 and "Refusing to load" in err and not marker.exists()


@pytest.mark.parametrize("kind", chaos.ZIP_KINDS)
def test_hostile_zips_are_refused_through_the_command_line(tmp_path, capsys, kind):
    path = chaos.hostile_zip(tmp_path, kind)
    dest = tmp_path / "data"
    code, _, err = _cli(["download", "--source", path, "--dest", dest, "--max-size", "0.01"], capsys)
    assert code == 2 and ("Refusing" in err or "zip bomb" in err)
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path.parent / "escaped.txt").exists()
    assert not dest.exists() or not chaos.listing(dest)


@pytest.mark.parametrize("text", [
    "train: !!python/object/apply:os.mkdir ['{marker}']\n",
    "data: !!python/object/new:os.mkdir ['{marker}']\n",
    "model: {{name: !!python/name:os.system }}\n",
    "seed: !!python/object/apply:subprocess.check_output [['touch', '{marker}']]\n",
])
def test_yaml_tags_that_build_objects_are_refused(tmp_path, capsys, text):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text(text.format(marker=marker))
    code, _, err = _cli(["train", "-c", path], capsys)
    assert code == 2 and "builds objects" in err and "safe_load" in err and not marker.exists()
    code, _, err = _cli(["train", "--set", "train.lr=" + text.split(": ", 1)[1].format(marker=marker).strip()], capsys)
    assert code == 2 and not marker.exists()


def test_billion_laughs_and_deep_nesting_stop_quickly(tmp_path, capsys):
    for doc in (chaos.billion_laughs(), "data: {drop_classes: " + "[" * 50_000 + "]" * 50_000 + "}\n",
                "seed: " + "9" * 5000 + "\n", "a: &a [*a]\ndata: {drop_classes: *a}\n", "x" * 2_000_000):
        path = tmp_path / "big.yaml"
        path.write_text(doc)
        start = time.perf_counter()
        code, _, err = _cli(["train", "-c", path], capsys)
        assert code == 2 and "error" in err and len(err) < 2000
        assert time.perf_counter() - start < 10
    with pytest.raises(ValueError, match="expands to more than"):
        path.write_text(chaos.billion_laughs())
        read_yaml(path)


@pytest.mark.slow
def test_fuzzed_configs_never_give_a_traceback(tmp_path, monkeypatch, capsys):
    hyp = pytest.importorskip("hypothesis")
    st = pytest.importorskip("hypothesis.strategies")
    import yaml

    from emoclf.config import SECTIONS, Config, to_dict

    known = [f"{s}.{k}" for s, sub in to_dict(Config()).items() if isinstance(sub, dict) for k in sub] + ["seed"]
    monkeypatch.setattr(train_mod, "train", lambda cfg, **kw: tmp_path)  # configs only: never start training
    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20))
    values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.text(max_size=8), inner, max_size=4), max_leaves=12)
    keys = st.one_of(st.sampled_from(known), st.text(max_size=15))
    raw = st.one_of(st.text(max_size=40), values.map(lambda v: yaml.safe_dump(v, default_flow_style=True).strip()))
    sections = st.dictionaries(st.one_of(st.sampled_from(list(SECTIONS) + ["seed"]), st.text(max_size=8)),
                               st.one_of(values, st.dictionaries(st.sampled_from(
                                   [k.split(".")[-1] for k in known]) | st.text(max_size=8), values, max_size=5)),
                               max_size=4)
    docs = st.one_of(sections.map(lambda d: yaml.safe_dump(d)), st.text(max_size=200))

    @hyp.settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(hyp.HealthCheck))
    @hyp.given(doc=docs, sets=st.lists(st.tuples(keys, raw), max_size=3))
    def check(doc, sets):
        path = tmp_path / "fuzz.yaml"
        path.write_text(doc, encoding="utf-8", errors="surrogatepass")
        argv = ["train", "-c", str(path)] + [f"--set={k}={v}" for k, v in sets]
        try:
            code = cli.main(argv)
        except SystemExit as exc:  # argparse rejects some argument strings itself
            code = exc.code
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert code in (0, 2), err
        if code == 2:
            assert "error" in err

    check()


# ----- kill -9 of the real command line


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume_equals_an_uninterrupted_run(tmp_path):
    c = chaos.Chaos(tmp_path, random.Random(1))
    rows = chaos.train_trials(c, trials=3, write_trials=1)
    rows += [chaos.download_trials(c, 2), chaos.inspect_trials(c, 2), chaos.compare_trials(c, 1)]
    print("\n" + chaos.table(rows))
    for row in rows:
        assert row.ok, (row.cells(), row.notes)
    assert sum(r.faults for r in rows) >= 1


@pytest.mark.slow
def test_hostile_and_unusual_input_on_the_real_command_line(tmp_path):
    c = chaos.Chaos(tmp_path, random.Random(2))
    c.timed("train", chaos.train_args(c, "reference", tmp_path / "runs"))
    rows = [chaos.Row(**r) for r in chaos.odd_inputs().run(c)]
    print("\n" + chaos.table(rows))
    for row in rows:
        assert row.ok, (row.cells(), row.notes)
