"""The face options of predict, evaluate and explain: --face NAME (--haar for short), the detectors' settings,
--align and --margin; and the detector they ask for."""
from __future__ import annotations

import argparse
import logging
from typing import Dict, List

log = logging.getLogger(__name__)

# Detector settings in the order they are listed; None: the detector's own default (they differ per detector).
DETECTOR_OPTIONS = ("scale_factor", "min_neighbors", "detect_size", "min_face", "cascade")
TAKES = {"haar": set(DETECTOR_OPTIONS), "mtcnn": {"detect_size", "min_face"}}
MARGIN = 0.2


def add_face_args(p: argparse.ArgumentParser, several: bool = False) -> None:
    """--face (several names separated by commas when ``several``), --haar, the detectors' settings, --margin and
    --align."""
    from emoclf.inference.face import DEFAULT_FACE, FACE_NAMES

    names = ", ".join(FACE_NAMES)
    if several:
        p.add_argument("--face", nargs="?", const=",".join(FACE_NAMES), metavar="NAMES", help=f"score the photos "
                       f"through each face crop of NAMES, separated by commas ({names}; none: the whole photo), side "
                       f"by side; --face alone: all of them")
    else:
        p.add_argument("--face", nargs="?", const=DEFAULT_FACE, choices=FACE_NAMES, help=f"detect faces and score "
                       f"each one: {names} (without --face: none, the whole image; --face alone: {DEFAULT_FACE}, which "
                       f"finds turned and tilted faces and their landmarks)")
    p.add_argument("--haar", action="store_true", help="short for --face haar (OpenCV's Haar cascade)")
    p.add_argument("--scale-factor", type=float, help="Haar image pyramid step, > 1; smaller finds more faces, "
                   "slower (default 1.2)")
    p.add_argument("--min-neighbors", type=int, help="Haar detections needed per face; higher means fewer false "
                   "faces (default 3)")
    p.add_argument("--detect-size", type=int, help="detect faces on a copy with this longer side in pixels, for "
                   "speed; larger (or 0: full resolution) finds smaller faces, slower (default 320 for haar, 640 for "
                   "mtcnn)")
    p.add_argument("--min-face", type=int, metavar="PX", help="smallest face looked for, in the photo's pixels "
                   "(default 48 for haar, the size of FER2013's faces, and 40 for mtcnn; haar: 0 looks as small as "
                   "--detect-size allows)")
    p.add_argument("--margin", type=float, default=MARGIN, help="margin per side of the square crop of a face "
                   "found without landmarks (haar), share of the face (default %(default)s)")
    p.add_argument("--cascade", help="Haar: OpenCV frontal-face cascade by name: alt (the default), alt2, default, "
                   "alt_tree; or a Haar cascade XML file")
    p.add_argument("--align", action=argparse.BooleanOptionalAction, default=True, help="with landmarks (mtcnn), "
                   "turn each face so that its eyes are level before cropping (default: on)")
    p.add_argument("--framing", type=framing_shares, metavar="X,Y,D", help="with landmarks: the eye centre's place "
                   "across (X) and down (Y) the crop and the eyes-to-mouth distance (D), shares of the crop's side "
                   "(default 0.5,0.38,0.40: FER2013's faces, measured)")


def framing_shares(text: str):
    """``--framing X,Y,D`` as three numbers."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"--framing takes three shares of the crop's side, X,Y,D (e.g. "
                                         f"0.5,0.38,0.40); got {text!r}.")
    return values


def framing_of(args):
    """The crop framing the options ask for (--align, --margin, --framing)."""
    from emoclf.inference.align import Framing

    return Framing(args.align, args.margin, *(args.framing or ()))


def face_choices(args) -> List[str]:
    """The face option names asked for: --face (a list for evaluate), or haar for --haar; ["none"] without."""
    from emoclf.inference.face import face_names

    face = getattr(args, "face", None)
    if args.haar:
        if face and face != "haar":
            raise ValueError(f"--haar is short for --face haar; it cannot go with --face {face}. Give one of them.")
        return ["haar"]
    return face_names(face) if face else ["none"]


def detector_options(args, name: str) -> Dict:
    """The detector settings given on the command line that the detector ``name`` takes."""
    return {k: getattr(args, k) for k in DETECTOR_OPTIONS if getattr(args, k) is not None and k in TAKES.get(name, ())}


def check_face_options(args, names: List[str]) -> None:
    """Say which given settings no chosen detector takes (they would do nothing); check --margin early."""
    from emoclf.inference.face import check_margin

    check_margin(args.margin)  # before any model is loaded or image read
    taken = set().union(*(TAKES.get(n, set()) for n in names))
    unused = [f"--{k.replace('_', '-')}" for k in DETECTOR_OPTIONS if getattr(args, k) is not None and k not in taken]
    if args.margin != MARGIN and "haar" not in names:  # landmark crops are framed by the landmarks
        unused.append("--margin")
    if unused:
        if names == ["none"]:
            log.warning("%s only apply with --haar or --face NAME (face detection); add one to use them.",
                        ", ".join(unused))
        else:
            log.warning("%s do nothing with --face %s.", ", ".join(unused), ",".join(names))


def detector_of(args):
    """The face detector the options ask for (predict, explain, video, webcam), or None."""
    from emoclf.inference.face import make_detector

    names = face_choices(args)
    if len(names) != 1:
        raise ValueError(f"--face takes one detector here; got {','.join(names)}.")
    check_face_options(args, names)
    return make_detector(names[0], **detector_options(args, names[0]))


def cmd_evaluate_faces(args) -> int:
    """emoclf evaluate RUN --face NAME[,NAME...]: labelled photos through each face crop (side by side for several)."""
    from emoclf.inference.face_compare import compare_faces
    from emoclf.inference.face_eval import evaluate_cropped

    names = face_choices(args)
    check_face_options(args, names)
    framing = framing_of(args)
    if len(names) == 1:
        m = evaluate_cropped(args.run, args.data, names[0], args.split, args.tta, args.device, args.out, framing,
                             detector_options(args, names[0]))
        print(f"{names[0]}: accuracy {m['accuracy']:.4f}  macro F1 {m['f1_macro']:.4f}  on {m['num_images']} images; "
              f"faces found in {m['faces_found']}, {m['fallbacks']} scored whole (no face found)")
        print(f"Written to {m['out_dir']}")
        return 0
    s = compare_faces(args.run, args.data, names, args.split, args.tta, args.device, args.out, framing,
                      {n: detector_options(args, n) for n in names})
    for r in s["rows"]:
        found = "" if r["face"] == "none" else f"  faces found {r['faces_found']}, fallbacks {r['fallbacks']}"
        print(f"{r['face']:<6} accuracy {r['accuracy']:.4f}  macro F1 {r['f1_macro']:.4f}  on {r['images']} images"
              f"{found}")
    print(f"{s['changed']} photo(s) changed prediction with the crop" +
          (f" (gallery: {s['gallery']})" if s["gallery"] else ""))
    print(f"Side by side: {s['table']}")
    return 0
