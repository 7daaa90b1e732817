"""`emoclf compare --seeds N`: each config trained with N seeds, mean ± std of every metric, and McNemar's exact test
on the per-image correctness of the two best configs, to tell a real difference from seed noise."""
from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from emoclf.comparison.compare import compare_runs, train_missing
from emoclf.config import Config, load_config
from emoclf.runs.folder import COMPARISON_JSON, COMPARISON_MD, PREDICTIONS
from emoclf.utils.files import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)
# The metrics averaged over seeds, with their headers in comparison.md (percent: shown as percentages).
SEED_METRICS = [("accuracy", "accuracy", True), ("top2_accuracy", "top-2", True), ("f1_macro", "macro F1", True),
                ("f1_weighted", "weighted F1", True), ("loss", "loss", False), ("train_seconds", "training (s)", False),
                ("inference_ms_per_image", "inference (ms/image)", False), ("best_epoch", "best epoch", False)]
ALPHA = 0.05  # the level at which a difference is called larger than seed noise


def seed_configs(paths: Sequence[str], overrides: Sequence[str], seeds: int) -> List[Tuple[str, List[Config]]]:
    """Per config file, its configs for seeds s, s+1, ... (s: the file's seed), each in run folder NAME-seedS."""
    if seeds < 2:
        raise ValueError(f"--seeds must be 2 or more (a mean and a spread need several runs); got {seeds}.")
    groups = []
    for path in paths:
        base = load_config(path, overrides)
        cfgs = [load_config(path, [*overrides, f"seed={base.seed + k}", f"output.name={base.run_name}-seed"
                                   f"{base.seed + k}"]) for k in range(seeds)]
        groups.append((base.run_name, cfgs))
    return groups


def mean_std(values: Sequence[float]) -> Tuple[float, float]:
    """Mean and sample standard deviation (n - 1)."""
    n = len(values)
    mean = sum(values) / n
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value of b and c discordant pairs (a binomial test of b against n = b + c, p 1/2)."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def correctness(run_dir: Path) -> Dict[str, bool]:
    """Per validation image of a run (by path): whether its prediction was right (predictions.csv)."""
    with open(Path(run_dir) / PREDICTIONS, newline="", encoding="utf-8") as fh:
        return {row["path"]: row["true"] == row["predicted"] for row in csv.DictReader(fh)}


def discordant(run_a: Path, run_b: Path) -> Tuple[int, int, int]:
    """(a right and b wrong, a wrong and b right, images both scored) over the images of both predictions.csv."""
    a, b = correctness(run_a), correctness(run_b)
    shared = sorted(set(a) & set(b))
    if not shared:
        raise ValueError(f"{run_a} and {run_b} scored no image in common; a paired test needs the same validation "
                         f"images (give both configs the same data.root, and a validation folder).")
    return sum(a[p] and not b[p] for p in shared), sum(b[p] and not a[p] for p in shared), len(shared)


def seed_table(groups: List[Dict]) -> List[Dict]:
    """Per config: its runs, seeds, and the mean and standard deviation of every metric of SEED_METRICS."""
    out = []
    for g in groups:
        row = {"name": g["name"], "runs": [r["run"] for r in g["rows"]], "seeds": g["seeds"],
               "run_dirs": [r["run_dir"] for r in g["rows"]], "mean": {}, "std": {}}
        for key, _, _ in SEED_METRICS:
            values = [float(r[key]) for r in g["rows"] if r.get(key) is not None]
            if len(values) == len(g["rows"]):
                row["mean"][key], row["std"][key] = mean_std(values)
        out.append(row)
    return out


def paired_test(first: Dict, second: Dict) -> Dict:
    """McNemar's exact test of the two configs, seed by seed and pooled over the seed pairs."""
    pairs = []
    for seed, run_a, run_b in zip(first["seeds"], first["run_dirs"], second["run_dirs"]):
        b, c, n = discordant(Path(run_a), Path(run_b))
        pairs.append({"seed": seed, "a_only": b, "b_only": c, "images": n, "p_value": mcnemar_exact(b, c)})
    b, c = sum(p["a_only"] for p in pairs), sum(p["b_only"] for p in pairs)
    p = mcnemar_exact(b, c)
    alone = sum(q["p_value"] < ALPHA for q in pairs)
    verdict = (f"The difference is larger than seed noise (p = {p:.3g} < {ALPHA})." if p < ALPHA else
               f"The difference is not larger than seed noise (p = {p:.3g} ≥ {ALPHA}): these runs cannot tell the "
               f"two apart.") + f" {alone} of {len(pairs)} seed pairs alone reach p < {ALPHA}."
    return {"a": first["name"], "b": second["name"], "a_only": b, "b_only": c,
            "images": sum(q["images"] for q in pairs), "p_value": p, "alpha": ALPHA, "pairs": pairs,
            "verdict": verdict}


def _cell(key: str, percent: bool, row: Dict) -> str:
    if key not in row["mean"]:
        return "n/a"
    m, s = row["mean"][key], row["std"][key]
    if percent:
        return f"{100 * m:.1f}% ± {100 * s:.1f}"
    return f"{m:.4f} ± {s:.4f}" if key == "loss" else f"{m:.2f} ± {s:.2f}"


def seed_section(table: List[Dict], test: Dict, seeds: Sequence[int]) -> List[str]:
    """The comparison.md section of a comparison over seeds."""
    lines = ["", f"## Over {len(seeds)} seeds", "",
             f"Each config trained with seeds {', '.join(map(str, seeds))} (relative to its own seed: s, s+1, ...); "
             f"mean ± standard deviation over its runs.", "",
             "| config | runs | " + " | ".join(h for _, h, _ in SEED_METRICS) + " |",
             "| --- | --- |" + " --- |" * len(SEED_METRICS)]
    for row in table:
        lines.append(f"| {row['name']} | {', '.join(row['runs'])} | " +
                     " | ".join(_cell(k, p, row) for k, _, p in SEED_METRICS) + " |")
    a, b = test["a"], test["b"]
    lines += ["", f"**Paired test of the two best configs by mean macro F1, {a} and {b}.** On the same validation "
              f"images, run against run with the same seed: {a} was right where {b} was wrong on {test['a_only']} "
              f"image(s), and {b} right where {a} was wrong on {test['b_only']} (over {len(test['pairs'])} seed pairs, "
              f"{test['images']} image pairs). McNemar's exact test: **p = {test['p_value']:.3g}**. "
              f"**{test['verdict']}**", "", "| seed | " + f"{a} only right | {b} only right | images | p |",
              "| --- | --- | --- | --- | --- |"]
    lines += [f"| {p['seed']} | {p['a_only']} | {p['b_only']} | {p['images']} | {p['p_value']:.3g} |"
              for p in test["pairs"]]
    return lines


def compare_seeds(configs: Sequence[str], overrides: Sequence[str] = (), seeds: int = 3,
                  out_dir: Path = Path("outputs/comparison"), overwrite: bool = False, device: str = "auto") -> Dict:
    """Train each config with ``seeds`` seeds (reusing finished runs), compare every run, and add the mean ± std
    per config and McNemar's test of the two best to comparison.md and comparison.json."""
    if len(configs) < 2:
        raise ValueError(f"--seeds compares two or more --config files; got {len(configs)}.")
    groups = seed_configs(configs, overrides, seeds)
    paths = [p for p, (_, cfgs) in zip(configs, groups) for _ in cfgs]
    run_dirs = train_missing(paths, [c for _, cfgs in groups for c in cfgs], overwrite)
    summary = compare_runs(run_dirs, out_dir, device)
    by_dir = {r["run_dir"]: r for r in summary["runs"]}
    sized, i = [], 0
    for name, cfgs in groups:
        rows = [by_dir[str(Path(d).resolve())] for d in run_dirs[i:i + len(cfgs)]]
        sized.append({"name": name, "rows": rows, "seeds": [c.seed for c in cfgs]})
        i += len(cfgs)
    table = sorted(seed_table(sized), key=lambda r: -r["mean"].get("f1_macro", -1.0))
    test = paired_test(table[0], table[1])
    log.info("Over %d seeds: %s", seeds, test["verdict"])
    out_dir = Path(summary["out_dir"])
    text = (out_dir / COMPARISON_MD).read_text(encoding="utf-8").rstrip("\n")
    atomic_write_text(out_dir / COMPARISON_MD, text + "\n" + "\n".join(seed_section(table, test, sized[0]["seeds"]))
                      + "\n")
    summary["seeds"] = {"count": seeds, "configs": table, "test": test}
    saved = {k: v for k, v in summary.items() if k != "out_dir"}
    atomic_write_json(out_dir / COMPARISON_JSON, json.loads(json.dumps(saved, default=str)))
    return summary
