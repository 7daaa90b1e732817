"""Loading a finished run (or a checkpoint file) for inference."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import torch.nn as nn

from emoclf.config import Config
from emoclf.engine import select_device, use_channels_last
from emoclf.runs import checkpoint as ck
from emoclf.runs.folder import BEST_CHECKPOINT, is_finished

log = logging.getLogger(__name__)


@dataclass
class LoadedRun:
    """A finished run's model, ready for inference."""

    model: nn.Module
    cfg: Config
    class_names: List[str]
    preprocessing: Dict
    run_dir: Optional[Path]
    checkpoint: Path
    channels_last: bool = False
    members: Optional[List[Path]] = None  # the runs of an ensemble (see ensemble.load_runs); None: one run


def load_run(path: Path, device: str = "auto") -> LoadedRun:
    """Model of a run folder (its best.pt) or of a checkpoint file, on ``device``."""
    path = Path(path)
    if path.is_dir():
        ckpt_path = path / BEST_CHECKPOINT
        if not ckpt_path.is_file():
            raise FileNotFoundError(f"{path} has no best.pt: it is not a finished emoclf run. Train it first "
                                    f"(emoclf train) or pass another run folder.")
        if not is_finished(path):
            log.warning("%s is not a finished run (no report.md): using the best checkpoint so far. Finish it "
                        "with emoclf train --resume.", path)
    elif path.is_file():
        ckpt_path = path
    else:
        raise FileNotFoundError(f"Run not found: {path}. Pass a run folder such as outputs/cnn or a .pt checkpoint.")
    c = ck.read(ckpt_path)
    model, cfg = ck.model_from_checkpoint(c, str(ckpt_path))
    dev = select_device(device, "--device")
    channels_last = bool(c.get("channels_last", False)) if dev.type == "cpu" else use_channels_last("auto", dev)
    model = ck.place_model(model, dev, channels_last)
    return LoadedRun(model, cfg, list(c["class_names"]), c["preprocessing"],
                     ckpt_path.parent if path.is_file() else path, ckpt_path, channels_last)
