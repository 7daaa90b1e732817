"""The model registry: ``@register_model(name)`` records a builder under a name."""
from __future__ import annotations

from typing import Callable, Dict, List, Optional

import torch.nn as nn

Builder = Callable[..., nn.Module]
_REGISTRY: Dict[str, Builder] = {}


def register_model(name: str) -> Callable[[Builder], Builder]:
    """Decorator that registers a builder ``fn(num_classes, in_channels, **options) -> nn.Module``."""

    def wrap(fn: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"Model '{name}' is registered twice.")
        _REGISTRY[name] = fn
        return fn

    return wrap


def registered_models() -> List[str]:
    """Names registered by emoclf itself (the ones tested on every change)."""
    return sorted(_REGISTRY)


def registered_builder(name: str) -> Optional[Builder]:
    """The builder registered under ``name``, or None."""
    return _REGISTRY.get(name)
