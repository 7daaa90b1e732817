"""emoclf predict on video files and the webcam: per-frame CSV, --every, annotated video, clear errors."""
from __future__ import annotations

import csv
import json
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emoclf.cli.app import main
from emoclf.inference.face import FaceDetector
from emoclf.inference.predict import Predictor
from emoclf.inference.video import predict_video, score_frames
from emoclf.utils.files import current_umask

cv2 = pytest.importorskip("cv2")
skimage_data = pytest.importorskip("skimage.data")
FRAMES, SIZE = 12, (160, 120)


def _frame(face: np.ndarray, i: int) -> np.ndarray:
    """A grey 160x120 BGR frame with the astronaut's head moving right by 3 px per frame."""
    frame = np.full((SIZE[1], SIZE[0], 3), 90, np.uint8)
    x = 20 + 3 * i
    frame[10:110, x:x + 90] = face
    return frame


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """12 frames of 160x120 MJPG video at 10 frames/s with one real face in each."""
    head = skimage_data.astronaut()[10:230, 120:320, ::-1]  # RGB to BGR
    face = cv2.resize(np.ascontiguousarray(head), (90, 100))
    path = tmp_path_factory.mktemp("video") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, SIZE)
    for i in range(FRAMES):
        writer.write(_frame(face, i))
    writer.release()
    return path


@pytest.fixture(scope="module")
def clip_frames(clip) -> list:
    """The decoded frames of ``clip`` (read before a test replaces cv2.VideoCapture)."""
    return _frames_of(clip)


def _frames_of(path: Path) -> list:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def _rows(path: Path) -> list:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_haar_video_scores_every_face_of_every_frame(runs, clip, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["predict", str(clip), "--run", str(runs.rgb), "--haar", "--out", str(out)]) == 0
    assert "12 frame(s), 12 scored, 12 face(s)" in capsys.readouterr().out
    rows = _rows(out / "clip_haar_pred.csv")
    classes = Predictor(runs.rgb, "cpu").class_names
    assert list(rows[0]) == ["frame", "time_s", "face", "x", "y", "w", "h", "label", "score"] + \
        [f"p_{c}" for c in classes] + ["fallback"]
    assert [int(r["frame"]) for r in rows] == list(range(FRAMES))
    assert [float(r["time_s"]) for r in rows[:3]] == [0.0, 0.1, 0.2]
    assert {r["face"] for r in rows} == {"1"} and {r["fallback"] for r in rows} == {""}
    xs = [int(r["x"]) for r in rows]
    assert xs[-1] - xs[0] > 20 and all(40 <= int(r["w"]) <= 60 for r in rows)  # the moving head is followed
    for r in rows:
        probs = {c: float(r[f"p_{c}"]) for c in classes}
        assert sum(probs.values()) == pytest.approx(1, abs=1e-3) and r["label"] == max(probs, key=probs.get)
    video = _frames_of(out / "clip_haar_pred.mp4")
    assert len(video) == FRAMES and video[0].shape == (SIZE[1], SIZE[0], 3)
    # no temporary files left
    assert sorted(p.name for p in out.iterdir()) == ["clip_haar_pred.csv", "clip_haar_pred.mp4"]
    for made in out.iterdir():  # readable like every other output, not private to the user
        assert stat.S_IMODE(made.stat().st_mode) == 0o666 & ~current_umask()


def test_every_nth_frame_without_haar(runs, clip, tmp_path, caplog):
    out = tmp_path / "out"
    result = predict_video(Predictor(runs.cnn, "cpu"), clip, out, every=5)
    assert (result.frames, result.scored, result.faces) == (FRAMES, 3, 0)
    rows = _rows(result.csv)
    assert [int(r["frame"]) for r in rows] == [0, 5, 10]
    assert {r["face"] for r in rows} == {"0"}  # the whole frame
    assert all([int(r[k]) for k in ("x", "y", "w", "h")] == [0, 0, *SIZE] for r in rows)
    assert len(_frames_of(result.annotated)) == FRAMES  # frames in between carry the latest label
    again = predict_video(Predictor(runs.cnn, "cpu"), clip, out, every=5, annotated=False)
    assert again.annotated is None and "Replacing" in caplog.text  # an older result is replaced, and said so
    assert _rows(again.csv) == rows


def test_json_output_has_one_line_per_video(runs, clip, tmp_path, capsys):
    args = ["predict", str(clip), "--run", str(runs.cnn), "--json", "--every", "6", "--no-figure"]
    assert main(args + ["--out", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    rec, = [json.loads(line) for line in out.splitlines()]  # stdout holds JSON Lines only
    assert (rec["video"], rec["frames"], rec["scored"], rec["annotated"]) == (str(clip), FRAMES, 2, None)
    assert len(_rows(Path(rec["csv"]))) == 2 and "Using run" in err


def test_batched_frame_scores_match_predicting_the_frame_as_an_image(runs, clip, tmp_path):
    frames = _frames_of(clip)[:3]
    for detector in (None, FaceDetector()):
        predictor = Predictor(runs.rgb, "cpu", detector)
        batched = score_frames(predictor, frames)
        for i, frame in enumerate(frames):
            path = tmp_path / f"frame{i}.png"
            Image.fromarray(frame[:, :, ::-1]).save(path)  # lossless: the very same pixels
            record = predictor.predict_file(path).record
            items = record["faces"] or [record]
            assert len(batched[i]) == len(items)
            for got, want in zip(batched[i], items):
                assert got.probs == pytest.approx(list(want["scores"].values()), abs=1e-4)
                if record["faces"]:
                    assert list(got.box) == want["box"]


def test_no_face_frames_fall_back_to_the_whole_frame(runs, tmp_path):
    path = tmp_path / "grey.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, SIZE)
    for _ in range(4):
        writer.write(np.full((SIZE[1], SIZE[0], 3), 120, np.uint8))
    writer.release()
    result = predict_video(Predictor(runs.cnn, "cpu", FaceDetector()), path, tmp_path / "out", annotated=False)
    rows = _rows(result.csv)
    assert len(rows) == 4 and {r["fallback"] for r in rows} == {"whole_image"} and {r["face"] for r in rows} == {"0"}
    assert result.csv.name == "grey_haar_pred.csv"  # the run without a face crop writes grey_pred.csv beside it


def test_unreadable_video_names_the_file_and_the_fix(runs, tmp_path, capsys):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    assert main(["predict", str(bad), "--run", str(runs.cnn), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "broken.mp4" in err and "ffmpeg" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_bad_media_arguments(runs, clip, capsys):
    assert main(["predict", "--run", str(runs.cnn)]) == 2
    assert "--webcam 0" in capsys.readouterr().err
    assert main(["predict", str(clip), "--webcam", "0", "--run", str(runs.cnn)]) == 2
    assert "takes no" in capsys.readouterr().err
    assert main(["predict", str(clip), "--every", "0", "--run", str(runs.cnn)]) == 2
    assert "--every must be 1 or more" in capsys.readouterr().err


class FakeCamera:
    """Stands in for cv2.VideoCapture: a camera that opens (or not) and delivers the clip's frames."""

    frames: list = []
    opens = True

    def __init__(self, index):
        self.index, self.left = index, list(self.frames)

    def isOpened(self):
        return self.opens

    def read(self):
        return (True, self.left.pop(0).copy()) if self.opens and self.left else (False, None)

    def release(self):
        pass


@pytest.fixture
def screen(monkeypatch):
    """A display that accepts windows; records what is shown; q is pressed on the third frame."""
    shown = []
    keys = iter([-1, -1, ord("q")])
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr(cv2, "namedWindow", lambda *a: None)
    monkeypatch.setattr(cv2, "imshow", lambda name, frame: shown.append(frame.copy()))
    monkeypatch.setattr(cv2, "waitKey", lambda delay: next(keys, ord("q")))
    monkeypatch.setattr(cv2, "getWindowProperty", lambda *a: 1.0)
    monkeypatch.setattr(cv2, "destroyAllWindows", lambda: None)
    monkeypatch.setattr(cv2, "VideoCapture", FakeCamera)
    return shown


def test_webcam_without_a_display_says_so(runs, monkeypatch, capsys):
    monkeypatch.setattr("emoclf.inference.webcam.sys.platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["predict", "--webcam", "0", "--run", str(runs.cnn)]) == 2
    err = capsys.readouterr().err
    assert "needs a screen" in err and "DISPLAY" in err and "emoclf predict clip.mp4" in err


def test_webcam_when_opencv_cannot_open_a_window(runs, screen, monkeypatch, capsys):
    def no_gui(*args):
        raise cv2.error("The function is not implemented. Rebuild the library with GTK+ support")

    monkeypatch.setattr(cv2, "namedWindow", no_gui)
    assert main(["predict", "--webcam", "0", "--run", str(runs.cnn)]) == 2
    err = capsys.readouterr().err
    assert "needs a screen" in err and "GTK" in err


def test_webcam_that_cannot_be_opened_says_so(runs, screen, monkeypatch, capsys):
    monkeypatch.setattr(FakeCamera, "opens", False)
    assert main(["predict", "--webcam", "1", "--run", str(runs.cnn)]) == 2
    err = capsys.readouterr().err
    assert "Cannot open camera 1" in err and "--webcam" in err


def test_webcam_shows_labelled_frames_until_q(runs, clip_frames, screen, monkeypatch, capsys):
    monkeypatch.setattr(FakeCamera, "frames", clip_frames)
    assert main(["predict", "--webcam", "0", "--run", str(runs.rgb), "--haar", "--every", "2"]) == 0
    assert "3 frame(s) shown" in capsys.readouterr().out
    assert len(screen) == 3 and screen[0].shape == (SIZE[1], SIZE[0], 3)
    assert (screen[0] != clip_frames[1]).any()  # a box and a label were drawn
    green = (screen[0][:, :, 1] > 200) & (screen[0][:, :, 0] < 60) & (screen[0][:, :, 2] < 60)
    assert green.sum() > 100
