"""Grad-CAM: where in the face (or image) a model found the evidence for a class."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

log = logging.getLogger(__name__)
VIEW = 224  # side in pixels of the picture a heat map is drawn over


def _holds_conv(module: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in module.modules())


def target_layer(model: nn.Module, example: torch.Tensor) -> Tuple[str, nn.Module]:
    """The last module, in execution order, that holds a Conv2d and outputs a spatial map (N x C x H x W)."""
    finished: List[Tuple[str, tuple]] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out, n=name: finished.append((n, tuple(out.shape))))
             for name, m in model.named_modules() if name and _holds_conv(m)]
    try:
        with torch.no_grad():
            model.eval()(example)
    finally:
        for h in hooks:
            h.remove()
    maps = [(n, s) for n, s in finished if len(s) == 4]
    if not maps:
        raise ValueError(f"{type(model).__name__} has no convolutional feature map for Grad-CAM; it explains CNNs "
                         f"(cnn, resnet18, mobilenet_v3_small/large and other torchvision CNNs).")
    # A 1x1 map carries no "where": prefer the last map that still has spatial extent.
    spatial = [n for n, s in maps if s[2] * s[3] > 1]
    name = spatial[-1] if spatial else maps[-1][0]
    return name, model.get_submodule(name)


def _normalize(cam: torch.Tensor) -> torch.Tensor:
    """Scale each map to 0..1; a map without any positive evidence stays 0."""
    flat = cam.flatten(1)
    lo, hi = flat.min(1).values.view(-1, 1, 1), flat.max(1).values.view(-1, 1, 1)
    return torch.where(hi > lo, (cam - lo) / (hi - lo).clamp_min(1e-12), torch.zeros_like(cam))


def grad_cam(model: nn.Module, layer: nn.Module, x: torch.Tensor,
             targets: Optional[torch.Tensor] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grad-CAM maps (N x T x H x W, 0..1, input size) for class indices ``targets`` (N x T; default: the winner).

    Returns (maps, probabilities N x K, targets N x T).
    """
    saved: Dict[str, torch.Tensor] = {}
    handle = layer.register_forward_hook(lambda _m, _i, out: saved.__setitem__("act", out))
    model.eval()
    try:
        with torch.enable_grad():
            # An input that needs a gradient keeps the graph even when the weights are frozen.
            logits = model(x.detach().requires_grad_(True)).float()
            act = saved["act"]
            targets = logits.argmax(1, keepdim=True) if targets is None else targets.to(logits.device)
            maps = []
            for t in range(targets.shape[1]):
                score = logits.gather(1, targets[:, t:t + 1]).sum()  # images are independent in eval mode
                # Gradient with respect to the feature map only: no parameter .grad is touched.
                (grad,) = torch.autograd.grad(score, act, retain_graph=t < targets.shape[1] - 1)
                weights = grad.float().mean((2, 3), keepdim=True)
                cam = F.relu((weights * act.float()).sum(1, keepdim=True))
                cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
                maps.append(_normalize(cam.detach()))
    finally:
        handle.remove()
    probs = torch.softmax(logits.detach(), 1)
    return torch.stack(maps, 1).cpu().numpy(), probs.cpu().numpy(), targets.cpu().numpy()


@dataclass
class Explanation:
    """One image's prediction record, the pictures the model read, and Grad-CAM maps over them."""

    record: Dict
    original: object  # PIL image as decoded
    views: List[object]  # square RGB picture per face (or the whole image), geometry of the model input
    maps: np.ndarray  # faces x T x S x S in 0..1
    classes: np.ndarray  # faces x T class indices the maps explain
    layer: str
    crops: List[object] = field(default_factory=list)


class Explainer:
    """A finished run's model, its preprocessing, optional face detector and the layer Grad-CAM reads."""

    def __init__(self, run: Path, device: str = "auto", detector=None, margin: float = 0.2):
        from emoclf.inference.predict import Predictor

        # No test-time augmentation: the scores shown are those of the very forward pass that is explained; no
        # BatchNorm folding: Grad-CAM may read a convolution's own output.
        self.predictor = Predictor(run, device, detector, margin, tta="none", fold=False)
        p = self.predictor.prep
        model = self.predictor.loaded.model
        example = torch.zeros(1, 1 if p["grayscale"] else 3, p["image_size"], p["image_size"], dtype=torch.uint8)
        self.layer_name, self.layer = target_layer(model, self.predictor.norm(example))
        self.class_names = self.predictor.class_names

    def explain_file(self, path: Path, all_classes: bool = False) -> Explanation:
        """Prediction and Grad-CAM of one image: per detected face, else the whole image."""
        from emoclf.data.imaging import square

        pred = self.predictor.predict_file(Path(path), keep_images=True)
        x = self.predictor.norm(torch.from_numpy(pred.inputs))
        targets = None
        if all_classes:
            targets = torch.arange(len(self.class_names)).repeat(len(x), 1)
        maps, _, classes = grad_cam(self.predictor.loaded.model, self.layer, x, targets)
        aspect = self.predictor.prep["aspect"]
        pictures = pred.crops or [pred.original]
        views = [square(img.convert("RGB"), VIEW, aspect) for img in pictures]
        return Explanation(pred.record, pred.original, views, maps, classes, self.layer_name, pred.crops)


def explain_inputs(explainer: Explainer, inputs: Sequence[str], out: Path, all_classes: bool = False,
                   emit: Callable[[Dict], None] = lambda r: None) -> List[Dict]:
    """Grad-CAM figure of every image of ``inputs`` into ``out``; unreadable images are warned about and skipped."""
    from emoclf.inference.align import output_path
    from emoclf.inference.explain_figures import plot_explanation
    from emoclf.inference.predict import UNREADABLE, find_images

    files, _ = find_images(inputs)
    records, used = [], set()
    for path in files:
        try:
            ex = explainer.explain_file(path, all_classes)
        except UNREADABLE as exc:
            log.warning("Skipping %s: cannot read it as an image (%s).", path, str(exc).splitlines()[0][:200])
            continue
        target = output_path(Path(out), path, "gradcam", explainer.predictor.detector, used)
        if target.exists():
            log.info("Replacing %s", target)
        fig = plot_explanation(ex, explainer.class_names, target)
        ex.record.update(gradcam=str(fig) if fig else None, layer=ex.layer)
        records.append(ex.record)
        emit(ex.record)
    if not records:
        raise ValueError(f"None of the {len(files)} image(s) could be read; see the warnings above.")
    return records
