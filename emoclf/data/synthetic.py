"""Synthetic face drawings whose expression a model can learn: demo data and test data without downloads."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# Brow tilt (+: inner ends down, angry), brow raise, eye openness, mouth curve (+: smile), mouth openness.
EXPRESSIONS: Dict[str, tuple] = {
    "angry": (0.9, -0.1, 0.6, -0.1, 0.0),
    "disgust": (0.4, 0.0, 0.4, -0.5, 0.15),
    "fear": (-0.7, 0.6, 1.3, -0.2, 0.45),
    "happy": (0.0, 0.1, 0.8, 1.0, 0.1),
    "neutral": (0.0, 0.0, 0.8, 0.0, 0.0),
    "sad": (-0.8, 0.2, 0.6, -1.0, 0.0),
    "surprise": (0.0, 0.9, 1.4, 0.0, 0.9),
}
SPANISH = {"angry": "enojo", "disgust": "disgusto", "fear": "miedo", "happy": "alegria", "neutral": "seriedad",
           "sad": "tristeza", "surprise": "sorpresa"}


def _arc_points(cx, cy, half_w, curve, n=12):
    return [(cx + half_w * t, cy - curve * (1 - t * t)) for t in np.linspace(-1, 1, n)]


def draw_face(expression: str, size: int, rng: np.random.Generator, color: bool = True) -> Image.Image:
    """One face-like drawing of ``expression`` with random placement, tone, lighting and noise."""
    tilt, raise_, eye_open, curve, mouth_open = EXPRESSIONS[expression]
    s = size / 64.0
    bg = tuple(int(v) for v in rng.integers(20, 200, 3))
    img = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(img)
    cx, cy = size / 2 + rng.normal(0, 3 * s), size / 2 + rng.normal(0, 3 * s)
    fw, fh = (20 + rng.normal(0, 1.5)) * s, (25 + rng.normal(0, 1.5)) * s
    skin = tuple(int(v) for v in np.clip(np.array([200, 160, 130]) * rng.uniform(0.5, 1.2), 0, 255))
    d.ellipse([cx - fw, cy - fh, cx + fw, cy + fh], fill=skin)
    dark = tuple(int(v * 0.25) for v in skin)
    w = max(1, int(round(2 * s)))
    for side in (-1, 1):
        ex, ey = cx + side * 8 * s, cy - 5 * s
        eh = 2.2 * s * eye_open * rng.uniform(0.85, 1.15)
        d.ellipse([ex - 3.2 * s, ey - eh, ex + 3.2 * s, ey + eh], fill=(250, 250, 250), outline=dark)
        d.ellipse([ex - 1.3 * s, ey - 1.3 * s, ex + 1.3 * s, ey + 1.3 * s], fill=dark)
        by = ey - (6 + 3 * raise_) * s
        inner, outer = (ex - side * 4 * s, by + tilt * 2.5 * s), (ex + side * 4 * s, by - tilt * 1.5 * s)
        d.line([inner, outer], fill=dark, width=w + 2)
    my, half = cy + 12 * s, (7 + rng.normal(0, 0.7)) * s
    if mouth_open > 0.3:
        oh = 5 * s * mouth_open
        d.ellipse([cx - half * 0.7, my - oh, cx + half * 0.7, my + oh], fill=(60, 20, 20), outline=dark)
    else:
        pts = _arc_points(cx, my, half, -curve * 4 * s)
        if expression == "disgust":
            pts = [(x, y - 2.5 * s * (i / len(pts))) for i, (x, y) in enumerate(pts)]
        d.line(pts, fill=(70, 15, 15), width=w + 2)
    img = img.rotate(float(rng.normal(0, 6)), resample=Image.Resampling.BILINEAR, fillcolor=bg)
    img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0, 0.6 * s)))
    arr = np.asarray(img, dtype=np.float32) * rng.uniform(0.7, 1.2) + rng.normal(0, 6, (size, size, 3))
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    return img if color else img.convert("L")


def make_dataset(root: Path, classes: Sequence[str] = ("angry", "happy", "neutral", "sad", "surprise"),
                 train_per_class: int = 40, val_per_class: int = 12, size: int = 64, seed: int = 0,
                 color: bool = True, names: Optional[Dict[str, str]] = None, fmt: str = "png",
                 val_dir: Optional[str] = "validation") -> Path:
    """Write root/train/<class>/*.png and root/<val_dir>/<class>/*.png; returns root."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    unknown = [c for c in classes if c not in EXPRESSIONS]
    if unknown:
        raise ValueError(f"No synthetic expression for {unknown}; choose from {', '.join(EXPRESSIONS)}.")
    splits = [("train", train_per_class)] + ([(val_dir, val_per_class)] if val_dir else [])
    for split, count in splits:
        for c in classes:
            folder = root / split / (names or {}).get(c, c)
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                draw_face(c, size, rng, color).save(folder / f"{c}_{i:04d}.{fmt}")
    return root


def face_photo(size: int = 256, faces: int = 1, seed: int = 0) -> Image.Image:
    """A larger canvas with ``faces`` drawn faces side by side (for predict tests)."""
    rng = np.random.default_rng(seed)
    canvas = Image.new("RGB", (size * max(faces, 1), int(size * 0.75) + size // 4), (90, 110, 90))
    for i in range(faces):
        face = draw_face("happy", size // 2 + 8 * i, rng)
        canvas.paste(face, (i * size + size // 4, size // 4))
    return canvas

