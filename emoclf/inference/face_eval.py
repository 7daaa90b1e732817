"""`emoclf evaluate RUN --data PHOTOS --face NAME`: labelled photos scored through a face crop.

Each photo is scored on the crop of its largest face; a photo where the detector finds no face is scored whole
(the same decoding as an evaluation without a crop) and counted as a fallback. The scoring files are those of
``emoclf evaluate`` (runs.scoring), plus each photo's face box, turn, detector and fallback in predictions.csv.
"""
from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from emoclf.data.augment import Normalizer
from emoclf.data.dataset import Split, labelled_split
from emoclf.data.imaging import load_array, open_image, preprocess_pil
from emoclf.inference.align import Framing, face_crop
from emoclf.inference.detection import Face
from emoclf.inference.face import make_detector
from emoclf.runs.ensemble import ensemble_dir, load_runs, resolve_tta
from emoclf.runs.evaluation import evaluate_run, evaluation_folder
from emoclf.runs.folder import BEST_CHECKPOINT, PREDICTIONS, as_run_list, skipped_note
from emoclf.runs.scoring import Scored, score
from emoclf.utils.files import atomic_path, file_digest

log = logging.getLogger(__name__)
FACE_COLUMNS = ["detector", "fallback", "x", "y", "w", "h", "angle"]  # added to predictions.csv
UNREADABLE = (OSError, ValueError, SyntaxError)


def _largest(detector, img) -> Optional[Face]:
    faces = detector.detect_faces(img) if hasattr(detector, "detect_faces") else [Face(b) for b in
                                                                                  detector.detect(img)]
    return faces[0] if faces else None


def crop_split(split: Split, detector, framing: Framing, prep: Dict) -> Tuple[Split, List[Dict]]:
    """The model inputs of each photo: its largest face's crop, else the whole photo (a fallback); the unreadable
    ones left out. Returns the split with its images and one row of FACE_COLUMNS values per image kept."""
    size, grey, aspect = prep["image_size"], prep["grayscale"], prep["aspect"]
    keep, images, rows, skipped = [], [], [], []
    log.info("Finding the largest face in each of %d photos with %s", len(split.paths),
             getattr(detector, "name", type(detector).__name__))
    for i, path in enumerate(split.paths):
        try:
            img = open_image(path, grayscale=False)
            face = _largest(detector, img)
            if face is None:
                images.append(load_array(path, size, grey, aspect))
                row = {"fallback": "whole_image", "x": 0, "y": 0, "w": img.width, "h": img.height, "angle": 0.0}
            else:
                c = face_crop(img, face, framing)
                images.append(preprocess_pil(c.image, size, grey, aspect))
                row = {"fallback": "", "x": c.box[0], "y": c.box[1], "w": c.box[2], "h": c.box[3], "angle": c.angle}
        except UNREADABLE as exc:
            skipped.append([str(path), str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__])
            continue
        keep.append(i)
        rows.append({"detector": getattr(detector, "name", type(detector).__name__), **row})
    if skipped:
        log.warning("Skipped %d unreadable image(s): %s", len(skipped), ", ".join(p for p, _ in skipped[:5]))
    idx = np.asarray(keep, dtype=np.int64)
    empty = np.zeros((0, 1 if grey else 3, size, size), dtype=np.uint8)
    out = Split([split.paths[i] for i in keep], split.labels[idx], np.stack(images) if images else empty, skipped)
    return out, rows


def _add_face_columns(path: Path, rows: List[Dict]) -> None:
    """predictions.csv with each image's face columns appended (same order as written)."""
    with open(path, newline="", encoding="utf-8") as fh:
        table = list(csv.reader(fh))
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(table[0] + FACE_COLUMNS)
        for line, row in zip(table[1:], rows):
            writer.writerow(line + [row[c] for c in FACE_COLUMNS])


def evaluate_cropped(run, data: Optional[str] = None, face: str = "haar", split: Optional[str] = None,
                     tta: Optional[str] = None, device: str = "auto", out: Optional[str] = None,
                     framing: Optional[Framing] = None, detector_options: Optional[Dict] = None) -> Dict:
    """Score a finished run (or several, averaged) on labelled photos through the crop of each photo's largest face.

    ``face``: a name of FACE_NAMES ("none" is ``emoclf evaluate`` without a crop); ``detector_options`` go to
    ``make_detector``; ``framing`` places the face in its crop (default: ``Framing()``). Writes the files of
    ``emoclf evaluate`` into RUN/eval/<data>-<split>-<face>/ (``out`` replaces RUN/eval) and returns its metrics,
    with ``faces_found`` and ``fallbacks`` (photos scored whole).
    """
    if face == "none":
        if detector_options:
            raise ValueError(f"Face options ({', '.join(detector_options)}) need a face detector; --face none has "
                             f"none.")
        metrics = evaluate_run(run, data=data, split=split, tta=tta, device=device, out=out)
        return {**metrics, "face": "none", "faces_found": 0, "fallbacks": 0}
    detector = make_detector(face, **(detector_options or {}))
    framing = framing or Framing()
    runs = as_run_list(run)
    loaded = load_runs(runs, device)
    cfg = loaded.cfg
    root = Path(data) if data else Path(cfg.data.root)
    ev, info = labelled_split(root, split, loaded.class_names, cfg.data, cfg.seed, own_data=data is None)
    ev, rows = crop_split(ev, detector, framing, loaded.preprocessing)
    if len(ev) == 0:
        raise ValueError(f"No readable images of the model's classes ({', '.join(loaded.class_names)}) in {root}.")
    tta, tta_name = resolve_tta(loaded, tta)
    name = f"{Path(info['root']).name}-{info['split']}-{face}" + ("" if tta_name == "none" else f"-{tta_name}")
    if not loaded.members and loaded.checkpoint.name != BEST_CHECKPOINT:
        name += f"-{loaded.checkpoint.stem}"
    parent = Path(out) if out else (ensemble_dir(runs) if loaded.members else loaded.run_dir / "eval")
    fallbacks = sum(1 for r in rows if r["fallback"])
    extra = {"model": cfg.model.name if not loaded.members else "ensemble",
             "checkpoint": str(loaded.checkpoint.resolve()), "checkpoint_sha256": file_digest(loaded.checkpoint),
             "data_root": str(Path(info["root"]).resolve()), "split": info["split"], "tta": tta_name,
             "excluded_images": info["excluded"], "skipped_images": len(ev.skipped), "own_data": data is None,
             "face": face, "face_options": dict(detector_options or {}), "align": framing.align,
             "framing": {"margin": framing.margin, "eye_x": framing.eye_x, "eye_y": framing.eye_y,
                         "eye_mouth": framing.eye_mouth},
             "faces_found": len(rows) - fallbacks, "fallbacks": fallbacks}
    if loaded.members:
        extra["members"] = [str(Path(m).resolve()) for m in loaded.members]
    identity = ("checkpoint", "members", "data_root", "split", "tta", "own_data", "face", "face_options", "align",
                "framing")
    out_dir = evaluation_folder(parent, name, {k: extra.get(k) for k in identity})
    notes = [f"Run {loaded.run_dir} scored on {info['root']} ({info['split']}, {len(ev)} images) through the "
             f"{face} face crop{' (eyes levelled)' if framing.align else ''}: the largest face of each photo; "
             f"{fallbacks} photo(s) without a face found were scored whole."] + info["notes"]
    if ev.skipped:
        notes.append(skipped_note(ev.skipped))
    norm = Normalizer(loaded.preprocessing["mean"], loaded.preprocessing["std"], next(loaded.model.parameters()).device,
                      loaded.channels_last)
    title = f"{'ensemble' if loaded.members else cfg.run_name} on {out_dir.name}"
    metrics = score(loaded.model, norm, ev, loaded.class_names, cfg.train.eval_batch_size, tta, None,
                    Scored(out_dir, title, extra, notes))
    _add_face_columns(out_dir / PREDICTIONS, rows)
    metrics["out_dir"] = str(out_dir)
    return metrics
