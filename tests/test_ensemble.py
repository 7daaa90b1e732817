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
    with pytest.raises(ValueError, match="named twice"):
        evaluate_run([runs.cnn, runs.cnn / "best.pt"])
    assert main(["predict", "x.jpg", "--run", str(runs.cnn), "--run", str(second), "--backend", "onnx"]) == 2
    assert "PyTorch only" in capsys.readouterr().err


def test_members_of_other_sizes_and_colour_modes_average(runs, tmp_path):
    """A grayscale and a colour run (the pipeline's CNN and ResNet18 differ so, and in size) average; each member
    reads the image in its own colour mode and size."""
    from emoclf.training.trainer import train

    rgb24 = train(load_config(str(runs.rgb_config), runs.overrides + [
        "data.image_size=24", f"output.dir={tmp_path}", "output.name=rgb24"]))
    m = evaluate_run([runs.cnn, rgb24], tta="none", out=str(tmp_path / "ens"))
    assert m["num_images"] > 0 and "Ensemble of 2 runs" in (Path(m["out_dir"]) / "report.md").read_text()
    (_, a), (_, b) = (_probs(Path(evaluate_run(r, tta="none", out=str(tmp_path / r.name))["out_dir"]))
                      for r in (runs.cnn, rgb24))
    _, ens = _probs(Path(m["out_dir"]))
    # gray from colour by PIL's weights and 32 px resized to 24: the average of the members, up to resampling
    assert np.abs(ens - (a + b) / 2).mean() < 0.01 and np.abs(ens - (a + b) / 2).max() < 0.1


def test_an_ensemble_names_every_difference_at_once():
    from emoclf.runs.ensemble import check_members

    prep = {"image_size": 48, "grayscale": True, "aspect": "pad", "mean": [0.5], "std": [0.25]}
    other = {**prep, "image_size": 96, "grayscale": False, "aspect": "crop"}
    with pytest.raises(ValueError) as err:
        check_members(["a", "b"], [["happy", "sad"], ["happy", "angry"]], [prep, other])
    assert "classes happy, angry" in str(err.value) and "data.aspect is crop in b" in str(err.value)
    assert "image_size" not in str(err.value) and "grayscale" not in str(err.value)  # those each member handles
    check_members(["a", "b"], [["happy", "sad"]] * 2, [prep, {**other, "aspect": "pad"}])


def test_ensemble_feeds_each_member_its_own_input():
    torch.manual_seed(0)
    m1, m2 = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)), nn.Sequential(nn.Flatten(), nn.Linear(3 * 4, 3))
    p1 = {"image_size": 4, "grayscale": True, "aspect": "pad", "mean": [0.5], "std": [0.25]}
    p2 = {"image_size": 2, "grayscale": False, "aspect": "pad", "mean": [0.2, 0.3, 0.4], "std": [0.4, 0.5, 0.6]}
    x = torch.rand(4, 3, 4, 4)  # the shared read: 0..1 colour pixels at the larger side
    ens = Ensemble([m1, m2], [p1, p2])
    assert ens.shared["image_size"] == 4 and ens.shared["grayscale"] is False
    gray = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    small = torch.nn.functional.interpolate(x, size=(2, 2), mode="bilinear", antialias=True, align_corners=False)
    mean2, std2 = torch.tensor(p2["mean"]).view(1, 3, 1, 1), torch.tensor(p2["std"]).view(1, 3, 1, 1)
    want = (torch.softmax(m1((gray - 0.5) / 0.25), 1) + torch.softmax(m2((small - mean2) / std2), 1)) / 2
    torch.testing.assert_close(ens(x).exp(), want, atol=1e-6, rtol=1e-5)
