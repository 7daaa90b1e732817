"""Averages of the weights that score better than the last step's: an exponential moving average, and stochastic
weight averaging (torch.optim.swa_utils) with BatchNorm statistics refreshed on the training images."""
from __future__ import annotations

import copy
from typing import Dict, Iterator

import numpy as np
import torch
import torch.nn as nn
from torch.optim.swa_utils import AveragedModel, update_bn

from emoclf.data.augment import Normalizer, center_crop


def ema_decay(decay: float, updates: int) -> float:
    """The decay of the ``updates``-th update: ``decay``, lower while few steps are averaged (TensorFlow's
    ``num_updates`` rule, (1 + n) / (10 + n)), so that a short run does not score its random starting weights."""
    return min(decay, (1.0 + updates) / (10.0 + updates))


class WeightEMA:
    """An exponential moving average of a model's weights and floating-point buffers (BatchNorm running statistics
    included); integer buffers (BatchNorm's batch count) are copied. ``module`` is the averaged model."""

    def __init__(self, source: nn.Module, decay: float):
        self.source, self.decay, self.updates = source, decay, 0
        self.module = copy.deepcopy(source).eval().requires_grad_(False)
        self.pairs = self._pairs()  # the same tensors all along: loading a state copies into them

    def _pairs(self):
        own = list(self.module.parameters()) + list(self.module.buffers())
        theirs = list(self.source.parameters()) + list(self.source.buffers())
        floats = [(a, b) for a, b in zip(own, theirs) if a.dtype.is_floating_point]
        others = [(a, b) for a, b in zip(own, theirs) if not a.dtype.is_floating_point]
        return floats, others

    @torch.no_grad()
    def update(self) -> None:
        """One step: ``ema = d * ema + (1 - d) * weights``, d from :func:`ema_decay`."""
        self.updates += 1
        d = ema_decay(self.decay, self.updates)
        floats, others = self.pairs
        if floats:
            torch._foreach_lerp_([a for a, _ in floats], [b.detach() for _, b in floats], 1.0 - d)
        if others:  # BatchNorm's batch counts: one fused copy, not a kernel per layer
            torch._foreach_copy_([a for a, _ in others], [b for _, b in others])

    def state_dict(self) -> Dict:
        """Tensors and plain numbers only (a checkpoint entry)."""
        return {"model_state": {k: v.detach().cpu() for k, v in self.module.state_dict().items()},
                "updates": self.updates}

    def load_state_dict(self, state: Dict) -> None:
        """Continue from :meth:`state_dict`."""
        self.module.load_state_dict(state["model_state"])
        self.updates = int(state["updates"])


class WeightSWA:
    """Stochastic weight averaging: the equal average of the weights after each epoch of its phase
    (``torch.optim.swa_utils.AveragedModel``), its BatchNorm statistics recomputed on the training images by
    :meth:`refresh` (``update_bn``). ``module`` is the averaged model."""

    def __init__(self, source: nn.Module):
        self.source = source
        self.averaged = AveragedModel(source)
        self.averaged.requires_grad_(False)

    @property
    def module(self) -> nn.Module:
        """The averaged network (the same architecture and state-dict keys as the source)."""
        return self.averaged.module

    @property
    def count(self) -> int:
        """Epochs averaged so far."""
        return int(self.averaged.n_averaged)

    def update(self) -> None:
        """Add the source's current weights to the average."""
        self.averaged.update_parameters(self.source)

    def refresh(self, images, norm: Normalizer, batch_size: int) -> None:
        """BatchNorm running statistics of the averaged weights, as one pass over ``images`` (unaugmented, at the
        size the model reads) makes them."""
        with torch.no_grad():
            update_bn(_inputs(images, norm, batch_size), self.module)
        self.module.eval()

    def state_dict(self) -> Dict:
        """Tensors only (a checkpoint entry)."""
        return {k: v.detach().cpu() for k, v in self.averaged.state_dict().items()}

    def load_state_dict(self, state: Dict) -> None:
        """Continue from :meth:`state_dict`."""
        self.averaged.load_state_dict(state)


def _inputs(images, norm: Normalizer, batch_size: int) -> Iterator[torch.Tensor]:
    """Normalized batches of ``images`` in order, as scoring reads them (the centre crop when the model crops)."""
    for i in range(0, len(images), batch_size):
        batch = images[i:i + batch_size]
        x = norm(batch if isinstance(batch, torch.Tensor) else torch.from_numpy(np.asarray(batch)))
        yield norm.layout(center_crop(x, norm.crop))


TRAIN_STATE = "train_model_state"  # last.pt: the weights being optimised, when "model_state" holds an average


class Averages:
    """The weight average a run keeps (``train.ema`` or ``train.swa_epochs``; none by default), and the weights it
    scores: the average when there is one, else the model being trained."""

    def __init__(self, cfg, source: nn.Module):
        t = cfg.train
        self.source = source
        self.ema = WeightEMA(source, t.ema) if t.ema else None
        self.swa = WeightSWA(source) if t.swa_epochs else None
        self.swa_start = t.epochs - t.swa_epochs  # 0-based epoch from which SWA averages (and holds swa_lr)

    def in_swa(self, epoch: float) -> bool:
        """Whether (0-based, fractional) ``epoch`` lies in the SWA phase."""
        return self.swa is not None and epoch >= self.swa_start

    @property
    def scored(self) -> nn.Module:
        """The weights that are validated and saved in best.pt."""
        if self.swa is not None and self.swa.count:
            return self.swa.module
        return self.ema.module if self.ema is not None else self.source

    def end_epoch(self, epoch: int, images, norm: Normalizer, batch_size: int) -> None:
        """After training 0-based ``epoch``: in the SWA phase, add the weights to the average and refresh its
        BatchNorm statistics on ``images`` (the training images)."""
        if self.in_swa(epoch):
            self.swa.update()
            self.swa.refresh(images, norm, batch_size)

    def state(self) -> Dict:
        """Checkpoint entries that let --resume continue the average exactly."""
        out: Dict = {}
        if self.scored is not self.source:
            out[TRAIN_STATE] = {k: v.detach().cpu() for k, v in self.source.state_dict().items()}
        if self.ema is not None:
            out["ema_state"] = self.ema.state_dict()
        if self.swa is not None:
            out["swa_state"] = self.swa.state_dict()
        return out

    def load(self, ckpt: Dict) -> None:
        """Restore the trained weights and the average from a last.pt written by :meth:`state`."""
        self.source.load_state_dict(ckpt.get(TRAIN_STATE, ckpt["model_state"]))
        if self.ema is not None:
            self.ema.load_state_dict(ckpt["ema_state"])
        if self.swa is not None:
            self.swa.load_state_dict(ckpt["swa_state"])
