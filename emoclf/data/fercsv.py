"""FER2013's ``fer2013.csv`` (columns emotion, pixels, Usage) to split/class folders of PNG images."""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Dict

import numpy as np
from PIL import Image

from emoclf.utils.text import show

EMOTIONS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]  # FER2013's label order 0..6
USAGE = {"training": "train", "publictest": "validation", "privatetest": "test"}


def is_fer_csv(path: Path) -> bool:
    """True when ``path`` is a CSV whose header has the FER2013 columns emotion and pixels."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    cols = {c.strip().lower() for c in header}
    return {"emotion", "pixels"} <= cols


def _pixels(text: str, where: str) -> np.ndarray:
    values = text.split()
    side = math.isqrt(len(values))
    if not values or side * side != len(values):
        raise ValueError(f"{where}: {len(values)} pixel values do not form a square image (FER2013 has 48x48 = "
                         f"2304). The file may be truncated; download it again.")
    try:
        arr = np.asarray(values, dtype=np.int64)
    except ValueError:
        raise ValueError(f"{where}: the pixels column holds non-numbers. Is this really fer2013.csv?") from None
    if arr.min() < 0 or arr.max() > 255:
        raise ValueError(f"{where}: pixel values must be 0..255, found {arr.min()}..{arr.max()}.")
    return arr.astype(np.uint8).reshape(side, side)


def _label(text: str, where: str) -> str:
    try:
        index = int(text)
    except ValueError:
        index = -1
    if not 0 <= index < len(EMOTIONS):
        names = ", ".join(f"{i}={n}" for i, n in enumerate(EMOTIONS))
        raise ValueError(f"{where}: emotion {show(text)} is not one of 0..6 ({names}).")
    return EMOTIONS[index]


def _split(row: Dict[str, str], where: str) -> str:
    usage = (row.get("usage") or "Training").strip()
    split = USAGE.get(usage.lower())
    if split is None:
        raise ValueError(f"{where}: Usage {show(usage)} is not one of Training, PublicTest, PrivateTest.")
    return split


def convert(csv_path: Path, out: Path) -> Dict[str, Dict[str, int]]:
    """Stream the CSV row by row into ``out``/<split>/<class>/<row>.png; returns counts per split and class."""
    with open(csv_path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        try:
            return _convert_rows(reader, csv_path, out)
        except csv.Error as exc:  # e.g. a field over the csv module's limit (131,072 characters; a row is ~9 KB)
            raise ValueError(f"{Path(csv_path).name} line {reader.line_num}: not a valid CSV row ({exc}). The file "
                             f"is damaged or not fer2013.csv; download it again.") from None
        except UnicodeDecodeError as exc:
            raise ValueError(f"{Path(csv_path).name} line {reader.line_num + 1}: not UTF-8 text ({exc.reason}). The "
                             f"file is damaged or not fer2013.csv; download it again.") from None


def _convert_rows(reader, csv_path: Path, out: Path) -> Dict[str, Dict[str, int]]:
    counts: Dict[str, Dict[str, int]] = {}
    header = [c.strip().lower() for c in next(reader, [])]
    if not {"emotion", "pixels"} <= set(header):
        raise ValueError(f"'{csv_path}' has columns {show(header)}; a FER2013 CSV needs emotion, pixels and "
                         f"Usage.")
    for i, values in enumerate(reader):
        where = f"{Path(csv_path).name} line {i + 2}"
        if len(values) != len(header):
            raise ValueError(f"{where}: {len(values)} columns instead of {len(header)}. The file may be "
                             f"truncated; download it again.")
        row = dict(zip(header, values))
        split, label = _split(row, where), _label(row["emotion"], where)
        folder = out / split / label
        if label not in counts.setdefault(split, {}):
            folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_pixels(row["pixels"], where)).save(folder / f"{i:05d}.png", compress_level=1)
        counts[split][label] = counts[split].get(label, 0) + 1
    if not counts:
        raise ValueError(f"'{csv_path}' has a header but no rows.")
    return counts
