"""Haar face detection and the square face crop."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from emoclf.inference.face import FaceDetector, square_crop_box

skimage_data = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return Image.fromarray(skimage_data.astronaut())


def test_finds_the_astronaut_face(astronaut):
    boxes = FaceDetector().detect(astronaut)
    assert len(boxes) == 1
    x, y, w, h = boxes[0]
    # Her face spans roughly x 175-275, y 65-165 in the 512 x 512 photo.
    assert 150 <= x <= 200 and 40 <= y <= 90 and 70 <= w <= 130 and w == h


def test_downscaled_detection_reports_original_pixels(astronaut):
    big = astronaut.resize((1024, 1024))
    fast = FaceDetector(detect_size=320).detect(big)
    full = FaceDetector(detect_size=0).detect(astronaut)
    assert len(fast) == 1
    assert np.allclose(np.asarray(fast[0]), 2 * np.asarray(full[0]), atol=16)


def _pasted(astronaut, side: int) -> Image.Image:
    photo = Image.new("RGB", (640, 480), (120, 120, 120))
    photo.paste(astronaut.resize((side, side)), (300, 160))
    return photo


def test_a_small_face_in_a_photo(astronaut):
    # The astronaut's face at about 48 px in a 640 x 480 photo: 24 px on the 320 px detection copy.
    # OpenCV's "default" cascade at 1.1 / 6 (the earlier default) misses it; so does the default --min-face 48,
    # which skips the smallest, costliest pyramid level.
    side = 240
    boxes = FaceDetector(min_face=0).detect(_pasted(astronaut, side))
    assert len(boxes) == 1
    x, y, w, h = boxes[0]
    k = side / 512  # her face spans x 175-275, y 65-165 of the 512 px photo
    assert abs(x - (300 + 180 * k)) < 12 and abs(y - (160 + 65 * k)) < 12 and abs(w - 100 * k) < 12
    assert FaceDetector().detect(_pasted(astronaut, side)) == []


def test_min_face_skips_only_smaller_faces(astronaut):
    photo = _pasted(astronaut, 256)  # a 52 px face
    assert len(FaceDetector().detect(photo)) == 1
    assert FaceDetector(min_face=56).detect(photo) == []
    with pytest.raises(ValueError, match="min-face"):
        FaceDetector(min_face=-1)


def test_cascade_by_name_or_file():
    import cv2

    for name in ("default", "alt", "alt2"):
        assert FaceDetector(cascade=name)._classifier is not None
    path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
    assert FaceDetector(cascade=path)._classifier is not None
    with pytest.raises(FileNotFoundError, match="alt2"):  # the message lists the names
        FaceDetector(cascade="alt3")


def test_no_face_in_a_plain_image():
    img = Image.fromarray(np.tile(np.linspace(0, 255, 400, dtype=np.uint8), (300, 1)))
    assert FaceDetector().detect(img) == []


def test_several_faces_largest_first(astronaut):
    canvas = Image.new("RGB", (512 + 360, 512), (128, 128, 128))
    canvas.paste(astronaut.resize((360, 360)), (0, 76))
    canvas.paste(astronaut, (360, 0))
    boxes = FaceDetector(detect_size=0).detect(canvas)
    assert len(boxes) == 2
    assert boxes[0][2] > boxes[1][2]
    assert boxes[0][0] > 360 and boxes[1][0] < 360


def test_square_crop_grows_and_stays_inside():
    assert square_crop_box((100, 100, 50, 40), 400, 300, margin=0.2) == (90, 85, 70, 70)
    assert square_crop_box((100, 100, 50, 40), 400, 300, margin=0) == (100, 95, 50, 50)
    x, y, w, h = square_crop_box((0, 0, 60, 60), 100, 80, margin=0.5)  # at the corner: moved, then clipped
    assert (x, y) == (0, 0) and w == h == 80
    with pytest.raises(ValueError, match="margin"):
        square_crop_box((0, 0, 10, 10), 100, 100, margin=-1)


def test_bad_detector_settings_are_named():
    with pytest.raises(ValueError, match="scale-factor"):
        FaceDetector(scale_factor=1.0)
    with pytest.raises(ValueError, match="min-neighbors"):
        FaceDetector(min_neighbors=-1)
    with pytest.raises(FileNotFoundError, match="Cascade file"):
        FaceDetector(cascade="/nonexistent/cascade.xml")


def test_opencv_without_cascades_is_a_clear_error(monkeypatch):
    import cv2

    monkeypatch.delattr(cv2, "CascadeClassifier")
    with pytest.raises(RuntimeError, match="opencv-python>=4.8,<5"):
        FaceDetector()
