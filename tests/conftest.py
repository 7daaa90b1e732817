"""Shared fixtures: synthetic face datasets and a small trained run, made on the fly."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import List

import pytest

from emoclf.config import load_config
from emoclf.data.synthetic import make_dataset

FAST = [
    "data.image_size=32", "model.width=16", "model.depth=3", "train.lr=0.005", "train.batch_size=32",
    "augment.erasing=0", "augment.rotation=0", "augment.scale=0", "train.warmup_epochs=1",
]


def fast_config(root, out_dir, name="cnn", epochs=14, extra=()):
    """A CNN config that learns the synthetic faces in a few seconds on a CPU."""
    return load_config("configs/cnn.yaml", FAST + [f"data.root={root}", f"output.dir={out_dir}",
                                                   f"output.name={name}", f"train.epochs={epochs}", *extra])


@pytest.fixture(scope="session", autouse=True)
def _user_cache(tmp_path_factory):
    """Tests write nothing into the user's cache folder (emoclf evaluate --data caches decoded images there); torch
    keeps finding its own cache where it was."""
    os.environ.setdefault("TORCH_HOME", os.path.join(os.environ.get("XDG_CACHE_HOME") or
                                                     os.path.expanduser("~/.cache"), "torch"))
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("user-cache"))


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    logging.getLogger().setLevel(logging.INFO)


@pytest.fixture(scope="session")
def faces(tmp_path_factory) -> Path:
    """Five-class synthetic dataset with train/ and validation/ (100 + 25 images per class)."""
    return make_dataset(tmp_path_factory.mktemp("faces"), train_per_class=100, val_per_class=25, seed=1)


@pytest.fixture(scope="session")
def small_faces(tmp_path_factory) -> Path:
    """Tiny three-class dataset for quick checks (12 + 4 images per class)."""
    return make_dataset(tmp_path_factory.mktemp("small"), classes=("angry", "happy", "sad"),
                        train_per_class=12, val_per_class=4, size=40, seed=2)


@pytest.fixture(scope="session")
def trained_run(faces, tmp_path_factory) -> Path:
    """A finished CNN run on ``faces``."""
    import os

    from emoclf.training.trainer import train

    out = tmp_path_factory.mktemp("runs")
    here = os.getcwd()
    os.chdir(Path(__file__).resolve().parents[1])
    try:
        return train(fast_config(faces, out))
    finally:
        os.chdir(here)


REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
CLASSES = ("angry", "happy", "sad", "surprise")


def script_module(name: str):
    """scripts/<name>.py imported as a module (scripts/ is no package); registered in sys.modules, where
    dataclasses look their module up."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def tiny_overrides(root: Path, out: Path, epochs: int = 2) -> List[str]:
    """Overrides that make any config train in about a second on the CPU."""
    return [f"data.root={root}", "data.image_size=32", "model.width=8", "model.depth=2", f"train.epochs={epochs}",
            "train.batch_size=32", "model.pretrained=false", "augment.erasing=0", "augment.rotation=0",
            f"output.dir={out}"]


@dataclass
class Runs:
    """The shared dataset and finished runs of the test run."""

    root: Path
    out: Path
    overrides: List[str]
    cnn: Path
    rgb: Path
    rgb_config: Path  # a second experiment file: an RGB CNN named cnn_rgb


@pytest.fixture(scope="session")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data") / "faces", classes=CLASSES, train_per_class=30,
                        val_per_class=8, size=64, seed=1, fmt="jpg")


@pytest.fixture(scope="session")
def runs(dataset, tmp_path_factory) -> Runs:
    out = tmp_path_factory.mktemp("outputs")
    overrides = tiny_overrides(dataset, out)
    rgb_config = out.parent / "cnn_rgb.yaml"
    rgb_config.write_text("data: {grayscale: false}\nmodel: {name: cnn, dropout: 0.1}\ntrain: {lr: 0.005}\n"
                          "output: {name: cnn_rgb}\n")
    from emoclf.training.trainer import train

    cnn = train(load_config(str(CONFIGS / "cnn.yaml"), overrides))
    rgb = train(load_config(str(rgb_config), overrides))
    return Runs(dataset, out, overrides, cnn, rgb, rgb_config)


def train_interrupted_after(cfg, epoch: int, monkeypatch) -> None:
    """Train ``cfg`` and stop it with a KeyboardInterrupt right after epoch ``epoch`` was saved."""
    from emoclf.training import trainer as train_mod

    original = train_mod.Trainer.end_epoch

    def interrupt(self, row):
        stop = original(self, row)
        if row["epoch"] == epoch:
            raise KeyboardInterrupt
        return stop

    monkeypatch.setattr(train_mod.Trainer, "end_epoch", interrupt)
    with pytest.raises(KeyboardInterrupt):
        train_mod.train(cfg)
    monkeypatch.setattr(train_mod.Trainer, "end_epoch", original)
