"""Shared fixtures: synthetic face datasets and a small trained run, made on the fly."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

from emoclf.config import load_config
from emoclf.synthetic import make_dataset

FAST = [
    "data.image_size=32", "model.width=16", "model.depth=3", "train.lr=0.005", "train.batch_size=32",
    "augment.erasing=0", "augment.rotation=0", "augment.scale=0", "train.warmup_epochs=1",
]


def fast_config(root, out_dir, name="cnn", epochs=14, extra=()):
    """A CNN config that learns the synthetic faces in a few seconds on a CPU."""
    return load_config("configs/cnn.yaml", FAST + [f"data.root={root}", f"output.dir={out_dir}",
                                                   f"output.name={name}", f"train.epochs={epochs}", *extra])


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

    from emoclf.train import train

    out = tmp_path_factory.mktemp("runs")
    here = os.getcwd()
    os.chdir(Path(__file__).resolve().parents[1])
    try:
        return train(fast_config(faces, out))
    finally:
        os.chdir(here)
