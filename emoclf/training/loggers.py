"""Experiment trackers (``output.loggers``): TensorBoard and MLflow, beside history.csv, which is always written.

The trainer calls ``Trackers.epoch(row)`` after each epoch and ``Trackers.finish()`` once the run folder is complete.
A tracker that fails (its package missing, its server down) is warned about once and dropped: it never stops a run.
A resumed run continues the same tracker run: its id is kept in the run folder (runs.folder.TRACKERS).
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Dict

from emoclf.config import Config, to_dict
from emoclf.runs.folder import CONFUSION_PNG, METRICS, TENSORBOARD_DIR, TRACKERS
from emoclf.utils.extras import require_extra
from emoclf.utils.files import atomic_write_json

log = logging.getLogger(__name__)
MLFLOW_EXPERIMENT = "emoclf"  # unless MLFLOW_EXPERIMENT_NAME says otherwise


def config_params(cfg: Config) -> Dict[str, object]:
    """The config as flat ``section.key`` parameters (lists and None as text), as trackers store them."""
    flat: Dict[str, object] = {}
    for section, values in to_dict(cfg).items():
        items = values.items() if isinstance(values, dict) else [(None, values)]
        for key, value in items:
            name = section if key is None else f"{section}.{key}"
            flat[name] = value if isinstance(value, (bool, int, float, str)) else json.dumps(value)
    return flat


def final_metrics(run_dir: Path) -> Dict[str, float]:
    """The numbers of a finished run's metrics.json (accuracy, macro F1, loss, timings, sizes...)."""
    m = json.loads((run_dir / METRICS).read_text(encoding="utf-8"))
    return {k: float(v) for k, v in m.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _read_ids(run_dir: Path) -> Dict:
    try:
        held = json.loads((run_dir / TRACKERS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return held if isinstance(held, dict) else {}


class TensorBoardTracker:
    """Scalars per epoch, the final metrics, the confusion matrix and the config in RUN/tensorboard/."""

    name = "tensorboard"

    def __init__(self, cfg: Config, run_dir: Path, ids: Dict, start_epoch: int):
        SummaryWriter = require_extra("torch.utils.tensorboard", "tensorboard", "TensorBoard logging",
                                      ImportError).SummaryWriter
        # purge_step: a resumed run drops what a killed process logged after the epoch it resumes from.
        self.writer = SummaryWriter(str(run_dir / TENSORBOARD_DIR), purge_step=start_epoch + 1 if start_epoch else None)
        self.cfg, self.ids = cfg, {"log_dir": TENSORBOARD_DIR}

    def epoch(self, row: Dict) -> None:
        for key, value in row.items():
            if key != "epoch":
                self.writer.add_scalar(key, value, row["epoch"])
        self.writer.flush()

    def finish(self, run_dir: Path, metrics: Dict[str, float], step: int) -> None:
        import numpy as np
        from PIL import Image
        from torch.utils.tensorboard.summary import hparams

        for key, value in metrics.items():
            self.writer.add_scalar(f"final/{key}", value, step)
        if (run_dir / CONFUSION_PNG).is_file():
            with Image.open(run_dir / CONFUSION_PNG) as img:
                self.writer.add_image("confusion_matrix", np.asarray(img.convert("RGB")), step, dataformats="HWC")
        for summary in hparams(config_params(self.cfg), {f"final/{k}": v for k, v in metrics.items()}):
            self.writer.file_writer.add_summary(summary)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class MlflowTracker:
    """Params, metrics per epoch and at the end, and the run folder's files, in one MLflow run per run folder.

    Stored where MLFLOW_TRACKING_URI says, else in a local SQLite store beside the run folders
    (``output.dir/mlruns/mlflow.db``, artifacts in ``output.dir/mlruns/artifacts``)."""

    name = "mlflow"

    def __init__(self, cfg: Config, run_dir: Path, ids: Dict, start_epoch: int):
        MlflowClient = require_extra("mlflow.tracking", "mlflow", "MLflow logging", ImportError).MlflowClient
        # A server that is down should cost seconds, not the minutes of MLflow's default retries.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        uri, artifacts = os.environ.get("MLFLOW_TRACKING_URI"), None
        if not uri:
            store = (Path(cfg.output.dir) / "mlruns").resolve()
            store.mkdir(parents=True, exist_ok=True)
            uri, artifacts = f"sqlite:///{store / 'mlflow.db'}", (store / "artifacts").as_uri()
        self.client = MlflowClient(uri)
        held = ids if ids.get("tracking_uri") == uri else {}
        self.run_id = held.get("run_id")
        if self.run_id and start_epoch:
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or MLFLOW_EXPERIMENT
            found = self.client.get_experiment_by_name(name)
            experiment = found.experiment_id if found else self.client.create_experiment(name, artifacts)
            self.run_id = self.client.create_run(experiment, run_name=cfg.run_name).info.run_id
            from mlflow.entities import Param

            params = [Param(k, str(v)[:6000]) for k, v in config_params(cfg).items()]
            for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
                self.client.log_batch(self.run_id, params=params[i:i + 100])
        self.ids, self.finished = {"run_id": self.run_id, "tracking_uri": uri}, False

    def _metrics(self, values: Dict[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step) for k, v in values.items()])

    def epoch(self, row: Dict) -> None:
        self._metrics({k: v for k, v in row.items() if k != "epoch"}, row["epoch"])

    def finish(self, run_dir: Path, metrics: Dict[str, float], step: int) -> None:
        self._metrics({f"final_{k}": v for k, v in metrics.items()}, step)
        for path in sorted(run_dir.iterdir()):
            if path.is_file() and not path.name.startswith("."):
                self.client.log_artifact(self.run_id, str(path))
        self.client.set_terminated(self.run_id, "FINISHED")
        self.finished = True

    def close(self) -> None:
        if not self.finished:  # interrupted: --resume sets it running again
            self.client.set_terminated(self.run_id, "KILLED")


MAKERS = {"tensorboard": TensorBoardTracker, "mlflow": MlflowTracker}


class Trackers:
    """The trackers of ``output.loggers``; each failure is warned about once and drops that tracker."""

    def __init__(self, cfg: Config, run_dir: Path, start_epoch: int = 0):
        self.run_dir, self.active = Path(run_dir), []
        ids = _read_ids(self.run_dir) if start_epoch else {}
        for name in dict.fromkeys(n for n in cfg.output.loggers if n != "csv"):
            try:
                self.active.append(MAKERS[name](cfg, self.run_dir, ids.get(name, {}), start_epoch))
            except Exception as exc:  # whatever a tracker raises: warn, train on
                self._warn(name, exc)
        if self.active:
            atomic_write_json(self.run_dir / TRACKERS, {**ids, **{t.name: t.ids for t in self.active}})

    def _warn(self, name: str, exc: Exception) -> None:
        text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        log.warning("Warning: the %s logger failed and is off for the rest of this run (%s). Training goes on; "
                    "history.csv has every epoch.", name, text)

    def _each(self, call) -> None:
        for tracker in list(self.active):
            try:
                call(tracker)
            except Exception as exc:  # a tracker never stops a run
                self._warn(tracker.name, exc)
                self.active.remove(tracker)
                _close_quietly(tracker)

    def epoch(self, row: Dict) -> None:
        """Every history column of one epoch (the row as written to history.csv)."""
        self._each(lambda t: t.epoch(row))

    def finish(self, step: int) -> None:
        """The final metrics, the confusion matrix, and (MLflow) the run folder's files; then close."""
        if not self.active:
            return
        try:
            metrics = final_metrics(self.run_dir)
        except (OSError, ValueError) as exc:
            metrics = {}
            log.warning("Warning: no final metrics for the trackers (%s).", exc)
        self._each(lambda t: t.finish(self.run_dir, metrics, step))
        self.close()

    def close(self) -> None:
        """Close every tracker (also after an interruption: what was logged stays)."""
        for tracker in self.active:
            _close_quietly(tracker)
        self.active = []


def _close_quietly(tracker) -> None:
    try:
        tracker.close()
    except Exception:  # closing a failed tracker must not raise a second error
        pass

