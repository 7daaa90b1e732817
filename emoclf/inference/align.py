"""Face crops framed like the training faces: from five landmarks (eyes levelled when aligning), else from the box.

With landmarks the crop is a square placed by the eyes and the mouth: the eye centre sits ``eye_x`` across and
``eye_y`` down the crop, and the eyes-to-mouth distance is ``eye_mouth`` of the crop's side. The defaults were
measured on FER2013's validation faces (scripts/benchmark_face.py --framing; docs/predict.md): the median place of
MTCNN's landmarks in those 48 px training crops. A box without landmarks (Haar) gets the square crop of
``margin`` around it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from PIL import Image

from emoclf.inference.detection import Face, Point
from emoclf.inference.face import check_margin, crop, square_crop_box


@dataclass(frozen=True)
class Framing:
    """Where the face sits in its crop; the same for predict, evaluate, video and explain."""

    align: bool = True  # rotate so that the eyes are level (when the detector gives landmarks)
    margin: float = 0.2  # without landmarks: margin per side of the square crop, share of the face box
    eye_x: float = 0.5  # with landmarks: the eye centre's place across the crop (share of its side)
    eye_y: float = 0.38  # ... and down the crop
    eye_mouth: float = 0.40  # ... and the eyes-to-mouth distance, share of the side

    def __post_init__(self):
        check_margin(self.margin)
        for name in ("eye_x", "eye_y", "eye_mouth"):
            value = getattr(self, name)
            if not 0.05 <= value <= 0.95:
                raise ValueError(f"Face framing {name} must be between 0.05 and 0.95 (a share of the crop's side); "
                                 f"got {value}.")


@dataclass(frozen=True)
class FaceCrop:
    """A face's crop: its square in the photo (x, y, side, side before turning), the turn in degrees, the pixels."""

    box: Tuple[int, int, int, int]
    angle: float
    image: Image.Image


def eye_angle(landmarks: Sequence[Point]) -> float:
    """The eye line's angle in degrees, clockwise in image coordinates (0: eyes level)."""
    (lx, ly), (rx, ry) = landmarks[0], landmarks[1]
    return math.degrees(math.atan2(ry - ly, rx - lx))


def _centre(points: Sequence[Point]) -> Point:
    return sum(p[0] for p in points) / len(points), sum(p[1] for p in points) / len(points)


def landmark_square(landmarks: Sequence[Point], framing: Framing) -> Tuple[Point, float, float]:
    """The crop's centre, side and turn (degrees; 0 without aligning) that ``framing`` gives these landmarks."""
    ex, ey = _centre(landmarks[0:2])
    mx, my = _centre(landmarks[3:5])
    side = max(math.hypot(mx - ex, my - ey) / framing.eye_mouth, 8.0)
    angle = eye_angle(landmarks) if framing.align else 0.0
    t = math.radians(angle)
    # from the eye centre to the crop centre, in the crop's own (turned) axes, then into the photo's
    du, dv = (0.5 - framing.eye_x) * side, (0.5 - framing.eye_y) * side
    return (ex + du * math.cos(t) - dv * math.sin(t), ey + du * math.sin(t) + dv * math.cos(t)), side, angle


def turned_crop(img: Image.Image, centre: Point, side: float, angle: float) -> Image.Image:
    """The square of ``side`` around ``centre`` turned by ``angle`` degrees, cut out upright; black outside."""
    n = max(1, round(side))
    t = math.radians(angle)
    c, s = math.cos(t), math.sin(t)
    k = side / n
    # PIL's affine maps each output pixel (u, v) back to the photo: x = a u + b v + c0, y = d u + e v + f0
    h = (n - 1) / 2
    cx, cy = centre
    coeffs = (c * k, -s * k, cx - (c * h - s * h) * k, s * k, c * k, cy - (s * h + c * h) * k)
    return img.transform((n, n), Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR)


def face_crop(img: Image.Image, face: Face, framing: Optional[Framing] = None) -> FaceCrop:
    """The crop of one face: from its landmarks when it has them, else the square around its box."""
    framing = framing or Framing()
    if face.landmarks:
        (cx, cy), side, angle = landmark_square(face.landmarks, framing)
        box = (round(cx - side / 2), round(cy - side / 2), round(side), round(side))
        return FaceCrop(box, round(angle, 2), turned_crop(img, (cx, cy), side, angle))
    box = square_crop_box(face.box, *img.size, framing.margin)
    return FaceCrop(box, 0.0, crop(img, box))


class CropBox(tuple):
    """A crop's square (x, y, side, side) as a plain tuple, with its turn in degrees and the face's landmarks."""

    def __new__(cls, box, angle: float = 0.0, landmarks=None):
        obj = super().__new__(cls, (int(v) for v in box))
        obj.angle, obj.landmarks = angle, landmarks
        return obj


def crop_fields(cbox) -> Dict:
    """The record fields of a crop beyond its square: the turn and the landmarks, when it has them."""
    marks = getattr(cbox, "landmarks", None)
    if not marks:
        return {}
    return {"angle": float(getattr(cbox, "angle", 0.0)), "landmarks": [[round(x, 1), round(y, 1)] for x, y in marks]}


def detect_faces(detector, img: Image.Image) -> List[Face]:
    """A detector's faces, largest first: ``detect_faces`` when it has one, else its ``detect`` boxes."""
    if hasattr(detector, "detect_faces"):
        return list(detector.detect_faces(img))
    return [Face(tuple(int(v) for v in b)) for b in detector.detect(img)]


def find_face_crops(detector, img: Image.Image, framing: Framing) -> Tuple[List, List[CropBox], List[Image.Image]]:
    """Every face's box (largest first), its crop box (a :class:`CropBox`) and its crop."""
    faces = detect_faces(detector, img) if detector is not None else []
    crops = [face_crop(img, f, framing) for f in faces]
    boxes = [CropBox(c.box, c.angle, f.landmarks) for f, c in zip(faces, crops)]
    return [f.box for f in faces], boxes, [c.image for c in crops]


def face_name(detector) -> str:
    """The --face name of a detector ("none" for None)."""
    return "none" if detector is None else getattr(detector, "name", type(detector).__name__)


def output_stem(source: Path, kind: str, detector) -> str:
    """The name of a result of ``source`` without its extension: photo_pred without a face crop, photo_haar_pred
    with --face haar, so that one never replaces the other."""
    face = face_name(detector)
    return f"{Path(source).stem}_{kind}" if face == "none" else f"{Path(source).stem}_{face}_{kind}"


def output_path(out: Path, source: Path, kind: str, detector, used: set, ext: str = ".png") -> Path:
    """Where a figure of ``source`` goes in ``out`` (:func:`output_stem`); photo_pred-2.png for a second photo.jpg
    of one call (``used`` holds the names given so far)."""
    stem = output_stem(source, kind, detector)
    name, n = f"{stem}{ext}", 1
    while name in used:  # same file name from two folders in one call
        n += 1
        name = f"{stem}-{n}{ext}"
    used.add(name)
    return Path(out) / name
