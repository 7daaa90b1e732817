"""Build the configured model and give it its starting weights (ImageNet, a local file, or none)."""
from __future__ import annotations

import logging
import urllib.error
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn

from emoclf.config import Config
from emoclf.models import build_model
from emoclf.models.surgery import head_prefix
from emoclf.utils.files import load_checkpoint

log = logging.getLogger(__name__)


def imagenet_state_dict(name: str) -> Dict[str, torch.Tensor]:
    """torchvision's ImageNet weights for ``name``, from the torch cache or downloaded once into it."""
    import torchvision

    try:
        weights = torchvision.models.get_model_weights(name).DEFAULT
    except (ValueError, KeyError):
        raise ValueError(f"Model '{name}' has no pretrained ImageNet weights; set model.pretrained=false "
                         f"(or model.weights_path=FILE).") from None
    url = weights.url
    target = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(url, str(target), hash_prefix=None, progress=True)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RuntimeError(
                f"Could not download the ImageNet weights of {name} from {url} ({reason}). Without internet, "
                f"download that file on a connected machine and put it at {target}, or pass "
                f"--set model.weights_path=/path/to/{target.name}; or train from scratch with "
                f"--set model.pretrained=false.") from None
    return load_checkpoint(target)


def state_dict_from_file(path: str) -> Dict[str, torch.Tensor]:
    """Model weights from a torchvision state dict or an emoclf checkpoint, loaded safely."""
    obj = load_checkpoint(Path(path).expanduser())
    for key in ("model_state", "state_dict", "model"):
        if isinstance(obj.get(key), dict):
            return obj[key]
    return obj


def starting_state(cfg: Config) -> Optional[Tuple[Dict[str, torch.Tensor], str]]:
    """The starting weights ``cfg.model`` asks for and where they come from: model.weights_path, else ImageNet's
    (downloaded once) when model.pretrained, else None (random initialisation)."""
    m = cfg.model
    if m.weights_path:
        return state_dict_from_file(m.weights_path), m.weights_path
    if m.pretrained:
        return imagenet_state_dict(m.name), f"torchvision's ImageNet {m.name}"
    return None


def load_matching(model: nn.Module, state: Dict[str, torch.Tensor], source: str) -> List[str]:
    """Load every tensor whose name and shape fit (3-channel stems summed to 1 channel); return skipped names."""
    own = model.state_dict()
    state = {k.removeprefix("module.").removeprefix("_orig_mod."): v for k, v in state.items()}
    fitted, skipped = {}, []
    for key, value in state.items():
        if key not in own or not isinstance(value, torch.Tensor):
            skipped.append(key)
        elif value.shape == own[key].shape:
            fitted[key] = value
        elif (value.dim() == 4 and value.shape[1] == 3 and own[key].shape[1] == 1
              and value.shape[0] == own[key].shape[0]):
            fitted[key] = value.sum(dim=1, keepdim=True)  # grayscale stem: same response to a gray image
        else:
            skipped.append(key)
    weights = [k for k in own if k.endswith("weight")]
    if not any(k in fitted for k in weights):
        raise ValueError(f"The weights in {source} do not fit model {type(model).__name__}: no tensor name and "
                         f"shape matches. Check model.name against the file.")
    model.load_state_dict(fitted, strict=False)
    if skipped:
        log.info("Loaded %d tensors from %s; skipped %d (e.g. %s)", len(fitted), source, len(skipped), skipped[0])
    return skipped


def freeze_backbone(model: nn.Module) -> None:
    """Train only the classifier head (feature extraction)."""
    head = head_prefix(model)
    for name, p in model.named_parameters():
        p.requires_grad = name.startswith(head + ".")


def architecture(cfg: Config, num_classes: int) -> nn.Module:
    """The network ``cfg.model`` describes, randomly initialised."""
    m = cfg.model
    return build_model(m.name, num_classes, in_channels=1 if cfg.data.grayscale else 3,
                       image_size=cfg.data.image_size, stem=m.stem, dropout=m.dropout, width=m.width, depth=m.depth,
                       norm=m.norm, channels=m.channels)


def create_model(cfg: Config, num_classes: int) -> nn.Module:
    """The model ``cfg.model`` describes, with its starting weights and frozen parts."""
    m = cfg.model
    model = architecture(cfg, num_classes)
    start = starting_state(cfg)
    if start is not None:
        load_matching(model, *start)
    if m.freeze == "backbone":
        if start is None:
            log.warning("model.freeze=backbone with random starting weights: only the head will learn, on "
                        "random features. Set model.pretrained=true (or model.weights_path), or model.freeze=none.")
        freeze_backbone(model)
    return model
