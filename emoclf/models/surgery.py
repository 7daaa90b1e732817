"""Small helpers to swap submodules and to find the classifier head."""
from __future__ import annotations

import torch.nn as nn


def replace_module(model: nn.Module, dotted: str, new: nn.Module) -> None:
    """Replace the submodule at dotted path ``dotted`` with ``new``."""
    parent_name, _, child = dotted.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def head_prefix(model: nn.Module) -> str:
    """Dotted name of the last Linear layer: the classifier head."""
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise ValueError(f"{type(model).__name__} has no Linear classifier head.")
    return names[-1]
