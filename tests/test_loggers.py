"""output.loggers: TensorBoard and MLflow hold what history.csv and metrics.json hold; a failing tracker never stops
a run; a resumed run continues its tracker run."""
from __future__ import annotations

import csv
import json
import logging
import sys
from pathlib import Path

import pytest
from conftest import tiny_overrides

from emoclf.config import load_config
from emoclf.runs.folder import TRACKERS
from emoclf.training import trainer as trainer_module
from emoclf.training.trainer import train

pytest.importorskip("tensorboard")
pytest.importorskip("mlflow")
COLUMNS = ["train_loss", "train_acc", "train_f1", "val_loss", "val_acc", "val_f1", "val_top2", "lr", "seconds"]


def history(run: Path):
    return list(csv.DictReader((run / "history.csv").open()))


def tensorboard_scalars(run: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return events, {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def mlflow_run(run: Path):
    from mlflow.tracking import MlflowClient

    ids = json.loads((run / TRACKERS).read_text())["mlflow"]
    client = MlflowClient(ids["tracking_uri"])
    return client, client.get_run(ids["run_id"])


def config(root, out, name, epochs=2, loggers="[tensorboard, mlflow]"):
    return load_config("configs/cnn.yaml", tiny_overrides(root, out, epochs) + [f"output.name={name}",
                                                                                  f"output.loggers={loggers}"])


@pytest.fixture(scope="module")
def tracked(small_faces, tmp_path_factory):
    return train(config(small_faces, tmp_path_factory.mktemp("tracked"), "tracked"))


def test_tensorboard_holds_every_history_column_and_the_final_metrics(tracked):
    rows = history(tracked)
    events, scalars = tensorboard_scalars(tracked)
    for column in COLUMNS:
        assert [s for s, _ in scalars[column]] == [int(r["epoch"]) for r in rows]
        assert [v for _, v in scalars[column]] == pytest.approx([float(r[column]) for r in rows], rel=1e-4)
    metrics = json.loads((tracked / "metrics.json").read_text())
    for key in ("accuracy", "f1_macro", "loss", "top2_accuracy"):
        assert scalars[f"final/{key}"] == [(2, pytest.approx(metrics[key], rel=1e-5))]
    assert events.Tags()["images"] == ["confusion_matrix"]


def test_mlflow_holds_the_history_the_config_the_metrics_and_the_files(tracked):
    client, run = mlflow_run(tracked)
    rows = history(tracked)
    for column in COLUMNS:
        got = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, column))
        assert got == [(int(r["epoch"]), pytest.approx(float(r[column]), rel=1e-4)) for r in rows]
    metrics = json.loads((tracked / "metrics.json").read_text())
    assert run.data.metrics["final_f1_macro"] == pytest.approx(metrics["f1_macro"])
    assert run.data.metrics["final_accuracy"] == pytest.approx(metrics["accuracy"])
    assert run.data.params["train.epochs"] == "2" and run.data.params["model.name"] == "cnn"
    assert run.data.params["output.loggers"] == '["tensorboard", "mlflow"]'
    assert run.info.status == "FINISHED" and run.info.run_name == "tracked"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"metrics.json", "history.csv", "confusion_matrix.png", "config.yaml", "report.md"} <= artifacts
    store = Path(client.tracking_uri.removeprefix("sqlite:///"))
    assert store == tracked.parent.resolve() / "mlruns" / "mlflow.db"  # local, beside the run folders


def test_a_resumed_run_continues_the_same_tracker_runs(small_faces, tmp_path, monkeypatch):
    cfg = config(small_faces, tmp_path, "resumed", epochs=3)
    real = trainer_module.Trainer.end_epoch

    def stop_after_two(self, row):
        stop = real(self, row)
        if self.state.epoch == 2:
            raise KeyboardInterrupt
        return stop

    monkeypatch.setattr(trainer_module.Trainer, "end_epoch", stop_after_two)
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    client, run = mlflow_run(cfg.run_dir)
    assert run.info.status == "KILLED"
    monkeypatch.setattr(trainer_module.Trainer, "end_epoch", real)
    train(cfg, resume=True)
    client, again = mlflow_run(cfg.run_dir)
    assert again.info.run_id == run.info.run_id and again.info.status == "FINISHED"
    rows = history(cfg.run_dir)
    steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "val_f1"))
    assert steps == [1, 2, 3] and len(rows) == 3
    _, scalars = tensorboard_scalars(cfg.run_dir)
    assert [v for _, v in scalars["val_f1"]] == pytest.approx([float(r["val_f1"]) for r in rows], rel=1e-4)
    assert len(list((cfg.run_dir / "tensorboard").iterdir())) == 2  # one event file per process, one log folder


def test_a_tracker_that_fails_warns_once_and_training_goes_on(small_faces, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if tensorboard were not installed
    with caplog.at_level(logging.WARNING, logger="emoclf"):
        run = train(config(small_faces, tmp_path, "untracked"))
    warnings = [r.getMessage() for r in caplog.records if "logger failed" in r.getMessage()]
    assert len(warnings) == 2, warnings
    assert any("pip install 'emoclf[tensorboard]'" in w for w in warnings)
    assert any(w.startswith("Warning: the mlflow logger failed") for w in warnings)
    assert (run / "report.md").is_file() and len(history(run)) == 2 and not (run / TRACKERS).exists()


def test_loggers_are_checked_when_the_config_is_read(tmp_path):
    with pytest.raises(ValueError, match=r"output.loggers items must be among csv, tensorboard, mlflow; got "
                                         r"'tensorbord'.*Did you mean 'tensorboard'"):
        load_config(None, ["output.loggers=[tensorbord]"])
    assert load_config(None, ["output.loggers=tensorboard,csv"]).output.loggers == ["tensorboard", "csv"]
    assert load_config(None).output.loggers == []
