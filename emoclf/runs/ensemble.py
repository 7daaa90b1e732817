"""Several finished runs as one model: the average of their class probabilities."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from emoclf.engine import check_tta, tta_views
from emoclf.runs.folder import BEST_CHECKPOINT

# Preprocessing that decides which pixels a model reads; members must agree on it to share one input batch.
SHARED_INPUT = ("image_size", "grayscale", "aspect")


class Ensemble(nn.Module):
    """Log of the mean softmax of the member models.

    The input is normalized with the first member's mean/std; each other member's input is rescaled to its own
    statistics, so members trained with different normalization still read what they were trained on. Each member
    averages its own test-time views (``ttas``, one mode per member; "none": the input only).
    """

    def __init__(self, models: Sequence[nn.Module], means: Sequence[Sequence[float]],
                 stds: Sequence[Sequence[float]], ttas: Optional[Sequence[str]] = None):
        super().__init__()
        self.members = nn.ModuleList(models)
        self.ttas = list(ttas) if ttas is not None else ["none"] * len(models)
        m0, s0 = torch.tensor(means[0]).view(1, -1, 1, 1), torch.tensor(stds[0]).view(1, -1, 1, 1)
        # x_i = (x_0 * s0 + m0 - m_i) / s_i  =  x_0 * scale_i + shift_i  (member 0 reads x_0 as it is)
        for i in range(1, len(self.members)):
            m, s = torch.tensor(means[i]).view(1, -1, 1, 1), torch.tensor(stds[i]).view(1, -1, 1, 1)
            self.register_buffer(f"scale{i}", s0 / s, persistent=False)
            self.register_buffer(f"shift{i}", (m0 - m) / s, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = 0
        for i, (model, mode) in enumerate(zip(self.members, self.ttas)):
            xi = x if i == 0 else x * getattr(self, f"scale{i}") + getattr(self, f"shift{i}")
            views = tta_views(xi, mode)
            probs = probs + sum(F.softmax(model(v).float(), 1) for v in views) / len(views)
        return (probs / len(self.members)).clamp_min(1e-12).log()


def check_members(names: Sequence[str], class_lists: Sequence[List[str]], preps: Sequence[dict]) -> None:
    """Refuse runs that cannot be averaged: other classes (or order) or other input pixels."""
    for name, classes, prep in zip(names[1:], class_lists[1:], preps[1:]):
        if list(classes) != list(class_lists[0]):
            raise ValueError(f"Cannot average {names[0]} and {name}: their classes differ "
                             f"({', '.join(class_lists[0])} vs {', '.join(classes)}). An ensemble needs runs "
                             f"trained on the same classes.")
        for key in SHARED_INPUT:
            if prep.get(key) != preps[0].get(key):
                raise ValueError(f"Cannot average {names[0]} and {name}: data.{key} differs ({preps[0].get(key)} vs "
                                 f"{prep.get(key)}). An ensemble needs runs that read the same input; retrain one "
                                 f"with --set data.{key}={preps[0].get(key)}.")


def load_runs(paths: Sequence, device: str = "auto"):
    """One run as is, or several as a LoadedRun whose model is their :class:`Ensemble`."""
    from emoclf.runs.loading import LoadedRun, load_run

    paths = [Path(p) for p in paths]
    checkpoints = {(p / BEST_CHECKPOINT if p.is_dir() else p).resolve() for p in paths}
    if len(checkpoints) != len(paths):
        raise ValueError(f"The same run is named twice in {', '.join(map(str, paths))}: each member once.")
    runs = [load_run(p, device) for p in paths]
    if len(runs) == 1:
        return runs[0]
    check_members([str(p) for p in paths], [r.class_names for r in runs], [r.preprocessing for r in runs])
    first = runs[0]
    model = Ensemble([r.model for r in runs], [r.preprocessing["mean"] for r in runs],
                     [r.preprocessing["std"] for r in runs], [r.cfg.train.tta for r in runs])
    model = model.to(next(first.model.parameters()).device).eval()
    return LoadedRun(model, first.cfg, first.class_names, first.preprocessing, first.run_dir, first.checkpoint,
                     first.channels_last, members=[r.run_dir for r in runs])


def resolve_tta(loaded, tta: Optional[str]) -> Tuple[str, str]:
    """(views for predict_logits, name of the test-time augmentation used) for a loaded run or ensemble.

    ``tta`` None: each run as it was trained to score (its train.tta; in an ensemble, each member its own);
    a mode: that mode for every member.
    """
    if not loaded.members:
        mode = check_tta(loaded.cfg.train.tta if tta is None else tta)
        return mode, mode
    if tta is None:
        own = [check_tta(m) for m in loaded.model.ttas]
        return "none", "none" if set(own) == {"none"} else "+".join(own)
    loaded.model.ttas = ["none"] * len(loaded.model.members)  # the views are made once, outside, for all members
    return check_tta(tta), check_tta(tta)


def ensemble_dir(paths: Sequence) -> Path:
    """Default folder of an ensemble's scores: beside the first run, named after the members."""
    folders = [p if p.is_dir() else p.parent for p in map(Path, paths)]
    return folders[0].parent / ("ensemble-" + "+".join(f.name for f in folders))
