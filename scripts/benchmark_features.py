#!/usr/bin/env python
"""What each training feature costs: images per second of one training epoch with one feature on, against the same
config with all of them off (those the config turns on too), on generated faces (emoclf.data.synthetic), one process.

Features: train.ema, augment.mixup, augment.cutmix, augment.crop (the model then reads crops), and the two costs
that are not per step: SWA's BatchNorm refresh (one pass over the training images per SWA epoch) and ten-crop
scoring at the crop size. Rounds are interleaved (every variant once per round) and medians printed, so other load
on the machine hits every variant alike.

    python scripts/benchmark_features.py --config configs/fer2013/cpu_30min.yaml --images 2048 --rounds 3
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emoclf.config import load_config
from emoclf.data.synthetic import make_dataset
from emoclf.engine import predict_logits
from emoclf.training.averaging import WeightSWA
from emoclf.training.trainer import Trainer

OFF = ["train.ema=0", "augment.mixup=0", "augment.cutmix=0", "augment.crop=0"]  # whatever the config turns on
VARIANTS = [("off", OFF)] + [(feature, OFF + [feature]) for feature in
                             ("train.ema=0.999", "augment.mixup=0.2", "augment.cutmix=1.0", "augment.crop=40")]
OTHER_ROWS = ["SWA BatchNorm refresh", "scoring, none", "scoring, tencrop (0.9, resized)",
              "scoring, tencrop at crop 40"]


def trainer_for(config: str, data: Path, out: Path, name: str, options, args) -> Trainer:
    overrides = [f"data.root={data}", f"output.dir={out}", f"output.name={name}", "train.time_limit=0",
                 f"train.device={args.device}", f"train.num_threads={args.threads}", *options]
    return Trainer(load_config(config, overrides))


def train_rate(trainer: Trainer) -> float:
    """Training images per second of one pass (the trainer's own loop: augmentation, step, metrics)."""
    start = time.perf_counter()
    res = trainer.train_pass()
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    return res["images"] / (time.perf_counter() - start)


def eval_rate(trainer: Trainer, tta: str) -> float:
    """Validation images per second with test-time views ``tta`` at the size the model reads."""
    start = time.perf_counter()
    predict_logits(trainer.raw_model, trainer.val_images, trainer.norm, trainer.cfg.train.eval_batch_size,
                   trainer.dtype, tta=tta)
    return len(trainer.val) / (time.perf_counter() - start)


def refresh_rate(trainer: Trainer, swa: WeightSWA) -> float:
    """Training images per second of SWA's BatchNorm refresh."""
    start = time.perf_counter()
    swa.refresh(trainer.train_images, trainer.norm, trainer.cfg.train.eval_batch_size)
    return len(trainer.train) / (time.perf_counter() - start)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/fer2013/cpu_30min.yaml")
    ap.add_argument("--images", type=int, default=2048, help="generated training images (validation: a quarter)")
    ap.add_argument("--size", type=int, default=48, help="side of the generated faces in pixels")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        classes = ("angry", "happy", "neutral", "sad", "surprise")
        data = make_dataset(Path(work) / "faces", classes, train_per_class=max(1, args.images // len(classes)),
                            val_per_class=max(1, args.images // 4 // len(classes)), size=args.size, seed=0)
        trainers = {name: trainer_for(args.config, data, Path(work) / "runs", f"run{i}", opts, args)
                    for i, (name, opts) in enumerate(VARIANTS)}
        for t in trainers.values():  # warm-up: caches, thread pools, first allocations
            t.train_pass()
        swa = WeightSWA(trainers["off"].raw_model)
        swa.update()
        rates = {name: [] for name in list(trainers) + OTHER_ROWS}
        for _ in range(args.rounds):
            for name, t in trainers.items():
                rates[name].append(train_rate(t))
            rates["SWA BatchNorm refresh"].append(refresh_rate(trainers["off"], swa))
            rates["scoring, none"].append(eval_rate(trainers["off"], "none"))
            rates["scoring, tencrop (0.9, resized)"].append(eval_rate(trainers["off"], "tencrop"))
            rates["scoring, tencrop at crop 40"].append(eval_rate(trainers["augment.crop=40"], "tencrop"))
    base = statistics.median(rates["off"])
    print(f"{args.config}, {args.images} generated {args.size} px images, {args.rounds} rounds, "
          f"{torch.get_num_threads()} threads, device {args.device}; medians")
    print(f"{'variant':34s} {'images/s':>9s} {'vs off':>7s}")
    for name, values in rates.items():
        rate = statistics.median(values)
        ratio = f"{rate / base:.2f}" if name in trainers else ""
        print(f"{name:34s} {rate:9.0f} {ratio:>7s}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
