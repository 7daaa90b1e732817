"""Torchvision classifiers (ResNet, MobileNetV3 and any other) adapted to emotion data."""
from __future__ import annotations

import functools
from typing import List

import torch.nn as nn

from emoclf.models.registry import register_model
from emoclf.models.surgery import replace_module


@functools.lru_cache(maxsize=1)
def torchvision_names() -> List[str]:
    """Names of torchvision's image-classification models."""
    import torchvision

    return list(torchvision.models.list_models(module=torchvision.models))


def _first_conv(model: nn.Module):
    return next((n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d))


def _last_linear(model: nn.Module):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)][-1]


def _adapt_input(model: nn.Module, in_channels: int) -> None:
    name, conv = _first_conv(model)
    if conv.in_channels == in_channels:
        return
    new = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode)
    replace_module(model, name, new)


def _small_stem(model: nn.Module) -> None:
    """Keep resolution in the stem (stride 1, no max-pool) so a 48 px face is not cut to 12 px at once."""
    _, conv = _first_conv(model)
    conv.stride = (1, 1)
    if isinstance(getattr(model, "maxpool", None), nn.MaxPool2d):
        model.maxpool = nn.Identity()


def _bn_momentum(model: nn.Module, momentum: float = 0.1) -> None:
    """PyTorch's default BatchNorm momentum where torchvision uses less.

    torchvision's MobileNetV3 and EfficientNet use 0.01, made for ImageNet runs of many thousand steps; over the
    few hundred steps of a small dataset their running statistics stay near their initial values, and the model
    scores at chance in evaluation mode while it learns in training mode.
    """
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.momentum is not None and m.momentum < momentum:
            m.momentum = momentum


def _extra_kwargs(name: str, image_size: int) -> dict:
    if name in ("googlenet", "inception_v3"):
        return {"aux_logits": False, "init_weights": True}
    if name.startswith("vit_"):
        return {"image_size": image_size}
    if name.startswith("maxvit"):
        return {"input_size": (image_size, image_size)}
    return {}


def build_torchvision(name: str, num_classes: int, in_channels: int = 3, image_size: int = 224,
                      stem: str = "auto", **_ignored) -> nn.Module:
    """A torchvision classifier with ``in_channels`` input, an optional small-image stem and a new head."""
    import torchvision

    model = torchvision.models.get_model(name, weights=None, **_extra_kwargs(name, image_size))
    _adapt_input(model, in_channels)
    _bn_momentum(model)
    if stem == "small" or (stem == "auto" and image_size < 96):
        _small_stem(model)
    head_name, head = _last_linear(model)
    replace_module(model, head_name, nn.Linear(head.in_features, num_classes))
    return model


@register_model("resnet18")
def build_resnet18(num_classes: int, in_channels: int = 3, **options) -> nn.Module:
    """ResNet-18 (11 M parameters)."""
    return build_torchvision("resnet18", num_classes, in_channels, **options)


@register_model("mobilenet_v3_small")
def build_mobilenet_v3_small(num_classes: int, in_channels: int = 3, **options) -> nn.Module:
    """MobileNetV3-Small (1.5 M parameters)."""
    return build_torchvision("mobilenet_v3_small", num_classes, in_channels, **options)


@register_model("mobilenet_v3_large")
def build_mobilenet_v3_large(num_classes: int, in_channels: int = 3, **options) -> nn.Module:
    """MobileNetV3-Large (4.2 M parameters)."""
    return build_torchvision("mobilenet_v3_large", num_classes, in_channels, **options)
