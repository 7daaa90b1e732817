"""Optimizers, learning-rate schedules and the loss, as the config asks."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn

from emoclf.config import Config
from emoclf.data.dataset import Split, class_counts


def make_optimizer(cfg: Config, model: nn.Module) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD (Nesterov momentum unless train.nesterov=false) over the trainable parameters (no weight
    decay on norms and biases)."""
    t = cfg.train
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": t.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if t.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=t.lr, momentum=t.momentum, nesterov=t.nesterov and t.momentum > 0)
    if t.optimizer == "adam":
        return torch.optim.Adam(groups, lr=t.lr)
    return torch.optim.AdamW(groups, lr=t.lr)


def scheduled_lr(cfg: Config, epoch: float, time_fraction: float = 0.0) -> float:
    """Learning rate at fractional ``epoch`` (0-based) for warm-up then cosine/step/none; plateau adapts separately.

    With a time limit, cosine follows whichever is further along, epochs or the time budget, so a
    run cut short by ``train.time_limit`` still ends at a low learning rate.
    With ``train.swa_epochs`` and ``train.swa_lr``, the last epochs hold ``swa_lr`` and cosine anneals to it by
    their start (the schedule of stochastic weight averaging).
    """
    t = cfg.train
    if epoch < t.warmup_epochs:
        return t.lr * max(epoch / t.warmup_epochs, 0.01)
    swa_start, floor = t.epochs, 0.0
    if t.swa_epochs and t.swa_lr:
        swa_start, floor = t.epochs - t.swa_epochs, t.swa_lr
        if epoch >= swa_start:
            return t.swa_lr
    if t.scheduler == "cosine":
        span = max(1, swa_start - t.warmup_epochs)
        progress = min(1.0, max((epoch - t.warmup_epochs) / span, time_fraction))
        return floor + (t.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    if t.scheduler == "step":
        return t.lr * t.gamma ** (int(epoch - t.warmup_epochs) // t.step_size)
    return t.lr


def make_loss(cfg: Config, train: Split, num_classes: int, device: torch.device) -> nn.Module:
    """Cross-entropy with optional label smoothing and balanced class weights."""
    weight = None
    if cfg.train.class_weights == "balanced":
        counts = class_counts(train, num_classes).astype(np.float64)
        weight = torch.tensor(counts.sum() / (num_classes * np.maximum(counts, 1)), dtype=torch.float32, device=device)
    return nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.train.label_smoothing)


def mixed_loss(loss_fn: nn.Module, logits: torch.Tensor, y: torch.Tensor, y_other: torch.Tensor,
               share: float) -> torch.Tensor:
    """The loss of mixed targets: ``share`` of the loss against ``y`` plus the rest against ``y_other`` (equal to the
    cross-entropy of the blended one-hot targets, and keeping label smoothing and class weights as they are)."""
    return share * loss_fn(logits, y) + (1.0 - share) * loss_fn(logits, y_other)
