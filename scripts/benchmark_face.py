#!/usr/bin/env python
"""Haar face detection: time per 640x480 photo against faces found and false faces, per detector setting.

For each setting (cascade, --scale-factor, --min-neighbors, --detect-size, --min-face) it prints the median
detection time on a 640x480 photo with one face (scikit-image's astronaut, face about 95 px), whether that face
and a small one (about 48 px) are found, in how many of 66 photos with her face at 31-97 px in 3 places it is
found, in how many of 6 photos with a second, smaller copy of her both faces are found, the false faces on 13
scikit-image photos without a human face, and
with --data DIR (a folder with validation/<class>/ face crops such as FER2013) the share of faces found in
generated 640x480 scenes with one to three pasted faces of 50-220 px on a textured background.

    python scripts/benchmark_face.py --data data/fer2013 --scenes 150
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emoclf.inference.face import FaceDetector

# (cascade, scale factor, min neighbours, detect size, min face); the first is emoclf's default, the second and
# third the earlier ones.
SETTINGS = [("alt", 1.2, 3, 320, 48), ("alt", 1.2, 3, 320, 0), ("default", 1.1, 6, 320, 0), ("alt", 1.15, 3, 320, 48),
            ("alt", 1.15, 3, 320, 0), ("alt", 1.1, 4, 320, 0), ("alt", 1.2, 3, 320, 56), ("alt", 1.2, 3, 256, 0),
            ("alt", 1.2, 2, 320, 48), ("alt2", 1.2, 2, 320, 48), ("alt2", 1.2, 3, 320, 48),
            ("default", 1.2, 4, 320, 48),
            ("default", 1.1, 6, 320, 48)]
NO_FACE = ("chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "brick", "grass", "gravel",
           "page", "text", "horse", "coins", "moon")


def photos():
    """The astronaut at two face sizes on a 640x480 grey canvas, and the photos without a human face."""
    from skimage import data

    astro = Image.fromarray(data.astronaut())
    big = Image.new("RGB", (640, 480), (120, 120, 120))
    big.paste(astro.resize((480, 480)), (80, 0))
    small = Image.new("RGB", (640, 480), (120, 120, 120))
    small.paste(astro.resize((240, 240)), (300, 200))
    no_face = [Image.fromarray(getattr(data, n)()).convert("RGB").resize((640, 480)) for n in NO_FACE]
    return big, small, no_face


def size_sweep():
    """The astronaut photo pasted at 22 sizes (face 31-97 px) and 3 places on a 640x480 canvas."""
    from skimage import data

    astro = Image.fromarray(data.astronaut())
    out = []
    for side in range(160, 500, 16):
        for x, y in ((10, 10), (300, 160), (150, 100)):
            canvas = Image.new("RGB", (640, 480), (120, 120, 120))
            canvas.paste(astro.resize((side, side)), (min(x, 640 - side), min(y, 480 - side)))
            out.append(canvas)
    return out


def pairs():
    """The 512 px astronaut beside a smaller copy of herself (340-440 px, so a second face of 66-86 px)."""
    from skimage import data

    astro = Image.fromarray(data.astronaut())
    out = []
    for side in range(340, 441, 20):
        canvas = Image.new("RGB", (512 + side, 512), (128, 128, 128))
        canvas.paste(astro.resize((side, side)), (0, 512 - side))
        canvas.paste(astro, (side, 0))
        out.append(canvas)
    return out


def scenes(root: Path, count: int, seed: int = 0):
    """Generated 640x480 scenes with pasted face crops, and each face's square box."""
    rng = random.Random(seed)
    files = sorted(p for p in (root / "validation").glob("*/*") if p.is_file())
    if not files:
        raise SystemExit(f"No images under {root}/validation/<class>/.")
    rng.shuffle(files)
    out, k = [], 0
    for s in range(count):
        noise = (np.random.RandomState(s).rand(48, 64) * 255).astype(np.uint8)
        canvas = Image.fromarray(noise).resize((640, 480), Image.BICUBIC).filter(ImageFilter.GaussianBlur(3))
        canvas, boxes = canvas.convert("RGB"), []
        for _ in range(rng.choice([1, 1, 2, 3])):
            for _ in range(50):
                side = rng.randint(50, 220)
                x, y = rng.randint(0, 640 - side), rng.randint(0, 480 - side)
                if all(x + side < bx or bx + bs < x or y + side < by or by + bs < y for bx, by, bs in boxes):
                    canvas.paste(Image.open(files[k % len(files)]).convert("RGB").resize((side, side)), (x, y))
                    boxes.append((x, y, side))
                    k += 1
                    break
        out.append((canvas, [(x, y, s, s) for x, y, s in boxes]))
    return out


def iou(a, b) -> float:
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def median_ms(det: FaceDetector, img, repeats: int) -> float:
    det.detect(img)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        det.detect(img)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, help="dataset with validation/<class>/ face crops for the scene test")
    ap.add_argument("--scenes", type=int, default=150, help="generated scenes (default 150)")
    ap.add_argument("--repeats", type=int, default=15, help="timed calls per photo (default 15)")
    args = ap.parse_args()
    big, small, no_face = photos()
    sweep, two = size_sweep(), pairs()
    gen = scenes(args.data, args.scenes) if args.data else []
    faces = sum(len(b) for _, b in gen)
    print("| cascade | scale factor | min neighbours | detect size | min face | ms, 640x480 photo | face found | "
          f"small face found | ms, photos without faces | false faces on {len(no_face)} | "
          f"found of {len(sweep)} sizes and places | both faces found of {len(two)} pairs | " +
          (f"faces found in {len(gen)} scenes ({faces} faces) | false faces in scenes | ms per scene |"
           if gen else ""))
    print("| --- " * (12 + 3 * bool(gen)) + "|")
    for cascade, sf, mn, size, min_face in SETTINGS:
        det = FaceDetector(sf, mn, size, cascade, min_face)
        t_big = median_ms(det, big, args.repeats)
        found_big = len(det.detect(big)) == 1
        found_small = len(det.detect(small)) == 1
        t_none = statistics.median(median_ms(det, im, max(3, args.repeats // 3)) for im in no_face)
        false = sum(len(det.detect(im)) for im in no_face)
        row = f"| {cascade} | {sf} | {mn} | {size} | {min_face} | {t_big:.1f} | {'yes' if found_big else 'no'} | " \
              f"{'yes' if found_small else 'no'} | {t_none:.1f} | {false} | " \
              f"{sum(len(det.detect(im)) == 1 for im in sweep)} | {sum(len(det.detect(im)) == 2 for im in two)} |"
        if gen:
            hits = wrong = 0
            times = []
            for canvas, boxes in gen:
                start = time.perf_counter()
                found = det.detect(canvas)
                times.append(time.perf_counter() - start)
                hits += sum(any(iou(b, f) > 0.3 for f in found) for b in boxes)
                wrong += sum(not any(iou(b, f) > 0.3 for b in boxes) for f in found)
            row += f" {hits / faces:.1%} | {wrong} | {1000 * statistics.median(times):.1f} |"
        print(row, flush=True)


if __name__ == "__main__":
    main()
