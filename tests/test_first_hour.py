"""What a new user meets first: offline downloads, a recorded dataset reused, messages that name the next step."""
from __future__ import annotations

import sys
import types
import zipfile

import pytest

from emoclf.data import download as dl
from emoclf.data.synthetic import make_dataset


def _offline(monkeypatch):
    import requests

    def offline(**kwargs):
        raise requests.exceptions.ConnectionError("HTTPSConnectionPool(host='drive.google.com', port=443): Max "
                                                  "retries exceeded with url: /uc?id=x (Caused by "
                                                  "NameResolutionError(\"<urllib3.connection>: no such host\"))")

    monkeypatch.setitem(sys.modules, "gdown", types.SimpleNamespace(download=offline))


def test_offline_drive_message_is_short_and_names_the_browser_page(tmp_path, monkeypatch):
    _offline(monkeypatch)
    with pytest.raises(RuntimeError) as err:
        dl.download(None, str(tmp_path / "data"))
    text = str(err.value)
    assert "https://drive.google.com/file/d/1aPHE00zkDhEV1waJKhaOJMdN6-lUc0iT/view" in text
    assert "--source path/to/archive.zip" in text and "HTTPSConnectionPool" not in text and len(text) < 400


def test_a_recorded_dataset_is_reused_without_a_source(tmp_path, monkeypatch):
    data = make_dataset(tmp_path / "src" / "course", classes=("happy", "sad"), train_per_class=3, val_per_class=1,
                        size=16, seed=0)
    with zipfile.ZipFile(tmp_path / "course.zip", "w") as zf:
        for p in (p for p in data.rglob("*") if p.is_file()):
            zf.write(p, p.relative_to(tmp_path / "src"))
    first = dl.download(str(tmp_path / "course.zip"), str(tmp_path / "data"))
    _offline(monkeypatch)  # a second run without --source must not go to the network
    again = dl.download(None, str(tmp_path / "data"))
    assert again.already and again.root == first.root and "course.zip" in again.summary()
    with pytest.raises(RuntimeError, match="network is unreachable"):
        dl.download(None, str(tmp_path / "data"), force=True)  # --force without --source: the default source
