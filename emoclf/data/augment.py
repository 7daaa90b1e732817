"""Batch-level preprocessing and augmentation on tensors (CPU or GPU), no worker processes needed."""
from __future__ import annotations

import functools
import math
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from emoclf.config import AugmentConfig, crop_offsets, preprocessing_crop

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
GRAY_MEAN, GRAY_STD = [0.449], [0.226]  # ImageNet's channel averages, for 1-channel input


def norm_stats(grayscale: bool, mean: Optional[Sequence[float]], std: Optional[Sequence[float]]):
    """Resolved (mean, std) lists for the input's channel count."""
    channels = 1 if grayscale else 3
    mean = list(mean) if mean else (GRAY_MEAN if grayscale else IMAGENET_MEAN)
    std = list(std) if std else (GRAY_STD if grayscale else IMAGENET_STD)
    mean = (mean * channels)[:channels] if len(mean) == 1 else mean
    std = (std * channels)[:channels] if len(std) == 1 else std
    return mean, std


class Normalizer:
    """uint8 batch -> float batch, scaled to 0..1 and normalized per channel.

    ``crop``: the side the model reads (``augment.crop``; 0: the whole image); the batch keeps its size and the
    test-time views (engine.tta_views) cut the crops from it."""

    def __init__(self, mean: List[float], std: List[float], device: torch.device, channels_last: bool = False,
                 crop: int = 0):
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1)
        self.device = device
        self.channels_last = channels_last
        self.crop = crop

    @classmethod
    def for_preprocessing(cls, prep: dict, device: torch.device, channels_last: bool = False) -> "Normalizer":
        """The normalizer of a checkpoint's preprocessing (mean, std and crop)."""
        return cls(prep["mean"], prep["std"], device, channels_last, preprocessing_crop(prep))

    def to_unit(self, x: torch.Tensor) -> torch.Tensor:
        """Move to the device and scale to 0..1 float."""
        return x.to(self.device, non_blocking=True).float().div_(255.0)

    def normalize(self, x: torch.Tensor, scale: Optional[torch.Tensor] = None, shift: Optional[torch.Tensor] = None,
                  clamp: bool = False, layout: bool = True) -> torch.Tensor:
        """Normalize a 0..1 batch after an optional per-image ``x * scale + shift`` (clamped to 0..1).

        The jitter, the clamp and the normalization are folded into one multiply-add and one clamp, so the
        batch is read and written twice instead of six times.
        """
        a = 1.0 / self.std if scale is None else scale / self.std
        b = -self.mean / self.std if shift is None else (shift - self.mean) / self.std
        x = torch.addcmul(b, x, a)
        if clamp:
            x = x.clamp_(-self.mean / self.std, (1.0 - self.mean) / self.std)
        return self.layout(x) if layout else x

    def layout(self, x: torch.Tensor) -> torch.Tensor:
        """The memory format the model prefers."""
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalize(self.to_unit(x))


@functools.lru_cache(maxsize=8)
def _base_grid(h: int, w: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """x and y of each output pixel centre in [-1, 1] (align_corners=False), 2 x H*W, as F.affine_grid uses."""
    xs = (torch.arange(w, dtype=torch.float64) * 2 + 1) / w - 1
    ys = (torch.arange(h, dtype=torch.float64) * 2 + 1) / h - 1
    return torch.stack([xs.view(1, w).expand(h, w), ys.view(h, 1).expand(h, w)]).reshape(2, h * w).to(device, dtype)


def affine_grid(theta: torch.Tensor, n: int, h: int, w: int) -> torch.Tensor:
    """``F.affine_grid(theta, (n, C, h, w), align_corners=False)`` from a cached base grid.

    F.affine_grid builds an N x H x W x 3 base for every call, and a matrix product's output here would come out
    transposed, which grid_sample reads twice as slowly; two multiply-adds per coordinate write the grid in order
    (64 x 96 x 96 on a 2-core CPU: 1.5 ms instead of 4.4).
    """
    xs, ys = _base_grid(h, w, theta.device, theta.dtype)
    grid = torch.empty(n, h * w, 2, device=theta.device, dtype=theta.dtype)
    for j in range(2):
        torch.addcmul(theta[:, j, 2:3], theta[:, j, 0:1], xs, out=grid[..., j]).addcmul_(theta[:, j, 1:2], ys)
    return grid.view(n, h, w, 2)


def _span(u: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    return u * (hi - lo) + lo


def center_crop(x: torch.Tensor, crop: int) -> torch.Tensor:
    """The centre ``crop`` x ``crop`` of a batch (the batch itself when it is that size already, or crop is 0)."""
    if not crop or x.shape[-1] == crop:
        return x
    top, left = crop_offsets(x.shape[-1], crop)[0]
    return x[..., top:top + crop, left:left + crop]


def with_crop(theta: torch.Tensor, u: torch.Tensor, size: int, crop: int) -> torch.Tensor:
    """``theta`` followed by a random ``crop`` x ``crop`` crop at whole-pixel offsets (uniform in 0..size-crop, from
    the draws ``u``, 2 x N): the affine map from crop coordinates to the input's, so one resampling does both."""
    offset = (u * (size - crop + 1)).floor().clamp(max=size - crop)  # 2 x N: left, top
    shift = (2 * offset + crop) / size - 1  # crop centre in the input's normalized coordinates
    out = theta.clone()
    out[:, :, :2] = theta[:, :, :2] * (crop / size)
    out[:, :, 2] = theta[:, :, 2] + theta[:, :, 0] * shift[0].view(-1, 1) + theta[:, :, 1] * shift[1].view(-1, 1)
    return out


class BatchAugment:
    """Random flip, rotation, shift, zoom, brightness/contrast and erasing for a 0..1 batch.

    All random numbers of a batch are drawn at once on the CPU (seeded, identical on every device) and
    moved in one non-blocking copy, so a GPU never waits on the host between steps.
    """

    DRAWS = 12  # flip, angle, zoom, shift x, shift y, contrast, brightness, erase?, area, ratio, top, left

    def __init__(self, cfg: AugmentConfig):
        self.cfg = cfg

    def _draw(self, n: int, gen: torch.Generator, device: torch.device, rows: int = DRAWS) -> torch.Tensor:
        u = torch.rand(rows, n, generator=gen)
        if device.type == "cuda":
            return u.pin_memory().to(device, non_blocking=True)
        return u.to(device)

    def geometry(self, x: torch.Tensor, u: torch.Tensor, crop_u: Optional[torch.Tensor] = None) -> torch.Tensor:
        """One affine resampling for flip, rotation, shift, zoom and the random crop (zeros outside, like padded
        crops); with ``augment.crop`` the output is crop x crop."""
        c = self.cfg
        flip = (u[0] < 0.5) if c.hflip else torch.zeros_like(u[0], dtype=torch.bool)
        if not (c.rotation or c.translate or c.scale or c.crop):
            return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x) if c.hflip else x
        angle = _span(u[1], -c.rotation, c.rotation) * (math.pi / 180)
        zoom = _span(u[2], 1 - c.scale, 1 + c.scale)
        tx, ty = _span(u[3], -2 * c.translate, 2 * c.translate), _span(u[4], -2 * c.translate, 2 * c.translate)
        fx = 1.0 - 2.0 * flip.float()
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        theta = torch.stack([torch.stack([cos * fx, -sin, tx], 1), torch.stack([sin * fx, cos, ty], 1)], 1)
        n, _, h, w = x.shape
        if c.crop:
            theta, h, w = with_crop(theta, crop_u, w, c.crop), c.crop, c.crop
        grid = affine_grid(theta.to(x.dtype), n, h, w)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def photometric(self, x: torch.Tensor, u: torch.Tensor):
        """Per-image contrast then brightness jitter as (scale, shift): ``((x - m) * c + m) * b``, m the image mean."""
        c = self.cfg
        n = x.shape[0]
        scale, shift = torch.ones(n, 1, 1, 1, device=x.device), torch.zeros(n, 1, 1, 1, device=x.device)
        if c.contrast:
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            scale = _span(u[5], 1 - c.contrast, 1 + c.contrast).view(-1, 1, 1, 1)
            shift = mean * (1 - scale)
        if c.brightness:
            bright = _span(u[6], 1 - c.brightness, 1 + c.brightness).view(-1, 1, 1, 1)
            scale, shift = scale * bright, shift * bright
        return scale, shift

    def erase(self, x: torch.Tensor, u: torch.Tensor, vectorized: bool = False) -> torch.Tensor:
        """Random erasing (torchvision's defaults: 2-33% of the area, aspect 0.3-3.3), value 0 after normalization.

        On a GPU (or with ``vectorized``) one mask for the whole batch, with no host synchronization; on a CPU one
        slice per erased image. Both erase the same pixels.
        """
        p, (_, _, h, w) = self.cfg.erasing, x.shape
        if not p:
            return x
        area = _span(u[8], 0.02, 0.33) * h * w
        ratio = torch.exp(_span(u[9], math.log(0.3), math.log(3.3)))
        eh = torch.sqrt(area * ratio).clamp(1, h).floor().view(-1, 1, 1)
        ew = torch.sqrt(area / ratio).clamp(1, w).floor().view(-1, 1, 1)
        y0 = (u[10].view(-1, 1, 1) * (h - eh + 1)).floor()
        x0 = (u[11].view(-1, 1, 1) * (w - ew + 1)).floor()
        chosen = u[7] < p
        if x.device.type == "cpu" and not vectorized:
            # One slice per erased image: a quarter of the time of building and applying the full mask on a CPU.
            rows = torch.stack([y0.flatten(), eh.flatten(), x0.flatten(), ew.flatten()], 1)[chosen].long().tolist()
            for i, (top, height, left, width) in zip(chosen.nonzero().flatten().tolist(), rows):
                x[i, :, top:top + height, left:left + width] = 0.0
            return x
        ys = torch.arange(h, device=x.device).view(1, h, 1)
        xs = torch.arange(w, device=x.device).view(1, 1, w)
        box = (ys >= y0) & (ys < y0 + eh) & (xs >= x0) & (xs < x0 + ew) & chosen.view(-1, 1, 1)
        return x.masked_fill_(box.unsqueeze(1), 0.0)  # in place: keeps the memory format, x is a fresh tensor

    def __call__(self, x: torch.Tensor, norm: Normalizer, gen: torch.Generator) -> torch.Tensor:
        """uint8 batch -> augmented, normalized float batch."""
        # One draw and one copy per batch; the crop's two rows come after the others, and only with crops: runs
        # without them keep their random stream (a 14-row draw equals a 12-row draw followed by a 2-row one).
        u = self._draw(x.shape[0], gen, norm.device, self.DRAWS + (2 if self.cfg.crop else 0))
        u, crop_u = u[:self.DRAWS], (u[self.DRAWS:] if self.cfg.crop else None)
        x = self.geometry(norm.to_unit(x), u, crop_u)
        jitter = bool(self.cfg.contrast or self.cfg.brightness)
        scale, shift = self.photometric(x, u) if jitter else (None, None)
        return self.erase(norm.normalize(x, scale, shift, clamp=jitter), u)


class BatchMix:
    """Mixup and CutMix of a normalized batch: each image blended with (or given a box of) another image of the
    batch, one random pairing and one share per batch (as in the papers).

    The share and the box are drawn on the CPU from the seeded generator and applied with plain tensor operations,
    so a GPU never waits on the host.
    """

    def __init__(self, cfg: AugmentConfig):
        self.cfg = cfg

    @property
    def enabled(self) -> bool:
        """Whether batches are mixed at all."""
        return bool(self.cfg.mixup or self.cfg.cutmix)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator
                 ) -> Tuple[torch.Tensor, torch.Tensor, float]:
        """(mixed batch, the labels of the other images, the share of each image's own label)."""
        c, n = self.cfg, x.shape[0]
        rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=gen)))
        perm = torch.randperm(n, generator=gen).to(x.device, non_blocking=True)
        cutmix = bool(c.cutmix) and (not c.mixup or rng.random() < 0.5)
        share = float(rng.beta(c.cutmix, c.cutmix) if cutmix else rng.beta(c.mixup, c.mixup))
        if cutmix:
            h, w = x.shape[-2:]
            cut_h, cut_w = int(h * math.sqrt(1 - share)), int(w * math.sqrt(1 - share))
            cy, cx = int(rng.integers(h)), int(rng.integers(w))
            top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, h)
            left, right = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, w)
            x = x.clone()
            x[..., top:bottom, left:right] = x[perm][..., top:bottom, left:right]
            share = 1.0 - (bottom - top) * (right - left) / (h * w)  # the area actually pasted
        else:
            x = x * share + x[perm] * (1.0 - share)
        return x, y[perm], share


def mixed_targets(y: torch.Tensor, y_other: torch.Tensor, share: float, num_classes: int) -> torch.Tensor:
    """The blended one-hot targets of a mixed batch (each row sums to 1)."""
    return F.one_hot(y, num_classes).float() * share + F.one_hot(y_other, num_classes).float() * (1.0 - share)
