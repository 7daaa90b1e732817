"""Device choice and the per-batch work shared by training, evaluation and prediction."""
from __future__ import annotations

import contextlib
import os
import time
from typing import List, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from emoclf.config import TENCROP_FRACTION, TTA_MODES, crop_offsets
from emoclf.data.augment import Normalizer, center_crop


def select_device(name: str, option: str = "train.device") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then CPU; an explicit device must exist. ``option``: where the name
    came from (train.device, --device), for the messages."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"{option}={name!r} is not a device; use auto, cpu, cuda, cuda:N or mps.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{option}={name!r} but CUDA is not available here; use {option}=auto or cpu.")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"{option}={name!r} but only {torch.cuda.device_count()} CUDA device(s) exist.")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"{option}='mps' but Apple MPS is not available here; use {option}=auto or cpu.")
    return device


def amp_dtype(mode: str, device: torch.device) -> Optional[torch.dtype]:
    """Autocast dtype for ``train.amp`` on this device (None: full precision). On a CPU only ``bf16``, asked for by
    name: it is fast where the CPU computes in bf16 (AVX512-BF16, AMX) and slow where it is emulated, so ``auto``
    stays in full precision there."""
    if mode == "off" or device.type not in ("cuda", "cpu"):
        return None
    if device.type == "cpu":
        if mode == "fp16":
            raise ValueError("train.amp=fp16 needs a CUDA device; on a CPU use train.amp=bf16 (fast on CPUs with "
                             "AVX512-BF16 or AMX) or train.amp=off.")
        return torch.bfloat16 if mode == "bf16" else None
    if mode == "fp16":
        return torch.float16
    if mode == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def use_channels_last(mode: str, device: torch.device) -> bool:
    """``on``/``off`` as asked; ``auto``: on for CUDA and CPU (NHWC convolutions are faster on both), off on MPS;
    a fixed rule, not a timing, so runs stay reproducible."""
    if mode != "auto":
        return mode == "on"
    return device.type in ("cuda", "cpu")


def set_threads(n: int) -> None:
    """Use ``n`` CPU threads (0: every core this process may use)."""
    if n <= 0:
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(max(1, n))


def autocast(device: torch.device, dtype: Optional[torch.dtype]):
    """Mixed-precision context (a no-op without a dtype)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def resident(array: np.ndarray, device: torch.device, share: float = 0.3):
    """The array as a tensor on a CUDA device when it fits in ``share`` of its free memory; else unchanged."""
    if device.type != "cuda":
        return array
    free, _ = torch.cuda.mem_get_info(device)
    return torch.from_numpy(np.asarray(array)).to(device) if array.nbytes < share * free else array


def tta_views(x: torch.Tensor, mode: str, crop: int = 0) -> List[torch.Tensor]:
    """Views of a normalized batch averaged at test time: itself; its flip; or 5 crops (corners, centre) and flips.

    ``crop`` (``augment.crop``; 0: none): the model reads crop x crop inputs: the centre crop, its flip, or the
    centre and 4 corner crops of that size and their flips (tencrop at the crop size, nothing resized)."""
    if crop and x.shape[-1] != crop:
        if mode != "tencrop":
            return tta_views(center_crop(x, crop), mode)
        views = []
        for top, left in crop_offsets(x.shape[-1], crop):
            view = x[..., top:top + crop, left:left + crop]
            views += [view, view.flip(-1)]
        return views
    if mode == "none":
        return [x]
    if mode == "flip":
        return [x, x.flip(-1)]
    c, o = TENCROP_FRACTION, 1 - TENCROP_FRACTION
    views = []
    for tx, ty in ((0.0, 0.0), (-o, -o), (o, -o), (-o, o), (o, o)):
        theta = torch.tensor([[c, 0.0, tx], [0.0, c, ty]], dtype=x.dtype, device=x.device).expand(x.shape[0], 2, 3)
        crop = F.grid_sample(x, F.affine_grid(theta, list(x.shape), align_corners=False), mode="bilinear",
                             padding_mode="border", align_corners=False)
        views += [crop, crop.flip(-1)]
    return views


def model_views(x: torch.Tensor, mode: str, norm: Normalizer) -> List[torch.Tensor]:
    """The test-time views of a normalized batch at the size the model reads (``norm.crop``), in its memory format."""
    views = tta_views(x, mode, norm.crop)
    return [norm.layout(v) for v in views] if norm.crop else views  # a crop is a strided slice: lay it out again


def check_tta(mode) -> str:
    """Normalise a TTA setting (booleans mean flip) and reject unknown modes."""
    mode = {True: "flip", False: "none", None: "none"}.get(mode, mode)
    if mode not in TTA_MODES:
        raise ValueError(f"Unknown test-time augmentation {mode!r}; choose one of {', '.join(TTA_MODES)}.")
    return mode


@torch.inference_mode()
def predict_logits(model: nn.Module, images: np.ndarray, norm: Normalizer, batch_size: int,
                   dtype: Optional[torch.dtype] = None, tta="none", desc: Optional[str] = None) -> torch.Tensor:
    """Float32 CPU logits for every image; with TTA, log of the probabilities averaged over the views."""
    from tqdm import tqdm

    mode = check_tta(tta)
    if model.training:  # eval() walks every module: about 2.5 ms per call for MobileNetV3, a tenth of a prediction
        model.eval()
    out: List[torch.Tensor] = []
    starts = range(0, len(images), batch_size)
    for i in tqdm(starts, desc=desc, leave=False, disable=None if desc else True, unit="batch"):
        batch = images[i:i + batch_size]
        x = norm(batch if isinstance(batch, torch.Tensor) else torch.from_numpy(np.asarray(batch)))
        with autocast(norm.device, dtype):
            if mode == "none":
                out.append(model(norm.layout(center_crop(x, norm.crop))).float().cpu())
                continue
            views = model_views(x, mode, norm)
            probs = sum(F.softmax(model(v).float(), 1) for v in views) / len(views)
        out.append(probs.clamp_min(1e-12).log().cpu())
    if not out:
        return torch.zeros(0, 0)
    return torch.cat(out)


def make_scaler(device: torch.device, dtype: Optional[torch.dtype]):
    """Gradient scaler: active only for fp16 on CUDA."""
    enabled = device.type == "cuda" and dtype == torch.float16
    return torch.amp.GradScaler("cuda", enabled=enabled) if enabled else torch.amp.GradScaler("cpu", enabled=False)


def timed_inference(model: nn.Module, sample: np.ndarray, norm: Normalizer, dtype, repeats: int = 20,
                    tta: str = "none") -> float:
    """Milliseconds per single-image prediction (every test-time view) after warm-up."""
    model.eval()
    x = norm(torch.from_numpy(np.asarray(sample[:1])))
    views = model_views(x, check_tta(tta), norm)
    with torch.inference_mode(), autocast(norm.device, dtype):
        for _ in range(3):
            for v in views:
                model(v)
        if norm.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(repeats):
            for v in views:
                model(v)
        if norm.device.type == "cuda":
            torch.cuda.synchronize()
    return (time.perf_counter() - start) * 1000 / repeats
