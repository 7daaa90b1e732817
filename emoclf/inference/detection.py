"""What every face detector returns: a face's box, score and landmarks; and OpenCV for the DNN detectors."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from PIL import Image

Box = Tuple[int, int, int, int]  # x, y, width, height in pixels of the original image
Point = Tuple[float, float]


@dataclass(frozen=True)
class Face:
    """One detected face: its box, the detector's score and, when the detector gives them, five landmarks
    (the eye on the image's left, the other eye, the nose tip, the mouth corner on the left, the other corner)."""

    box: Box
    score: float = 1.0
    landmarks: Optional[Tuple[Point, ...]] = None


def load_opencv(attribute: str, missing: str):
    """OpenCV holding ``attribute`` (``dnn``, ``CascadeClassifier``), or an error that says how to install it;
    ``missing`` names what is missing without it, for the message."""
    try:
        import cv2
    except ImportError as exc:
        raise RuntimeError(f"Face detection needs OpenCV 4.x ({exc}). Install it with "
                           f"pip install 'opencv-python>=4.8,<5'.") from None
    if not hasattr(cv2, attribute):
        raise RuntimeError(f"OpenCV {getattr(cv2, '__version__', '?')} has no {missing}. Install OpenCV 4: "
                           f"pip install 'opencv-python>=4.8,<5'.")
    return cv2


def load_dnn():
    """OpenCV with its DNN module, or an error that says how to install it."""
    return load_opencv("dnn", "DNN module")


def downscaled(img, detect_size: int):
    """``img`` with its longer side at most ``detect_size`` (0: as it is), and the factor it was divided by.

    Detection costs grow with the pixel count: a downscaled copy is several times faster."""
    w, h = img.size
    if not detect_size or max(w, h) <= detect_size:
        return img, 1.0
    scale = max(w, h) / detect_size
    return img.resize((max(1, round(w / scale)), max(1, round(h / scale))), Image.Resampling.BILINEAR), scale
