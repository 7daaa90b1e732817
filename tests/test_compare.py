"""emoclf compare: files, numbers, best model, warnings, training what is missing and reusing what is finished."""
from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from conftest import CLASSES, CONFIGS, tiny_overrides

from emoclf.cli.app import main
from emoclf.comparison.compare import compare_runs
from emoclf.config import load_config
from emoclf.data.synthetic import make_dataset
from emoclf.runs.evaluation import evaluate_run
from emoclf.training.trainer import train

SAME_AS_METRICS = ("accuracy", "top2_accuracy", "f1_macro", "f1_weighted", "loss", "num_params", "model_size_mb",
                   "train_seconds", "best_epoch")


def _csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_compare_two_runs(runs, tmp_path):
    out = tmp_path / "comparison"
    summary = compare_runs([runs.cnn, runs.rgb], out, device="cpu")
    for name in ("comparison.md", "comparison.csv", "comparison.json", "metrics.png", "validation_curves.png",
                 "confusion_matrices.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    rows = _csv(out / "comparison.csv")
    assert [r["run"] for r in rows] == ["cnn", "cnn_rgb"]
    metrics = {}
    for row, run in zip(rows, (runs.cnn, runs.rgb)):
        m = json.loads((run / "metrics.json").read_text())
        metrics[row["run"]] = m
        for key in SAME_AS_METRICS:
            assert float(row[key]) == pytest.approx(float(m[key]), rel=1e-12), key
        assert float(row["inference_ms_per_image"]) > 0 and float(row["latency_ms_batch1"]) > 0
        assert row["run_dir"] == str(run.resolve())
    assert metrics["cnn"]["f1_macro"] != metrics["cnn_rgb"]["f1_macro"]  # else the next line proves little
    best = max(metrics, key=lambda k: metrics[k]["f1_macro"])
    assert summary["best"]["run"] == best
    saved = json.loads((out / "comparison.json").read_text())
    assert saved["best"]["run_dir"] == str((runs.cnn if best == "cnn" else runs.rgb).resolve())
    assert saved["warnings"] == []
    md = (out / "comparison.md").read_text()
    assert f"Best model by macro F1: **{best}**" in md and "Warning" not in md
    assert "![Validation curves](validation_curves.png)" in md and "](../" not in md.split("## Runs")[0]


def test_warns_about_different_classes_and_data(runs, tmp_path):
    other = make_dataset(tmp_path / "three", classes=("happy", "sad", "surprise"), train_per_class=10,
                         val_per_class=4, size=32, seed=2)
    three = train(load_config(str(CONFIGS / "cnn.yaml"), tiny_overrides(other, tmp_path / "runs", epochs=1)))
    summary = compare_runs([runs.cnn, three], tmp_path / "comparison", device="cpu")
    assert len(summary["warnings"]) == 2
    assert "different classes" in summary["warnings"][0] and "angry" in summary["warnings"][0]
    assert "different data" in summary["warnings"][1]
    md = (tmp_path / "comparison" / "comparison.md").read_text()
    assert md.count("**Warning:**") == 2
    names = [r["run"] for r in summary["runs"]]  # both folders are named cnn: told apart by their parents
    assert names[0] == f"{runs.cnn.parent.name}/cnn" and names[1] == "runs/cnn"


def test_compare_configs_trains_missing_and_reuses_finished(runs, tmp_path, capsys):
    other = tmp_path / "other"
    argv = ["compare", str(runs.rgb), "--config", str(CONFIGS / "cnn.yaml"), *sum(
        (["--set", s] for s in runs.overrides), []), "--set", f"output.dir={other}", "--out", str(tmp_path / "c")]
    assert main(argv) == 0
    best_pt = other / "cnn" / "best.pt"
    first = best_pt.stat().st_mtime_ns
    assert "Best model by macro F1" in capsys.readouterr().out
    assert main(argv) == 0  # finished with the same config: reused, not retrained
    assert main(argv + ["--set", "train.num_threads=1", "--set", "train.device=cpu"]) == 0  # how, not what
    assert best_pt.stat().st_mtime_ns == first
    changed = argv + ["--set", "train.epochs=1"]
    assert main(changed) == 2
    err = capsys.readouterr().err
    assert "another config" in err and "train.epochs: 2 -> 1" in err and "--overwrite" in err
    assert best_pt.stat().st_mtime_ns == first
    assert main(changed + ["--overwrite"]) == 0
    assert best_pt.stat().st_mtime_ns != first
    assert main(argv + ["--set", f"data.root={tmp_path / 'moved'}"]) == 2  # the data, not the config, is the news
    assert "moved' does not exist" in capsys.readouterr().err


def test_compare_stops_before_training_when_a_later_run_lacks_its_weights(runs, tmp_path, capsys):
    later = tmp_path / "later.yaml"
    later.write_text(f"model: {{name: cnn, weights_path: {tmp_path / 'missing.pt'}}}\noutput: {{name: later}}\n")
    sets = sum((["--set", s] for s in runs.overrides), [])
    argv = ["compare", "--config", str(CONFIGS / "cnn.yaml"), str(later), *sets,
            "--set", f"output.dir={tmp_path / 'o'}", "--out", str(tmp_path / "c")]
    assert main(argv) == 2
    assert "missing.pt" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # the first model was not trained for nothing
    fresh = tmp_path / "fresh.yaml"
    fresh.write_text("model: {name: cnn}\noutput: {name: fresh_in_shared_outputs}\n")
    argv = ["compare", "--config", str(fresh), str(CONFIGS / "cnn.yaml"), *sum((["--set", s] for s in runs.overrides),
            []), "--set", "train.epochs=1", "--out", str(tmp_path / "c")]  # epochs=1: the finished cnn run differs
    assert main(argv) == 2
    assert "holds a finished run with another config (train.epochs: 2 -> 1)" in capsys.readouterr().err
    assert not (runs.out / "fresh_in_shared_outputs").exists()


def test_compare_reuses_the_shared_runs(runs, tmp_path):
    stamps = {r: (r / "best.pt").stat().st_mtime_ns for r in (runs.cnn, runs.rgb)}
    argv = ["compare", "--config", str(CONFIGS / "cnn.yaml"), str(runs.rgb_config),
            *sum((["--set", s] for s in runs.overrides), []), "--out", str(tmp_path / "c")]
    assert main(argv) == 0
    assert stamps == {r: (r / "best.pt").stat().st_mtime_ns for r in stamps}
    assert len(_csv(tmp_path / "c" / "comparison.csv")) == 2


def test_compare_scores_of_both_runs_on_other_data(runs, tmp_path, capsys, monkeypatch):
    other = make_dataset(tmp_path / "other", classes=CLASSES, train_per_class=2, val_per_class=6, size=48, seed=7)
    scored = []
    monkeypatch.chdir(tmp_path)  # paths typed relative to here, and the same data typed two ways
    for run, data in ((runs.cnn, "other"), (runs.rgb, str(other))):  # --out: the shared runs stay as they are
        run_arg = os.path.relpath(run, tmp_path)
        assert main(["evaluate", run_arg, "--data", data, "--device", "cpu", "--out", run.name]) == 0
        scored.append(tmp_path / run.name / "other-validation")
    monkeypatch.chdir(runs.out)  # compared from elsewhere
    summary = compare_runs(scored, tmp_path / "c", device="cpu")
    assert summary["warnings"] == []  # the same data: no "different data" warning
    for row, run, folder in zip(summary["runs"], (runs.cnn, runs.rgb), scored):
        m, trained = (json.loads((f / "metrics.json").read_text()) for f in (folder, run))
        assert row["run"] == f"{run.name} on {folder.name}" and row["run_dir"] == str(run.resolve())
        for key in ("accuracy", "f1_macro", "loss", "num_images", "data_root"):
            assert row[key] == m[key], key
        for key in ("train_seconds", "best_epoch", "num_params"):
            assert row[key] == trained[key], key
    assert summary["best"]["run_dir"] in {str(runs.cnn.resolve()), str(runs.rgb.resolve())}
    md = (tmp_path / "c" / "comparison.md").read_text()
    assert "other-validation/report.md)" in md
    with_run = compare_runs([runs.cnn, scored[1]], tmp_path / "c2", device="cpu")
    assert "different data" in with_run["warnings"][0] and "emoclf compare RUN/eval/NAME" in with_run["warnings"][0]


def test_evaluations_written_before_absolute_paths_still_work(runs, tmp_path, monkeypatch):
    monkeypatch.chdir(runs.out)  # where the paths below were typed
    first = Path(evaluate_run(runs.cnn.name, out=str(tmp_path / "ev"))["out_dir"])
    metrics = json.loads((first / "metrics.json").read_text())
    metrics["checkpoint"] = f"{runs.cnn.name}/best.pt"  # as an older emoclf wrote it
    for key in ("checkpoint_sha256", "own_data"):
        del metrics[key]
    (first / "metrics.json").write_text(json.dumps(metrics))
    row = compare_runs([first, runs.rgb], tmp_path / "c", device="cpu")["runs"][0]
    assert row["run_dir"] == str(runs.cnn.resolve())
    again = evaluate_run(runs.cnn, out=str(tmp_path / "ev"))  # the same evaluation: replaces it, no -2
    assert again["out_dir"] == str(first)


def test_compare_shows_and_times_test_time_augmentation(runs, tmp_path):
    tencrop = evaluate_run(runs.cnn, tta="tencrop", out=str(tmp_path / "tta"))
    summary = compare_runs([runs.cnn, Path(tencrop["out_dir"])], tmp_path / "c", device="cpu")
    plain, crops = summary["runs"]
    assert (plain["tta"], crops["tta"]) == ("none", "tencrop")
    assert crops["accuracy"] == tencrop["accuracy"]
    assert "different test-time augmentation" in summary["warnings"][0]
    assert crops["inference_ms_per_image"] > 2 * plain["inference_ms_per_image"]  # 10 views timed, not 1
    assert "| TTA |" in (tmp_path / "c" / "comparison.md").read_text()


def test_compare_refuses_an_evaluation_of_a_run_trained_again_since(runs, tmp_path):
    run = shutil.copytree(runs.cnn, tmp_path / "cnn")
    shutil.rmtree(run / "eval", ignore_errors=True)  # only this test's evaluation in it
    assert main(["evaluate", str(run), "--device", "cpu"]) == 0
    scored = next((run / "eval").iterdir())
    os.utime(run / "best.pt", ns=(1, 1))  # copied without its times (cp -r, scp): still the checkpoint scored
    compare_runs([scored, runs.rgb], tmp_path / "c", device="cpu")
    ckpt = torch.load(run / "best.pt", weights_only=True)
    first = next(k for k, v in ckpt["model_state"].items() if v.is_floating_point())
    ckpt["model_state"][first] += 1  # as if trained again
    torch.save(ckpt, run / "best.pt")
    with pytest.raises(ValueError, match="scored an earlier best.pt .* trained again since"):
        compare_runs([scored, runs.rgb], tmp_path / "c", device="cpu")
    loose = tmp_path / "loose.pt"  # a checkpoint copied out of its run folder, then evaluated
    shutil.copy(runs.cnn / "best.pt", loose)
    ev = evaluate_run(loose, out=str(tmp_path / "ev"))
    with pytest.raises(FileNotFoundError, match="is an `emoclf evaluate` result, but the checkpoint it scored"):
        compare_runs([Path(ev["out_dir"]), runs.rgb], tmp_path / "c", device="cpu")


def test_compare_usage_errors(runs, tmp_path, capsys):
    assert main(["compare", str(runs.cnn), "--out", str(tmp_path / "c")]) == 2
    assert "at least two" in capsys.readouterr().err
    assert main(["compare", str(runs.cnn), str(tmp_path), "--out", str(tmp_path / "c")]) == 2
    assert "not a finished emoclf run" in capsys.readouterr().err
    same = ["compare", "--config", str(CONFIGS / "cnn.yaml"), str(CONFIGS / "cnn.yaml"), "--set",
            f"output.dir={tmp_path}"]
    assert main(same) == 2
    assert "both write to" in capsys.readouterr().err
    assert main(["compare", str(runs.cnn), str(runs.rgb), "--set", "train.epochs=1"]) == 2
    assert "--set only applies" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
