#!/usr/bin/env python
"""Training-speed benchmark: emoclf's pipeline against the model's own ceiling and a classic ImageFolder pipeline.

For each model at its configured size, in one process on one machine, prints
  (a) the pure training-step rate on random tensors (the ceiling),
  (b) emoclf's end-to-end training rate (cached data, batch augmentation, step, metrics, progress bar),
  (c) a reference pipeline built the usual way (torchvision ImageFolder, per-image PIL transforms doing the
      config's augmentation, DataLoader with 2 workers) on the same files, same model, size, batch and memory
      layout, so that only the data pipeline differs,
  (c') the same reference with the model in PyTorch's default memory layout, as it is usually written,
and the ratios b/a, b/c and b/c', plus evaluation rate. --rounds N repeats (a), (b), (c), (c') N times
interleaved and prints medians. With --peak-memory it also trains the CNN config on the
whole dataset for a short time limit in a child process (`emoclf train`, cache and all) and prints that
process's peak resident memory. Predict latency per photo: scripts/benchmark_predict.py.

    python scripts/benchmark_speed.py --data data/fer2013 --images 2048 --rounds 3 --peak-memory
    python scripts/benchmark_speed.py --data data/fer2013 --models none --peak-memory   # the memory only
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emoclf.config import load_config
from emoclf.data.dataset import find_splits, resolve_root, scan_folder
from emoclf.training.trainer import Trainer

MODELS = [("cnn", "configs/cnn.yaml"), ("resnet18", "configs/resnet18.yaml"),
          ("mobilenet_v3", "configs/mobilenet_v3.yaml")]


def subset(root: Path, dest: Path, n_train: int, n_val: int) -> Path:
    """Symlink a class-stratified subset of a dataset (the same files for every pipeline)."""
    root = resolve_root(root)
    splits = find_splits(root)
    for split, n in (("train", n_train), ("validation", n_val)):
        per_class, _ = scan_folder(splits[split])
        total = sum(len(v) for v in per_class.values())
        for name, files in per_class.items():
            take = max(1, round(n * len(files) / total))
            (dest / split / name).mkdir(parents=True, exist_ok=True)
            for f in files[:take]:
                os.symlink(f.resolve(), dest / split / name / f.name)
    return dest


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed_steps(step, steps: int, device: torch.device, warmup: int = 10) -> float:
    """Seconds of ``steps`` calls of ``step`` after ``warmup`` untimed ones (oneDNN builds its kernels for a new
    layout over the first steps), the GPU synchronised before and after."""
    for _ in range(warmup):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return time.perf_counter() - start


def ceiling_rate(trainer: Trainer, steps: int) -> float:
    """(a) Training steps on random tensors already on the device, same model, optimizer and precision."""
    cfg, dev = trainer.cfg, trainer.device
    ch = 1 if cfg.data.grayscale else 3
    x = torch.randn(cfg.train.batch_size, ch, cfg.input_size, cfg.input_size, device=dev)  # the crop with augment.crop
    if trainer.state.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, len(trainer.class_names), (cfg.train.batch_size,), device=dev)
    trainer.model.train()
    from emoclf.engine import autocast

    def step():
        with autocast(dev, trainer.dtype):
            loss = trainer.loss_fn(trainer.model(x).float(), y)
        trainer.optimizer.zero_grad(set_to_none=True)
        trainer.scaler.scale(loss).backward()
        trainer.scaler.step(trainer.optimizer)
        trainer.scaler.update()

    return steps * cfg.train.batch_size / timed_steps(step, steps, dev)


def emoclf_rate(trainer: Trainer) -> float:
    """(b) One full training pass of emoclf over the subset (after a short warm-up pass)."""
    trainer.train_pass(deadline=time.perf_counter() + 2)  # warm-up: allocator, kernels
    sync(trainer.device)
    start = time.perf_counter()
    res = trainer.train_pass()
    sync(trainer.device)
    return res["images"] / (time.perf_counter() - start)


def reference_transforms(cfg, size: int, mean, std):
    """The config's augmentation written the usual way, per image with PIL: the same work emoclf does per batch."""
    import torchvision.transforms as T

    a = cfg.augment
    tf = [T.Grayscale(1)] if cfg.data.grayscale else [T.Lambda(lambda im: im.convert("RGB"))]
    tf.append(T.Resize((size, size)))
    if a.crop:  # the model reads crops of the stored image, as in emoclf
        tf.append(T.RandomCrop(a.crop))
    if a.hflip:
        tf.append(T.RandomHorizontalFlip())
    if a.rotation or a.translate or a.scale:
        tf.append(T.RandomAffine(a.rotation, translate=(a.translate, a.translate) if a.translate else None,
                                 scale=(1 - a.scale, 1 + a.scale) if a.scale else None))
    if a.brightness or a.contrast:
        tf.append(T.ColorJitter(brightness=a.brightness, contrast=a.contrast))
    tf += [T.ToTensor(), T.Normalize(mean, std)]
    if a.erasing:
        tf.append(T.RandomErasing(p=a.erasing))
    return T.Compose(tf)


def reference_rate(trainer: Trainer, root: Path, workers: int, same_layout: bool = True) -> float:
    """(c) ImageFolder + PIL transforms + DataLoader(num_workers) on the same files and model.

    ``same_layout``: the model and batches in emoclf's memory format (channels_last where emoclf uses it), so that
    only the data pipeline differs; else (c') a copy of the model in PyTorch's default layout, as such a pipeline
    is usually written.
    """
    import copy

    from torchvision.datasets import ImageFolder

    from emoclf.training.optim import make_optimizer

    cfg, dev = trainer.cfg, trainer.device
    size, mean, std = cfg.data.image_size, trainer.norm.mean.flatten().tolist(), trainer.norm.std.flatten().tolist()
    ds = ImageFolder(str(root / "train"), transform=reference_transforms(cfg, size, mean, std))
    loader = torch.utils.data.DataLoader(ds, batch_size=cfg.train.batch_size, shuffle=True, num_workers=workers,
                                         drop_last=True, persistent_workers=workers > 0, pin_memory=dev.type == "cuda")
    channels_last = trainer.state.channels_last and same_layout
    if same_layout:
        model, opt = trainer.model, trainer.optimizer
    else:
        model = copy.deepcopy(trainer.raw_model).to(memory_format=torch.contiguous_format)
        opt = make_optimizer(cfg, model)
    model.train()
    from emoclf.engine import autocast

    def run(limit=None):
        n = 0
        for i, (x, y) in enumerate(loader):
            if limit is not None and i >= limit:
                break
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(dev, trainer.dtype):
                loss = F.cross_entropy(model(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n += len(y)
        return n

    run(limit=3)
    sync(dev)
    start = time.perf_counter()
    n = run()
    sync(dev)
    rate = n / (time.perf_counter() - start)
    loader = None  # drops the DataLoader: its worker processes end here, not during the next measurement
    return rate


def eval_rate(trainer: Trainer) -> float:
    """Validation images per second (inference_mode, eval batch)."""
    trainer.validate()
    start = time.perf_counter()
    trainer.validate()
    return len(trainer.val) / (time.perf_counter() - start)


# Starts the measured command from a small interpreter and writes its peak to a file: Linux keeps a child's peak
# across exec, so a command forked straight from this process (torch and a trainer loaded) would count this
# process's memory as its own; RUSAGE_CHILDREN here would also count the reference loader's forked workers.
_PEAK_OF_CHILD = ("import resource, subprocess, sys\n"
                  "code = subprocess.run(sys.argv[2:]).returncode\n"
                  "with open(sys.argv[1], 'w') as fh:\n"
                  "    fh.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
                  "sys.exit(code)\n")


def child_peak_mb(cmd, cwd=None) -> float:
    """Run ``cmd`` and return its own peak resident memory in MB (Linux reports KiB)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "maxrss"
        subprocess.run([sys.executable, "-c", _PEAK_OF_CHILD, str(report), *cmd], check=True, cwd=cwd)
        return int(report.read_text()) / 1024


def peak_memory_mb(data: Path, config: str, minutes: float, out: Path, device: str) -> float:
    """Peak resident memory (MB) of an ``emoclf train`` child process on the whole dataset."""
    cmd = [sys.executable, "-m", "emoclf", "-q", "train", "-c", config, "--set", f"data.root={data}",
           "--set", f"output.dir={out}", "--set", f"train.time_limit={minutes}", "--set", f"train.device={device}"]
    return child_peak_mb(cmd, Path(__file__).resolve().parents[1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="dataset folder with train/ and validation/ class folders")
    p.add_argument("--images", type=int, default=2048, help="training images in the benchmark subset")
    p.add_argument("--models", default=",".join(m for m, _ in MODELS),
                   help="comma-separated: cnn,resnet18,mobilenet_v3 (none: with --peak-memory, only that)")
    p.add_argument("--steps", type=int, default=30, help="steps for the ceiling measurement")
    p.add_argument("--rounds", type=int, default=1, help="measure each model this many times, interleaved, and "
                   "print the medians (a shared machine's speed moves between minutes)")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers of the reference pipeline")
    p.add_argument("--device", default="auto")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="extra config override")
    p.add_argument("--peak-memory", action="store_true", help="also measure peak memory of training on all of --data")
    p.add_argument("--memory-config", default="configs/fer2013/cnn.yaml", help="config of the peak-memory run")
    p.add_argument("--memory-minutes", type=float, default=1.0, help="time limit of the peak-memory run")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="emoclf-bench-"))
    root = subset(Path(args.data), tmp / "data", args.images, max(256, args.images // 4))
    print(f"subset: {args.images} train images from {args.data}; torch {torch.__version__}; "
          f"threads {torch.get_num_threads()}")
    c0_name, bc0_name = "(c') default layout", "b/c'"
    header = f"{'model':<14}{'size':>5}{'batch':>6}{'(a) ceiling':>13}{'(b) emoclf':>12}{'(c) reference':>15}" \
             f"{c0_name:>21}{'b/a':>7}{'b/c':>7}{bc0_name:>7}{'eval img/s':>12}"
    rows = []
    for name, path in MODELS:
        if name not in args.models.split(","):
            continue
        cfg = load_config(path, [f"data.root={root}", f"output.dir={tmp / 'runs'}", "model.pretrained=false",
                                 f"train.device={args.device}", "data.cache_dir=" + str(tmp / "cache")]
                          + args.overrides)
        trainer = Trainer(cfg)
        rounds = []
        for _ in range(args.rounds):  # interleaved, so that a slow minute of a shared machine hits every column
            rounds.append((ceiling_rate(trainer, args.steps), emoclf_rate(trainer),
                           reference_rate(trainer, root, args.workers),
                           reference_rate(trainer, root, args.workers, same_layout=False)))
        a, b, c, c0 = (statistics.median(r[i] for r in rounds) for i in range(4))
        e = eval_rate(trainer)
        rows.append(f"{name:<14}{cfg.input_size:>5}{cfg.train.batch_size:>6}{a:>13.1f}{b:>12.1f}{c:>15.1f}"
                    f"{c0:>21.1f}{b / a:>7.2f}{b / c:>7.2f}{b / c0:>7.2f}{e:>12.1f}")
        print(rows[-1] if len(rows) > 1 else header + "\n" + rows[-1], flush=True)
        if args.rounds > 1:
            print("    rounds (a/b/c/c'): " + ", ".join("/".join(f"{v:.1f}" for v in r) for r in rounds), flush=True)
    if rows:
        print(f"device: {trainer.device}; rates in training images per second")
    if args.peak_memory:
        mb = peak_memory_mb(Path(args.data).resolve(), args.memory_config, args.memory_minutes, tmp / "mem",
                            args.device)
        print(f"peak resident memory of `emoclf train -c {args.memory_config}` on all of {args.data} "
              f"({args.memory_minutes} min): {mb:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
