"""One training loop for every model: history, checkpoints, resume, early stopping, time limit."""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch
import torch.nn as nn

from emoclf.config import Config, save_config
from emoclf.data.augment import BatchAugment, BatchMix, Normalizer, norm_stats
from emoclf.data.dataset import batches, discover, epoch_order, load_split
from emoclf.engine import (
    amp_dtype,
    make_scaler,
    predict_logits,
    resident,
    select_device,
    set_threads,
    use_channels_last,
)
from emoclf.models import check_model_name
from emoclf.models.factory import create_model
from emoclf.runs import checkpoint as ck
from emoclf.runs.folder import (
    BEST_CHECKPOINT,
    CONFIG,
    HISTORY,
    LAST_CHECKPOINT,
    apply_run_dir,
    check_run_dir,
    epochs_done,
    is_finished,
    minutes,
    refuse_changes_to_finished,
)
from emoclf.runs.metrics import compute_metrics, f1_scores
from emoclf.runs.scoring import finalize_run
from emoclf.training.averaging import Averages
from emoclf.training.epoch import Learner, Progress, train_epoch, until_deadline
from emoclf.training.loggers import Trackers
from emoclf.training.optim import make_loss, make_optimizer, scheduled_lr
from emoclf.utils import distributed as dd
from emoclf.utils.files import atomic_write_text, remove_stale_temps

log = logging.getLogger(__name__)
HISTORY_COLUMNS = ["epoch", "train_loss", "train_acc", "train_f1", "val_loss", "val_acc", "val_f1", "val_top2",
                   "lr", "seconds"]


@dataclass
class LoopState:
    """Everything besides tensors that a resumed run needs to continue exactly."""

    epoch: int = 0  # epochs completed
    history: List[Dict] = field(default_factory=list)
    best_f1: float = -1.0
    best_epoch: int = 0
    bad_epochs: int = 0
    train_seconds: float = 0.0
    stopped: str = ""
    channels_last: bool = False
    last_share: float = 1.0  # share of the last epoch's training images seen (under 1: cut by the time limit)


def _write_history(run_dir: Path, history: List[Dict]) -> None:
    lines = [",".join(HISTORY_COLUMNS)]
    lines += [",".join(f"{row[c]:.6g}" if isinstance(row[c], float) else str(row[c]) for c in HISTORY_COLUMNS)
              for row in history]
    atomic_write_text(run_dir / HISTORY, "\n".join(lines) + "\n")


class Trainer:
    """Holds the pieces of one run and advances it epoch by epoch (one process of a torchrun job, or alone)."""

    trackers: Optional[Trackers] = None  # output.loggers, opened by train() once the run folder exists
    on_epoch: Optional[Callable[[Dict], None]] = None  # called with each history row (e.g. a search's pruning)

    def __init__(self, cfg: Config, resume: bool = False, overwrite: bool = False):
        self.cfg, self.run_dir = cfg, cfg.run_dir
        self.dist = dd.from_env()
        self.device = _device(cfg.train.device, self.dist)
        dd.init(self.dist, self.device)
        set_threads(cfg.train.num_threads or max(1, (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                                     else os.cpu_count() or 1) // self.dist.local_world))
        self.resume_from = check_run_dir(cfg, resume, overwrite)
        self.dtype = amp_dtype(cfg.train.amp, self.device)
        self._load_data()
        torch.manual_seed(cfg.seed)
        self.raw_model = create_model(cfg, len(self.class_names))
        self.state = LoopState()
        ckpt = ck.read(self.resume_from) if self.resume_from is not None else None
        self.state.channels_last = use_channels_last(cfg.train.channels_last, self.device)
        self.raw_model = ck.place_model(self.raw_model, self.device, self.state.channels_last)
        self.model = self._wrap(self.raw_model)
        self.norm = Normalizer(*norm_stats(cfg.data.grayscale, cfg.data.mean, cfg.data.std), self.device,
                               self.state.channels_last, cfg.augment.crop)
        self.augment, self.mix = BatchAugment(cfg.augment), BatchMix(cfg.augment)
        self.averages = Averages(cfg, self.raw_model)  # after _wrap: the very module DDP trains
        self.optimizer = make_optimizer(cfg, self.raw_model)
        self.scaler = make_scaler(self.device, self.dtype)
        self.loss_fn = make_loss(cfg, self.train, len(self.class_names), self.device)
        self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="max", factor=cfg.train.gamma, patience=cfg.train.plateau_patience)
        if ckpt is not None:
            self._load(ckpt)
        # Only now, with data and model ready, is the run folder made (or emptied with --overwrite): a run that
        # cannot start leaves no empty folder behind and keeps the run it would have replaced.
        dd.barrier(self.dist)
        self.folder_lock = None
        if self.dist.is_main:
            self.folder_lock = apply_run_dir(cfg, overwrite)  # held until train() returns or the process dies
            for stale in remove_stale_temps(self.run_dir):
                log.info("Removed %s, left by an interrupted write", stale.name)

    def _load_data(self) -> None:
        """Discover and decode; the main process fills the cache first so others only read it."""
        cfg = self.cfg
        if not self.dist.is_main:
            dd.barrier(self.dist)
        ds = discover(cfg.data, cfg.seed, strict=self.resume_from is None)
        self.dataset, self.class_names = ds, ds.class_names
        self.train = load_split(ds.splits["train"], cfg.data, ds.root, "train")
        self.val = load_split(ds.splits["validation"], cfg.data, ds.root, "validation")
        if self.dist.is_main:
            dd.barrier(self.dist)
        # On a GPU the decoded images live in its memory when they fit: no host copies per step.
        self.train_images = resident(self.train.images, self.device)
        self.train_labels = resident(self.train.labels, self.device) if self.train_images is not self.train.images \
            else self.train.labels
        self.val_images = resident(self.val.images, self.device)
        if len(self.train) < 2 or len(self.val) < 1:
            raise ValueError(f"Too few readable images under {ds.root}: {len(self.train)} for training and "
                             f"{len(self.val)} for validation. Add images or lower data.val_fraction.")

    def _wrap(self, model: nn.Module) -> nn.Module:
        if self.dist.enabled:
            if self.cfg.train.sync_bn and self.device.type == "cuda":
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
                self.raw_model = model
            ids = [self.device.index] if self.device.type == "cuda" else None
            model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        return torch.compile(model) if self.cfg.train.compile else model

    def _load(self, c: Dict) -> None:
        self.averages.load(c)  # the trained weights, and the average of them the run scores
        self.optimizer.load_state_dict(c["optimizer_state"])
        self.scaler.load_state_dict(c["scaler_state"])
        self.plateau.load_state_dict(c["plateau_state"])
        self.state = LoopState(**c["loop_state"])
        log.info("Resuming %s after epoch %d", self.run_dir, self.state.epoch)

    def _checkpoint(self, metrics: Dict, full: bool) -> Dict:
        extra = {}
        if full:
            extra = {"optimizer_state": self.optimizer.state_dict(), "scaler_state": self.scaler.state_dict(),
                     "plateau_state": self.plateau.state_dict(), "loop_state": vars(self.state).copy(),
                     **self.averages.state()}
        extra["channels_last"] = self.state.channels_last
        return ck.make_checkpoint(self.averages.scored, self.cfg, self.class_names, self.state.epoch, metrics, extra)

    def _set_lr(self, epoch: float, started: float) -> float:
        """Per-step learning rate; under a time limit the schedule also follows the elapsed share of it."""
        t = self.cfg.train
        if t.scheduler == "plateau" and epoch >= t.warmup_epochs and not (t.swa_lr and self.averages.in_swa(epoch)):
            return self.optimizer.param_groups[0]["lr"]
        elapsed = self.state.train_seconds + time.perf_counter() - started
        fraction = dd.all_max(elapsed / (t.time_limit * 60), self.dist) if t.time_limit else 0.0
        lr = scheduled_lr(self.cfg, epoch, fraction)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def validate(self) -> Dict:
        """Metrics of the scored weights (their average, when the run keeps one) on the whole validation split (each
        process scores a slice)."""
        model = self.averages.scored
        dd.broadcast_buffers(model, self.dist)
        part = dd.contiguous_range(len(self.val), self.dist)
        logits = predict_logits(model, self.val_images[part], self.norm, self.cfg.train.eval_batch_size,
                                self.dtype)
        logits = dd.gather_rows(logits.reshape(-1, len(self.class_names)), self.dist)
        return compute_metrics(self.val.labels, logits, self.class_names)

    def _train_metrics(self, res) -> Dict:
        loss_sum, count = dd.all_sum([res.loss_sum, res.count], self.dist)
        y_true = dd.gather_rows(torch.from_numpy(res.y_true), self.dist).numpy()
        y_pred = dd.gather_rows(torch.from_numpy(res.y_pred), self.dist).numpy()
        return {"loss": loss_sum / max(count, 1), **f1_scores(y_true, y_pred)}

    def train_pass(self, deadline: Optional[float] = None) -> Dict:
        """One training pass over this epoch's order (seeded by the epoch, so a resumed run repeats it)."""
        cfg, e, started = self.cfg, self.state.epoch, time.perf_counter()
        lr = self._set_lr(e, started)
        torch.manual_seed(cfg.seed * 100_003 + e)
        gen = torch.Generator().manual_seed(cfg.seed * 7_919 + e)
        order = dd.shard(epoch_order(self.train.labels, e, cfg.seed, cfg.train.sampler == "balanced"), self.dist)
        steps = batches(order, cfg.train.batch_size)
        per_epoch, planned = max(len(steps), 1), sum(len(b) for b in steps)
        on_step = lambda i: self._set_lr(e + i / per_epoch, started)  # noqa: E731
        if deadline is not None:
            steps = until_deadline(steps, deadline, self.dist)
        bar = Progress(len(order), f"epoch {e + 1}/{cfg.train.epochs}", self.dist.is_main)
        try:
            learner = Learner(self.model, self.optimizer, self.loss_fn, self.scaler, self.dtype, self.norm,
                              self.augment, self.mix, self.averages.ema)
            res = train_epoch(learner, self.train_images, self.train_labels, steps, gen, bar, on_step)
        finally:
            bar.close()
        return {"lr": lr, "images": res.count, "share": res.count / max(planned, 1), **self._train_metrics(res)}

    def run_epoch(self, deadline: Optional[float]) -> Dict:
        """Train one epoch and validate; seconds is the wall time of both."""
        start = time.perf_counter()
        tr = self.train_pass(deadline)
        self.averages.end_epoch(self.state.epoch, self.train_images, self.norm, self.cfg.train.eval_batch_size)
        val = self.validate()
        return {"epoch": self.state.epoch + 1, "train_loss": tr["loss"], "train_acc": tr["accuracy"],
                "train_f1": tr["f1_macro"], "val_loss": val["loss"], "val_acc": val["accuracy"],
                "val_f1": val["f1_macro"], "val_top2": val["top2_accuracy"], "lr": tr["lr"],
                "seconds": time.perf_counter() - start, "share": tr["share"]}

    def end_epoch(self, row: Dict) -> bool:
        """Record an epoch, save checkpoints; True when training should stop."""
        s, t = self.state, self.cfg.train
        s.epoch, s.train_seconds, s.last_share = row["epoch"], s.train_seconds + row["seconds"], row.pop("share", 1.0)
        s.history.append(row)
        improved = row["val_f1"] > s.best_f1
        if improved:
            s.best_f1, s.best_epoch, s.bad_epochs = row["val_f1"], row["epoch"], 0
        else:
            s.bad_epochs += 1
        if t.scheduler == "plateau" and s.epoch >= t.warmup_epochs:
            self.plateau.step(row["val_f1"])
        if t.early_stopping and s.bad_epochs >= t.early_stopping:
            s.stopped = "early_stopping"
        elif t.time_limit and s.train_seconds >= t.time_limit * 60:
            s.stopped = "time_limit"
        elif s.epoch >= t.epochs:
            s.stopped = "completed"
        if self.dist.is_main:
            self._save(row, improved)
            if self.trackers is not None:
                self.trackers.epoch(row)
            if self.on_epoch is not None:
                self.on_epoch(row)
        dd.barrier(self.dist)
        return bool(s.stopped)

    def _save(self, row: Dict, improved: bool) -> None:
        t = self.cfg.train
        metrics = {k: row[k] for k in ("val_acc", "val_f1", "val_loss")}
        if improved:
            ck.save(self._checkpoint(metrics, full=False), self.run_dir / BEST_CHECKPOINT)
        ck.save(self._checkpoint(metrics, full=True), self.run_dir / LAST_CHECKPOINT)
        _write_history(self.run_dir, self.state.history)
        # train/validation pairs, labelled once: "loss 1.94/1.93" alone does not say which is which
        log.info("epoch %d/%d  train/validation  loss %.4f/%.4f  acc %.4f/%.4f  macro F1 %.4f/%.4f  lr %.2e  %.1fs%s",
                 row["epoch"], t.epochs, row["train_loss"], row["val_loss"], row["train_acc"], row["val_acc"],
                 row["train_f1"], row["val_f1"], row["lr"], row["seconds"],
                 "  *best validation macro F1" if improved else "")

    def fit(self) -> Path:
        """Train until done (epochs, early stopping or time limit), then write every artifact."""
        t = self.cfg.train
        while not self.state.stopped and self.state.epoch < t.epochs:
            deadline = None
            if t.time_limit:
                deadline = time.perf_counter() + t.time_limit * 60 - self.state.train_seconds
            if self.end_epoch(self.run_epoch(deadline)):
                break
        if self.state.stopped == "time_limit":
            log.info("Stopped at the time limit of %s after %s", minutes(t.time_limit), epochs_done(self.state))
        if self.state.stopped == "early_stopping":
            log.info("Early stopping: no better validation macro F1 for %d epochs", t.early_stopping)
        if self.dist.is_main:
            _write_history(self.run_dir, self.state.history)  # a kill may have come between last.pt and it
            finalize_run(self)
            if self.trackers is not None:
                self.trackers.finish(self.state.epoch)
        dd.barrier(self.dist)
        return self.run_dir


def _device(name: str, info: dd.DistInfo) -> torch.device:
    device = select_device(name)
    if info.enabled and device.type == "cuda":
        if info.local_world > torch.cuda.device_count():
            raise ValueError(f"torchrun started {info.local_world} processes on this node but it has "
                             f"{torch.cuda.device_count()} GPU(s); use --nproc_per_node={torch.cuda.device_count()} "
                             f"or --set train.device=cpu.")
        device = torch.device("cuda", info.local_rank) if device.index is None else device
    return device


def train(cfg: Config, resume: bool = False, overwrite: bool = False,
          on_epoch: Optional[Callable[[Dict], None]] = None) -> Path:
    """Train ``cfg`` into its run folder and return the folder; ``on_epoch`` is called with each epoch's history
    row on the main process, once the epoch is saved (an exception it raises ends the run there)."""
    check_model_name(cfg.model.name)
    if resume and not overwrite and is_finished(cfg.run_dir):
        refuse_changes_to_finished(cfg)
        log.info("%s is already finished; nothing to resume.", cfg.run_dir)
        return cfg.run_dir
    trainer = Trainer(cfg, resume=resume, overwrite=overwrite)
    trainer.on_epoch = on_epoch
    try:
        if trainer.dist.is_main:
            save_config(cfg, trainer.run_dir / CONFIG)
            trainer.trackers = Trackers(cfg, trainer.run_dir, trainer.state.epoch)
        return trainer.fit()
    finally:
        if trainer.trackers is not None:
            trainer.trackers.close()
        if trainer.folder_lock is not None:
            trainer.folder_lock.release()
        dd.shutdown()
