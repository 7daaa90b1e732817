#!/usr/bin/env python
"""What a CNN shape costs per training image: train-step rate (forward, backward, AdamW step on random tensors
already in memory, in the channels-last layout training uses) and parameters, per block layout and input side.

The cost per image is what bounds a time-limited recipe: an epoch of FER2013's 28,709 images takes 28,709 / rate
seconds of pure stepping. Rounds are interleaved (every shape once per round) and medians printed.

    python scripts/benchmark_shapes.py --shapes 16x5@48 16x5@40 32x4@40 16-32-64-192-384@40 --rounds 3
    python scripts/benchmark_shapes.py --shapes 16x5@40 24x5@40 --precision fp32 bf16

A shape is WIDTHxDEPTH@SIDE (model.width, model.depth) or the channels of each block, C1-C2-...@SIDE
(model.channels).
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark_speed import timed_steps  # scripts/, this script's folder

from emoclf.models.cnn import EmotionCNN, block_channels


def parse_shape(text: str):
    """(channels of each block, side) of WIDTHxDEPTH@SIDE (16x5@40) or C1-C2-...@SIDE (16-32-64-192-384@40)."""
    try:
        size, side = text.split("@")
        if "x" in size:
            width, depth = size.split("x")
            channels = tuple(block_channels(int(width), int(depth)))
        else:
            channels = tuple(int(c) for c in size.split("-"))
        if not 1 <= len(channels) <= 6 or min(channels) < 1 or int(side) < 8:
            raise ValueError
        return channels, int(side)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a shape is WIDTHxDEPTH@SIDE (16x5@40) or the channels of 1 to 6 blocks "
                                         f"@SIDE (16-32-64-192-384@40); got {text!r}") from None


def label(shape) -> str:
    """A shape as the table shows it: 16-32-64-128-256 @ 40 px."""
    return f"{'-'.join(map(str, shape[0]))} @ {shape[1]} px"


def step_rate(model: nn.Module, side: int, batch: int, steps: int, precision: str = "fp32") -> float:
    """Training images per second of ``steps`` steps, after 3 warm-up steps (oneDNN builds its kernels); ``bf16``:
    under autocast, as ``train.amp: bf16`` trains on a CPU."""
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    x = torch.randn(batch, 1, side, side).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 7, (batch,))
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    return batch * steps / timed_steps(step, steps, torch.device("cpu"), warmup=3)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", nargs="+", type=parse_shape, default=[parse_shape(s) for s in
                   ("16x5@48", "16x5@40", "16x4@40", "16x6@40", "24x5@40", "32x4@48", "32x4@40")],
                   metavar="WxD@S", help="CNN shapes: width (first block's channels) x depth (blocks) @ input side, "
                   "or each block's channels C1-C2-...@side")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=30, help="timed steps per shape and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    p.add_argument("--precision", nargs="+", choices=("fp32", "bf16"), default=["fp32"],
                   help="bf16: under autocast, as train.amp=bf16 (fast on CPUs with AVX512-BF16 or AMX)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    models = {s: EmotionCNN(7, 1, channels=s[0]).to(memory_format=torch.channels_last) for s in args.shapes}
    rates = {(s, prec): [] for s in args.shapes for prec in args.precision}
    for _ in range(args.rounds):
        for s, prec in rates:
            rates[s, prec].append(step_rate(models[s], s[1], args.batch, args.steps, prec))
    print(f"{torch.get_num_threads()} threads, batch {args.batch}, median of {args.rounds} rounds")
    print("| channels of each block @ side | precision | parameters | training images/s | s per FER2013 epoch |")
    print("| --- | --- | --- | --- | --- |")
    for (s, prec), r in rates.items():
        rate = statistics.median(r)
        params = sum(p.numel() for p in models[s].parameters())
        print(f"| {label(s)} | {prec} | {params / 1e6:.2f} M | {rate:.0f} | {28709 / rate:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
