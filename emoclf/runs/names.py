"""The class names a run shows in its figures and reports: the dataset's own folder names, the canonical ones, or
both (``output.class_names``); the model's classes themselves stay canonical."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from emoclf.runs.folder import METRICS


def display_names(class_names: Sequence[str], folder_names: Dict[str, str], mode: str) -> List[str]:
    """Shown names, in the order of ``class_names``: ``mode`` dataset (alegria), canonical (happy) or both
    (alegria (happy)); a class whose folder has its canonical name shows it once."""
    shown = []
    for name in class_names:
        own = folder_names.get(name, name)
        shown.append(own if mode == "dataset" else f"{own} ({name})" if mode == "both" and own != name else name)
    return shown


def saved_display_names(folder: Optional[Path], class_names: Sequence[str]) -> List[str]:
    """The names a run (or an evaluation folder) saved in its metrics.json, else ``class_names``."""
    try:
        saved = json.loads((Path(folder) / METRICS).read_text(encoding="utf-8")).get("display_names")
    except (OSError, ValueError, TypeError, AttributeError):
        saved = None
    ok = isinstance(saved, list) and len(saved) == len(class_names) and all(isinstance(s, str) for s in saved)
    return list(saved) if ok else list(class_names)
