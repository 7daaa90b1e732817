"""What the page asks of the models: the runs and face options to choose from, and one upload's prediction."""
from __future__ import annotations

import base64
import io
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
from PIL import Image

from emoclf.inference import face
from emoclf.inference.predict import FALLBACK, UNREADABLE, Prediction, Predictor
from emoclf.runs.folder import BEST_CHECKPOINT, default_run, finished_runs

MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # one photo: a phone's is 2-8 MB; the server refuses a larger body unread
SHOWN_SIDE = 800  # longest side, in pixels, of the photo sent back to the page
PICTURE_SIDE = 160  # side of each face crop, model input and Grad-CAM picture on the page
CACHED_MODELS = 4  # loaded runs kept in memory (each model in its predicting and its Grad-CAM form)
PREFERRED_FACE = "haar"  # the face option chosen first on the page: photos of people are what it is for

log = logging.getLogger(__name__)


class UploadError(ValueError):
    """A request the page cannot answer with a prediction; its message is shown on the page."""

    status = 400


class UploadTooLarge(UploadError):
    """An upload over MAX_UPLOAD_BYTES."""

    status = 413


def _size(n: int) -> str:
    return f"{n / 2 ** 20:.1f}".replace(".0", "") + " MB" if n >= 2 ** 20 else f"{n / 1024:.0f} kB"


def size_message(size: int, limit: int) -> str:
    """Why an upload of ``size`` bytes is refused, and what to do."""
    return f"The file is {_size(size)}; the page takes photos up to {_size(limit)}. Upload a smaller photo."


def data_url(img: Image.Image, fmt: str = "PNG") -> str:
    """A picture as a data: URL the page shows without another request."""
    buf = io.BytesIO()
    img.save(buf, fmt, **({"quality": 88} if fmt == "JPEG" else {}))
    return f"data:image/{fmt.lower()};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def input_picture(arr: np.ndarray) -> Image.Image:
    """The model's C x S x S uint8 input as a picture, enlarged without smoothing so its pixels stay visible."""
    img = Image.fromarray(arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0))
    return img.resize((PICTURE_SIDE, PICTURE_SIDE), Image.Resampling.NEAREST)


def overlay(view: Image.Image, cam: np.ndarray) -> Image.Image:
    """A Grad-CAM map (0..1, any size) in the jet colours over ``view``, as the explain figures draw it."""
    from matplotlib import colormaps

    from emoclf.inference.explain_figures import ALPHA

    side = view.width
    grey = Image.fromarray(np.uint8(np.clip(cam, 0, 1) * 255)).resize((side, side), Image.Resampling.BILINEAR)
    heat = colormaps["jet"](np.asarray(grey) / 255.0)[..., :3]
    mixed = (1 - ALPHA) * np.asarray(view.convert("RGB"), dtype=np.float64) + ALPHA * heat * 255
    return Image.fromarray(np.uint8(np.clip(mixed, 0, 255))).resize((PICTURE_SIDE, PICTURE_SIDE))


class Models:
    """Loaded runs by key, the least recently used dropped past CACHED_MODELS."""

    def __init__(self, build: Callable[[Path], object]):
        self.build, self.loaded = build, OrderedDict()

    def get(self, run: Path):
        key = str(run)
        if key not in self.loaded:
            self.loaded[key] = self.build(run)
            while len(self.loaded) > CACHED_MODELS:
                self.loaded.popitem(last=False)
        self.loaded.move_to_end(key)
        return self.loaded[key]


class Service:
    """The runs a page offers (given ones, else every finished run under ``runs_dir``) and their predictions.

    Uploads are written only into a private temporary folder, one file per request, removed when it is answered.
    """

    def __init__(self, runs: Sequence = (), runs_dir: Path = Path("outputs"), device: str = "auto",
                 margin: float = 0.2):
        face.check_margin(margin)
        self.fixed = [Path(r) for r in runs]
        for run in self.fixed:
            if not run.exists():
                raise FileNotFoundError(f"No such run folder or checkpoint: {run}. Pass run folders under outputs/ "
                                        f"(emoclf train writes one), or none to offer every finished run.")
            if run.is_dir() and not (run / BEST_CHECKPOINT).is_file():
                raise ValueError(f"{run} holds no {BEST_CHECKPOINT}: not a run folder, or a run that has not "
                                 f"finished an epoch yet. Pass a finished run folder.")
        self.runs_dir, self.device, self.margin = Path(runs_dir), device, margin
        self.runs()  # no run to offer: say so now, not on the first upload
        self.lock = threading.Lock()  # one prediction at a time: the models and detectors are shared
        self.predictors = Models(lambda run: Predictor(run, device, None, margin))
        self.explainers = Models(self._explainer)
        self.detectors: Dict[str, object] = {}
        self.folder = tempfile.TemporaryDirectory(prefix="emoclf-serve-")

    def close(self) -> None:
        """Remove the temporary folder."""
        self.folder.cleanup()

    def runs(self) -> List[Dict[str, str]]:
        """The runs to choose from, the default first: each as id (its path), name and why it is listed."""
        if self.fixed:
            return [{"id": str(r), "name": r.name if r.is_dir() else f"{r.parent.name}/{r.name}",
                     "why": "given to emoclf serve"} for r in self.fixed]
        best, why = default_run(self.runs_dir)
        listed = [{"id": str(best), "name": best.name, "why": why}]
        seen = {best.resolve()}
        for run in finished_runs(self.runs_dir):
            if run.resolve() not in seen:
                seen.add(run.resolve())
                listed.append({"id": str(run), "name": run.name, "why": f"finished run under {self.runs_dir}"})
        return listed

    def options(self) -> Dict:
        """What the page's menus offer; face options are read from the inference package at each request."""
        faces = list(face.FACE_NAMES)
        return {"runs": self.runs(), "faces": faces, "max_upload_bytes": MAX_UPLOAD_BYTES,
                "face": PREFERRED_FACE if PREFERRED_FACE in faces else faces[0]}

    def _run(self, run_id: str) -> Path:
        ids = [r["id"] for r in self.runs()]
        if run_id not in ids:
            raise UploadError(f"Unknown run {run_id!r}; choose one of {', '.join(ids)}.")
        return Path(run_id)

    def _detector(self, name: str):
        if name not in face.FACE_NAMES:
            raise UploadError(f"Unknown face option {name!r}; choose one of {', '.join(face.FACE_NAMES)}.")
        if name not in self.detectors:
            try:
                self.detectors[name] = face.make_detector(name)
            except (ValueError, RuntimeError, FileNotFoundError) as exc:
                raise UploadError(f"The face option {name!r} is not available: {exc}") from None
        return self.detectors[name]

    def _explainer(self, run: Path):
        from emoclf.inference.explain import Explainer

        return Explainer(run, self.device, None, self.margin)

    def predict(self, data: bytes, name: str, run_id: str, face_name: str, gradcam: bool = False) -> Dict:
        """One uploaded photo's prediction, as the page shows it; ``record`` is that of ``emoclf predict --json``."""
        if len(data) > MAX_UPLOAD_BYTES:
            raise UploadTooLarge(size_message(len(data), MAX_UPLOAD_BYTES))
        if not data:
            raise UploadError("The upload is empty. Choose a photo (JPEG, PNG, WebP, BMP, ...).")
        name = Path(str(name or "upload")).name[:120] or "upload"  # only shown, never a path
        run = self._run(run_id)
        fd, tmp = tempfile.mkstemp(suffix=".upload", dir=self.folder.name)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            with self.lock:
                predictor = self.predictors.get(run)
                predictor.detector = self._detector(face_name)
                try:
                    pred = predictor.predict_file(Path(tmp), keep_images=True)
                except UNREADABLE as exc:
                    why = str(exc).replace(f"'{tmp}'", "").replace(tmp, "").strip().splitlines()[0][:200]
                    raise UploadError(f"{name} cannot be read as an image ({why}). Upload a photo: JPEG, PNG, "
                                      f"WebP, BMP, ...") from None
                cams, note = self._gradcam(run, pred, predictor.class_names) if gradcam else (None, "")
        finally:
            os.unlink(tmp)
        pred.record["image"] = name
        return self._view(pred, predictor.class_names, cams, note)

    def _gradcam(self, run: Path, pred: Prediction, class_names: List[str]):
        """Grad-CAM pictures for each face's winning class, or none and why."""
        import torch

        from emoclf.data.imaging import square
        from emoclf.inference.explain import VIEW, grad_cam

        try:
            ex = self.explainers.get(run)
        except ValueError as exc:  # a model without a convolutional feature map
            return None, f"No Grad-CAM: {exc}"
        items = pred.record["faces"] or [pred.record]
        targets = torch.tensor([[class_names.index(item["label"])] for item in items])
        x = ex.predictor.norm(torch.from_numpy(pred.inputs))
        maps, _, _ = grad_cam(ex.predictor.loaded.model, ex.layer, x, targets)
        views = [square(img.convert("RGB"), VIEW, ex.predictor.prep["aspect"]) for img in pred.crops or
                 [pred.original]]
        return [overlay(v, m[0]) for v, m in zip(views, maps)], f"Grad-CAM on layer {ex.layer_name}"

    def _view(self, pred: Prediction, class_names: List[str], cams: Optional[List], note: str) -> Dict:
        rec = pred.record
        shown = pred.original.convert("RGB")
        shown.thumbnail((SHOWN_SIDE, SHOWN_SIDE))
        items = []
        for i, item in enumerate(rec["faces"] or [rec]):
            crop = pred.crops[i].convert("RGB").resize((PICTURE_SIDE, PICTURE_SIDE)) if pred.crops else None
            items.append({"title": f"face {i + 1}" if rec["faces"] else "whole image", "box": item.get("box"),
                          "crop_box": item.get("crop"), "crop": data_url(crop) if crop else None,
                          "input": data_url(input_picture(pred.inputs[i])), "label": item["label"],
                          "score": item["score"], "scores": item["scores"],
                          "gradcam": data_url(cams[i]) if cams else None})
        if rec["faces"]:
            summary = f"{len(rec['faces'])} face(s) found; the largest decides the winner"
        else:
            summary = "no face found: the whole image was scored" if rec.get("fallback") == FALLBACK else \
                "whole image scored (no face detection)"
        return {"record": rec, "classes": list(class_names), "photo": data_url(shown, "JPEG"),
                "width": rec["width"], "height": rec["height"], "items": items, "summary": summary,
                "gradcam_note": note}
