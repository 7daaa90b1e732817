#!/usr/bin/env python
"""emoclf serve: time of one POST /api/predict on scikit-image's astronaut photo, per face option and Grad-CAM.

It starts the server in this process on a free port of 127.0.0.1 and posts the photo with http.client; it prints
the first request's time (which loads the run) and the median of --repeat more. Without RUN it trains a tiny RGB
CNN on emoclf's synthetic faces into a temporary folder first (a few seconds).

    python scripts/benchmark_serve.py [RUN] [--repeat 20]
"""
from __future__ import annotations

import argparse
import http.client
import io
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

from PIL import Image
from skimage import data as skimage_data

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emoclf.config import load_config
from emoclf.data.synthetic import make_dataset
from emoclf.serve.server import make_server
from emoclf.serve.service import Service

TINY = ["data.grayscale=false", "data.image_size=32", "model.width=8", "model.depth=2", "train.epochs=2",
        "train.batch_size=32", "augment.erasing=0", "augment.rotation=0", "output.name=cnn_rgb"]


def tiny_run(folder: Path) -> Path:
    """A two-epoch RGB CNN on synthetic faces, trained into ``folder``."""
    from emoclf.training.trainer import train

    root = make_dataset(folder / "faces", classes=("angry", "happy", "sad", "surprise"), train_per_class=30,
                        val_per_class=8, size=64, seed=1, fmt="jpg")
    return train(load_config("configs/cnn.yaml", TINY + [f"data.root={root}", f"output.dir={folder / 'out'}"]))


def post(address, query: dict, photo: bytes) -> float:
    conn = http.client.HTTPConnection(*address, timeout=120)
    start = time.perf_counter()
    conn.request("POST", "/api/predict?" + urlencode(query), photo)
    resp = conn.getresponse()
    resp.read()
    conn.close()
    if resp.status != 200:
        raise SystemExit(f"HTTP {resp.status} for {query}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", help="run folder (default: a tiny run trained first)")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(args.run) if args.run else tiny_run(Path(tmp))
        buf = io.BytesIO()
        Image.fromarray(skimage_data.astronaut()).save(buf, "JPEG", quality=92)
        service = Service([run], device=args.device)
        server = make_server(service, port=0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            for face, gradcam in (("none", "0"), ("haar", "0"), ("haar", "1")):
                query = {"run": str(run), "face": face, "gradcam": gradcam, "name": "astronaut.jpg"}
                first = post(server.server_address[:2], query, buf.getvalue())
                times = [post(server.server_address[:2], query, buf.getvalue()) for _ in range(args.repeat)]
                print(f"face={face} gradcam={gradcam}: first {first * 1000:.0f} ms, median of {args.repeat} "
                      f"{statistics.median(times) * 1000:.0f} ms")
        finally:
            server.shutdown()
            server.server_close()
            service.close()


if __name__ == "__main__":
    main()
