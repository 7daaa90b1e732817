"""Face detection with OpenCV's Haar cascade, and the square face crop the classifier reads."""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np
from PIL import Image

from emoclf.inference.detection import Box, Face, downscaled, load_opencv

# OpenCV's frontal-face cascades by short name. The defaults ("alt", scale factor 1.2, 3 neighbours) come from
# scripts/benchmark_face.py: against "default" at 1.1 / 6 they found more faces over a range of sizes (alt's window
# is 20 px, default's 24 px) with no false faces, in three quarters of the time; the coarser pyramid step misses
# some faces near the smallest size ("--scale-factor 1.15" finds them, in the time of "default" at 1.1). The
# default min_face of 48 px skips the smallest pyramid level on photos up to about 770 px (15-30% less time there).
CASCADES = {name: f"haarcascade_frontalface_{name}.xml" for name in ("default", "alt", "alt2", "alt_tree")}
DEFAULT_CASCADE = "alt"


def load_cv2():
    """OpenCV 4.x with its Haar cascades, or an error that says how to install it."""
    return load_opencv("CascadeClassifier", "CascadeClassifier (OpenCV 5 removed the Haar cascades)")


def default_cascade_path(name: str = DEFAULT_CASCADE) -> Path:
    """A frontal-face cascade file shipped with opencv-python 4.x, by short name (see CASCADES)."""
    cv2 = load_cv2()
    folder = getattr(getattr(cv2, "data", None), "haarcascades", "")
    path = Path(folder) / CASCADES[name]
    if not folder or not path.is_file():
        raise RuntimeError(f"OpenCV {cv2.__version__} ships no {CASCADES[name]} (looked in {folder or 'cv2.data'}). "
                           f"Reinstall opencv-python 4.x, or pass a cascade file with --cascade.")
    return path


def cascade_path(cascade: Optional[str]) -> Path:
    """The XML file of ``--cascade``: a short name of OpenCV's frontal-face cascades, a file, or None (the default)."""
    if not cascade or cascade in CASCADES:
        return default_cascade_path(cascade or DEFAULT_CASCADE)
    path = Path(cascade).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"Cascade file not found: {path}. Pass an OpenCV Haar cascade XML file or one of "
                                f"{', '.join(CASCADES)} (OpenCV's frontal-face cascades).")
    return path


@functools.lru_cache(maxsize=4)
def _load_cascade(path: str):
    # Parsing the XML takes tens of milliseconds: do it once per process and file.
    classifier = load_cv2().CascadeClassifier(path)
    if classifier.empty():
        raise ValueError(f"{path} is not a readable OpenCV Haar cascade XML file.")
    return classifier


@dataclass
class FaceDetector:
    """Haar-cascade frontal-face detector; boxes come back largest first, in original-image pixels."""

    scale_factor: float = 1.2  # image pyramid step (> 1): smaller is slower and finds more
    min_neighbors: int = 3  # overlapping detections needed to keep a face: higher means fewer false faces
    detect_size: int = 320  # detect on a copy whose longer side is at most this (0: full resolution)
    cascade: Optional[str] = None  # cascade XML file or a name in CASCADES; None: DEFAULT_CASCADE
    min_face: int = 48  # smallest face looked for, in the photo's pixels (0: the cascade's window on the copy)

    name = "haar"

    def __post_init__(self):
        if not self.scale_factor > 1.0:
            raise ValueError(f"--scale-factor must be greater than 1 (e.g. 1.2); got {self.scale_factor}.")
        if self.min_neighbors < 0:
            raise ValueError(f"--min-neighbors must be 0 or more (e.g. 3); got {self.min_neighbors}.")
        if self.detect_size and self.detect_size < 48:
            raise ValueError(f"--detect-size must be 0 (full resolution) or at least 48 pixels; "
                             f"got {self.detect_size}.")
        if self.min_face < 0:
            raise ValueError(f"--min-face must be 0 (no limit) or a face size in pixels (e.g. 48); "
                             f"got {self.min_face}.")
        self._classifier = _load_cascade(str(cascade_path(self.cascade)))

    def detect(self, img: Image.Image) -> List[Box]:
        """Face boxes [x, y, w, h] in ``img``'s pixels, largest first."""
        w, h = img.size
        gray, scale = downscaled(img.convert("L"), self.detect_size)
        # The smallest pyramid levels cost the most (most windows): skipping faces below min_face saves them.
        side = math.ceil(self.min_face / scale)
        found = self._classifier.detectMultiScale(np.asarray(gray, dtype=np.uint8), scaleFactor=self.scale_factor,
                                                  minNeighbors=self.min_neighbors, minSize=(side, side))
        boxes = [_scale_box(b, scale, w, h) for b in np.asarray(found).reshape(-1, 4)]
        return sorted(boxes, key=lambda b: (-b[2] * b[3], b[0], b[1]))

    def detect_faces(self, img: Image.Image) -> List[Face]:
        """The faces of :meth:`detect`, without landmarks (a Haar cascade finds none)."""
        return [Face(b) for b in self.detect(img)]


def _scale_box(box, scale: float, width: int, height: int) -> Box:
    x, y, bw, bh = (float(v) * scale for v in box)
    x0, y0 = max(0, round(x)), max(0, round(y))
    return x0, y0, min(width - x0, round(bw)), min(height - y0, round(bh))


def check_margin(margin: float) -> None:
    """Refuse a face-crop margin outside 0..2 (a share of the face side)."""
    if not 0 <= margin <= 2:
        raise ValueError(f"--margin must be between 0 and 2 (share of the face side); got {margin}.")


def square_crop_box(box: Box, width: int, height: int, margin: float = 0.2) -> Box:
    """A square around ``box`` grown by ``margin`` of its side on each side, moved and clipped to fit the image."""
    check_margin(margin)
    x, y, w, h = box
    side = min(round(max(w, h) * (1 + 2 * margin)), width, height)
    cx, cy = x + w / 2, y + h / 2
    left = int(min(max(round(cx - side / 2), 0), width - side))
    top = int(min(max(round(cy - side / 2), 0), height - side))
    return left, top, int(side), int(side)


def crop(img: Image.Image, box: Box) -> Image.Image:
    """The part of ``img`` inside ``box`` [x, y, w, h]."""
    x, y, w, h = box
    return img.crop((x, y, x + w, y + h))


# The face options of predict, evaluate, explain, video and webcam ("none": the whole image is the face).
FACE_NAMES = ("none", "haar", "mtcnn")
# The detector of a bare --face: MTCNN found every face of the real photos of scripts/benchmark_face.py (alone, turned
# and in groups; Haar 74%, 38% and 43%) with no false face on photos without people (docs/predict.md).
DEFAULT_FACE = "mtcnn"


def make_detector(name: str, **options):
    """The face detector called ``name`` (one of FACE_NAMES) built with ``options``; None for "none".

    "haar": :class:`FaceDetector` (OpenCV's Haar cascade; options scale_factor, min_neighbors, detect_size, cascade,
    min_face); "mtcnn": :class:`emoclf.inference.mtcnn.MtcnnDetector` (faces with five landmarks; options min_face,
    detect_size, thresholds, scale_step). Each has ``detect(img)`` (boxes) and ``detect_faces(img)`` (:class:`Face`).
    """
    if name == "none":
        return None
    if name == "haar":
        return FaceDetector(**options)
    if name == "mtcnn":
        from emoclf.inference.mtcnn import MtcnnDetector

        return MtcnnDetector(**options)
    raise ValueError(f"Unknown face detector {name!r}; choose one of {', '.join(FACE_NAMES)}.")


def face_names(face: Union[str, Sequence[str]]) -> List[str]:
    """``"none,haar"`` or ``["none", "haar"]`` as a checked list of FACE_NAMES, each once."""
    names = [n.strip() for n in (face.split(",") if isinstance(face, str) else face) if n.strip()]
    unknown = [n for n in names if n not in FACE_NAMES]
    if unknown or not names:
        raise ValueError(f"Unknown face detector {', '.join(map(repr, unknown)) or '(none given)'} in --face; "
                         f"choose from {', '.join(FACE_NAMES)} (several separated by commas, e.g. none,haar).")
    if len(set(names)) != len(names):
        raise ValueError(f"--face names a detector twice ({','.join(names)}); name each once.")
    return names
