#!/usr/bin/env python
"""Predict latency per 640x480 photo: the PyTorch path against the exported ONNX model under onnxruntime.

For each model, times ``predict_file`` end to end (decode, face detection and crop with each --face option,
resize, inference, record) and prints the median and 90th percentile over --repeats calls after --warmup calls,
for every face option (none, haar, mtcnn). With --cold it also times a whole ``emoclf predict`` process per
backend, where the ONNX path skips importing torch. Latency does not depend on the weights, so by default the runs are
untrained models built from configs/cnn.yaml and configs/mobilenet_v3.yaml; pass --run to time your own.

    python scripts/benchmark_predict.py --repeats 50 --cold 3
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from emoclf.inference.export import export_run  # noqa: E402
from emoclf.inference.face import FACE_NAMES, make_detector  # noqa: E402
from emoclf.inference.onnx_predict import make_predictor  # noqa: E402

CONFIGS = {"cnn": "configs/cnn.yaml", "mobilenet_v3_small": "configs/mobilenet_v3.yaml"}


def untrained_run(name: str, dest: Path) -> Path:
    """A run folder holding only best.pt: the configured model with random weights."""
    from emoclf.config import load_config
    from emoclf.models.factory import architecture
    from emoclf.runs import checkpoint as ck

    cfg = load_config(str(REPO / CONFIGS[name]), ["model.pretrained=false", f"output.dir={dest}"])
    classes = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    run = dest / name
    ck.save(ck.make_checkpoint(architecture(cfg, len(classes)).eval(), cfg, classes, 0, {}), run / "best.pt")
    return run


def photo(dest: Path) -> Path:
    """A 640x480 JPEG with one real face (scikit-image's astronaut) when available, else a drawn one."""
    canvas = Image.new("RGB", (640, 480), (120, 120, 120))
    try:
        from skimage import data

        face = Image.fromarray(data.astronaut()).resize((480, 480))
    except ImportError:
        from emoclf.data.synthetic import face_photo

        face = face_photo(320).resize((480, 480))
    canvas.paste(face, (80, 0))
    path = dest / "photo_640x480.jpg"
    canvas.save(path, quality=90)
    return path


def latency(predictor, image: Path, repeats: int, warmup: int):
    """Median and 90th percentile milliseconds of one predict_file call, and the record of the last one."""
    for _ in range(warmup):
        predictor.predict_file(image)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        record = predictor.predict_file(image).record
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), float(np.percentile(times, 90)), record


def cold_start(run: Path, image: Path, times: int) -> float:
    """Median seconds of a whole ``emoclf predict`` process (imports included) with a run or a .onnx file."""
    cmd = [sys.executable, "-m", "emoclf", "-q", "predict", str(image), "--run", str(run), "--no-figure", "--json"]
    spans = []
    for _ in range(times):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, cwd=REPO)
        spans.append(time.perf_counter() - start)
    return statistics.median(spans)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", nargs="+", help="run folders to time (default: untrained cnn and mobilenet_v3_small)")
    ap.add_argument("--image", help="photo to predict on (default: a generated 640x480 face photo)")
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--cold", type=int, default=0, metavar="N", help="also time N whole predict processes")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        runs = [Path(r) for r in args.run] if args.run else [untrained_run(n, tmp) for n in CONFIGS]
        image = Path(args.image) if args.image else photo(tmp)
        print(f"image {image.name} {Image.open(image).size[0]}x{Image.open(image).size[1]}, median (p90) ms per "
              f"image over {args.repeats} calls after {args.warmup}\n")
        print("| model | input | --face | PyTorch ms | ONNX Runtime ms | speed-up | faces |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for run in runs:
            onnx_file = export_run(run, "onnx", tmp / f"{run.name}.onnx", force=True)
            for face in FACE_NAMES:
                detector, row = make_detector(face), []
                for target in (run, onnx_file):
                    pred = make_predictor(target, "torch", "cpu", detector, tta="none")
                    row.append(latency(pred, image, args.repeats, args.warmup))
                (t_med, t_p90, rec), (o_med, o_p90, _) = row
                size = pred.prep["image_size"]  # pred: the ONNX predictor, made last
                print(f"| {pred.meta['model_name']} | {size}x{size} {pred.meta['color_mode']} | "
                      f"{face} | {t_med:.2f} ({t_p90:.2f}) | {o_med:.2f} ({o_p90:.2f}) | "
                      f"{t_med / o_med:.2f}x | {len(rec['faces'])} |", flush=True)
            if args.cold:
                t, o = (cold_start(target, image, args.cold) for target in (run, onnx_file))
                print(f"|   whole `emoclf predict` process, {run.name} | | none | {t:.2f} s | {o:.2f} s | "
                      f"{t / o:.2f}x | |", flush=True)


if __name__ == "__main__":
    main()
