"""`emoclf download`: sources, nested roots, idempotence, kill-safety and hostile archives."""
import io
import json
import os
import shutil
import socket
import sys
import tarfile
import types
import urllib.error
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emoclf.cli import app as cli
from emoclf.data import archive, sources
from emoclf.data import download as dl
from emoclf.data.dataset import MARKER, find_splits, resolve_root
from emoclf.data.synthetic import SPANISH, make_dataset


def _tree(root: Path, spanish=False) -> Path:
    return make_dataset(root, classes=("angry", "happy", "sad"), train_per_class=4, val_per_class=2, size=16,
                        names=SPANISH if spanish else None)


def _zip_dir(folder: Path, zpath: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.rglob("*")):
            zf.write(p, prefix + p.relative_to(folder).as_posix())
    return zpath


def _visible(folder: Path):
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) if folder.exists() else []


@pytest.fixture
def nested_zip(tmp_path):
    _tree(tmp_path / "src" / "datos_zip" / "dataset_emociones", spanish=True)
    return _zip_dir(tmp_path / "src", tmp_path / "course.zip")


def test_zip_with_nested_root_is_found_recorded_and_resolved(nested_zip, tmp_path):
    dest = tmp_path / "data"
    res = dl.download(str(nested_zip), str(dest))
    assert res.root == dest / "course" / "datos_zip" / "dataset_emociones"
    assert res.counts == {"train": {"alegria": 4, "enojo": 4, "tristeza": 4},
                          "validation": {"alegria": 2, "enojo": 2, "tristeza": 2}}
    record = json.loads((dest / MARKER).read_text())
    assert record["root"] == "course/datos_zip/dataset_emociones"
    assert resolve_root(dest) == res.root.resolve()
    text = res.summary()
    assert "alegria -> happy" in text and "enojo -> angry" in text
    assert "Dataset root: " + str(res.root) in text
    assert not list(dest.glob(dl.PARTIAL + "*"))


def test_second_call_does_nothing_and_force_redoes(nested_zip, tmp_path, monkeypatch):
    dest = tmp_path / "data"
    dl.download(str(nested_zip), str(dest))
    calls = []
    real = archive.extract
    monkeypatch.setattr(archive, "extract", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = dl.download(str(nested_zip), str(dest))
    assert again.already and calls == [] and "Already there" in again.summary()
    forced = dl.download(str(nested_zip), str(dest), force=True)
    assert not forced.already and calls == [1]
    assert forced.counts == again.counts
    # --force without --source unpacks the recorded source again, not the default (course) dataset
    alone = dl.download(None, str(dest), force=True)
    assert not alone.already and calls == [1, 1] and alone.counts == again.counts


def test_changed_dataset_is_reported_not_silently_restored(nested_zip, tmp_path):
    dest = tmp_path / "data"
    res = dl.download(str(nested_zip), str(dest))
    next((res.root / "train" / "alegria").iterdir()).unlink()
    again = dl.download(str(nested_zip), str(dest))
    assert again.already and again.counts["train"]["alegria"] == 3
    assert any("--force" in n for n in again.notes)


def test_tar_gz_source(tmp_path):
    _tree(tmp_path / "src" / "fer")
    tpath = tmp_path / "fer.tar.gz"
    with tarfile.open(tpath, "w:gz") as tf:
        tf.add(tmp_path / "src" / "fer", arcname="fer")
    res = dl.download(str(tpath), str(tmp_path / "data"))
    assert res.root == tmp_path / "data" / "fer" / "fer"
    assert res.counts["train"] == {"angry": 4, "happy": 4, "sad": 4}


def test_folder_source_is_copied_and_folder_inside_dest_is_recorded_in_place(tmp_path):
    src = _tree(tmp_path / "mine")
    res = dl.download(str(src), str(tmp_path / "data"))
    assert res.root == tmp_path / "data" / "mine"
    assert (res.root / "train" / "happy").is_dir() and (src / "train").is_dir()
    inside = _tree(tmp_path / "data2" / "faces")
    res2 = dl.download(str(inside), str(tmp_path / "data2"))
    assert res2.root == inside and json.loads((tmp_path / "data2" / MARKER).read_text())["root"] == "faces"



def test_folder_recorded_in_place_is_never_replaced_by_a_later_download(tmp_path):
    dest = tmp_path / "data"
    mine = _tree(dest / "mine")
    (mine / "train" / "happy" / "only-copy.png").write_bytes(b"precious")
    dl.download(str(mine), str(dest))
    archive_path = _zip_dir(_tree(tmp_path / "src" / "mine"), tmp_path / "mine.zip")
    assert cli.main(["download", "--source", str(archive_path), "--dest", str(dest)]) == 2
    assert cli.main(["download", "--source", str(archive_path), "--dest", str(dest), "--force"]) == 2
    assert (mine / "train" / "happy" / "only-copy.png").read_bytes() == b"precious"
    dl.download(str(tmp_path / "src" / "mine"), str(tmp_path / "data2"))  # an installed copy is replaced
    (tmp_path / "src" / "mine" / "train" / "happy" / "new.png").write_bytes(b"")
    replaced = dl.download(str(tmp_path / "src" / "mine"), str(tmp_path / "data2"))
    assert not replaced.already and (replaced.root / "train" / "happy" / "new.png").exists()
    other = _zip_dir(_tree(tmp_path / "src2" / "other"), tmp_path / "other.zip")  # another download in between
    dl.download(str(other), str(dest))
    assert cli.main(["download", "--source", str(archive_path), "--dest", str(dest), "--force"]) == 2
    assert (mine / "train" / "happy" / "only-copy.png").read_bytes() == b"precious"  # still protected


def test_a_folder_installed_where_an_own_folder_was_removed_can_be_replaced(tmp_path):
    dest = tmp_path / "data"
    mine = _tree(dest / "mine")
    dl.download(str(mine), str(dest))  # recorded in place
    shutil.rmtree(mine)  # the user removes it; a download of the same name then installs one there
    archive_path = _zip_dir(_tree(tmp_path / "src" / "mine"), tmp_path / "mine.zip")
    dl.download(str(archive_path), str(dest))
    assert json.loads((dest / MARKER).read_text())["own"] == []
    os.utime(archive_path, ns=(1, 1))  # a newer archive: installed again over the one emoclf put there
    assert not dl.download(str(archive_path), str(dest)).already


def test_dataset_recorded_by_format_1_is_replaced_like_before(nested_zip, tmp_path):
    dest = tmp_path / "data"
    res = dl.download(str(nested_zip), str(dest))
    record = json.loads((dest / MARKER).read_text())
    for key in ("installed", "own"):  # what a record written before format 2 lacked
        del record[key]
    record["format"] = 1
    (dest / MARKER).write_text(json.dumps(record))
    nested_zip.write_bytes(nested_zip.read_bytes())  # a newer copy of the archive: downloaded again
    os.utime(nested_zip, ns=(1, 1))
    again = dl.download(str(nested_zip), str(dest))
    assert not again.already and again.root == res.root

def _fer_csv(path: Path, rows):
    lines = ["emotion,pixels,Usage"]
    for emotion, usage, value in rows:
        lines.append(f"{emotion},{' '.join([str(value)] * 2304)},{usage}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_fer2013_csv_becomes_split_class_folders_of_48px_pngs(tmp_path):
    csv_path = _fer_csv(tmp_path / "fer2013.csv", [(0, "Training", 10), (3, "Training", 20), (6, "PublicTest", 30),
                                                   (5, "PrivateTest", 40), (3, "PublicTest", 50)])
    res = dl.download(str(csv_path), str(tmp_path / "data"))
    assert res.counts == {"train": {"angry": 1, "happy": 1}, "validation": {"neutral": 1, "happy": 1},
                          "test": {"surprise": 1}}
    img = Image.open(next((res.root / "test" / "surprise").iterdir()))
    assert img.size == (48, 48) and img.mode == "L" and np.asarray(img).max() == 40


@pytest.mark.parametrize("row,needle", [("9,0 0 0 0,Training", "not one of 0..6"), ("1,0 0 0,Training", "square"),
                                        ("1,0 0 0 0,Elsewhere", "Usage 'Elsewhere'")])
def test_bad_csv_rows_name_the_line(tmp_path, row, needle):
    path = tmp_path / "fer2013.csv"
    path.write_text("emotion,pixels,Usage\n" + row + "\n")
    with pytest.raises(ValueError, match="line 2") as err:
        dl.download(str(path), str(tmp_path / "data"))
    assert needle in str(err.value)
    assert not (tmp_path / "data").exists()


def test_fer_csv_inside_a_tar_is_converted(tmp_path):
    _fer_csv(tmp_path / "fer2013.csv", [(0, "Training", 1), (3, "Training", 2), (3, "PublicTest", 3)])
    tpath = tmp_path / "fer2013.tar.gz"
    with tarfile.open(tpath, "w:gz") as tf:
        tf.add(tmp_path / "fer2013.csv", arcname="fer2013/fer2013.csv")
    res = dl.download(str(tpath), str(tmp_path / "data"))
    assert res.counts == {"train": {"angry": 1, "happy": 1}, "validation": {"happy": 1}}


def _assert_nothing_installed(tmp_path, dest):
    assert not (dest / MARKER).exists()
    assert _visible(dest) == []
    assert not any(p.name.startswith("evil") for p in tmp_path.rglob("*"))


def _zip_with(tmp_path, name, data=b"x", attr=None):
    _tree(tmp_path / "src")
    zpath = _zip_dir(tmp_path / "src", tmp_path / "bad.zip")
    with zipfile.ZipFile(zpath, "a") as zf:
        info = zipfile.ZipInfo(name)
        if attr is not None:
            info.create_system, info.external_attr = 3, attr << 16
        zf.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
    return zpath


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "backslash"])
def test_hostile_zip_entries_are_refused(tmp_path, kind):
    name, attr, why = {"dotdot": ("../../evil.txt", None, r"outside the destination \('\.\.'\)"),
                       "absolute": (str(tmp_path / "evil_abs.txt"), None, "absolute path"),
                       "symlink": ("train/happy/evil_link", 0o120777, "symbolic link"),
                       "backslash": ("..\\..\\evil.txt", None, r"\('\.\.'\)")}[kind]
    zpath = _zip_with(tmp_path, name, b"/etc/passwd" if attr else b"evil", attr)
    dest = tmp_path / "box" / "data"
    with pytest.raises(ValueError, match="Refusing archive entry .*" + why):
        dl.download(str(zpath), str(dest))
    _assert_nothing_installed(tmp_path, dest)


@pytest.mark.parametrize("kind", ["symlink", "hardlink", "dotdot", "device"])
def test_hostile_tar_entries_are_refused(tmp_path, kind):
    _tree(tmp_path / "src")
    tpath = tmp_path / "bad.tar.gz"
    with tarfile.open(tpath, "w:gz") as tf:
        tf.add(tmp_path / "src", arcname="ds")
        info = tarfile.TarInfo({"dotdot": "ds/../../evil.txt"}.get(kind, "ds/train/happy/evil"))
        payload = b""
        if kind in ("symlink", "hardlink"):
            info.type, info.linkname = (tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE), "/etc/passwd"
        elif kind == "device":
            info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
        else:
            payload = b"evil"
            info.size = len(payload)
        tf.addfile(info, io.BytesIO(payload))
    dest = tmp_path / "box" / "data"
    why = {"symlink": "link to '/etc/passwd'", "hardlink": "link to '/etc/passwd'", "dotdot": r"\('\.\.'\)",
           "device": "device, pipe"}[kind]
    with pytest.raises(ValueError, match="Refusing archive entry .*" + why):
        dl.download(str(tpath), str(dest))
    _assert_nothing_installed(tmp_path, dest)


def test_zip_bomb_stops_at_the_size_limit(tmp_path, monkeypatch):
    zpath = _zip_with(tmp_path, "train/happy/big.bin", bytes(3_000_000))
    assert zpath.stat().st_size < 100_000  # highly compressed: the shape of a bomb
    with pytest.raises(ValueError, match="zip bomb"):
        dl.download(str(zpath), str(tmp_path / "data"), max_gb=0.002)
    monkeypatch.setenv(archive.MAX_GB_ENV, "0.002")
    assert cli.main(["download", "--source", str(zpath), "--dest", str(tmp_path / "data")]) == 2
    assert not (tmp_path / "data" / MARKER).exists()
    monkeypatch.setenv(archive.MAX_GB_ENV, "1")
    assert dl.download(str(zpath), str(tmp_path / "data")).counts["train"]["happy"] == 4


def test_html_page_named_zip_gives_a_clear_error(tmp_path, capsys):
    page = tmp_path / "dataset.zip"
    page.write_text("<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head></html>")
    assert cli.main(["download", "--source", str(page), "--dest", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err
    assert "HTML page" in err and "--source path/to/archive.zip" in err and "Traceback" not in err


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_corrupt_zip_gives_a_clear_error(nested_zip, tmp_path, damage):
    data = bytearray(nested_zip.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        for i in range(200, len(data) // 2, 50):  # inside the compressed payload, not the directory
            data[i] ^= 0xFF
    nested_zip.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="damaged"):
        dl.download(str(nested_zip), str(tmp_path / "data"))
    assert not (tmp_path / "data").exists()


def test_offline_drive_download_names_the_network_and_the_local_fix(tmp_path, monkeypatch, capsys):
    import requests

    def offline(**kwargs):
        raise requests.exceptions.ConnectionError("Max retries exceeded (Failed to resolve 'drive.google.com')")

    monkeypatch.setitem(sys.modules, "gdown", types.SimpleNamespace(download=offline))
    with pytest.raises(RuntimeError, match="network is unreachable") as err:
        dl.download(None, str(tmp_path / "data"))
    assert "--source path/to/archive.zip" in str(err.value)
    assert cli.main(["download", "--dest", str(tmp_path / "data")]) == 1
    captured = capsys.readouterr().err
    assert "network is unreachable" in captured and "Traceback" not in captured
    assert not (tmp_path / "data").exists()


def test_drive_download_that_fails_otherwise_is_a_runtime_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "gdown", types.SimpleNamespace(download=lambda **k: None))
    with pytest.raises(RuntimeError, match="did not return file"):
        dl.download("1aPHE00zkDhEV1waJKhaOJMdN6-lUc0iT", str(tmp_path / "data"))


def test_offline_url_download(tmp_path, monkeypatch):
    def unreachable(*a, **k):
        raise urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(sources.urllib.request, "urlopen", unreachable)
    with pytest.raises(RuntimeError, match="Cannot reach example.org: the network is unreachable"):
        dl.download("https://example.org/faces.zip", str(tmp_path / "data"))


def test_source_parsing(tmp_path):
    assert sources.parse(sources.DEFAULT_SOURCE).value == "1aPHE00zkDhEV1waJKhaOJMdN6-lUc0iT"
    assert sources.parse("https://drive.google.com/uc?id=abcdefghijklmnopqrstuvwxyz&export=download").kind == "drive"
    assert sources.parse("1aPHE00zkDhEV1waJKhaOJMdN6-lUc0iT").kind == "drive"
    assert sources.parse("https://example.org/x.tar.gz").kind == "url"
    with pytest.raises(FileNotFoundError, match="not an existing file"):
        sources.parse(str(tmp_path / "missing.zip"))
    with pytest.raises(ValueError, match="No file id"):
        sources.parse("https://drive.google.com/drive/my-drive")
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="FER2013 columns"):
        sources.parse(str(other))


@pytest.mark.parametrize("previous", [False, True])
def test_failure_mid_extraction_installs_nothing(nested_zip, tmp_path, monkeypatch, previous):
    dest = tmp_path / "data"
    first = dl.download(str(nested_zip), str(dest)) if previous else None
    record = (dest / MARKER).read_text() if previous else None
    _tree(tmp_path / "other_src" / "other")
    other = _zip_dir(tmp_path / "other_src", tmp_path / "other.zip")
    real, calls = archive._copy, []

    def dies(*a, **k):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt  # what Ctrl+C (or a crash) half-way through looks like
        return real(*a, **k)

    monkeypatch.setattr(archive, "_copy", dies)
    with pytest.raises(KeyboardInterrupt):
        dl.download(str(other), str(dest))
    assert len(calls) == 5
    if previous:
        assert (dest / MARKER).read_text() == record and _visible(dest) == ["course", MARKER]
        assert resolve_root(dest) == first.root.resolve()
    else:
        assert not dest.exists()


def test_leftover_of_a_killed_run_is_invisible_and_cleaned(nested_zip, tmp_path):
    dest = tmp_path / "data"
    stale = dest / (dl.PARTIAL + "x") / "unpacked" / "train" / "happy"
    stale.mkdir(parents=True)
    (stale / "half.png").write_bytes(b"")
    assert _visible(dest) == [] and resolve_root(dest) == dest and find_splits(dest) == {}
    dl.download(str(nested_zip), str(dest))
    assert not list(dest.glob(dl.PARTIAL + "*"))


def test_existing_folder_of_the_same_name_needs_force(nested_zip, tmp_path):
    dest = tmp_path / "data"
    (dest / "course").mkdir(parents=True)
    (dest / "course" / "notes.txt").write_text("mine")
    assert cli.main(["download", "--source", str(nested_zip), "--dest", str(dest)]) == 2
    assert (dest / "course" / "notes.txt").exists()
    assert dl.download(str(nested_zip), str(dest), force=True).root.is_dir()
    assert not (dest / "course" / "notes.txt").exists()


def test_archive_without_a_dataset_is_refused(tmp_path):
    (tmp_path / "src" / "docs").mkdir(parents=True)
    (tmp_path / "src" / "docs" / "readme.txt").write_text("hi")
    zpath = _zip_dir(tmp_path / "src", tmp_path / "docs.zip")
    with pytest.raises(ValueError, match="No dataset in .*train/<class>/.*It holds: docs"):
        dl.download(str(zpath), str(tmp_path / "data"))


def test_drive_download_success_path_without_network(nested_zip, tmp_path, monkeypatch):
    calls = []

    def fake_download(id=None, output=None, quiet=False, timeout=None):
        calls.append((id, timeout))
        target = Path(output) / "datos_zip.zip"
        target.write_bytes(nested_zip.read_bytes())
        return str(target)

    monkeypatch.setitem(sys.modules, "gdown", types.SimpleNamespace(download=fake_download))
    dest = tmp_path / "data"
    res = dl.download(sources.DEFAULT_SOURCE, str(dest))
    assert calls == [("1aPHE00zkDhEV1waJKhaOJMdN6-lUc0iT", sources.TIMEOUT_S)]
    assert res.root == dest / "datos_zip" / "datos_zip" / "dataset_emociones"
    assert not any(p.suffix == ".zip" for p in dest.rglob("*"))  # the downloaded archive is not kept
    assert dl.download("1aPHE00zkDhEV1waJKhaOJMdN6-lUc0iT", str(dest)).already and len(calls) == 1
