"""Decode any common image file into a square uint8 array the models read."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
# Refuse decompression bombs early: 40 Mpx is far above any face photo.
MAX_PIXELS = 40_000_000


def is_image_name(path: Union[str, Path]) -> bool:
    """True when the file name has an image extension."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def _to_mode(img: Image.Image, grayscale: bool) -> Image.Image:
    """Convert any PIL mode (palette, CMYK, 16-bit, alpha) to L or RGB."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        img = Image.fromarray(arr.astype(np.uint8), mode="L")
    if img.mode in ("P", "PA", "LA", "RGBA", "La", "RGBa"):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, img)
    return img.convert("L" if grayscale else "RGB")


def open_image(path: Union[str, Path], grayscale: bool, draft_size: int = 0) -> Image.Image:
    """Open an image file as L or RGB, honouring EXIF rotation; raises on unreadable files."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as img:
            if img.width * img.height > MAX_PIXELS:
                raise ValueError(f"{img.width}x{img.height} pixels exceeds the {MAX_PIXELS} limit")
            if draft_size and img.format == "JPEG":
                # JPEG can decode at 1/2, 1/4, 1/8 scale directly: much faster for big photos.
                img.draft("L" if grayscale else "RGB", (draft_size, draft_size))
            img.seek(0)  # first frame of animations
            img.load()
            img = ImageOps.exif_transpose(img)
            return _to_mode(img, grayscale)


def square(img: Image.Image, size: int, aspect: str) -> Image.Image:
    """Resize to size x size, padding (letterbox) or centre-cropping a non-square image; never stretching.

    The letterbox resizes first and pads after, on a canvas of the target size: memory and time stay proportional
    to the image's own pixels (a 39000 x 1000 strip padded first would need a 39000 x 39000 canvas)."""
    w, h = img.size
    if w != h and aspect == "crop":
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        img = img.crop((left, top, left + side, top + side))
    elif w != h:
        side = max(w, h)
        new_w, new_h = max(1, round(w * size / side)), max(1, round(h * size / side))
        if (new_w, new_h) != (w, h):
            img = img.resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=3.0)
        canvas = Image.new(img.mode, (size, size), 0)
        canvas.paste(img, ((size - new_w) // 2, (size - new_h) // 2))
        return canvas
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
    return img


def to_array(img: Image.Image) -> np.ndarray:
    """PIL L/RGB image to a C x H x W uint8 array."""
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        return arr[None].copy()
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def load_array(path: Union[str, Path], size: int, grayscale: bool, aspect: str) -> np.ndarray:
    """Decode a file into the C x size x size uint8 array a model of this preprocessing reads."""
    return to_array(square(open_image(path, grayscale, draft_size=size), size, aspect))


def preprocess_pil(img: Image.Image, size: int, grayscale: bool, aspect: str) -> np.ndarray:
    """Same preprocessing as :func:`load_array`, for an image already in memory."""
    return to_array(square(_to_mode(img, grayscale), size, aspect))


VIDEO_EXTENSIONS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


def is_video_name(path: Union[str, Path]) -> bool:
    """True when the file name has a video extension."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS
