"""emoclf tune: trials are run folders, the study continues after a kill without repeating finished trials, pruning
reads each epoch's validation macro F1, and the best config trains as it is."""
from __future__ import annotations

import csv
import json

import pytest
from conftest import REPO, tiny_overrides

from emoclf.cli.app import main
from emoclf.config import load_config
from emoclf.training import trainer as trainer_module

optuna = pytest.importorskip("optuna")
SPACE = "train.lr: {low: 1.0e-3, high: 1.0e-2, log: true}\nmodel.dropout: [0.0, 0.2]\n"


def args(root, out, space, trials, epochs=2):
    sets = [a for o in tiny_overrides(root, out / "runs", epochs) for a in ("--set", o)]
    return ["tune", "--config", str(REPO / "configs/cnn.yaml"), *sets, "--trials", str(trials), "--space", str(space),
            "--out", str(out / "search")]


@pytest.fixture
def space(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(SPACE)
    return path


def counting_train(monkeypatch, fail_on=None):
    """Count the trials trained; raise KeyboardInterrupt (a kill) in call ``fail_on``."""
    real, calls = trainer_module.train, []

    def train(cfg, **kwargs):
        calls.append(cfg.run_dir.name)
        if len(calls) == fail_on:
            raise KeyboardInterrupt
        return real(cfg, **kwargs)

    monkeypatch.setattr(trainer_module, "train", train)
    return calls


def study_of(out):
    return optuna.load_study(study_name="cnn", storage=f"sqlite:///{out / 'search' / 'study.db'}")


def test_a_killed_search_continues_without_repeating_finished_trials(small_faces, tmp_path, space, monkeypatch,
                                                                     capsys):
    calls = counting_train(monkeypatch, fail_on=2)
    assert main(args(small_faces, tmp_path, space, 3)) == 130  # killed in its second trial
    assert "the study continues" in capsys.readouterr().err
    first = study_of(tmp_path).get_trials()
    assert [t.state.name for t in first] == ["COMPLETE", "FAIL"] and calls == ["trial-000", "trial-001"]

    calls = counting_train(monkeypatch)
    assert main(args(small_faces, tmp_path, space, 3)) == 0
    assert calls == ["trial-002", "trial-003"]  # the interrupted trial again, then one new; trial 0 not repeated
    trials = study_of(tmp_path).get_trials()
    assert trials[2].params == first[1].params and trials[2].user_attrs["retry_of"] == 1
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]

    calls = counting_train(monkeypatch)
    assert main(args(small_faces, tmp_path, space, 3)) == 0 and calls == []  # nothing left to do
    assert "3 trial(s) in the study" in capsys.readouterr().out


def test_each_trial_is_a_run_folder_and_the_best_config_trains_as_written(small_faces, tmp_path, space, capsys):
    assert main(args(small_faces, tmp_path, space, 2)) == 0
    search = tmp_path / "search"
    study = study_of(tmp_path)
    for t in study.get_trials():
        run = search / f"trial-{t.number:03d}"
        rows = list(csv.DictReader((run / "history.csv").open()))
        # pruning reads the validation macro F1 of every epoch, as history.csv holds it
        assert sorted(t.intermediate_values.items()) == [(int(r["epoch"]), pytest.approx(float(r["val_f1"]), 1e-4))
                                                         for r in rows]
        assert t.value == json.loads((run / "metrics.json").read_text())["f1_macro"]
        assert load_config(str(run / "config.yaml")).train.lr == pytest.approx(t.params["train.lr"])
    best = max(study.get_trials(), key=lambda t: t.value)
    cfg = load_config(str(search / "best.yaml"))
    assert cfg.train.lr == pytest.approx(best.params["train.lr"]) and cfg.model.dropout == best.params["model.dropout"]
    assert cfg.run_dir == tmp_path / "runs" / "cnn-tuned" and cfg.train.epochs == 2
    assert (search / "trials.png").stat().st_size > 0 and "**Best:** trial" in (search / "tune.md").read_text()
    out = capsys.readouterr().out
    assert f"Best: trial {best.number}" in out and "best.yaml" in out


def test_trials_below_the_pruner_stop_early(small_faces, tmp_path, space, monkeypatch):
    monkeypatch.setattr(optuna.pruners, "MedianPruner", lambda **kw: optuna.pruners.ThresholdPruner(lower=1.01))
    assert main(args(small_faces, tmp_path, space, 2, epochs=3)) == 0
    trials = study_of(tmp_path).get_trials()
    assert [t.state.name for t in trials] == ["PRUNED", "PRUNED"]
    assert all(len(t.intermediate_values) == 1 for t in trials)  # stopped after the first epoch
    rows = list(csv.DictReader((tmp_path / "search" / "trial-000" / "history.csv").open()))
    assert len(rows) == 1 and not (tmp_path / "search" / "best.yaml").exists()


@pytest.mark.parametrize("text, message", [
    ("train.lrr: {low: 0.1, high: 1}", "Did you mean 'lr'"),
    ("train.lr: {low: 0, high: 1, log: true}", "log scale needs low > 0"),
    ("train.lr: {low: 0.1, high: 20}", "refused by the config: train.lr=20.0 is out of range"),
    ("model.name: {low: 1, high: 2}", "give choices instead"),
    ("train.optimizer: {choices: [adamw, lion]}", "train.optimizer must be one of"),
])
def test_a_bad_space_is_refused_before_any_trial(text, message, small_faces, tmp_path, capsys):
    space = tmp_path / "space.yaml"
    space.write_text(text + "\n")
    assert main(args(small_faces, tmp_path, space, 2)) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "search").exists()


def test_without_optuna_the_message_names_the_extra(small_faces, tmp_path, space, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "optuna", None)
    assert main(args(small_faces, tmp_path, space, 2)) == 2
    assert "pip install 'emoclf[tune]'" in capsys.readouterr().err
