"""Several finished runs as one model: the average of their class probabilities."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from emoclf.engine import check_tta, tta_views
from emoclf.runs.folder import BEST_CHECKPOINT

# PIL's convert("L") weights (ITU-R 601-2 luma): a grayscale member sees the gray image it was trained on.
LUMA = (0.299, 0.587, 0.114)


def shared_input(preps: Sequence[Dict]) -> Dict:
    """The one read of an image that every member's input is made from: the largest member's size, in colour when
    any member reads colour, scaled to 0..1 (mean 0, std 1); each member then resizes, turns gray and normalizes
    it as it was trained (:class:`MemberInput`)."""
    gray = all(p["grayscale"] for p in preps)
    channels = 1 if gray else 3
    return {"image_size": max(p["image_size"] for p in preps), "grayscale": gray, "aspect": preps[0]["aspect"],
            "mean": [0.0] * channels, "std": [1.0] * channels, "crop": preps[0].get("crop", 0) or 0}


class MemberInput(nn.Module):
    """One member's input from the shared 0..1 read: colour to gray, resized to its side, its mean and std."""

    def __init__(self, prep: Dict, shared: Dict):
        super().__init__()
        self.gray = bool(prep["grayscale"]) and not shared["grayscale"]
        # members that read crops share one size (check_members), so only crop-free members are resized
        self.size = None if prep["image_size"] == shared["image_size"] else prep["image_size"]
        self.register_buffer("mean", torch.tensor(prep["mean"], dtype=torch.float32).view(1, -1, 1, 1), False)
        self.register_buffer("std", torch.tensor(prep["std"], dtype=torch.float32).view(1, -1, 1, 1), False)
        self.register_buffer("luma", torch.tensor(LUMA, dtype=torch.float32).view(1, 3, 1, 1), False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gray:
            x = (x * self.luma.to(x.dtype)).sum(1, keepdim=True)
        if self.size is not None and x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


class Ensemble(nn.Module):
    """Log of the mean softmax of the member models.

    The input is the shared read of :func:`shared_input` (0..1 pixels at the largest member's size, colour when a
    member reads colour); each member turns it into the input it was trained on (its own size, colour mode, mean
    and std), so that runs of different inputs average. Each member averages its own test-time views (``ttas``,
    one mode per member; "none": the input only).
    """

    def __init__(self, models: Sequence[nn.Module], preps: Sequence[Dict], ttas: Optional[Sequence[str]] = None):
        super().__init__()
        self.members = nn.ModuleList(models)
        self.shared = shared_input(preps)
        self.inputs = nn.ModuleList(MemberInput(p, self.shared) for p in preps)
        self.ttas = list(ttas) if ttas is not None else ["none"] * len(models)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = 0
        for model, member_input, mode in zip(self.members, self.inputs, self.ttas):
            views = tta_views(member_input(x), mode)
            probs = probs + sum(F.softmax(model(v).float(), 1) for v in views) / len(views)
        return (probs / len(self.members)).clamp_min(1e-12).log()


def member_differences(names: Sequence[str], class_lists: Sequence[List[str]], preps: Sequence[dict]) -> List[str]:
    """What keeps runs from being averaged, every difference at once: other classes (or their order), another
    aspect rule, or crops of different sizes. Input size and colour mode may differ: each member reads its own."""
    problems = []
    for name, classes, prep in zip(names[1:], class_lists[1:], preps[1:]):
        if list(classes) != list(class_lists[0]):
            problems.append(f"{name} has the classes {', '.join(classes)}, {names[0]} {', '.join(class_lists[0])}")
        if prep.get("aspect") != preps[0].get("aspect"):
            problems.append(f"data.aspect is {prep.get('aspect')} in {name}, {preps[0].get('aspect')} in {names[0]}")
    crops = {(p.get("crop", 0) or 0, p["image_size"]) for p in preps}
    if any(c for c, _ in crops) and len(crops) > 1:
        problems.append("the runs read crops (augment.crop) of different inputs: "
                        + ", ".join(f"{n}: crop {p.get('crop', 0) or 0} of {p['image_size']} px"
                                    for n, p in zip(names, preps)))
    return problems


def check_members(names: Sequence[str], class_lists: Sequence[List[str]], preps: Sequence[dict]) -> None:
    """Refuse runs that cannot be averaged, naming every difference in one message."""
    problems = member_differences(names, class_lists, preps)
    if problems:
        raise ValueError("Cannot average these runs: " + "; ".join(problems) + ". An ensemble needs runs trained on "
                         "the same classes in the same order (and the same data.aspect); retrain one to match.")


def load_runs(paths: Sequence, device: str = "auto"):
    """One run as is, or several as a LoadedRun whose model is their :class:`Ensemble`; its preprocessing and
    config's data section are the shared read that every member's input is made from."""
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
    model = Ensemble([r.model for r in runs], [r.preprocessing for r in runs], [r.cfg.train.tta for r in runs])
    model = model.to(next(first.model.parameters()).device).eval()
    prep = {**first.preprocessing, **model.shared}
    cfg = copy.deepcopy(first.cfg)
    cfg.data.image_size, cfg.data.grayscale, cfg.data.mean, cfg.data.std = (prep["image_size"], prep["grayscale"],
                                                                           prep["mean"], prep["std"])
    return LoadedRun(model, cfg, first.class_names, prep, first.run_dir, first.checkpoint,
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
