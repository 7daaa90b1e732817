"""Command-line parts of predict on video and webcam, and of explain: options, checks and dispatch."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Tuple

from emoclf.cli.faces import add_face_args, detector_of, framing_of
from emoclf.cli.options import add_device, add_json, add_out, add_run_choice
from emoclf.utils.text import json_line

log = logging.getLogger(__name__)


def add_media_args(p: argparse.ArgumentParser) -> None:
    """predict's video and webcam options."""
    p.add_argument("--webcam", type=int, metavar="INDEX", help="show camera INDEX (usually 0) live with labels; "
                   "q or Esc quits; needs a display")
    p.add_argument("--every", type=int, default=1, metavar="N", help="on video and webcam, score every Nth frame "
                   "and show the latest scores in between (default 1: every frame)")


def split_media(args) -> Tuple[List[str], List[str]]:
    """predict's inputs as (images and folders, video files); checks --webcam and --every."""
    from emoclf.data.imaging import is_video_name

    if args.every < 1:
        raise ValueError(f"--every must be 1 or more (score every Nth frame); got {args.every}.")
    if args.webcam is not None and args.inputs:
        raise ValueError("--webcam shows the camera live and takes no IMAGE|DIR|VIDEO inputs; run them separately.")
    if args.webcam is None and not args.inputs:
        raise ValueError("Nothing to predict: pass image files, folders or videos (.mp4, .avi, .mov, ...), "
                         "or --webcam 0.")
    videos = [i for i in args.inputs if is_video_name(i) and not Path(i).is_dir()]
    return [i for i in args.inputs if i not in videos], videos


def predict_media(args, predictor, videos: List[str], info) -> None:
    """Run the webcam view or score each video file, printing one line per video."""
    if args.webcam is not None:
        from emoclf.inference.webcam import run_webcam

        shown = run_webcam(predictor, args.webcam, args.every)
        print(f"Camera {args.webcam}: {shown} frame(s) shown.", file=info)
        return
    from emoclf.inference.video import predict_video

    for video in videos:
        result = predict_video(predictor, Path(video), Path(args.out), args.every, annotated=not args.no_figure)
        if args.json:  # one JSON line per video, as per image; per-frame scores are in its CSV
            print(json_line(result.record()), flush=True)
        else:
            print(result.describe(), flush=True)


def cmd_explain(args) -> int:
    """emoclf explain: Grad-CAM figure per image (per face with --haar)."""
    from emoclf.inference.explain import Explainer, explain_inputs
    from emoclf.inference.predict import describe_prediction
    from emoclf.runs.folder import default_run

    info = sys.stderr if args.json else sys.stdout
    run, why = (Path(args.run), "--run") if args.run else default_run(Path(args.runs_dir))
    explainer = Explainer(run, args.device, detector_of(args), args.margin)
    explainer.predictor.framing = framing_of(args)
    print(f"Using run: {run} ({why})", file=info, flush=True)
    print(f"Grad-CAM layer: {explainer.layer_name}", file=info, flush=True)

    def emit(record):
        if args.json:
            print(json_line(record), flush=True)
        else:
            print(describe_prediction(record) + (f" -> {record['gradcam']}" if record.get("gradcam") else ""))

    records = explain_inputs(explainer, args.inputs, Path(args.out), args.all_classes, emit)
    print(f"{sum(1 for r in records if r.get('gradcam'))} Grad-CAM figure(s) in {args.out}", file=info)
    return 0


def add_explain_parser(sub) -> None:
    """The explain subcommand."""
    p = sub.add_parser("explain", help="Grad-CAM heat maps: where in the face the model saw its emotion")
    p.add_argument("inputs", nargs="+", metavar="IMAGE|DIR", help="image files and/or folders (class folders "
                   "are read recursively)")
    add_run_choice(p, False, "run folder or checkpoint (default: as for predict)")
    add_face_args(p)
    p.add_argument("--all-classes", action="store_true", help="one heat map per class, not only the winner's")
    add_out(p, "outputs/predictions", "folder for the <image>_gradcam.png figures (default: outputs/predictions, "
            "beside predict's figures; same-named figures are replaced)")
    add_json(p)
    add_device(p)
    p.set_defaults(func=cmd_explain)
