"""Model registry: ``@register_model(name)`` and ``build_model(name, num_classes, ...)``."""
from __future__ import annotations

import difflib
from typing import Callable, Dict, List

import torch.nn as nn

_REGISTRY: Dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable:
    """Decorator that registers a builder ``fn(num_classes, in_channels, **options) -> nn.Module``."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"Model '{name}' is registered twice.")
        _REGISTRY[name] = fn
        return fn

    return wrap


def registered_models() -> List[str]:
    """Names registered by emoclf itself (the ones tested on every change)."""
    return sorted(_REGISTRY)


def available_models() -> List[str]:
    """Every name ``build_model`` accepts: registered ones plus torchvision's classifiers."""
    from emoclf.models.tv import torchvision_names

    return sorted(set(_REGISTRY) | set(torchvision_names()))


def check_model_name(name: str) -> None:
    """Raise a ValueError that suggests close names when ``name`` is not a known model."""
    if name in _REGISTRY:
        return
    known = available_models()
    if name in known:
        return
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"Unknown model '{name}'.{hint} Registered: {', '.join(registered_models())}; "
                     f"also any torchvision classifier ({len(known) - len(_REGISTRY)} more, e.g. resnet50, "
                     f"efficientnet_b0, convnext_tiny).")


def build_model(name: str, num_classes: int, in_channels: int = 3, **options) -> nn.Module:
    """Build a registered model (or any torchvision classifier) with a ``num_classes`` head."""
    from emoclf.models.tv import build_torchvision

    check_model_name(name)
    if name in _REGISTRY:
        return _REGISTRY[name](num_classes=num_classes, in_channels=in_channels, **options)
    return build_torchvision(name, num_classes=num_classes, in_channels=in_channels, **options)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


from emoclf.models import cnn, tv  # noqa: E402,F401  (registers the built-in models)
