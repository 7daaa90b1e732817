"""`emoclf evaluate RUN --data PHOTOS --face none,haar,mtcnn`: the same labelled photos scored each way, side by side.

Each way is one evaluation of :mod:`emoclf.inference.face_eval` (its own folder, as if run alone); this module
reads their metrics and predictions and writes one table (faces.md, faces.csv), one figure (faces.png) and a
gallery of the photos whose prediction changed with the crop (faces_changed.png).
"""
from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

from emoclf.inference.align import Framing
from emoclf.inference.face import face_names
from emoclf.inference.face_eval import evaluate_cropped
from emoclf.runs.folder import PREDICTIONS
from emoclf.utils.files import atomic_path, atomic_write_text
from emoclf.utils.plotting import pyplot, safe_plot, save_figure

log = logging.getLogger(__name__)
TABLE_MD, TABLE_CSV, FIGURE, GALLERY = "faces.md", "faces.csv", "faces.png", "faces_changed.png"
GALLERY_MAX = 24  # photos shown in the gallery


def compare_faces(run, data: Optional[str] = None, faces: Union[str, Sequence[str]] = ("none", "haar"),
                  split: Optional[str] = None, tta: Optional[str] = None, device: str = "auto",
                  out: Optional[str] = None, framing: Optional[Framing] = None,
                  detector_options: Optional[Dict[str, Dict]] = None) -> Dict:
    """Evaluate a run on labelled photos once per face option of ``faces`` and write the side-by-side table.

    ``detector_options``: per face name, the options for its detector. Returns ``{"evaluations": {face: metrics},
    "rows": [...], "out_dir": ..., "table": ..., "figure": ..., "gallery": ..., "changed": n}``.
    """
    names = face_names(faces)
    evaluations = {}
    for name in names:
        opts = (detector_options or {}).get(name) or {}
        evaluations[name] = evaluate_cropped(run, data, name, split, tta, device, out, framing, opts)
    first = evaluations[names[0]]
    out_dir = Path(first["out_dir"]).parent / f"{Path(first['data_root']).name}-{first['split']}-faces"
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [table_row(name, m) for name, m in evaluations.items()]
    class_names = list(first["class_names"])
    predictions = {name: read_predictions(Path(m["out_dir"]) / PREDICTIONS) for name, m in evaluations.items()}
    changed = changed_photos(predictions, names[0])
    write_table(out_dir, rows, class_names, changed, names[0])
    figure = plot_faces(rows, class_names, out_dir / FIGURE)
    gallery = plot_changed(changed, names, out_dir / GALLERY) if changed else None
    return {"evaluations": evaluations, "rows": rows, "out_dir": str(out_dir), "table": str(out_dir / TABLE_MD),
            "figure": str(figure) if figure else None, "gallery": str(gallery) if gallery else None,
            "changed": len(changed)}


def table_row(name: str, m: Dict) -> Dict:
    """One line of the table: a face option and its evaluation's numbers."""
    return {"face": name, "images": m["num_images"], "accuracy": m["accuracy"], "f1_macro": m["f1_macro"],
            "faces_found": m.get("faces_found", 0), "fallbacks": m.get("fallbacks", 0),
            "recall": {c: v["recall"] for c, v in m["per_class"].items()}, "out_dir": m["out_dir"]}


def read_predictions(path: Path) -> Dict[str, Dict]:
    """An evaluation's predictions.csv by image path."""
    with open(path, newline="", encoding="utf-8") as fh:
        return {r["path"]: r for r in csv.DictReader(fh)}


def changed_photos(predictions: Dict[str, Dict[str, Dict]], base: str) -> List[Dict]:
    """The photos whose predicted class differs between ``base`` and any other face option."""
    out = []
    for path, row in predictions[base].items():
        labels = {name: p[path]["predicted"] for name, p in predictions.items() if path in p}
        if len(set(labels.values())) > 1:
            boxes = {name: p[path] for name, p in predictions.items() if path in p}
            out.append({"path": path, "true": row["true"], "predicted": labels, "rows": boxes})
    return out


def write_table(out_dir: Path, rows: List[Dict], class_names: List[str], changed: List[Dict], base: str) -> None:
    """faces.md and faces.csv: one row per face option."""
    head = ["face", "images", "accuracy", "macro F1", "faces found", "fallbacks"] + [f"recall {c}" for c in
                                                                                     class_names]
    lines = ["# Labelled photos with and without the face crop", "",
             "| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    table = []
    for r in rows:
        cells = [r["face"], str(r["images"]), f"{r['accuracy']:.4f}", f"{r['f1_macro']:.4f}",
                 str(r["faces_found"]) if r["face"] != "none" else "-",
                 str(r["fallbacks"]) if r["face"] != "none" else "-"] + [f"{r['recall'][c]:.3f}" for c in class_names]
        lines.append("| " + " | ".join(cells) + " |")
        table.append(cells)
    lines += ["", f"{len(changed)} photo(s) changed prediction against `{base}`"
              + (f": [{GALLERY}]({GALLERY})." if changed else "."), "", f"![accuracy per face option]({FIGURE})", "",
              "Each row is an evaluation of its own, with its report: " +
              ", ".join(f"[{r['face']}]({Path(r['out_dir']).resolve()}/report.md)" for r in rows) + "."]
    atomic_write_text(out_dir / TABLE_MD, "\n".join(lines) + "\n")
    with atomic_path(out_dir / TABLE_CSV) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([head] + table)


@safe_plot
def plot_faces(rows: List[Dict], class_names: List[str], out: Path) -> Path:
    """Accuracy and macro F1 per face option, and each class's recall per face option."""
    import numpy as np

    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(5 + 1.6 * len(class_names), 4.2),
                                   gridspec_kw={"width_ratios": [2, 1 + len(class_names) / 2]})
    names = [r["face"] for r in rows]
    x = np.arange(len(names))
    for k, (key, label) in enumerate((("accuracy", "accuracy"), ("f1_macro", "macro F1"))):
        bars = ax1.bar(x + (k - 0.5) * 0.38, [r[key] for r in rows], 0.38, label=label)
        ax1.bar_label(bars, fmt="%.3f", fontsize=8)
    ax1.set_xticks(x, [f"{n}\n{r['fallbacks']} fallback(s)" if n != "none" else n for n, r in zip(names, rows)])
    ax1.set_ylim(0, 1.05)
    ax1.legend(fontsize=8)
    ax1.set_title("whole photo vs face crop", fontsize=10)
    cx = np.arange(len(class_names))
    width = 0.8 / len(rows)
    for k, r in enumerate(rows):
        ax2.bar(cx + (k - (len(rows) - 1) / 2) * width, [r["recall"][c] for c in class_names], width, label=r["face"])
    ax2.set_xticks(cx, class_names, rotation=30, ha="right")
    ax2.set_ylim(0, 1.05)
    ax2.set_title("recall per class", fontsize=10)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, Path(out))


@safe_plot
def plot_changed(changed: List[Dict], names: List[str], out: Path) -> Path:
    """Thumbnails of the photos whose prediction changed, with each way's label and the face box."""
    from matplotlib.patches import Rectangle

    from emoclf.data.imaging import open_image

    plt = pyplot()
    shown = changed[:GALLERY_MAX]
    cols = min(6, len(shown))
    rows = (len(shown) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 3.0 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, item in zip(axes.flat, shown):
        img = open_image(item["path"], grayscale=False)
        ax.imshow(img)
        for name, row in item["rows"].items():
            if name != "none" and not row.get("fallback") and row.get("w"):
                ax.add_patch(Rectangle((float(row["x"]), float(row["y"])), float(row["w"]), float(row["h"]),
                                       angle=float(row.get("angle") or 0), rotation_point="center", fill=False,
                                       edgecolor="lime" if name == names[-1] else "yellow", linewidth=1.5))
        text = "\n".join(f"{n}: {p}" + (" ✓" if p == item["true"] else "") for n, p in item["predicted"].items())
        ax.set_title(f"{Path(item['path']).name} (true {item['true']})\n{text}", fontsize=7)
    more = f" (first {GALLERY_MAX} of {len(changed)})" if len(changed) > GALLERY_MAX else ""
    fig.suptitle(f"Photos whose prediction changed with the face crop{more}", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, Path(out))
