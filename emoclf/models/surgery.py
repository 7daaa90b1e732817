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


def fold_batchnorm(model: nn.Module) -> int:
    """Fold each eval-mode BatchNorm2d into the Conv2d just before it in a Sequential; returns how many were folded.

    For inference only (a copy of the weights is made per pair; the module tree keeps its shape, the BatchNorm becomes
    an Identity): the outputs match the unfolded model to float rounding, one normalization pass fewer per layer.
    Pairs outside a Sequential (such as ResNet's conv1/bn1 attributes) are left alone: their order is not known.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    folded = 0
    for seq in list(model.modules()):
        if not isinstance(seq, nn.Sequential):
            continue
        for i in range(len(seq) - 1):
            conv, bn = seq[i], seq[i + 1]
            if (type(conv) is nn.Conv2d and type(bn) is nn.BatchNorm2d and not conv.training and not bn.training
                    and bn.running_mean is not None and conv.out_channels == bn.num_features):
                seq[i], seq[i + 1] = fuse_conv_bn_eval(conv, bn), nn.Identity()
                folded += 1
    return folded
