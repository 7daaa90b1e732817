"""Models: ``build_model(name, num_classes, ...)`` for a registered name or any torchvision classifier."""
from __future__ import annotations

import difflib
from typing import List

import torch.nn as nn

from emoclf.models import cnn, tv  # noqa: F401  (importing them registers the built-in models)
from emoclf.models.registry import register_model, registered_builder, registered_models

__all__ = ["available_models", "build_model", "check_model_name", "count_parameters", "register_model",
           "registered_models"]


def available_models() -> List[str]:
    """Every name ``build_model`` accepts: registered ones plus torchvision's classifiers."""
    return sorted(set(registered_models()) | set(tv.torchvision_names()))


def check_model_name(name: str) -> None:
    """Raise a ValueError that suggests close names when ``name`` is not a known model."""
    if registered_builder(name) is not None:
        return
    known = available_models()
    if name in known:
        return
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"Unknown model '{name}'.{hint} Registered: {', '.join(registered_models())}; "
                     f"also any torchvision classifier ({len(known) - len(registered_models())} more, e.g. resnet50, "
                     f"efficientnet_b0, convnext_tiny).")


def build_model(name: str, num_classes: int, in_channels: int = 3, **options) -> nn.Module:
    """Build a registered model (or any torchvision classifier) with a ``num_classes`` head."""
    check_model_name(name)
    builder = registered_builder(name)
    if builder is not None:
        return builder(num_classes=num_classes, in_channels=in_channels, **options)
    return tv.build_torchvision(name, num_classes=num_classes, in_channels=in_channels, **options)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)

