"""`emoclf inspect`: planted duplicates, leakage, conflicting labels, unreadable and blank files; report files."""
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from emoclf.cli import app as cli
from emoclf.data import cache, inspect_figures
from emoclf.data import download as dl
from emoclf.data.inspect import inspect_dataset
from emoclf.data.synthetic import make_dataset


@pytest.fixture
def planted(tmp_path):
    root = make_dataset(tmp_path / "ds", classes=("angry", "happy", "sad"), train_per_class=4, val_per_class=2,
                        size=16)
    shutil.copy(root / "train/happy/happy_0000.png", root / "train/happy/dup.png")
    shutil.copy(root / "train/sad/sad_0000.png", root / "validation/sad/leak.png")
    shutil.copy(root / "train/angry/angry_0001.png", root / "train/happy/conflict.png")
    # Same pixels, different file bytes: must still count as an exact duplicate.
    Image.open(root / "train/angry/angry_0002.png").save(root / "validation/angry/recoded.png", compress_level=0)
    (root / "train/happy/broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    Image.new("RGB", (16, 16), (40, 40, 40)).save(root / "train/sad/blank.png")
    return root


def _group_with(data, path):
    return next(g for g in data["groups"] if path in [f["path"] for f in g["files"]])


def test_inspect_finds_everything_planted(planted, tmp_path):
    out = tmp_path / "report"
    data = inspect_dataset(str(planted), out=str(out)).data
    assert data["images"] == 4 * 3 + 2 * 3 + 6
    assert [u["path"] for u in data["unreadable"]] == ["train/happy/broken.png"]
    assert data["blank"] == ["train/sad/blank.png"]
    assert _group_with(data, "train/happy/dup.png")["kinds"] == ["within-split"]
    assert sorted(f["path"] for f in _group_with(data, "validation/sad/leak.png")["files"]) == \
        ["train/sad/sad_0000.png", "validation/sad/leak.png"]
    assert _group_with(data, "validation/angry/recoded.png")["kinds"] == ["leakage"]
    conflict = _group_with(data, "train/happy/conflict.png")
    assert conflict["kinds"] == ["within-split", "conflicting-labels"]
    assert {f["label"] for f in conflict["files"]} == {"angry", "happy"}
    assert data["leakage"] == {"validation_in_train": 2}
    assert (data["duplicate_groups"], data["leakage_groups"], data["conflicting_label_groups"]) == (4, 2, 1)
    assert data["sizes"] == [{"width": 16, "height": 16, "mode": "RGB", "format": "PNG", "images": 23}]
    assert json.loads((out / "inspect.json").read_text())["duplicate_extra_copies"] == 4


def test_report_files_are_complete_and_readable(planted, tmp_path):
    out = tmp_path / "report"
    inspect_dataset(str(planted), out=str(out), samples=3)
    for name in ("class_distribution.png", "samples.png", "duplicates.png"):
        with Image.open(out / name) as img:
            assert img.format == "PNG" and img.width > 300
    md = (out / "inspect.md").read_text()
    for needle in ("![class distribution](class_distribution.png)", "![samples](samples.png)",
                   "## Unreadable files (1)", "`train/happy/broken.png`", "2 validation images also in train",
                   "## Blank images (1)", "| 16 x 16 | RGB | PNG | 23 |", "`train/happy/conflict.png`"):
        assert needle in md, needle
    assert "train/happy/dup.png" in (out / "duplicates.csv").read_text()
    assert "broken.png" in (out / "unreadable.csv").read_text()
    assert sum(len(v) for v in json.loads((out / "inspect.json").read_text())["samples"].values()) == 9


def test_second_run_uses_the_cache_and_a_changed_file_invalidates_it(planted, tmp_path):
    first = inspect_dataset(str(planted), out=str(tmp_path / "r")).data
    second = inspect_dataset(str(planted), out=str(tmp_path / "r")).data
    assert not first["cached"] and second["cached"]
    assert second["groups"] == first["groups"]
    Image.new("RGB", (16, 16), (1, 2, 3)).save(planted / "train/happy/dup.png")
    third = inspect_dataset(str(planted), out=str(tmp_path / "r")).data
    assert not third["cached"] and third["duplicate_groups"] == 3


def test_process_pool_gives_the_same_answer(planted, tmp_path, monkeypatch):
    serial = inspect_dataset(str(planted), out=str(tmp_path / "a")).data
    monkeypatch.setattr(cache, "_workers", lambda n: 2)
    pooled = inspect_dataset(str(planted), out=str(tmp_path / "b"), config=None).data
    assert pooled["groups"] == serial["groups"] and pooled["unreadable"] == serial["unreadable"]


def test_failing_plot_warns_and_the_report_still_appears(planted, tmp_path, monkeypatch, caplog):
    def broken():
        raise RuntimeError("no display backend")

    monkeypatch.setattr(inspect_figures, "pyplot", broken)
    out = tmp_path / "r"
    inspect_dataset(str(planted), out=str(out))
    assert "Could not draw plot_class_distribution" in caplog.text
    assert "figure could not be drawn" in (out / "inspect.md").read_text()
    assert not (out / "class_distribution.png").exists()


def test_interrupted_report_leaves_the_old_one_or_none(planted, tmp_path, monkeypatch):
    out = tmp_path / "r"
    inspect_dataset(str(planted), out=str(out))
    before = (out / "inspect.json").read_text()

    def killed(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(inspect_figures, "plot_sample_grid", killed)
    with pytest.raises(KeyboardInterrupt):
        inspect_dataset(str(planted), out=str(out))
    assert (out / "inspect.json").read_text() == before
    with pytest.raises(KeyboardInterrupt):
        inspect_dataset(str(planted), out=str(tmp_path / "fresh"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "r"]


def test_out_folder_that_is_not_a_report_is_refused(planted, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    assert cli.main(["inspect", str(planted), "--out", str(out)]) == 2
    assert (out / "thesis.tex").read_text() == "precious"


def test_cli_dir_config_and_marker(planted, tmp_path, capsys):
    assert cli.main(["inspect", str(planted), "--out", str(tmp_path / "a")]) == 0
    assert "Report: " in capsys.readouterr().out
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data:\n  root: {planted}\n")
    assert cli.main(["inspect", "--config", str(cfg), "--out", str(tmp_path / "b")]) == 0
    assert json.loads((tmp_path / "b" / "inspect.json").read_text())["root"] == str(planted)
    assert cli.main(["inspect", str(tmp_path / "missing"), "--out", str(tmp_path / "c")]) == 2
    assert "emoclf download" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["inspect", str(planted), "--config", str(cfg)])
    assert exit_info.value.code == 2


def test_inspect_follows_the_download_record(tmp_path):
    make_dataset(tmp_path / "src" / "outer" / "inner", classes=("happy", "sad"), train_per_class=3,
                 val_per_class=1, size=16)
    data_dir = tmp_path / "data"
    res = dl.download(str(tmp_path / "src"), str(data_dir))
    report = inspect_dataset(str(data_dir), out=str(tmp_path / "r")).data
    assert Path(report["root"]) == res.root.resolve() and report["images"] == 8
