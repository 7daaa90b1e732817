"""Ensembles: several runs scored as one by averaging their class probabilities, in evaluate and predict."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from conftest import CONFIGS

from emoclf.cli.app import main
from emoclf.config import load_config
from emoclf.runs.ensemble import Ensemble
from emoclf.runs.evaluation import evaluate_run


@pytest.fixture(scope="module")
def second(runs):
    """Another grayscale CNN on the same data, other seed and width: a member that disagrees now and then."""
    from emoclf.training.trainer import train

    return train(load_config(str(CONFIGS / "cnn.yaml"), runs.overrides + ["seed=7", "model.width=12",
                                                                             "output.name=cnn_seed7"]))


def _probs(out_dir):
    with open(out_dir / "predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    cols = [c for c in rows[0] if c.startswith("p_")]
    return [r["path"] for r in rows], np.array([[float(r[c]) for c in cols] for r in rows])


def test_evaluate_averages_the_members_probabilities(runs, second, tmp_path):
    singles = [evaluate_run(r, tta="flip", out=str(tmp_path / r.name)) for r in (runs.cnn, second)]
    m = evaluate_run([runs.cnn, second], tta="flip")
    name = f"{runs.root.name}-validation-flip"
    out = runs.cnn.parent / f"ensemble-{runs.cnn.name}+{second.name}" / name
    assert m["out_dir"] == str(out) and (out / "report.md").is_file() and (out / "confusion_matrix.png").is_file()
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["members"] == [str(runs.cnn), str(second)] and saved["model"] == "ensemble"
    assert saved["num_images"] == singles[0]["num_images"]
    paths, ens = _probs(out)
    (p1, a), (p2, b) = _probs(tmp_path / runs.cnn.name / name), _probs(tmp_path / second.name / name)
    assert paths == p1 == p2
    assert not np.allclose(a, b, atol=1e-2)  # the members differ, so the average is a real mix
    np.testing.assert_allclose(ens, (a + b) / 2, atol=2e-5)  # CSV keeps 5 decimals
    assert "Ensemble of 2 runs" in (out / "report.md").read_text()


def test_without_tta_each_run_scores_as_it_was_trained_to(runs, tmp_path):
    from emoclf.training.trainer import train

    flipped = train(load_config(str(CONFIGS / "cnn.yaml"), runs.overrides + [
        "train.tta=flip", f"output.dir={tmp_path}", "output.name=flipped"]))
    own = evaluate_run(flipped, out=str(tmp_path / "own"))  # no --tta: the run's train.tta
    trained = json.loads((flipped / "metrics.json").read_text())
    assert own["tta"] == "flip" and Path(own["out_dir"]).name.endswith("-flip")
    assert own["accuracy"] == trained["accuracy"] and own["loss"] == pytest.approx(trained["loss"], abs=1e-6)
    plain = evaluate_run(runs.cnn, out=str(tmp_path / "plain"))
    both = [evaluate_run(pair, out=str(tmp_path / f"ens{i}")) for i, pair in
            enumerate(([runs.cnn, flipped], [flipped, runs.cnn]))]
    (_, a), (_, b) = _probs(Path(plain["out_dir"])), _probs(Path(own["out_dir"]))
    for m in both:  # each member with its own test-time augmentation, whatever the order of the runs
        np.testing.assert_allclose(_probs(Path(m["out_dir"]))[1], (a + b) / 2, atol=2e-5)


def test_predict_with_repeated_run_averages_scores(runs, second, capsys, tmp_path):
    img = next((runs.root / "validation").glob("*/*.jpg"))

    def scores(*run_args):
        assert main(["predict", str(img), *run_args, "--json", "--no-figure", "--tta", "none",
                     "--out", str(tmp_path)]) == 0
        rec = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        return rec, np.array(list(rec["scores"].values()))

    _, a = scores("--run", str(runs.cnn))
    _, b = scores("--run", str(second))
    rec, ens = scores("--run", str(runs.cnn), "--run", str(second))
    np.testing.assert_allclose(ens, (a + b) / 2, atol=2e-6)
    assert str(runs.cnn) in rec["run"] and str(second) in rec["run"]


def test_members_must_share_classes_and_input(runs, second, capsys):
    with pytest.raises(ValueError, match="data.grayscale differs"):
        evaluate_run([runs.cnn, runs.rgb])
    with pytest.raises(ValueError, match="named twice"):
        evaluate_run([runs.cnn, runs.cnn / "best.pt"])
    assert main(["predict", "x.jpg", "--run", str(runs.cnn), "--run", str(second), "--backend", "onnx"]) == 2
    assert "PyTorch only" in capsys.readouterr().err


def test_ensemble_feeds_each_member_its_own_normalization():
    torch.manual_seed(0)
    m1, m2 = nn.Sequential(nn.Flatten(), nn.Linear(12, 3)), nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    mean1, std1, mean2, std2 = [0.5], [0.25], [0.2], [0.4]
    x = torch.rand(4, 1, 2, 6)  # 0..1 pixels
    ens = Ensemble([m1, m2], [mean1, mean2], [std1, std2])
    out = ens((x - mean1[0]) / std1[0])
    want = (torch.softmax(m1((x - mean1[0]) / std1[0]), 1) + torch.softmax(m2((x - mean2[0]) / std2[0]), 1)) / 2
    torch.testing.assert_close(out.exp(), want, atol=1e-6, rtol=1e-5)
