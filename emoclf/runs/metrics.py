"""Predictions -> metrics, and the metric files of a run folder."""
from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from emoclf.runs.folder import CLASSIFICATION_REPORT, CONFUSION_CSV, METRICS, PREDICTIONS
from emoclf.utils.files import atomic_path, atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)


def present_labels(y_true: np.ndarray) -> List[int]:
    """Classes with images here. Data without some of the model's classes are scored on the rest, so that a perfect
    model scores a macro F1 of 1 on them; a prediction of a class the data lack is an error of the true class
    (its recall), not a class of zero F1 in the average (one stray prediction would cost a whole class)."""
    return np.unique(y_true).astype(int).tolist()


def f1_scores(y_true: np.ndarray, y_pred: np.ndarray) -> Dict[str, float]:
    """Accuracy, macro and weighted F1 over the classes with images (scikit-learn's definitions, labels=those)."""
    from sklearn.metrics import f1_score

    labels = present_labels(y_true)
    if len(y_true) == 0:
        return {"accuracy": 0.0, "f1_macro": 0.0, "f1_weighted": 0.0}
    return {
        "accuracy": float(np.mean(y_true == y_pred)),
        "f1_macro": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "f1_weighted": float(f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)),
    }


def compute_metrics(y_true: np.ndarray, logits: torch.Tensor, class_names: Sequence[str]) -> Dict:
    """Headline metrics of log-probabilities/logits against true labels."""
    k = len(class_names)
    y = torch.as_tensor(y_true, dtype=torch.long)
    y_pred = logits.argmax(1).numpy()
    out = f1_scores(y_true, y_pred)
    top2 = logits.topk(min(2, k), dim=1).indices.eq(y.view(-1, 1)).any(1)
    out["top2_accuracy"] = float(top2.float().mean()) if len(y) else 0.0
    out["loss"] = float(F.cross_entropy(logits, y)) if len(y) else 0.0
    out["num_images"] = int(len(y))
    return out


def confusion(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts: rows are true classes, columns predicted."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def format_report(report: Dict) -> str:
    """scikit-learn's classification report dict in its text layout, supports as whole numbers (some versions
    print the support of a report over a subset of the labels as 3.0)."""
    rows = [k for k in report if k != "accuracy"]
    width = max([len(k) for k in rows] + [len("weighted avg")])
    head = f"{'':>{width}} {'precision':>9} {'recall':>9} {'f1-score':>9} {'support':>9}"
    lines = [head, ""]
    averages = [k for k in rows if k.endswith(" avg")]
    for k in [k for k in rows if k not in averages]:
        r = report[k]
        lines.append(f"{k:>{width}} {r['precision']:>9.4f} {r['recall']:>9.4f} {r['f1-score']:>9.4f} "
                     f"{int(round(r['support'])):>9}")
    lines.append("")
    if "accuracy" in report:
        total = int(round(report["macro avg"]["support"]))
        lines.append(f"{'accuracy':>{width}} {'':>9} {'':>9} {report['accuracy']:>9.4f} {total:>9}")
    for k in averages:
        r = report[k]
        lines.append(f"{k:>{width}} {r['precision']:>9.4f} {r['recall']:>9.4f} {r['f1-score']:>9.4f} "
                     f"{int(round(r['support'])):>9}")
    return "\n".join(lines) + "\n"


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str]) -> str:
    """scikit-learn's text report over the classes with images, and lines naming the model's other classes."""
    from sklearn.metrics import classification_report as sk_report

    labels = present_labels(y_true)
    if not labels:
        return "No images.\n"
    report = sk_report(y_true, y_pred, labels=labels, target_names=[class_names[i] for i in labels], digits=4,
                       zero_division=0, output_dict=True)
    text = format_report(report)
    absent = [i for i in range(len(class_names)) if i not in labels]
    if absent:
        text += f"\nNot in these data (left out of the averages): {', '.join(class_names[i] for i in absent)}\n"
    stray = {class_names[i]: int(np.sum(y_pred == i)) for i in absent if np.any(y_pred == i)}
    if stray:  # scikit-learn then prints a "micro avg" row, blind to these errors, instead of accuracy
        text += ("Predicted although not in these data (errors of the true classes): "
                 + ", ".join(f"{name} ({n} image{'s' if n != 1 else ''})" for name, n in stray.items()) + "\n"
                 + f"Accuracy: {np.mean(y_true == y_pred):.4f} ({int(np.sum(y_true == y_pred))} of "
                 f"{len(y_true)} images)\n")
    return text


def write_confusion_csv(path: Path, cm: np.ndarray, class_names: Sequence[str]) -> None:
    """Confusion counts as CSV with a header row of predicted classes."""
    lines = ["true\\pred," + ",".join(class_names)]
    lines += [f"{name}," + ",".join(str(int(v)) for v in row) for name, row in zip(class_names, cm)]
    atomic_write_text(path, "\n".join(lines) + "\n")


def read_confusion_csv(path: Path):
    """(class names, counts) from :func:`write_confusion_csv`."""
    rows = list(csv.reader(Path(path).read_text(encoding="utf-8").splitlines()))
    names = rows[0][1:]
    return names, np.asarray([[int(v) for v in r[1:]] for r in rows[1:]], dtype=np.int64)


def write_predictions(path: Path, paths: Sequence, y_true: np.ndarray, logits: torch.Tensor,
                      class_names: Sequence[str]) -> None:
    """One row per image: path, true, predicted, correct, and every class probability."""
    probs = F.softmax(logits, 1).numpy()
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8", errors="backslashreplace") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "true", "predicted", "correct"] + [f"p_{c}" for c in class_names])
        for p, t, row in zip(paths, y_true, probs):
            pred = int(row.argmax())
            writer.writerow([str(p), class_names[t], class_names[pred], int(pred == t)] + [f"{v:.5f}" for v in row])


def write_eval_files(out_dir: Path, paths: Sequence, y_true: np.ndarray, logits: torch.Tensor,
                     class_names: List[str], extra: Dict) -> Dict:
    """predictions.csv, confusion_matrix.csv, classification_report.txt and metrics.json; returns the metrics."""
    out_dir = Path(out_dir)
    metrics = compute_metrics(y_true, logits, class_names)
    y_pred = logits.argmax(1).numpy()
    write_predictions(out_dir / PREDICTIONS, paths, y_true, logits, class_names)
    cm = confusion(y_true, y_pred, len(class_names))
    write_confusion_csv(out_dir / CONFUSION_CSV, cm, class_names)
    shown = extra.get("display_names") or class_names  # output.class_names: the names a reader sees
    atomic_write_text(out_dir / CLASSIFICATION_REPORT, classification_report(y_true, y_pred, shown))
    per_class = {}
    for i, name in enumerate(class_names):
        support = int(cm[i].sum())
        per_class[name] = {"support": support, "recall": float(cm[i, i] / support) if support else 0.0}
    metrics = {**metrics, **extra, "class_names": list(class_names), "per_class": per_class}
    atomic_write_json(out_dir / METRICS, metrics)
    return metrics
