"""Emotion scores on video files: per-frame CSV of every face and an annotated copy of the video."""
from __future__ import annotations

import csv
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from emoclf.inference.align import output_stem
from emoclf.inference.face import Box, load_cv2
from emoclf.utils.files import usual_file_mode

log = logging.getLogger(__name__)
CHUNK = 16  # frames read, scored in one batch and written together: bounded memory, fewer model calls
# Codecs tried in turn for the annotated video: mp4v ships with every opencv-python wheel; MJPG always works.
WRITERS = ((".mp4", "mp4v"), (".avi", "MJPG"))


@dataclass
class FaceScore:
    """One scored region of a frame: a face (index 1, 2, ... largest first) or the whole frame (index 0)."""

    face: int
    box: Box
    probs: np.ndarray
    fallback: str = ""


def _unreadable(path: Path, why: str) -> ValueError:
    return ValueError(f"Cannot read video {path}: {why}. Convert it to H.264 MP4 (ffmpeg -i \"{path}\" -c:v libx264 "
                      f"-pix_fmt yuv420p clip.mp4) or install an OpenCV build with FFmpeg "
                      f"(pip install 'opencv-python>=4.8,<5').")


def open_video(path: Path):
    """An opened cv2.VideoCapture and its first frame; raises with the fix when it does not decode."""
    cv2 = load_cv2()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No such video: {path}.")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise _unreadable(path, "OpenCV cannot open the file (unknown container or missing codec)")
    ok, first = cap.read()
    if not ok:
        cap.release()
        raise _unreadable(path, "OpenCV opened it but decoded no frame (damaged, empty or an unsupported codec)")
    return cap, first  # the first frame is kept rather than seeking back, which some codecs do inexactly


def _regions(predictor, frame: np.ndarray) -> Tuple[List[np.ndarray], List[Tuple[int, Box]], str]:
    """Model inputs of one BGR frame: each face (largest first), else the whole frame."""
    from PIL import Image

    from emoclf.inference.predict import FALLBACK

    img = Image.fromarray(np.ascontiguousarray(frame[:, :, ::-1]))
    boxes, _, crops = predictor.find_faces(img)
    if not boxes:
        return [predictor.preprocess(img)], [(0, (0, 0, img.width, img.height))], FALLBACK if predictor.detector else ""
    return [predictor.preprocess(c) for c in crops], list(enumerate(boxes, 1)), ""


def score_frames(predictor, frames: Sequence[np.ndarray]) -> List[List[FaceScore]]:
    """Scores of every face (or the whole frame) of each BGR frame, all through the model in one batch."""
    inputs, owners = [], []
    for i, frame in enumerate(frames):
        arrays, regions, fallback = _regions(predictor, frame)
        inputs.extend(arrays)
        owners.extend((i, face, box, fallback) for face, box in regions)
    if not inputs:
        return [[] for _ in frames]
    probs = predictor.probabilities(np.stack(inputs))
    out: List[List[FaceScore]] = [[] for _ in frames]
    for (i, face, box, fallback), row in zip(owners, probs):
        out[i].append(FaceScore(face, tuple(int(v) for v in box), row, fallback))
    return out


def annotate(frame: np.ndarray, scores: Sequence[FaceScore], class_names: Sequence[str]) -> np.ndarray:
    """Draw each face box with its winning label and score onto ``frame`` (in place) and return it."""
    cv2 = load_cv2()
    h, w = frame.shape[:2]
    scale = max(0.4, min(w, h) / 700)  # readable text on both 160 px and 4K frames
    thick = max(1, round(scale * 2))
    for s in scores:
        i = int(s.probs.argmax())
        text = f"{class_names[i]} {s.probs[i]:.2f}"
        x, y, bw, bh = s.box
        if s.face:
            cv2.rectangle(frame, (x, y), (x + bw, y + bh), (0, 255, 0), thick)
        else:
            text = ("no face: " if s.fallback else "whole frame: ") + text
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        top = y - th - base - 2 if s.face and y - th - base - 2 >= 0 else y
        cv2.rectangle(frame, (x, top), (x + tw + 4, top + th + base + 2), (0, 255, 0), -1)
        cv2.putText(frame, text, (x + 2, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick,
                    cv2.LINE_AA)
    return frame


def csv_header(class_names: Sequence[str]) -> List[str]:
    """Columns of a video's per-frame CSV."""
    return ["frame", "time_s", "face", "x", "y", "w", "h", "label", "score"] + \
        [f"p_{c}" for c in class_names] + ["fallback"]


def csv_rows(frame: int, fps: float, scores: Sequence[FaceScore], class_names: Sequence[str]) -> List[List]:
    """One CSV row per scored region of one frame."""
    time_s = f"{frame / fps:.3f}" if fps > 0 else ""
    rows = []
    for s in scores:
        i = int(s.probs.argmax())
        rows.append([frame, time_s, s.face, *s.box, class_names[i], f"{s.probs[i]:.5f}"] +
                    [f"{p:.5f}" for p in s.probs] + [s.fallback])
    return rows


@dataclass
class VideoResult:
    """What predicting one video produced."""

    video: Path
    frames: int
    scored: int
    faces: int  # face rows in the CSV (0 without --haar)
    seconds: float
    csv: Path
    annotated: Optional[Path]

    def record(self) -> dict:
        """The result as plain JSON data (paths as strings), for predict --json."""
        return {"video": str(self.video), "frames": self.frames, "scored": self.scored, "faces": self.faces,
                "seconds": round(self.seconds, 3), "csv": str(self.csv),
                "annotated": str(self.annotated) if self.annotated else None}

    def describe(self) -> str:
        """One human-readable line."""
        rate = self.frames / self.seconds if self.seconds > 0 else 0.0
        faces = f", {self.faces} face(s) found" if self.faces else ""
        made = f"; annotated video {self.annotated}" if self.annotated else ""
        return (f"{self.video}: {self.frames} frame(s), {self.scored} scored{faces} in {self.seconds:.1f} s "
                f"({rate:.1f} frames/s); scores {self.csv}{made}")


def _temp_beside(path: Path) -> Path:
    # The temporary file keeps the extension: OpenCV picks the container from it.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    return Path(tmp)


def _open_writer(out: Path, stem: str, fps: float, size: Tuple[int, int]):
    """(writer, temporary path, final path) for the first codec this OpenCV build can write."""
    cv2 = load_cv2()
    for ext, fourcc in WRITERS:
        final = out / f"{stem}{ext}"
        tmp = _temp_beside(final)
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*fourcc), fps if fps > 0 else 25.0, size)
        if writer.isOpened():
            return writer, tmp, final
        writer.release()
        tmp.unlink(missing_ok=True)
    raise RuntimeError("This OpenCV build can write neither MP4 (mp4v) nor AVI (MJPG) video. Reinstall "
                       "opencv-python, or pass --no-figure to write only the CSV.")


def _replace(tmp: Path, final: Path) -> Path:
    if final.exists():
        log.info("Replacing %s", final)  # like the prediction figures: same name, newer result
    usual_file_mode(tmp)
    os.replace(tmp, final)
    return final


def _chunks(cap, first: np.ndarray, size: int = CHUNK):
    """Lists of up to ``size`` consecutive BGR frames, starting with the already decoded ``first``."""
    chunk = [first]
    while True:
        while len(chunk) < size:
            ok, frame = cap.read()
            if not ok:
                if chunk:
                    yield chunk
                return
            chunk.append(frame)
        yield chunk
        chunk = []


class _Annotated:
    """The annotated video, opened on its first frame (its size is known then) under a temporary name."""

    def __init__(self, out: Path, stem: str, fps: float):
        self.out, self.stem, self.fps = out, stem, fps
        self.writer = self.tmp = self.final = None

    def write(self, frame: np.ndarray) -> None:
        if self.writer is None:
            h, w = frame.shape[:2]
            self.writer, self.tmp, self.final = _open_writer(self.out, self.stem, self.fps, (w, h))
        self.writer.write(frame)

    def close(self, keep: bool) -> Optional[Path]:
        """Release the writer; move the file into place when ``keep``, else delete it."""
        if self.writer is None:
            return None
        self.writer.release()
        if keep:
            return _replace(self.tmp, self.final)
        self.tmp.unlink(missing_ok=True)
        return None


def _scan(predictor, cap, first, every: int, fps: float, rows, video: Optional[_Annotated], bar) -> Tuple[int, ...]:
    """Score every ``every``-th frame, write its CSV rows and every annotated frame; (frames, scored, faces)."""
    names = predictor.class_names
    last: List[FaceScore] = []
    frames = scored = faces = 0
    for chunk in _chunks(cap, first):
        wanted = [i for i in range(len(chunk)) if (frames + i) % every == 0]
        results = dict(zip(wanted, score_frames(predictor, [chunk[i] for i in wanted])))
        for i, frame in enumerate(chunk):
            if i in results:
                last = results[i]  # frames in between show the latest scores
                rows.writerows(csv_rows(frames + i, fps, last, names))
                scored += 1
                faces += sum(1 for s in last if s.face)
            if video is not None:
                video.write(annotate(frame, last, names))
        frames += len(chunk)
        bar.update(len(chunk))
    return frames, scored, faces


def predict_video(predictor, path: Path, out: Path, every: int = 1, annotated: bool = True) -> VideoResult:
    """Score a video file: OUT/<stem>_pred.csv (one row per face per scored frame) and an annotated video;
    OUT/<stem>_<face>_pred.* with a face detector."""
    import time

    from tqdm import tqdm

    if every < 1:
        raise ValueError(f"--every must be 1 or more (score every Nth frame); got {every}.")
    cv2 = load_cv2()
    path, out = Path(path), Path(out)
    cap, first = open_video(path)
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) or None  # unknown for some streams
    out.mkdir(parents=True, exist_ok=True)
    stem = output_stem(path, "pred", predictor.detector)  # clip_pred, clip_haar_pred, ...
    csv_tmp = _temp_beside(out / f"{stem}.csv")
    video = _Annotated(out, stem, fps) if annotated else None
    ok, start = False, time.perf_counter()
    try:
        with open(csv_tmp, "w", newline="", encoding="utf-8") as fh, \
                tqdm(total=total, unit="frame", desc=path.name, disable=None, leave=False) as bar:
            rows = csv.writer(fh)
            rows.writerow(csv_header(predictor.class_names))
            frames, scored, faces = _scan(predictor, cap, first, every, fps, rows, video, bar)
        ok = True
    finally:
        cap.release()
        made = video.close(keep=ok) if video is not None else None
        if not ok:
            csv_tmp.unlink(missing_ok=True)
    seconds = time.perf_counter() - start
    return VideoResult(path, frames, scored, faces, seconds, _replace(csv_tmp, out / f"{stem}.csv"), made)

