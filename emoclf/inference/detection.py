"""What every face detector returns: a face's box, score and landmarks; and OpenCV for the DNN detectors."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

Box = Tuple[int, int, int, int]  # x, y, width, height in pixels of the original image
Point = Tuple[float, float]


@dataclass(frozen=True)
class Face:
    """One detected face: its box, the detector's score and, when the detector gives them, five landmarks
    (the eye on the image's left, the other eye, the nose tip, the mouth corner on the left, the other corner)."""

    box: Box
    score: float = 1.0
    landmarks: Optional[Tuple[Point, ...]] = None


def load_dnn():
    """OpenCV with its DNN module (4.x or 5.x), or an error that says how to install it."""
    try:
        import cv2
    except ImportError as exc:
        raise RuntimeError(f"Face detection needs OpenCV ({exc}). Install it with "
                           f"pip install 'opencv-python>=4.8,<5'.") from None
    if not hasattr(cv2, "dnn"):
        raise RuntimeError(f"OpenCV {getattr(cv2, '__version__', '?')} has no DNN module. Install the full build: "
                           f"pip install 'opencv-python>=4.8,<5'.")
    return cv2
