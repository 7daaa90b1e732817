#!/usr/bin/env python
"""One recorded run of a recipe: train it, score the chosen checkpoint with and without test-time augmentation, and
write a small JSON of the figures, the resolved config, the timings and the machine (docs/results/ holds these).

    python scripts/run_recipe.py --config configs/fer2013/gpu_8min.yaml --data fer2013.zip --out results
    python scripts/run_recipe.py --config configs/fer2013/cpu_30min.yaml --data data/fer2013 --seed 7 --out results

--data is a dataset folder, or an archive / fer2013.csv that `emoclf download --source` unpacks first (into
--workdir). --speed N first measures the loop on N training images: the model's own step rate on random tensors
(a) against emoclf's end-to-end training rate (b), as scripts/benchmark_speed.py does, and records b/a. --run DIR
skips training and records a finished run (--command: how it was trained). The weights stay in --workdir; only
the JSON goes to --out. --table DIR prints the rows of docs/results-fer2013.md from the records in DIR.
"""
from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import emoclf  # noqa: E402
from emoclf.config import load_config, to_dict  # noqa: E402
from emoclf.runs.folder import CONFIG, METRICS  # noqa: E402
from emoclf.utils.files import atomic_write_text  # noqa: E402


def commit() -> Optional[str]:
    """The checkout's commit (with "+changes" when the tree differs from it), or None outside a git checkout."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+changes" if dirty else "")


def machine() -> Dict:
    """What the figures were measured on."""
    info = {"python": platform.python_version(), "torch": torch.__version__, "cpu_cores": os.cpu_count(),
            "threads": torch.get_num_threads(), "platform": platform.platform()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info


def data_folder(data: str, workdir: Path) -> str:
    """A dataset folder as given, or the folder `emoclf download` unpacks an archive or CSV into."""
    if Path(data).is_dir():
        return data
    from emoclf.data.download import download

    return str(download(source=data, dest=str(workdir / "data")).root)


def speed(config: str, overrides: List[str], images: int, workdir: Path) -> Dict:
    """b/a of scripts/benchmark_speed.py at this recipe's settings, on ``images`` training images."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from benchmark_speed import ceiling_rate, emoclf_rate, subset

    from emoclf.training.trainer import Trainer

    cfg = load_config(config, overrides)
    part = subset(Path(cfg.data.root), workdir / "speed-data", images, max(images // 8, 64))
    cfg = load_config(config, [*overrides, f"data.root={part}", f"output.dir={workdir / 'speed'}",
                               "output.name=speed", "train.time_limit=0"])
    trainer = Trainer(cfg)
    steps = max(20, images // cfg.train.batch_size)
    a, b = ceiling_rate(trainer, steps), emoclf_rate(trainer)
    del trainer  # its model and resident images must not hold GPU memory through the real run
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return {"images": images, "ceiling_images_per_s": round(a, 1), "emoclf_images_per_s": round(b, 1),
            "b_over_a": round(b / a, 3)}


def scores(run: Path, tta: str) -> Dict:
    """Accuracy and macro F1 of the run's best checkpoint on its validation split, with views ``tta``."""
    m = emoclf.evaluate(run, tta=tta)
    return {"accuracy": round(m["accuracy"], 4), "f1_macro": round(m["f1_macro"], 4)}


def record(run: Path, wall: Optional[float], extra: Dict) -> Dict:
    """The JSON of a finished run."""
    cfg = load_config(str(run / CONFIG))  # the resolved config the run saved
    done = json.loads((run / METRICS).read_text(encoding="utf-8"))  # epochs, timings and the chosen epoch
    tta = cfg.train.tta if cfg.train.tta != "none" else "tencrop"
    return {
        "recipe": extra.pop("recipe"), "command": extra.pop("command"),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": extra.pop("commit"),
        "machine": machine(), "seed": cfg.seed, "epochs": done["epochs_trained"], "best_epoch": done["best_epoch"],
        "stopped": done.get("stopped"), "train_seconds": round(done["train_seconds"], 1),
        "wall_seconds": None if wall is None else round(wall, 1),
        "validation": {tta: scores(run, tta), "none": scores(run, "none")},
        **extra, "config": to_dict(cfg),
    }


def machine_name(info: Dict) -> str:
    """The machine of a record for a table: the GPU, else the CPU's cores."""
    return f"1 × {info['gpu']}" if info.get("gpu") else f"{info['cpu_cores']}-core CPU"


def table_row(result: Dict) -> str:
    """The row of docs/results-fer2013.md for one recorded run (a test checks the page holds it)."""
    v = result["validation"]
    tta = next(k for k in v if k != "none")
    pct = lambda key: f"{v[tta][key]:.2%} ({v['none'][key]:.2%})"  # noqa: E731
    return (f"| `{result['recipe']}.yaml` | {result['seed']} | {result['epochs']} | "
            f"{result['train_seconds'] / 60:.1f} min | {machine_name(result['machine'])} | {pct('accuracy')} | "
            f"{pct('f1_macro')} | {result['commit']} | {result['date'][:10]} |")


def print_table(folder: Path) -> None:
    """The rows of every record in ``folder``, in name order."""
    for path in sorted(folder.glob("*.json")):
        print(table_row(json.loads(path.read_text())))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", metavar="DIR", help="print the table rows of the records in DIR and stop")
    p.add_argument("--config", help="the recipe (a config file)")
    p.add_argument("--data", help="dataset folder, archive or fer2013.csv (default: the config's data.root)")
    p.add_argument("--out", help="folder for the JSON")
    p.add_argument("--seed", type=int, help="train.seed for this run (default: the config's)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="more config overrides")
    p.add_argument("--workdir", help="where data and runs go (default: a new temporary folder)")
    p.add_argument("--speed", type=int, default=0, metavar="N", help="measure b/a on N training images first")
    p.add_argument("--run", help="a finished run folder to record instead of training")
    p.add_argument("--command", help="with --run: the command that trained it, for the record")
    args = p.parse_args(argv)
    if args.table:
        print_table(Path(args.table))
        return 0
    if not (args.config and args.out):
        p.error("--config and --out are needed to record a run")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="emoclf-recipe-"))
    recipe = Path(args.config).stem
    overrides = list(args.set)
    if args.data:
        overrides.append(f"data.root={data_folder(args.data, workdir)}")
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    given = sys.argv[1:] if argv is None else argv
    command = args.command or " ".join(["python", "scripts/run_recipe.py", *given])
    extra: Dict = {"recipe": recipe, "command": command, "commit": commit()}  # the code that trains, not later
    if args.speed:
        extra["speed"] = speed(args.config, overrides, args.speed, workdir)
        print(f"speed: b/a {extra['speed']['b_over_a']}", flush=True)
    wall = None
    if args.run:
        run = Path(args.run)
    else:
        name = f"{recipe}-seed{args.seed}" if args.seed is not None else recipe
        start = time.perf_counter()
        run = emoclf.train(args.config, [*overrides, f"output.dir={workdir / 'runs'}", f"output.name={name}"])
        wall = time.perf_counter() - start
    result = record(run, wall, extra)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{recipe}-seed{result['seed']}.json"
    atomic_write_text(target, json.dumps(result, indent=2) + "\n")
    v = result["validation"]
    print(f"{target}: " + ", ".join(f"{k} accuracy {s['accuracy']:.4f} macro F1 {s['f1_macro']:.4f}"
                                    for k, s in v.items()) + f"; {result['epochs']} epochs, "
          f"{result['train_seconds']:.0f} s of training", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
