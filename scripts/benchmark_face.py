#!/usr/bin/env python
"""Face detectors (--face haar, --face mtcnn) and their settings: faces found, false faces, time per 640x480 photo.

Real photos: the faces shipped inside pip wheels (scikit-image's astronaut and cameraman, matplotlib's Grace
Hopper), each alone at 22 sizes and 3 places (66 photos), turned by -30 to 30 degrees (26 photos), and put
together in 640x480 group photos of 2-4 faces at 60-160 px, some turned (40 photos); 13 scikit-image photos
without a human face count false faces. With --data DIR (validation/<class>/ face crops such as FER2013) also
generated 640x480 scenes with one to three pasted faces of 50-220 px.

    python scripts/benchmark_face.py --data data/fer2013 --scenes 150

--framing measures where MTCNN's landmarks sit in the training faces of --data (the crop framing of
emoclf.inference.align.Framing); --write-photos DIR writes labelled photos (the --data validation faces pasted
into 640x480 scenes, DIR/photos/<class>/) and the same faces as crops (DIR/crops/<class>/), to score a run through
each face crop:

    python scripts/benchmark_face.py --data data/fer2013 --write-photos /tmp/pasted --count 700
    emoclf evaluate RUN --data /tmp/pasted/crops
    emoclf evaluate RUN --data /tmp/pasted/photos --face none,haar,mtcnn
"""
from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emoclf.inference.face import make_detector

# (detector, options); the first of each is emoclf's default.
SETTINGS = [("haar", {}), ("haar", {"min_face": 0}), ("haar", {"scale_factor": 1.15, "min_face": 0}),
            ("haar", {"cascade": "alt2", "min_neighbors": 2}), ("haar", {"detect_size": 640, "min_face": 0}),
            ("mtcnn", {}), ("mtcnn", {"detect_size": 320}), ("mtcnn", {"min_face": 24}),
            ("mtcnn", {"thresholds": (0.6, 0.7, 0.7)}), ("mtcnn", {"scale_step": 0.8})]
NO_FACE = ("chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "brick", "grass", "gravel",
           "page", "text", "horse", "coins", "moon")


def real_faces():
    """Photos of one person shipped in wheels, and each face's box [x, y, w, h] there (measured by eye)."""
    import matplotlib
    from skimage import data

    hopper = Image.open(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg").convert("RGB")
    return [(Image.fromarray(data.astronaut()), (175, 62, 100, 110)),
            (Image.fromarray(data.camera()).convert("RGB"), (195, 112, 62, 85)),
            (hopper, (165, 105, 195, 225))]


def _canvas(seed: int) -> Image.Image:
    noise = (np.random.RandomState(seed).rand(48, 64) * 255).astype(np.uint8)
    return Image.fromarray(noise).resize((640, 480), Image.BICUBIC).filter(ImageFilter.GaussianBlur(3)).convert("RGB")


def _place(canvas: Image.Image, photo: Image.Image, box, face_px: int, x: int, y: int, turn: float = 0.0):
    """Paste a head-and-shoulders cut of ``photo`` so that its face is ``face_px`` wide at (x, y); its face box."""
    fx, fy, fw, fh = box
    k = face_px / fw
    left, top = max(0, fx - fw // 2), max(0, fy - fh // 2)
    cut = photo.crop((left, top, min(photo.width, fx + fw + fw // 2), min(photo.height, fy + fh + fh // 2)))
    cut = cut.resize((max(1, round(cut.width * k)), max(1, round(cut.height * k))), Image.BILINEAR)
    if turn:
        cut = cut.rotate(turn, resample=Image.BILINEAR, expand=False, fillcolor=(120, 120, 120))
    canvas.paste(cut, (x, y))
    return (x + round((fx - left) * k), y + round((fy - top) * k), round(fw * k), round(fh * k))


def single_faces():
    """Each real face alone at 22 sizes (40-124 px) and 3 places, then turned by -30..30 degrees."""
    alone, turned = [], []
    for i, (photo, box) in enumerate(real_faces()):
        for j, px in enumerate(range(40, 128, 4)):
            for x, y in ((10, 10), (300, 160), (150, 100)):
                c = _canvas(i * 100 + j)
                alone.append((c, [_place(c, photo, box, px, min(x, 640 - 2 * px), min(y, 480 - 2 * px))]))
        for turn in range(-30, 31, 7):
            c = _canvas(i * 1000 + 500 + turn)
            turned.append((c, [_place(c, photo, box, 100, 200, 100, turn)]))
    return alone[:66], turned[:26]


def group_photos(count: int = 40, seed: int = 0):
    """640x480 photos of 2-4 of the real faces at 60-160 px, side by side, some turned up to 25 degrees."""
    rng, faces, out = random.Random(seed), real_faces(), []
    for s in range(count):
        c, boxes, x = _canvas(5000 + s), [], 5
        for _ in range(rng.choice([2, 3, 3, 4])):
            photo, box = rng.choice(faces)
            px = rng.randint(60, 160 if len(boxes) < 2 else 100)
            if x + 2 * px > 640:
                break
            boxes.append(_place(c, photo, box, px, x, rng.randint(0, 480 - 2 * px),
                                rng.choice([0, 0, -25, -12, 12, 25])))
            x += 2 * px + 5
        out.append((c, boxes))
    return out


def scenes(root: Path, count: int, seed: int = 0, labelled: bool = False):
    """Generated 640x480 scenes with pasted face crops of root/validation, each face's box (and its file)."""
    rng = random.Random(seed)
    files = sorted(p for p in (root / "validation").glob("*/*") if p.is_file())
    if not files:
        raise SystemExit(f"No images under {root}/validation/<class>/.")
    rng.shuffle(files)
    out, k = [], 0
    for s in range(count):
        canvas, boxes, used = _canvas(s), [], []
        for _ in range(1 if labelled else rng.choice([1, 1, 2, 3])):
            for _ in range(50):
                side = rng.randint(110, 220) if labelled else rng.randint(50, 220)
                x, y = rng.randint(0, 640 - side), rng.randint(0, 480 - side)
                if all(x + side < bx or bx + bs < x or y + side < by or by + bs < y for bx, by, bs in boxes):
                    canvas.paste(Image.open(files[k % len(files)]).convert("RGB").resize((side, side)), (x, y))
                    boxes.append((x, y, side))
                    used.append(files[k % len(files)])
                    k += 1
                    break
        out.append((canvas, [(x, y, s, s) for x, y, s in boxes], used))
    return out


def iou(a, b) -> float:
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def count(det, photos):
    """(faces found, faces there, false faces, median ms) of a detector on photos with known face boxes."""
    hits = there = wrong = 0
    times = []
    for canvas, boxes, *_ in photos:
        start = time.perf_counter()
        found = det.detect(canvas)
        times.append(time.perf_counter() - start)
        hits += sum(any(iou(b, f) > 0.3 for f in found) for b in boxes)
        wrong += sum(not any(iou(b, f) > 0.3 for b in boxes) for f in found)
        there += len(boxes)
    return hits, there, wrong, 1000 * statistics.median(times)


def median_ms(det, img, repeats: int) -> float:
    det.detect(img)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        det.detect(img)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def benchmark(args) -> None:
    from skimage import data

    no_face = [Image.fromarray(getattr(data, n)()).convert("RGB").resize((640, 480)) for n in NO_FACE]
    alone, turned = single_faces()
    groups = group_photos()
    gen = scenes(args.data, args.scenes) if args.data else []
    photo = alone[len(alone) // 2][0]
    sets = [("alone", alone), ("turned", turned), ("groups", groups)] + ([("scenes", gen)] if gen else [])
    head = ["detector", "options", "ms, 640x480 photo"] + \
        [f"{n}: found of {sum(len(b) for _, b, *_ in s)}" for n, s in sets] + \
        ["false faces in those", f"false faces on {len(no_face)} photos without people"]
    print("| " + " | ".join(head) + " |")
    print("| --- " * len(head) + "|")
    for name, opts in SETTINGS:
        det = make_detector(name, **opts)
        cells = [name, ", ".join(f"{k}={v}" for k, v in opts.items()) or "defaults",
                 f"{median_ms(det, photo, args.repeats):.1f}"]
        wrong = 0
        for _, s in sets:
            hits, there, w, _ = count(det, s)
            cells.append(f"{hits} ({hits / there:.0%})")
            wrong += w
        cells += [str(wrong), str(sum(len(det.detect(im)) for im in no_face))]
        print("| " + " | ".join(cells) + " |", flush=True)


def timing(repeats: int) -> None:
    """Detection and crop time of each detector's defaults on one 640x480 photo, taken in turns (a busy machine
    slows both alike)."""
    from emoclf.inference.align import Framing, find_face_crops

    photo = single_faces()[0][33][0]  # the astronaut, face about 84 px, in a 640x480 photo
    dets = {n: make_detector(n) for n in ("haar", "mtcnn")}
    times = {n: [] for n in dets}
    for det in dets.values():
        find_face_crops(det, photo, Framing())  # warm-up
    for _ in range(repeats):
        for name, det in dets.items():
            start = time.perf_counter()
            find_face_crops(det, photo, Framing())
            times[name].append(time.perf_counter() - start)
    for name, v in times.items():
        print(f"{name}: median {1000 * statistics.median(v):.1f} ms, fastest {1000 * min(v):.1f} ms "
              f"({repeats} calls)")


def framing(root: Path, count_: int) -> None:
    """Median place of MTCNN's landmarks in the training faces: the eye centre and the eyes-to-mouth distance."""
    files = sorted(p for p in (root / "validation").glob("*/*") if p.is_file())
    random.Random(0).shuffle(files)
    det = make_detector("mtcnn")
    ex, ey, em = [], [], []
    for f in files[:count_]:
        face = Image.open(f).convert("RGB").resize((192, 192), Image.BICUBIC)
        canvas = Image.new("RGB", (384, 384), (128, 128, 128))
        canvas.paste(face, (96, 96))
        found = det.detect_faces(canvas)
        if not found:
            continue
        m = found[0].landmarks
        e = ((m[0][0] + m[1][0]) / 2, (m[0][1] + m[1][1]) / 2)
        mouth = ((m[3][0] + m[4][0]) / 2, (m[3][1] + m[4][1]) / 2)
        ex.append((e[0] - 96) / 192)
        ey.append((e[1] - 96) / 192)
        em.append(math.hypot(mouth[0] - e[0], mouth[1] - e[1]) / 192)
    print(f"landmarks found in {len(ex)} of {min(count_, len(files))} faces of {root}/validation")
    for name, v in (("eye_x", ex), ("eye_y", ey), ("eye_mouth", em)):
        q1, q3 = np.percentile(v, [25, 75])
        print(f"{name}: median {np.median(v):.3f} (quartiles {q1:.3f}-{q3:.3f})")


def write_photos(root: Path, out: Path, count_: int) -> None:
    """Labelled photos (one pasted face of 110-220 px per 640x480 scene) and the same faces as crops."""
    for canvas, _, used in scenes(root, count_, seed=1, labelled=True):
        src = used[0]
        for kind, img in (("photos", canvas), ("crops", Image.open(src))):
            folder = out / kind / src.parent.name
            folder.mkdir(parents=True, exist_ok=True)
            img.save(folder / f"{src.stem}.png")
    print(f"{count_} labelled photos in {out / 'photos'}, their faces in {out / 'crops'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, help="dataset with validation/<class>/ face crops for the scene test")
    ap.add_argument("--scenes", type=int, default=150, help="generated scenes (default 150)")
    ap.add_argument("--repeats", type=int, default=15, help="timed calls per photo (default 15)")
    ap.add_argument("--framing", action="store_true", help="measure the training faces' framing (needs --data)")
    ap.add_argument("--write-photos", type=Path, metavar="DIR", help="write labelled photos and crops (needs --data)")
    ap.add_argument("--count", type=int, default=700, help="faces for --framing and --write-photos (default 700)")
    ap.add_argument("--timing", action="store_true", help="only the time of each detector, taken in turns")
    args = ap.parse_args()
    if (args.framing or args.write_photos) and not args.data:
        raise SystemExit("--framing and --write-photos need --data DIR (a folder with validation/<class>/ faces).")
    if args.timing:
        timing(max(args.repeats, 40))
    elif args.framing:
        framing(args.data, args.count)
    elif args.write_photos:
        write_photos(args.data, args.write_photos, args.count)
    else:
        benchmark(args)


if __name__ == "__main__":
    main()
