"""The loop learns, artifacts agree with each other, resume repeats history, runs are never overwritten."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import fast_config, train_interrupted_after

from emoclf.data.synthetic import SPANISH, make_dataset
from emoclf.runs.evaluation import evaluate_run
from emoclf.runs.folder import minutes
from emoclf.runs.metrics import read_confusion_csv
from emoclf.training import trainer as train_mod
from emoclf.training.trainer import train

RUN_FILES = ["config.yaml", "best.pt", "last.pt", "history.csv", "curves.png", "confusion_matrix.png",
             "confusion_matrix_normalized.png", "classification_report.txt", "metrics.json", "predictions.csv",
             "report.md"]


def test_cnn_learns_the_synthetic_faces(trained_run):
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.90, metrics["accuracy"]
    assert metrics["f1_macro"] >= 0.88
    assert metrics["train_seconds"] > 0


def test_run_folder_is_complete_and_consistent(trained_run):
    for name in RUN_FILES:
        assert (trained_run / name).is_file(), name
    m = json.loads((trained_run / "metrics.json").read_text())
    for key in ("accuracy", "top2_accuracy", "f1_macro", "f1_weighted", "loss", "num_params", "train_seconds",
                "best_epoch", "model_size_mb", "inference_ms_per_image", "device", "versions"):
        assert key in m, key
    names, cm = read_confusion_csv(trained_run / "confusion_matrix.csv")
    assert names == m["class_names"]
    assert cm.sum() == m["num_images"] == 125
    assert m["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    assert m["top2_accuracy"] >= m["accuracy"]
    with open(trained_run / "predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 125
    assert m["accuracy"] == pytest.approx(np.mean([r["true"] == r["predicted"] for r in rows]))
    assert abs(sum(float(v) for k, v in rows[0].items() if k.startswith("p_")) - 1) < 1e-3
    with open(trained_run / "history.csv", newline="") as fh:
        history = list(csv.DictReader(fh))
    assert len(history) == 14 and int(history[m["best_epoch"] - 1]["epoch"]) == m["best_epoch"]
    best_f1 = max(float(r["val_f1"]) for r in history)
    assert float(history[m["best_epoch"] - 1]["val_f1"]) == pytest.approx(best_f1, abs=1e-5)
    assert m["f1_macro"] == pytest.approx(best_f1, abs=1e-4)  # best.pt is what was scored
    report = (trained_run / "report.md").read_text()
    assert "curves.png" in report and "confusion_matrix_normalized.png" in report and "macro F1" in report


def _history(run_dir):
    with open(run_dir / "history.csv", newline="") as fh:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(fh)]


def test_curves_of_a_short_run_tick_whole_epochs_only(trained_run, tmp_path, monkeypatch):
    from emoclf.runs import figures as run_figures

    short = tmp_path / "history.csv"
    short.write_text("".join((trained_run / "history.csv").read_text().splitlines(keepends=True)[:3]))  # 2 epochs
    figures = []
    monkeypatch.setattr(run_figures, "save_figure", lambda fig, out: figures.append(fig) or out)
    run_figures.plot_curves(short, tmp_path / "curves.png")
    for ax in figures[0].axes:
        lo, hi = ax.get_xlim()
        shown = [t for t in ax.get_xticks() if lo <= t <= hi]
        assert shown and all(float(t).is_integer() for t in shown), shown


def test_resume_after_interruption_repeats_the_same_history(small_faces, tmp_path, monkeypatch):
    full = train(fast_config(small_faces, tmp_path, "full", epochs=4))
    train_interrupted_after(fast_config(small_faces, tmp_path, "cut", epochs=4), 2, monkeypatch)
    assert len(_history(tmp_path / "cut")) == 2 and not (tmp_path / "cut" / "metrics.json").exists()
    with pytest.raises(ValueError, match="--resume"):
        train(fast_config(small_faces, tmp_path, "cut", epochs=4))
    resumed = train(fast_config(small_faces, tmp_path, "cut", epochs=4), resume=True)
    assert _history(resumed) == _history(full)
    a = json.loads((full / "metrics.json").read_text())
    b = json.loads((resumed / "metrics.json").read_text())
    assert a["accuracy"] == b["accuracy"] and a["loss"] == pytest.approx(b["loss"])


def test_finished_run_is_never_overwritten_silently(small_faces, tmp_path):
    run = train(fast_config(small_faces, tmp_path, "keep", epochs=1))
    before = (run / "best.pt").read_bytes()
    with pytest.raises(ValueError, match="already holds a finished run"):
        train(fast_config(small_faces, tmp_path, "keep", epochs=1))
    assert (run / "best.pt").read_bytes() == before
    assert train(fast_config(small_faces, tmp_path, "keep", epochs=1), resume=True) == run  # nothing to do
    with pytest.raises(ValueError, match="already finished, so --resume cannot apply train.epochs: 1 -> 3"):
        train(fast_config(small_faces, tmp_path, "keep", epochs=3), resume=True)
    train(fast_config(small_faces, tmp_path, "keep", epochs=2), overwrite=True)
    assert len(_history(run)) == 2
    with pytest.raises(FileNotFoundError, match="does not exist"):  # a run that cannot start replaces nothing
        train(fast_config(tmp_path / "moved", tmp_path, "keep", epochs=1), overwrite=True)
    assert len(_history(run)) == 2 and (run / "best.pt").is_file()
    with pytest.raises(FileNotFoundError, match="no.pt"):  # ... and leaves no empty run folder
        train(fast_config(small_faces, tmp_path, "new", epochs=1, extra=[f"model.weights_path={tmp_path / 'no.pt'}"]))
    assert not (tmp_path / "new").exists()


def test_resume_with_another_model_config_is_refused(small_faces, tmp_path, monkeypatch):
    monkeypatch.setattr(train_mod.Trainer, "fit", lambda self: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        train(fast_config(small_faces, tmp_path, "x", epochs=2))
    (tmp_path / "x" / "last.pt").write_bytes(b"placeholder")
    with pytest.raises(ValueError, match="config differs"):
        train(fast_config(small_faces, tmp_path, "x", epochs=2, extra=["model.width=8"]), resume=True)


def test_time_limit_stops_cleanly_with_all_artifacts(faces, tmp_path):
    run = train(fast_config(faces, tmp_path, "budget", epochs=50, extra=["train.time_limit=0.0005"]))
    m = json.loads((run / "metrics.json").read_text())
    assert m["stopped"] == "time_limit" and m["epochs_trained"] < 50
    assert 0 < m["last_epoch_share"] < 1  # 0.03 s: the first epoch is cut short
    assert f"cut short at {m['last_epoch_share']:.0%} of its images" in (run / "report.md").read_text()
    assert (run / "report.md").is_file() and (run / "best.pt").is_file()


def test_time_limits_read_as_people_write_them():
    assert [minutes(m) for m in (0.005, 0.05, 1.5, 30, 90, 1440)] == ["0.3 s", "3 s", "1.5 min", "30 min", "1.5 h",
                                                                      "24 h"]


def test_a_dropped_single_image_batch_is_not_an_epoch_cut_short(tmp_path):
    root = make_dataset(tmp_path / "d", classes=("angry", "happy", "sad"), train_per_class=11, val_per_class=2,
                        size=24)  # 33 images, batches of 32: the last batch of 1 is dropped by design
    run = train(fast_config(root, tmp_path, "odd", epochs=1))
    m = json.loads((run / "metrics.json").read_text())
    assert m["last_epoch_share"] == 1.0 and "cut short" not in (run / "report.md").read_text()


def test_evaluate_on_another_dataset_with_other_names(trained_run, tmp_path):
    other = make_dataset(tmp_path / "other", classes=("happy", "sad", "fear"), train_per_class=0, val_per_class=6,
                         names=SPANISH, seed=9)
    m = evaluate_run(trained_run, data=str(other))
    assert m["num_images"] == 12  # fear (miedo) is unknown to the model and left out
    assert m["excluded_images"] == {"fear": 6}
    out = trained_run / "eval" / "other-validation"
    assert (out / "confusion_matrix_normalized.png").is_file()
    assert "Left out 6 images" in (out / "report.md").read_text()
    for mode in ("flip", "tencrop"):
        own = evaluate_run(trained_run, tta=mode)
        assert own["num_images"] == 125 and own["tta"] == mode and own["accuracy"] >= 0.85
        assert own["out_dir"].endswith(f"validation-{mode}") and (Path(own["out_dir"]) / "report.md").is_file()
    assert evaluate_run(trained_run, split="VAL")["split"] == "validation"  # split names as the folders may spell them


def test_an_unfinished_run_is_used_with_a_warning_and_empty_data_leave_no_cache(runs, tmp_path, caplog):
    run = shutil.copytree(runs.cnn, tmp_path / "unfinished", ignore=shutil.ignore_patterns("report.md", "eval"))
    evaluate_run(run, out=str(tmp_path / "ev"))
    assert "is not a finished run (no report.md): using the best checkpoint so far" in caplog.text
    other = make_dataset(tmp_path / "other", classes=("fear", "disgust"), train_per_class=0, val_per_class=2, size=24)
    with pytest.raises(ValueError, match="No readable images of the model's classes"):
        evaluate_run(runs.cnn, data=str(other), out=str(tmp_path / "ev"))
    assert not list(other.rglob(".emoclf-cache"))


def test_one_evaluation_never_replaces_another(runs, tmp_path):
    out = str(tmp_path / "shared")
    first = evaluate_run(runs.cnn, out=out)
    second = evaluate_run(runs.rgb, out=out)  # another run, same data and name: beside it, not over it
    assert Path(second["out_dir"]).name == Path(first["out_dir"]).name + "-2"
    kept = json.loads((Path(first["out_dir"]) / "metrics.json").read_text())
    assert kept["checkpoint"] == str((runs.cnn / "best.pt").resolve()) and kept["accuracy"] == first["accuracy"]
    extra = next((runs.root / "validation").glob("*/*.jpg"))
    shutil.copy(extra, extra.with_name("added-" + extra.name))  # the same data folder with one more image
    try:
        again = evaluate_run(runs.cnn, out=out)  # the same evaluation again: replaces its own folder
    finally:
        extra.with_name("added-" + extra.name).unlink()
    assert again["out_dir"] == first["out_dir"] and again["num_images"] == first["num_images"] + 1
    last = evaluate_run(runs.cnn / "last.pt", out=out)
    assert Path(last["out_dir"]).name == Path(first["out_dir"]).name + "-last"


def test_macro_f1_leaves_out_classes_absent_from_the_data():
    """A perfect model scored on data holding 2 of its 5 classes: macro F1 is 1, not 2/5."""
    import torch
    from sklearn.metrics import f1_score

    from emoclf.runs.metrics import classification_report, compute_metrics

    names = ["angry", "happy", "neutral", "sad", "surprise"]
    y = np.array([1, 1, 1, 3, 3, 1])
    perfect = compute_metrics(y, torch.nn.functional.one_hot(torch.from_numpy(y), 5).float() * 5, names)
    assert perfect["f1_macro"] == 1.0 and perfect["f1_weighted"] == 1.0
    pred = np.array([1, 1, 0, 3, 3, 1])  # one image taken for angry, which these data do not hold
    scored = compute_metrics(y, torch.nn.functional.one_hot(torch.from_numpy(pred), 5).float() * 5, names)
    assert scored["f1_macro"] == pytest.approx(f1_score(y, pred, labels=[1, 3], average="macro"))
    assert scored["f1_macro"] == pytest.approx((6 / 7 + 1) / 2)  # happy: recall 3/4, precision 1; sad: perfect
    report = classification_report(y, pred, names).splitlines()
    assert report[-3] == "Not in these data (left out of the averages): angry, neutral, surprise"
    assert report[-2] == "Predicted although not in these data (errors of the true classes): angry (1 image)"
    assert report[-1] == "Accuracy: 0.8333 (5 of 6 images)"

@pytest.mark.parametrize("options", [["train.sampler=balanced", "train.class_weights=balanced",
                                      "train.optimizer=sgd", "train.scheduler=step"],
                                     ["train.scheduler=plateau", "train.optimizer=adam", "train.label_smoothing=0.1",
                                      "train.early_stopping=1"]])
def test_training_options_run(small_faces, tmp_path, options):
    run = train(fast_config(small_faces, tmp_path, "opts", epochs=3, extra=options))
    assert json.loads((run / "metrics.json").read_text())["num_images"] == 12


@pytest.mark.parametrize("mapped", [False, True])
def test_train_metrics_pair_each_prediction_with_its_label(tmp_path, mapped):
    """A memory-mapped read sorts the batch; the recorded labels must follow the same order as the predictions."""
    import torch
    import torch.nn as nn

    from emoclf.config import AugmentConfig
    from emoclf.data.augment import BatchAugment, Normalizer
    from emoclf.engine import make_scaler
    from emoclf.training.epoch import Learner, train_epoch

    k, n = 4, 64
    labels = np.arange(n, dtype=np.int64) % k
    images = np.zeros((n, 1, 8, 8), dtype=np.uint8)
    images[:, 0] = (labels * 60)[:, None, None]  # the label is written in the pixels
    if mapped:
        np.save(tmp_path / "images.npy", images)
        images = np.load(tmp_path / "images.npy", mmap_mode="r")

    class ReadsTheLabel(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))

        def forward(self, x):
            label = (x.mean((1, 2, 3)) * 255 / 60).round().long()
            return nn.functional.one_hot(label, k).float() * 10 + self.w

    model = ReadsTheLabel()
    order = np.random.default_rng(0).permutation(n)
    still = AugmentConfig(hflip=False, rotation=0, translate=0, scale=0, brightness=0, contrast=0, erasing=0)
    learner = Learner(model, torch.optim.SGD(model.parameters(), lr=0.0), nn.CrossEntropyLoss(),
                      make_scaler(torch.device("cpu"), None), None, Normalizer([0.0], [1.0], torch.device("cpu")),
                      BatchAugment(still))
    res = train_epoch(learner, images, labels, [order[i:i + 16] for i in range(0, n, 16)], torch.Generator())
    assert res.count == n
    assert (res.y_pred == res.y_true).all()
    assert sorted(res.y_true.tolist()) == sorted(labels.tolist())


def test_bf16_on_a_cpu_trains_with_float32_weights(small_faces, tmp_path):
    """train.amp=bf16 runs the CPU's convolutions in bf16 (about twice the training rate of float32 on a CPU with
    AVX512-BF16, docs/training.md); the weights, their average and the checkpoint stay float32. auto stays in full
    precision on a CPU, and fp16, which a CPU cannot run fast, is refused with what to use instead."""
    import torch

    from emoclf.engine import amp_dtype

    cpu = torch.device("cpu")
    assert amp_dtype("bf16", cpu) is torch.bfloat16
    assert amp_dtype("auto", cpu) is None and amp_dtype("off", cpu) is None
    with pytest.raises(ValueError, match="train.amp=fp16 needs a CUDA device; on a CPU use train.amp=bf16"):
        amp_dtype("fp16", cpu)
    run = train(fast_config(small_faces, tmp_path, "bf16", epochs=2, extra=["train.amp=bf16", "train.ema=0.9"]))
    state = torch.load(run / "best.pt", map_location="cpu", weights_only=True)
    floats = [v for v in state["model_state"].values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float32 for v in floats)
    history = _history(run)
    assert len(history) == 2 and all(np.isfinite(float(r["train_loss"])) for r in history)
    # The run scores its best checkpoint in float32, as evaluate does: the same probabilities, image by image.
    again = Path(evaluate_run(run, out=str(tmp_path / "ev"))["out_dir"])
    assert (run / "predictions.csv").read_text() == (again / "predictions.csv").read_text()
