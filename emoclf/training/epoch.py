"""One pass of optimisation over the training set (the loop every model shares), its progress bar and deadline."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable, List, Optional

import numpy as np
import torch
import torch.nn as nn

from emoclf.data.augment import BatchAugment, BatchMix, Normalizer
from emoclf.engine import autocast
from emoclf.training.averaging import WeightEMA
from emoclf.training.optim import mixed_loss
from emoclf.utils import distributed as dd


@dataclass
class Learner:
    """What an optimisation step needs: the model and how it learns, and how a uint8 batch becomes its input."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: nn.Module
    scaler: torch.amp.GradScaler  # active only for fp16 on CUDA (engine.make_scaler)
    dtype: Optional[torch.dtype]  # autocast dtype; None: full precision
    norm: Normalizer  # knows the device the batches go to
    augment: BatchAugment
    mix: Optional[BatchMix] = None  # mixup / CutMix of whole batches (augment.mixup, augment.cutmix)
    ema: Optional[WeightEMA] = None  # updated after every step (train.ema)


def host_to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Host tensor to ``device``; through pinned memory on CUDA so the copy never stalls the GPU queue."""
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def fetch_batch(images, labels, idx: np.ndarray, device: torch.device):
    """A uint8 batch and its labels on ``device``, from host arrays or from tensors resident on the device."""
    if isinstance(images, torch.Tensor):
        i = host_to_device(torch.from_numpy(idx), images.device)
        return images[i], labels[i]
    idx = np.sort(idx) if isinstance(images, np.memmap) else idx  # sequential reads from a memory map
    return host_to_device(torch.from_numpy(images[idx]), device), host_to_device(torch.from_numpy(labels[idx]), device)


@dataclass
class EpochResult:
    """Summed loss, image count and the labels/predictions seen in one pass."""

    loss_sum: float
    count: int
    y_true: np.ndarray
    y_pred: np.ndarray
    seconds: float


class Progress:
    """tqdm bar over one epoch with live loss and accuracy (synchronising with the GPU only every few steps)."""

    def __init__(self, total: int, desc: str, enabled: bool = True):
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=desc, unit="img", leave=False, disable=None if enabled else True,
                        dynamic_ncols=True)
        self.steps, self.loss, self.correct, self.seen = 0, 0.0, 0, 0

    def __call__(self, n: int, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        self.bar.update(n)
        self.steps += 1
        if self.bar.disable or self.steps % 25:  # reading the loss waits for the GPU: not every step
            return
        self.loss = float(loss)
        self.correct += int((logits.argmax(1) == y).sum())
        self.seen += n
        self.bar.set_postfix(loss=f"{self.loss:.3f}", acc=f"{self.correct / max(self.seen, 1):.3f}")

    def close(self) -> None:
        self.bar.close()


def until_deadline(steps, deadline: float, info: dd.DistInfo):
    """Stop at the deadline, after at least one step (an epoch is never empty); under torchrun every process
    stops at the same step (the slowest one's verdict)."""
    for i, idx in enumerate(steps):
        late = i > 0 and time.perf_counter() >= deadline
        if dd.all_sum([float(late)], info)[0] > 0:
            return
        yield idx


def train_epoch(learner: Learner, images, labels, order_batches: Iterable[np.ndarray], gen: torch.Generator,
                progress: Optional[Callable] = None, on_step: Optional[Callable[[int], object]] = None) -> EpochResult:
    """One pass of optimisation over ``order_batches`` (index arrays into ``images``)."""
    model, optimizer, scaler, norm = learner.model, learner.optimizer, learner.scaler, learner.norm
    model.train()
    start, total_loss, count = time.perf_counter(), 0.0, 0
    trues: List[torch.Tensor] = []
    preds: List[torch.Tensor] = []
    device = norm.device
    for step, idx in enumerate(order_batches):
        if on_step is not None:
            on_step(step)
        x, y = fetch_batch(images, labels, idx, device)
        x = learner.augment(x, norm, gen)
        y_other, share = None, 1.0
        if learner.mix is not None and learner.mix.enabled:
            x, y_other, share = learner.mix(x, y, gen)
            x = norm.layout(x)
        with autocast(device, learner.dtype):
            logits = model(x)
            loss = learner.loss_fn(logits.float(), y) if y_other is None else \
                mixed_loss(learner.loss_fn, logits.float(), y, y_other, share)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        if learner.ema is not None:
            learner.ema.update()
        n = len(idx)
        total_loss += loss.detach() * n if device.type != "cpu" else loss.item() * n
        count += n
        preds.append(logits.detach().argmax(1))
        trues.append(y)  # as fetched: a memory-mapped read sorts the batch
        if progress is not None:
            progress(n, loss, logits, y)
    y_pred = torch.cat(preds).cpu().numpy() if preds else np.zeros(0, dtype=np.int64)
    y_true = torch.cat(trues).cpu().numpy() if trues else np.zeros(0, dtype=np.int64)
    return EpochResult(float(total_loss), count, y_true, y_pred, time.perf_counter() - start)
