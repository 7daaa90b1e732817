"""The files of ``emoclf inspect``: inspect.json, inspect.md, CSV lists and figures."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Dict, List

from emoclf.data import inspect_figures
from emoclf.data import labels as lbl
from emoclf.data.download import format_table
from emoclf.utils.files import atomic_write_json, atomic_write_text

MAX_LISTED = 20  # rows per list in inspect.md; the CSV files hold all of them


def _csv_text(header: List[str], rows: List[list]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def _write_csvs(folder: Path, data: dict) -> None:
    dup_rows = [[i, " ".join(g["kinds"]), f["split"], f["folder"], f["label"], f["path"]]
                for i, g in enumerate(data["groups"], 1) for f in g["files"]]
    atomic_write_text(folder / "duplicates.csv", _csv_text(["group", "kinds", "split", "folder", "label", "path"],
                                                           dup_rows))
    atomic_write_text(folder / "unreadable.csv", _csv_text(["path", "error"],
                                                           [[u["path"], u["error"]] for u in data["unreadable"]]))
    atomic_write_text(folder / "blank.csv", _csv_text(["path"], [[p] for p in data["blank"]]))
    atomic_write_text(folder / "sizes.csv", _csv_text(["width", "height", "mode", "format", "images"],
                                                      [list(s.values()) for s in data["sizes"]]))


def _imbalance(counts: Dict[str, Dict[str, int]]) -> str:
    split = next(iter(counts))
    merged = lbl.merge_counts(counts[split])
    big, small = max(merged, key=merged.get), min(merged, key=merged.get)
    if merged[big] == merged[small]:
        return f"Balanced {split} classes: {len(merged)} classes of {merged[big]} images each."
    ratio = merged[big] / max(merged[small], 1)
    return (f"Largest {split} class: {big} ({merged[big]}); smallest: {small} ({merged[small]}); ratio {ratio:.1f}. "
            + ("Consider `train.class_weights: balanced` or `train.sampler: balanced`." if ratio >= 3 else ""))


def _sizes_md(data: dict) -> List[str]:
    lines = ["| width x height | mode | format | images |", "| --- | --- | --- | ---: |"]
    lines += [f"| {s['width']} x {s['height']} | {s['mode']} | {s['format']} | {s['images']} |"
              for s in data["sizes"][:MAX_LISTED]]
    if len(data["sizes"]) > MAX_LISTED:
        lines.append(f"| ... {len(data['sizes']) - MAX_LISTED} more in sizes.csv | | | |")
    return lines


def _unreadable_md(data: dict) -> List[str]:
    bad = data["unreadable"]
    if not bad:
        return ["None: every image file decodes."]
    lines = [f"- `{u['path']}`: {u['error']}" for u in bad[:MAX_LISTED]]
    if len(bad) > MAX_LISTED:
        lines.append(f"- ... {len(bad) - MAX_LISTED} more in unreadable.csv")
    return lines + ["", "Training skips these files with a warning; delete or replace them to silence it."]


def _blank_md(data: dict) -> List[str]:
    blank = data["blank"]
    if not blank:
        return ["None: no image is a single colour."]
    lines = [f"{len(blank)} images hold one colour only (no face); they teach the model nothing. Also in blank.csv:",
             ""] + [f"- `{p}`" for p in blank[:MAX_LISTED]]
    return lines + ([f"- ... {len(blank) - MAX_LISTED} more in blank.csv"] if len(blank) > MAX_LISTED else [])


def _groups_md(data: dict, kind: str) -> List[str]:
    groups = [g for g in data["groups"] if kind in g["kinds"]]
    lines = []
    for g in groups[:MAX_LISTED]:
        shown = " = ".join(f"`{f['path']}`" for f in g["files"][:4])
        more = len(g["files"]) - 4
        lines.append(f"- {shown}" + (f" (+{more} more)" if more > 0 else ""))
    if len(groups) > MAX_LISTED:
        lines.append(f"- ... {len(groups) - MAX_LISTED} more groups in duplicates.csv")
    return lines or ["None."]


def _figure(folder: Path, name: str, alt: str) -> str:
    # A plot that failed logged a warning; the report says so instead of showing a broken link.
    return f"![{alt}]({name})" if (folder / name).is_file() else f"({alt}: figure could not be drawn, see the log)"


def _duplicates_md(data: dict, folder: Path) -> List[str]:
    leaks = leak_text(data["leakage"]) or "only one split"
    lines = [f"{data['duplicate_groups']} groups of images with identical pixels ({data['duplicate_extra_copies']} "
             f"extra copies), {data['within_split_groups']} of them within one split. All groups: duplicates.csv.",
             "", "### Leakage across splits", "",
             f"Images of a later split whose exact copy is in an earlier one: {leaks}. These inflate validation and "
             f"test scores; remove the copies from validation/test.", ""] + _groups_md(data, "leakage")
    lines += ["", "### Conflicting labels", "",
              f"{data['conflicting_label_groups']} groups hold the same image under different classes; one label "
              f"at least is wrong.", ""] + _groups_md(data, "conflicting-labels")
    if data["groups"]:
        lines += ["", _figure(folder, "duplicates.png", "duplicate examples")]
    return lines


def render_markdown(data: dict, folder: Path) -> str:
    """inspect.md: every section of the report, linking the figures and CSV files."""
    lines = [f"# Dataset inspection: {data['root']}", "",
             f"{data['images']} images in {', '.join(data['counts'])}; scanned and hashed in "
             f"{data['seconds']:.1f} s{' (from the cache)' if data['cached'] else ''}.", "",
             "## Class distribution", "", _figure(folder, "class_distribution.png", "class distribution"), "", "```",
             format_table(data["counts"]), "```", "", _imbalance(data["counts"]), "",
             "## Samples per class", "", _figure(folder, "samples.png", "samples"), "",
             "## Image sizes and modes", ""] + _sizes_md(data)
    lines += ["", f"## Unreadable files ({len(data['unreadable'])})", ""] + _unreadable_md(data)
    lines += ["", f"## Blank images ({len(data['blank'])})", ""] + _blank_md(data)
    lines += ["", "## Exact duplicates (same decoded pixels, size and mode)", ""] + _duplicates_md(data, folder)
    return "\n".join(lines) + "\n"


def write_report(folder: Path, data: dict) -> None:
    """Write inspect.json, the CSV lists, the figures and inspect.md into ``folder``."""
    summary = folder / "inspect.json"
    atomic_write_json(summary, data)
    _write_csvs(folder, data)
    inspect_figures.plot_class_distribution(summary, folder / "class_distribution.png")
    inspect_figures.plot_sample_grid(summary, folder / "samples.png")
    inspect_figures.plot_duplicate_examples(summary, folder / "duplicates.png")
    atomic_write_text(folder / "inspect.md", render_markdown(data, folder))


def leak_text(leakage: Dict[str, int]) -> str:
    """'12 validation images also in train; ...' from the leakage counts."""
    return "; ".join(f"{n} {k.replace('_in_', ' images also in ')}" for k, n in leakage.items())
