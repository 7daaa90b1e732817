"""Predict with an exported ONNX model through onnxruntime: numpy only, no torch on the way."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from emoclf.config import (  # torch-free
    TENCROP_FRACTION,
    TTA_MODES,
    check_class_names,
    check_preprocessing,
    crop_offsets,
    preprocessing_crop,
)
from emoclf.inference.predict import Predictor
from emoclf.runs.folder import as_run_list
from emoclf.utils.extras import require_extra
from emoclf.utils.text import show

log = logging.getLogger(__name__)
BACKENDS = ("torch", "onnx")
NEEDED_KEYS = ("class_names", "image_size", "grayscale", "aspect", "input_name", "output_kind")


def _ort():
    return require_extra("onnxruntime", "onnx", "The ONNX backend")


def _providers(ort, device: str) -> List[str]:
    """CPU unless a CUDA device is asked for and this onnxruntime build has it."""
    if device in ("auto", "cpu"):
        return ["CPUExecutionProvider"]
    if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    raise ValueError(f"Device {device!r} is not available to onnxruntime here (it has "
                     f"{', '.join(ort.get_available_providers())}); use --device cpu or auto.")


def read_metadata(session, path: Path) -> Dict:
    """The emoclf metadata of an ONNX session (JSON text per key)."""
    props = session.get_modelmeta().custom_metadata_map
    try:
        meta = {k: json.loads(v) for k, v in props.items()}
    except ValueError:
        meta = {}
    missing = [k for k in NEEDED_KEYS if k not in meta]
    if missing:
        raise ValueError(f"{path} carries no emoclf metadata ({', '.join(missing)} missing): it was not written "
                         f"by emoclf export. Export the run with: emoclf export RUN --format onnx.")
    if meta["output_kind"] != "probabilities":
        raise ValueError(f"{path} outputs {show(meta['output_kind'])}; this emoclf reads probabilities only.")
    return check_metadata(meta, str(path))


def check_metadata(meta: Dict, where: str) -> Dict:
    """Check the metadata of an exported model with the rules of a config (a damaged or hostile file must not
    make emoclf allocate without bound, score NaN or stop with a traceback)."""
    meta["class_names"] = check_class_names(meta["class_names"], where)
    meta.update(check_preprocessing(meta, where, required=("image_size", "grayscale", "aspect")))
    meta["crop"] = preprocessing_crop(meta, where)
    if not isinstance(meta["input_name"], str) or not meta["input_name"]:
        raise ValueError(f"{where}: input_name must be the name of the model's input; got {show(meta['input_name'])}.")
    if meta.get("tta", "none") not in TTA_MODES:
        raise ValueError(f"{where}: tta must be one of {', '.join(TTA_MODES)}; got {show(meta.get('tta'))}.")
    return meta


def _axis_weights(size: int, scale: float, shift: float) -> np.ndarray:
    """size x size bilinear resampling matrix of one axis (align_corners=False, border padding)."""
    out = (2 * np.arange(size) + 1) / size - 1
    src = np.clip(((scale * out + shift + 1) * size - 1) / 2, 0, size - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, size - 1)
    frac = src - lo
    w = np.zeros((size, size), dtype=np.float64)
    np.add.at(w, (np.arange(size), lo), 1 - frac)
    np.add.at(w, (np.arange(size), hi), frac)
    return w


def tta_views(x: np.ndarray, mode: str, crop: int = 0) -> List[np.ndarray]:
    """Views of a float batch averaged at test time: itself; its flip; or 5 crops (corners, centre) and flips; with
    ``crop``, at that size as engine.tta_views cuts them."""
    if crop and x.shape[-1] != crop:
        boxes = crop_offsets(x.shape[-1], crop)
        views = [x[..., t:t + crop, left:left + crop] for t, left in (boxes if mode == "tencrop" else boxes[:1])]
        return [w for v in views for w in (v, v[..., ::-1])] if mode != "none" else views
    if mode == "none":
        return [x]
    if mode == "flip":
        return [x, x[..., ::-1]]
    c, o, size = TENCROP_FRACTION, 1 - TENCROP_FRACTION, x.shape[-1]
    views = []
    for tx, ty in ((0.0, 0.0), (-o, -o), (o, -o), (-o, o), (o, o)):
        wy, wx = _axis_weights(size, c, ty), _axis_weights(size, c, tx)
        crop = np.einsum("yi,ncij,xj->ncyx", wy, x, wx).astype(np.float32)
        views += [crop, crop[..., ::-1]]
    return views


def _session_options(ort):
    """No busy-waiting between calls: spinning threads would take the CPU from OpenCV's face detection."""
    opts = ort.SessionOptions()
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


class OnnxPredictor(Predictor):
    """An exported ONNX model with the preprocessing read from its metadata; the same records as Predictor."""

    def __init__(self, path: Path, device: str = "auto", detector=None, margin: float = 0.2,
                 tta: Optional[str] = None):
        ort = _ort()
        self.run = Path(path)
        if not self.run.is_file():
            raise FileNotFoundError(f"ONNX model not found: {self.run}. Export one with: emoclf export RUN.")
        try:
            self.session = ort.InferenceSession(str(self.run), _session_options(ort), providers=_providers(ort, device))
        except Exception as exc:  # onnxruntime raises its own exception types for broken files
            raise ValueError(f"Cannot load {self.run} as an ONNX model ({str(exc).splitlines()[0][:200]}).") from None
        self.meta = read_metadata(self.session, self.run)
        self.class_names = list(self.meta["class_names"])
        self.prep = {k: self.meta[k] for k in ("image_size", "grayscale", "aspect")}
        self.tta = self.meta.get("tta", "none") if tta is None else tta
        if self.tta not in TTA_MODES:
            raise ValueError(f"Unknown test-time augmentation {self.tta!r}; choose one of {', '.join(TTA_MODES)}.")
        self.detector = detector
        self.margin = margin
        self.input_name = self.meta["input_name"]

    def probabilities(self, inputs: np.ndarray) -> np.ndarray:
        """Class probabilities for a uint8 N x C x S x S batch in one session run (views averaged with TTA)."""
        x = np.ascontiguousarray(inputs, dtype=np.float32)
        views = tta_views(x, self.tta, self.meta["crop"])
        batch = np.ascontiguousarray(np.concatenate(views)) if len(views) > 1 else np.ascontiguousarray(views[0])
        probs = self.session.run(None, {self.input_name: batch})[0]
        if probs.ndim != 2 or probs.shape[-1] != len(self.class_names):
            raise ValueError(f"{self.run} outputs shape {list(probs.shape)} but its metadata names "
                             f"{len(self.class_names)} classes: the file is damaged or its metadata was edited.")
        return probs.reshape(len(views), len(x), -1).mean(0)


def make_predictor(run, backend: str = "torch", device: str = "auto", detector=None, margin: float = 0.2,
                   tta: Optional[str] = None) -> Predictor:
    """A Predictor for a run folder or checkpoint (or a list of them: an ensemble), or an OnnxPredictor for a .onnx
    file or with backend onnx."""
    if backend not in BACKENDS:
        raise ValueError(f"Unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}.")
    runs = as_run_list(run)
    if len(runs) > 1:
        if backend == "onnx" or any(r.suffix.lower() == ".onnx" for r in runs):
            raise ValueError("An ensemble of several --run runs is scored with PyTorch only: drop --backend onnx "
                             "and pass run folders or checkpoints, not .onnx files.")
        return Predictor(runs, device, detector, margin, tta)
    run = runs[0]
    if run.suffix.lower() == ".onnx":
        return OnnxPredictor(run, device, detector, margin, tta)
    if backend == "onnx":
        from emoclf.inference.export import onnx_for_run

        return OnnxPredictor(onnx_for_run(run), device, detector, margin, tta)
    return Predictor(run, device, detector, margin, tta)
