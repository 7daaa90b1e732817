"""`emoclf tune`: parse, run the search (emoclf.search.tune), print where its results are."""
from __future__ import annotations

from emoclf.cli.options import add_config_args, add_out


def cmd_tune(args) -> int:
    """emoclf tune: an Optuna search over config keys; continues the study of an earlier, killed search."""
    from emoclf.search.tune import tune

    s = tune(args.config, args.trials, args.overrides, args.space, args.time_limit, args.out)
    states = [t["state"] for t in s["trials"]]
    print(f"{len(states)} trial(s) in the study ({states.count('complete')} finished, {states.count('pruned')} "
          f"pruned; {s['ran']} run now" + (f", {s['retried']} interrupted trial(s) run again" if s["retried"] else "")
          + f"): {s['study']}")
    if s["best"]:
        b = s["best"]
        print(f"Best: trial {b['trial']}, validation macro F1 {b['f1_macro']:.4f}, "
              + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in b["params"].items()))
        print(f"Best config: {b['config']}  (train it: emoclf train --config {b['config']})")
    print(f"Report: {s['out_dir']}/tune.md")
    return 0


def add_tune_parser(sub) -> None:
    """The tune subcommand."""
    p = sub.add_parser("tune", help="search hyperparameters with Optuna; each trial a run folder, resumable")
    add_config_args(p)
    p.add_argument("--trials", "-n", type=int, required=True, help="trials the study should hold (finished or "
                   "pruned); a continued search runs only the missing ones")
    p.add_argument("--time-limit", type=float, metavar="MIN", help="start no new trial after this many minutes")
    p.add_argument("--space", help="YAML search space: section.key: {low: L, high: H[, log: true][, step: S]} or "
                   "{choices: [...]} (default: train.lr, train.weight_decay, model.dropout, train.label_smoothing)")
    add_out(p, None, "search folder (default: output.dir/tune-<name>, with study.db, trial-NNN/, best.yaml, "
            "tune.md, trials.png)")
    p.set_defaults(func=cmd_tune)
