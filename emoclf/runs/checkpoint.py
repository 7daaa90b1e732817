"""What a checkpoint holds (weights plus plain data) and how a model is rebuilt from one."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

import torch
import torch.nn as nn

from emoclf.config import Config, check_class_names, check_preprocessing, from_dict, to_dict
from emoclf.utils.files import load_checkpoint, save_checkpoint
from emoclf.utils.version import __version__

FORMAT = "emoclf-checkpoint"


def preprocessing(cfg: Config) -> Dict:
    """The preprocessing a model expects, as plain data."""
    from emoclf.data.augment import norm_stats

    mean, std = norm_stats(cfg.data.grayscale, cfg.data.mean, cfg.data.std)
    return {"image_size": cfg.data.image_size, "grayscale": cfg.data.grayscale, "aspect": cfg.data.aspect,
            "mean": mean, "std": std, "crop": cfg.augment.crop}  # crop: the side the model reads (0: image_size)


def make_checkpoint(model: nn.Module, cfg: Config, class_names: List[str], epoch: int, metrics: Dict,
                    extra: Dict = None) -> Dict:
    """A checkpoint dict: tensors and plain data only, loadable with ``weights_only=True``."""
    ckpt = {
        "format": FORMAT,
        "emoclf_version": __version__,
        "model_name": cfg.model.name,
        "class_names": list(class_names),
        "preprocessing": preprocessing(cfg),
        "epoch": int(epoch),
        "metrics": dict(metrics),
        "config": to_dict(cfg),
        "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    ckpt.update(extra or {})
    return ckpt


def save(ckpt: Dict, path: Path) -> None:
    """Write atomically (a kill never leaves a truncated file)."""
    save_checkpoint(ckpt, path)


def read(path: Path) -> Dict:
    """Load and check an emoclf checkpoint."""
    ckpt = load_checkpoint(path)
    if ckpt.get("format") != FORMAT or "model_state" not in ckpt or "config" not in ckpt:
        raise ValueError(f"{path} is not an emoclf checkpoint (no model_state/config). Pass a run folder or the "
                         f"best.pt/last.pt of one; plain weights go in model.weights_path instead.")
    return check_plain_data(ckpt, str(path))


def check_plain_data(ckpt: Dict, where: str) -> Dict:
    """Check the plain data of a checkpoint with the rules of a config: nothing read from a file is trusted."""
    if not isinstance(ckpt.get("config"), dict):
        raise ValueError(f"{where}: the config in it is not a mapping; the checkpoint is damaged.")
    try:
        from_dict(ckpt["config"])
    except ValueError as exc:
        raise ValueError(f"{where}: the config in it is invalid ({str(exc).rstrip('.')}). The checkpoint is damaged "
                         f"or was not written by emoclf.") from None
    check_class_names(ckpt.get("class_names"), where)
    ckpt["preprocessing"] = check_preprocessing(ckpt.get("preprocessing"), where)
    if not isinstance(ckpt["model_state"], dict):
        raise ValueError(f"{where}: model_state is not a state dict; the checkpoint is damaged.")
    return ckpt


def model_from_checkpoint(ckpt: Dict, source: str = "checkpoint") -> Tuple[nn.Module, Config]:
    """Rebuild the exact model of a checkpoint and load its weights (no download)."""
    from emoclf.models.factory import architecture

    cfg = from_dict(ckpt["config"])
    names = ckpt["class_names"]
    m = cfg.model
    model = architecture(cfg, len(names))
    try:
        model.load_state_dict(ckpt["model_state"], strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0][:200]
        raise ValueError(f"The weights in {source} do not fit model '{m.name}' with {len(names)} classes "
                         f"({first}). The checkpoint is damaged or from another model.") from None
    model.eval()
    return model, cfg


def place_model(model: nn.Module, device: torch.device, channels_last: bool) -> nn.Module:
    """Move a model to ``device`` in the memory format the batches will use."""
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model
