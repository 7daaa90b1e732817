"""The Python API: train, evaluate, compare and predict from code, with the command line's behaviour and messages.

Errors are the library's own exceptions (``ValueError``, ``FileNotFoundError``, ``RuntimeError``) with the same
messages the command line prints; nothing here exits the interpreter. docs/api.md shows it in use.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

from emoclf.config import Config, from_dict, load_config, parse_override, to_dict

log = logging.getLogger("emoclf")
Overrides = Union[None, Sequence[str], Mapping[str, Any]]


class ShowUntilConfigured(logging.StreamHandler):
    """Shows emoclf's lines on stderr until the program sets up logging of its own, then steps aside for good."""

    def emit(self, record: logging.LogRecord) -> None:
        if logging.getLogger().handlers:  # configured since: the program's choice from now on
            log.removeHandler(self)
            if log.level == logging.INFO:
                log.setLevel(logging.NOTSET)
            return
        super().emit(record)


def show_logs() -> None:
    """Make emoclf's progress lines (epochs, runs trained or reused) visible when the caller set up no logging.

    A handler goes on the "emoclf" logger only while neither the root logger nor it has one, so that a program
    that configures logging (the command line does) sees every line once, in its own format and level."""
    if logging.getLogger().handlers or log.handlers:
        return
    handler = ShowUntilConfigured(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    if log.level == logging.NOTSET:
        log.setLevel(logging.INFO)


def _override_texts(overrides: Overrides) -> List[str]:
    """``["train.epochs=3"]`` as given, or ``{"train.epochs": 3}`` as the same texts."""
    if overrides is None:
        return []
    if isinstance(overrides, str):
        raise ValueError(f"overrides must be a list of 'section.key=value' texts or a dict of them; got the text "
                         f"{overrides!r}. Write [{overrides!r}].")
    if isinstance(overrides, Mapping):
        import json

        return [f"{k}={json.dumps(v, default=str)}" for k, v in overrides.items()]  # JSON is YAML: read as written
    return [str(o) for o in overrides]


def _deep_merge(into: Dict, values: Mapping) -> Dict:
    for key, value in values.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = value
    return into


def make_config(config: Union[str, Path, Mapping, Config, None], overrides: Overrides = None) -> Config:
    """A validated Config from a YAML file, a nested dict (as in the YAML file) or a Config, with overrides."""
    texts = _override_texts(overrides)
    if config is None or isinstance(config, (str, Path)):
        return load_config(None if config is None else str(config), texts)
    if isinstance(config, Config):
        values = to_dict(config)
    elif isinstance(config, Mapping):
        values = {}
        _deep_merge(values, config)
    else:
        raise ValueError(f"config must be a YAML file path, a dict or an emoclf Config; got "
                         f"{type(config).__name__}.")
    for text in texts:
        _deep_merge(values, parse_override(text))
    return from_dict(values)


def train(config: Union[str, Path, Mapping, Config], overrides: Overrides = None, resume: bool = False,
          overwrite: bool = False) -> Path:
    """Train one model (as ``emoclf train``) and return its run folder."""
    from emoclf.training.trainer import train as train_config

    cfg = make_config(config, overrides)
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other: resume continues the run, overwrite replaces it.")
    show_logs()
    return train_config(cfg, resume=resume, overwrite=overwrite)


def evaluate(run: Union[str, Path, Sequence[Union[str, Path]]], data: Optional[str] = None,
             split: Optional[str] = None, tta: Optional[str] = None, face: Optional[str] = None,
             device: str = "auto", out: Optional[str] = None, **face_options) -> Dict:
    """Score a finished run (or several: an ensemble) as ``emoclf evaluate`` does; return its metrics.

    ``face`` (a name of ``emoclf.inference.face.FACE_NAMES``, e.g. "haar") scores each photo through the crop of its
    largest face, as ``evaluate --face NAME``; ``face_options`` go to the detector."""
    show_logs()
    runs = [str(r) for r in run] if isinstance(run, (list, tuple)) else str(run)
    data, out = None if data is None else str(data), None if out is None else str(out)
    if face in (None, "none") and not face_options:
        from emoclf.runs.evaluation import evaluate_run

        return evaluate_run(runs, data=data, split=split, tta=tta, device=device, out=out)
    from emoclf.inference.face_eval import evaluate_cropped

    return evaluate_cropped(runs, data=data, face=face or "none", split=split, tta=tta, device=device, out=out,
                            detector_options=face_options)


def compare(runs: Iterable[Union[str, Path]] = (), configs: Iterable[Union[str, Path]] = (),
            overrides: Overrides = None, out: Union[str, Path] = "outputs/comparison", overwrite: bool = False,
            device: str = "auto", seeds: Optional[int] = None) -> Dict:
    """Train what the configs need, then compare those runs and the given run folders (``emoclf compare``); with
    ``seeds``, each config trained with that many seeds, compared by mean ± std and McNemar's test (``--seeds``)."""
    from emoclf.comparison.compare import compare as compare_runs
    from emoclf.comparison.seeds import compare_seeds

    show_logs()
    runs, configs, texts = [str(r) for r in runs], [str(c) for c in configs], _override_texts(overrides)
    if seeds is not None:
        if runs:
            raise ValueError("--seeds trains each --config file with several seeds; it takes no finished RUN folders.")
        return compare_seeds(configs, texts, seeds, Path(out), overwrite, device)
    return compare_runs(runs, configs, texts, Path(out), overwrite, device)


def load_run(path: Union[str, Path], device: str = "auto"):
    """A finished run's model, config, classes and preprocessing (``LoadedRun``), on ``device``."""
    from emoclf.runs.loading import load_run as load

    return load(Path(path), device)


def _detector(face, options: Mapping[str, Any]):
    """A face detector by name (None or "none": the whole image), or a detector object as given."""
    if face is None or hasattr(face, "detect"):
        if options:
            raise ValueError(f"face options ({', '.join(options)}) need a face detector: pass face=\"haar\".")
        return face
    from emoclf.inference.face import make_detector

    return make_detector(str(face), **options)


class Predictor:
    """A finished run (or an exported .onnx file) ready to score images: ``Predictor(run).predict(image)``.

    ``face``: None or "none" scores the whole image; "haar" (a name of ``emoclf.inference.face.FACE_NAMES``) or a
    detector object with ``detect(pil_image)`` scores each face; ``face_options`` go to the detector."""

    def __init__(self, run: Union[str, Path, Sequence[Union[str, Path]]], face=None, tta: Optional[str] = None,
                 device: str = "auto", margin: float = 0.2, backend: str = "torch", **face_options):
        from emoclf.inference.face import check_margin
        from emoclf.inference.onnx_predict import make_predictor

        check_margin(margin)
        runs = [str(r) for r in run] if isinstance(run, (list, tuple)) else str(run)
        self.engine = make_predictor(runs, backend, device, _detector(face, face_options), margin, tta)

    @property
    def class_names(self) -> List[str]:
        """The classes the model scores, in the order of its outputs."""
        return list(self.engine.class_names)

    def predict(self, image) -> Dict:
        """The record ``emoclf predict --json`` prints for one image: a file path, a PIL image, or a numpy
        array (H x W grey or H x W x 3 RGB, uint8)."""
        if isinstance(image, (str, Path)):
            path = Path(image).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"No such image: {path}.")
            return self.engine.predict_file(path).record
        return self.engine.predict_image(as_pil(image)).record

    def predict_many(self, images: Iterable) -> List[Dict]:
        """``predict`` of each image, in order."""
        return [self.predict(image) for image in images]


def as_pil(image):
    """A PIL image from a PIL image or a uint8 numpy array (H x W, H x W x 3 RGB or H x W x 4 RGBA)."""
    import numpy as np
    from PIL import Image

    if isinstance(image, Image.Image):
        return image
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3, 4))):
            raise ValueError(f"A numpy image must be uint8 of shape H x W (grey), H x W x 3 (RGB) or H x W x 4 "
                             f"(RGBA); got {image.dtype} of shape {image.shape}. Convert it, e.g. with "
                             f"(x * 255).clip(0, 255).astype('uint8') for floats in 0..1.")
        return Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image)
    raise ValueError(f"predict takes an image file path, a PIL image or a numpy array; got {type(image).__name__}.")
