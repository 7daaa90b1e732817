"""torchrun: two gloo processes on the CPU train one run that matches a single process with twice the batch."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from emoclf.data.synthetic import make_dataset
from emoclf.runs.metrics import read_confusion_csv
from emoclf.utils.distributed import DistInfo, contiguous_range, shard

SETTINGS = ["model.norm=group", "model.dropout=0", "model.width=8", "model.depth=2", "data.image_size=24",
            "augment.hflip=false", "augment.rotation=0", "augment.translate=0", "augment.scale=0",
            "augment.brightness=0", "augment.contrast=0", "augment.erasing=0", "train.epochs=3", "train.lr=0.01",
            "train.channels_last=off", "train.warmup_epochs=0", "seed=3"]


def test_shards_cover_every_sample_once():
    order = np.arange(10)
    parts = [shard(order, DistInfo(rank=r, world=3)) for r in range(3)]
    assert {len(p) for p in parts} == {4}  # padded by wrapping so every rank takes the same steps
    assert set(np.concatenate(parts)) == set(range(10))
    slices = [contiguous_range(10, DistInfo(rank=r, world=3)) for r in range(3)]
    assert sum(s.stop - s.start for s in slices) == 10


def _train(root, out, batch, nproc, extra=()):
    sets = [f"data.root={root}", f"output.dir={out}", "output.name=ddp", f"train.batch_size={batch}"] + SETTINGS
    sets += list(extra)
    args = ["train", "-c", "configs/cnn.yaml"] + [x for s in sets for x in ("--set", s)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}
    if nproc == 1:
        cmd = [sys.executable, "-m", "emoclf", "-q"] + args
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "emoclf", "-q"] + args
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("Run folder:") == 1  # said once, not once per process
    return out / "ddp"


def _history(run):
    with open(run / "history.csv", newline="") as fh:
        return [{k: float(v) for k, v in r.items() if k != "seconds"} for r in csv.DictReader(fh)]


@pytest.mark.slow
def test_two_process_gloo_matches_one_process_with_double_batch(tmp_path):
    root = make_dataset(tmp_path / "data", classes=("angry", "happy", "sad"), train_per_class=8, val_per_class=5,
                        size=24, seed=4)  # 24 training images = 2 x 12
    single = _train(root, tmp_path / "one", batch=24, nproc=1)
    double = _train(root, tmp_path / "two", batch=12, nproc=2)
    assert [p.name for p in (tmp_path / "two").iterdir()] == ["ddp"]  # one run folder, written once
    names, cm = read_confusion_csv(double / "confusion_matrix.csv")
    assert cm.sum() == 15  # every validation image counted exactly once
    metrics = json.loads((double / "metrics.json").read_text())
    assert metrics["num_images"] == 15
    a, b = _history(single), _history(double)
    assert len(a) == len(b) == 3
    for row_a, row_b in zip(a, b):
        for key in ("train_loss", "val_loss", "lr"):
            assert row_b[key] == pytest.approx(row_a[key], rel=1e-3, abs=1e-4), (key, row_a, row_b)
        assert row_b["train_acc"] == pytest.approx(row_a["train_acc"], abs=1 / 24 + 1e-9)


@pytest.mark.slow
def test_every_rank_validates_the_batchnorm_statistics_that_are_saved(tmp_path):
    """Each rank updates its own BatchNorm running statistics; history must score the model best.pt holds."""
    root = make_dataset(tmp_path / "data", classes=("angry", "happy", "sad"), train_per_class=16, val_per_class=10,
                        size=24, seed=5)
    run = _train(root, tmp_path / "two", batch=8, nproc=2, extra=["model.norm=batch", "train.epochs=1"])
    metrics = json.loads((run / "metrics.json").read_text())  # best.pt scored again by one process
    row = _history(run)[0]
    assert row["val_loss"] == pytest.approx(metrics["loss"], rel=1e-5)  # history keeps 6 significant digits
    assert row["val_acc"] == pytest.approx(metrics["accuracy"], abs=2e-6)
