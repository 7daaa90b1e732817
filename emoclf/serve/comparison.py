"""The latest comparison under the outputs folder, as the page shows it: its table, best run, warnings, figures."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional

from emoclf.comparison.report import COLUMNS, format_cell
from emoclf.runs.folder import COMPARISON_MD, comparison_files

HIDDEN = ("data_root", "run_dir")  # long paths: comparison.md leaves them out of its table too


def latest_comparison(outputs: Path) -> Optional[Path]:
    """The newest readable comparison.json under ``outputs``, or None."""
    for path in comparison_files(outputs):
        try:
            if isinstance(json.loads(path.read_text(encoding="utf-8")).get("runs"), list):
                return path
        except (OSError, ValueError, AttributeError):
            continue
    return None


def figure_names(folder: Path) -> List[str]:
    """The PNG figures directly inside a comparison folder."""
    return sorted(p.name for p in Path(folder).glob("*.png") if p.is_file())


def comparison_view(outputs: Path) -> Dict:
    """The latest comparison's table (headers, formatted rows, best run), warnings and figure names; or a note."""
    path = latest_comparison(outputs)
    if path is None:
        return {"found": False, "message": f"No comparison under {outputs}/ yet. Run emoclf compare (or "
                                           f"./run_comparison.sh) to write one."}
    summary = json.loads(path.read_text(encoding="utf-8"))
    cols = [(k, h) for k, h in COLUMNS if k not in HIDDEN]
    best = (summary.get("best") or {}).get("run")
    rows = [[format_cell(k, r.get(k)) for k, _ in cols] for r in summary["runs"]]
    listed = [n for n in summary.get("figures", []) if n in figure_names(path.parent)]
    others = [n for n in figure_names(path.parent) if n not in listed]
    return {"found": True, "path": str(path), "headers": [h for _, h in cols], "rows": rows,
            "best": best, "best_f1": format_cell("f1_macro", (summary.get("best") or {}).get("f1_macro")),
            "warnings": [str(w) for w in summary.get("warnings", [])], "device": summary.get("device"),
            "figures": listed + others, "markdown": (path.parent / COMPARISON_MD).is_file()}


def comparison_file(outputs: Path, name: str) -> Optional[Path]:
    """A figure or comparison.md of the latest comparison, by exact file name; None for any other name."""
    path = latest_comparison(outputs)
    if path is None:
        return None
    allowed = set(figure_names(path.parent)) | {COMPARISON_MD}
    return path.parent / name if name in allowed and (path.parent / name).is_file() else None
