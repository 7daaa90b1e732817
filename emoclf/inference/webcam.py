"""Live webcam view: face boxes and emotion labels drawn on each frame until q or Esc."""
from __future__ import annotations

import logging
import os
import sys
from typing import List, Optional

from emoclf.inference.face import load_cv2
from emoclf.inference.video import FaceScore, annotate, score_frames

log = logging.getLogger(__name__)
WINDOW = "emoclf (q or Esc quits)"

NO_DISPLAY = ("The webcam view needs a screen to open its window, and {why}. Run it in a desktop session (or over "
              "ssh -X); opencv-python-headless cannot open windows, so install opencv-python 4.x instead; or "
              "record a clip and score it without a window: emoclf predict clip.mp4 --haar")


def check_display(cv2) -> None:
    """Raise ValueError when no window can be shown (no display on Linux, or an OpenCV without GUI)."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise ValueError(NO_DISPLAY.format(why="there is none here (DISPLAY and WAYLAND_DISPLAY are unset)"))
    try:
        cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL)
    except cv2.error as exc:
        first = (str(exc).strip().splitlines() or ["?"])[-1][:160]
        raise ValueError(NO_DISPLAY.format(why=f"OpenCV could not open one ({first})")) from None


def open_camera(cv2, index: int):
    """An opened camera that delivers a first frame; raises ValueError with what to try otherwise."""
    cap = cv2.VideoCapture(index)
    ok = cap.isOpened() and cap.read()[0]
    if not ok:
        cap.release()
        raise ValueError(f"Cannot open camera {index}: it is missing, in use by another program, or camera access "
                         f"is not allowed. Close other camera apps, allow camera access in the system settings, or "
                         f"try another index (--webcam 1).")
    return cap


def _quit_requested(cv2) -> bool:
    key = cv2.waitKey(1) & 0xFF
    # Closing the window with the mouse counts as quitting too.
    return key in (ord("q"), 27) or cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1


def run_webcam(predictor, index: int = 0, every: int = 1, max_frames: Optional[int] = None) -> int:
    """Show camera ``index`` live with face boxes and labels until q or Esc; returns the frames shown."""
    if every < 1:
        raise ValueError(f"--every must be 1 or more (score every Nth frame); got {every}.")
    cv2 = load_cv2()
    check_display(cv2)
    cap = open_camera(cv2, index)
    last: List[FaceScore] = []
    shown = 0
    try:
        while max_frames is None or shown < max_frames:
            ok, frame = cap.read()
            if not ok:
                log.warning("Camera %s stopped delivering frames.", index)
                break
            if shown % every == 0:
                last = score_frames(predictor, [frame])[0]
            try:
                cv2.imshow(WINDOW, annotate(frame, last, predictor.class_names))
            except cv2.error as exc:
                raise ValueError(NO_DISPLAY.format(why=f"OpenCV could not draw it ({str(exc).strip()[-160:]})")) \
                    from None
            shown += 1
            if _quit_requested(cv2):
                break
    finally:
        cap.release()
        cv2.destroyAllWindows()
    return shown
