"""Emotion scores for image files and folders, optionally per detected face; results are plain records."""
from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from emoclf.data.imaging import is_image_name, is_video_name, load_array, open_image, preprocess_pil
from emoclf.inference.align import crop_fields, face_name, output_path
from emoclf.runs.folder import PREDICTIONS, as_run_list

log = logging.getLogger(__name__)
FALLBACK = "whole_image"
# What PIL raises for broken, truncated or oversized files.
UNREADABLE = (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning)


def _class_folders(folder: Path) -> List[Tuple[Path, str]]:
    """Every image under each class folder of ``folder`` (searched recursively), with its class through the alias
    table (``alegria/`` is happy)."""
    from emoclf.data.dataset import is_hidden, subdirs
    from emoclf.data.labels import canonical

    found = []
    for class_dir in subdirs(folder):
        files = sorted(f for f in class_dir.rglob("*") if f.is_file() and is_image_name(f)
                       and not any(is_hidden(Path(part)) for part in f.relative_to(class_dir).parts))
        found.extend((f, canonical(class_dir.name)) for f in files)
    return found


def find_labelled_images(inputs: Sequence[str]) -> Tuple[List[Path], bool, Dict[Path, str]]:
    """Image files named or inside the given folders; a folder without images directly inside but with class
    folders is read recursively, each image labelled by its class folder. Returns the files, True when a folder
    was given, and the true class of each image that came from a class folder."""
    files, any_folder, truth = [], False, {}
    for item in inputs:
        p = Path(item).expanduser()
        if p.is_dir():
            any_folder = True
            found = sorted(f for f in p.iterdir() if f.is_file() and is_image_name(f) and not f.name.startswith("."))
            videos = [f.name for f in p.iterdir() if f.is_file() and is_video_name(f)]
            if videos:
                log.warning("Not scoring %d video file(s) in %s (%s): pass videos by name.", len(videos), p,
                            ", ".join(sorted(videos)[:3]) + (", ..." if len(videos) > 3 else ""))
            labelled = [] if found else _class_folders(p)
            if labelled:
                log.info("%s holds class folders: %d images, each labelled by its folder.", p, len(labelled))
                truth.update(labelled)
                found = [f for f, _ in labelled]
            elif not found:
                log.warning("No image files inside %s or its class folders.", p)
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"No such image or folder: {p}.")
    if not files:
        raise ValueError(f"No images to predict in {', '.join(map(str, inputs))}. Pass image files, folders of "
                         f"images ({', '.join(sorted({'.jpg', '.png', '.bmp', '.webp'}))}, ...) or a folder of class "
                         f"folders of images.")
    return files, any_folder, truth


def find_images(inputs: Sequence[str]) -> Tuple[List[Path], bool]:
    """Image files named or inside the given folders (class folders read recursively); True when a folder was
    given."""
    files, any_folder, _ = find_labelled_images(inputs)
    return files, any_folder


@dataclass
class Prediction:
    """One image's record plus, when a figure is wanted, the pictures behind it."""

    record: Dict
    original: Optional[object] = None  # PIL image as decoded
    crops: List[object] = field(default_factory=list)  # square face crops (PIL), one per face
    inputs: Optional[np.ndarray] = None  # N x C x S x S uint8: exactly what the model read


class Predictor:
    """A finished run's model with its validation preprocessing, and an optional face detector."""

    def __init__(self, run, device: str = "auto", detector=None, margin: float = 0.2, tta: str = None,
                 fold: bool = True, align: bool = True):
        import torch

        from emoclf.data.augment import Normalizer
        from emoclf.models.surgery import fold_batchnorm
        from emoclf.runs.ensemble import load_runs, resolve_tta

        runs = as_run_list(run)
        self.loaded = load_runs(runs, device)
        if fold and fold_batchnorm(self.loaded.model) and self.loaded.channels_last:
            # BatchNorm folded into the convolutions: about a quarter off a MobileNetV3 forward pass on the CPU
            self.loaded.model.to(memory_format=torch.channels_last)
        self.run = " + ".join(map(str, runs))  # several runs: an ensemble averaging their probabilities
        self.class_names = self.loaded.class_names
        self.prep = self.loaded.preprocessing
        dev = next(self.loaded.model.parameters()).device
        self.norm = Normalizer.for_preprocessing(self.prep, dev, self.loaded.channels_last)
        self.tta, _ = resolve_tta(self.loaded, tta)
        self.detector = detector
        self.margin = margin
        self.align = align  # level the eyes of faces found with landmarks
        self.framing = None  # an emoclf.inference.align.Framing: replaces align and margin

    def probabilities(self, inputs: np.ndarray) -> np.ndarray:
        """Class probabilities for a uint8 batch in one pass (test-time augmented as the run scores, or as asked)."""
        import torch

        from emoclf.engine import predict_logits

        logits = predict_logits(self.loaded.model, inputs, self.norm, max(len(inputs), 1), tta=self.tta)
        return torch.softmax(logits, 1).numpy()

    def _result(self, probs: np.ndarray) -> Dict:
        i = int(probs.argmax())
        return {"label": self.class_names[i], "score": round(float(probs[i]), 6),
                "scores": {c: round(float(p), 6) for c, p in zip(self.class_names, probs)}}

    def find_faces(self, img) -> Tuple[List, List, List]:
        """Face boxes in a PIL image (largest first), their crop boxes and the crops; none without a detector. The crop
        is framed by the landmarks (eyes levelled unless ``align`` is off) when the detector gives them."""
        from emoclf.inference.align import Framing, find_face_crops

        framing = getattr(self, "framing", None) or Framing(getattr(self, "align", True), self.margin)
        return find_face_crops(self.detector, img, framing)

    def preprocess(self, img) -> np.ndarray:
        """A PIL image as the model's uint8 C x S x S input, with the run's validation preprocessing."""
        p = self.prep
        return preprocess_pil(img, p["image_size"], p["grayscale"], p["aspect"])

    def predict_file(self, path: Path, keep_images: bool = False) -> Prediction:
        """Scores of one image file: each detected face (largest first), else the whole image."""
        p = self.prep
        original = open_image(path, grayscale=False) if (self.detector or keep_images) else None
        boxes, crop_boxes, crops = self.find_faces(original) if self.detector else ([], [], [])
        if crops:
            inputs = np.stack([self.preprocess(c) for c in crops])
        else:  # the very same decoding and resizing as validation images
            inputs = load_array(path, p["image_size"], p["grayscale"], p["aspect"])[None]
        size = original.size if original is not None else _image_size(path)
        return self._prediction(str(path), size, (boxes, crop_boxes, crops), inputs, original, keep_images)

    def predict_image(self, img, name: Optional[str] = None, keep_images: bool = False) -> Prediction:
        """Scores of an image already in memory (PIL, as decoded: no EXIF turn), as ``predict_file`` scores a file;
        ``name`` goes into the record's "image"."""
        boxes, crop_boxes, crops = self.find_faces(img) if self.detector else ([], [], [])
        inputs = np.stack([self.preprocess(c) for c in crops]) if crops else self.preprocess(img)[None]
        return self._prediction(name, img.size, (boxes, crop_boxes, crops), inputs, img, keep_images)

    def _prediction(self, name: Optional[str], size: Tuple[int, int], faces: Tuple[List, List, List],
                    inputs: np.ndarray, original, keep_images: bool) -> Prediction:
        boxes, crop_boxes, crops = faces
        probs = self.probabilities(inputs)
        record = {"image": name, "run": str(self.run), "width": size[0], "height": size[1],
                  "haar": face_name(self.detector) == "haar", "face": face_name(self.detector), "faces": []}
        for box, cbox, row in zip(boxes, crop_boxes, probs):
            record["faces"].append({"box": [int(v) for v in box], "crop": [int(v) for v in cbox], **crop_fields(cbox),
                                    **self._result(row)})
        record.update(self._result(probs[0]))
        if self.detector is not None and not boxes:
            record["fallback"] = FALLBACK
        if not keep_images:
            return Prediction(record)
        return Prediction(record, original, crops, inputs)


def _image_size(path: Path) -> Tuple[int, int]:
    from PIL import Image

    with Image.open(path) as img:
        w, h = img.size
        return (h, w) if img.getexif().get(0x0112, 1) in (5, 6, 7, 8) else (w, h)  # EXIF quarter turns


def describe_prediction(record: Dict) -> str:
    """One human-readable line per image."""
    head = f"{record['image']}" + (f" (true {record['true']})" if record.get("true") else "") + ": "
    if record["faces"]:
        parts = [f"face {i} {f['box']}: {f['label']} {f['score']:.2f}" for i, f in enumerate(record["faces"], 1)]
        return head + f"{len(parts)} face(s); " + "; ".join(parts)
    note = "no face found, whole image: " if record.get("fallback") else ""
    return head + f"{note}{record['label']} {record['score']:.2f}"


def csv_rows(record: Dict, class_names: Sequence[str]) -> List[List]:
    """predictions.csv rows of one record: one per face, or one for the whole image."""
    items = record["faces"] or [dict(record, box=[0, 0, record["width"], record["height"]])]
    rows = []
    for i, item in enumerate(items, 1 if record["faces"] else 0):
        rows.append([record["image"], i, *item["box"], record.get("fallback", ""), item["label"],
                     f"{item['score']:.5f}"] + [f"{item['scores'][c]:.5f}" for c in class_names])
    return rows


def write_predictions_csv(path: Path, records: List[Dict], class_names: Sequence[str]) -> Path:
    """predictions.csv: image, face (0: whole image), box, fallback, label, score and every class probability."""
    from emoclf.utils.files import atomic_path

    with atomic_path(Path(path)) as tmp, open(tmp, "w", newline="", encoding="utf-8", errors="backslashreplace") as fh:
        writer = csv.writer(fh)
        labelled = any(r.get("true") for r in records)  # images from class folders: their true class too
        writer.writerow(["image", "face", "x", "y", "w", "h", "fallback", "label", "score"] +
                        [f"p_{c}" for c in class_names] + (["true"] if labelled else []))
        for record in records:
            writer.writerows(row + ([record.get("true", "")] if labelled else []) for row in csv_rows(record,
                                                                                                  class_names))
    return Path(path)


@dataclass
class Summary:
    """What a predict call produced."""

    records: List[Dict]
    skipped: List[Tuple[str, str]]
    figures: List[Path]
    csv: Optional[Path]


def predict_inputs(predictor: Predictor, inputs: Sequence[str], out: Optional[Path], figures: bool,
                   emit: Callable[[Dict], None] = lambda r: None) -> Summary:
    """Predict every image of ``inputs``; unreadable images are warned about and skipped."""
    from emoclf.inference.figures import plot_prediction
    from emoclf.utils.files import check_writable_folder

    files, any_folder, truth = find_labelled_images(inputs)
    if out is not None:
        check_writable_folder(Path(out))  # before the first image is scored, not after the last
    figures = figures and out is not None
    summary, used = Summary([], [], [], None), set()
    for path in files:
        try:
            pred = predictor.predict_file(path, keep_images=figures)
        except UNREADABLE as exc:
            log.warning("Skipping %s: cannot read it as an image (%s).", path, str(exc).splitlines()[0][:200])
            summary.skipped.append((str(path), str(exc)))
            continue
        if path in truth:
            pred.record["true"] = truth[path]
        if figures:
            target = output_path(Path(out), path, "pred", predictor.detector, used)
            fig = plot_prediction(pred, predictor.class_names, target)
            if fig is not None:
                pred.record["figure"] = str(fig)
                summary.figures.append(fig)
        summary.records.append(pred.record)
        emit(pred.record)
    if not summary.records:
        raise ValueError(f"None of the {len(files)} image(s) could be read; see the warnings above.")
    if any_folder and out is not None:
        summary.csv = write_predictions_csv(Path(out) / PREDICTIONS, summary.records, predictor.class_names)
    return summary
