"""Shared fixtures: a tiny synthetic dataset and two tiny finished runs, made once per pytest run."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List

import pytest

from emoclf.config import load_config
from emoclf.synthetic import make_dataset
from emoclf.train import train

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
CLASSES = ("angry", "happy", "sad", "surprise")


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
    cnn = train(load_config(str(CONFIGS / "cnn.yaml"), overrides))
    rgb = train(load_config(str(rgb_config), overrides))
    return Runs(dataset, out, overrides, cnn, rgb, rgb_config)
