"""`emoclf tune`: an Optuna search over config keys; every trial is a run folder, the study a SQLite file.

Killed and started again, a search continues its study: finished and pruned trials are kept, and a trial that was
running when the search died is tried again with its parameters.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import yaml

from emoclf.config import Config, load_config, save_config, to_dict
from emoclf.search.space import Dimension, as_overrides, check_space, read_space
from emoclf.utils.extras import require_extra
from emoclf.utils.files import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)
STUDY_DB = "study.db"  # the Optuna study of a search folder
BEST_CONFIG = "best.yaml"  # the best trial's config, ready for emoclf train --config
TRIALS_CSV = "trials.csv"
TRIALS_PNG = "trials.png"
TUNE_JSON = "tune.json"
TUNE_MD = "tune.md"


def optuna():
    """The optuna module, or an error naming the install command."""
    module = require_extra("optuna", "tune", "emoclf tune")
    module.logging.set_verbosity(module.logging.WARNING)
    return module


@dataclass
class Search:
    """What one search is: the config file and overrides it starts from, its space, and where it writes."""

    config: Optional[str]
    overrides: Sequence[str]
    space: List[Dimension]
    folder: Path
    name: str


def search_of(config: Optional[str], overrides: Sequence[str] = (), space: Optional[str] = None,
              out: Optional[str] = None) -> Search:
    """The search of a config: its folder is ``output.dir/tune-<run name>`` unless ``out`` says otherwise."""
    base = load_config(config, overrides)
    dims = read_space(space)
    check_space(config, overrides, dims)
    folder = Path(out) if out else Path(base.output.dir) / f"tune-{base.run_name}"
    return Search(config, list(overrides), dims, folder, base.run_name)


def trial_config(search: Search, params: Dict, number: int) -> Config:
    """The config of trial ``number``: the search's config with the trial's values, in its own run folder."""
    return load_config(search.config, [*search.overrides, *as_overrides(params), f"output.dir={search.folder}",
                                       f"output.name=trial-{number:03d}"])


def _objective(search: Search, module):
    from emoclf.training.trainer import train

    def objective(trial) -> float:
        params = {d.key: d.suggest(trial) for d in search.space}
        cfg = trial_config(search, params, trial.number)
        log.info("Trial %d: %s", trial.number, ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                                          for k, v in params.items()))

        def report(row: Dict) -> None:
            trial.report(row["val_f1"], row["epoch"])
            if trial.should_prune():
                log.info("Trial %d pruned after epoch %d (validation macro F1 %.4f)", trial.number, row["epoch"],
                         row["val_f1"])
                raise module.TrialPruned()

        run_dir = train(cfg, on_epoch=report)
        trial.set_user_attr("run_dir", str(run_dir))
        import json

        from emoclf.runs.folder import METRICS

        return float(json.loads((run_dir / METRICS).read_text(encoding="utf-8"))["f1_macro"])

    return objective


def _retry_interrupted(study, module) -> int:
    """Trials that a stopped search left running (killed) or failed (interrupted, or an error that stopped it):
    each queued again once with its parameters, a running one marked failed first; how many."""
    state = module.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    again = [t for t in trials if t.state in (state.RUNNING, state.FAIL) and t.number not in retried]
    for t in again:
        if t.state == state.RUNNING:
            study._storage.set_trial_state_values(t._trial_id, state.FAIL)
        study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
        log.info("Trial %d did not finish; it runs again with the same parameters.", t.number)
    return len(again)


def open_study(search: Search, seed: int):
    """The search's study, created or continued from its SQLite file."""
    module = optuna()
    search.folder.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{(search.folder / STUDY_DB).resolve()}"
    sampler = module.samplers.TPESampler(seed=seed, n_startup_trials=5)
    pruner = module.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)  # steps: epochs 1, 2, ...
    study = module.create_study(study_name=search.name, storage=storage, direction="maximize", sampler=sampler,
                                pruner=pruner, load_if_exists=True)
    return study, module


def tune(config: Optional[str], trials: int, overrides: Sequence[str] = (), space: Optional[str] = None,
         time_limit: Optional[float] = None, out: Optional[str] = None) -> Dict:
    """Run trials until the study holds ``trials`` finished or pruned ones (or ``time_limit`` minutes have passed:
    no trial starts after it); write the best config, the trials table and figure; return the summary."""
    if trials < 1:
        raise ValueError(f"--trials must be 1 or more; got {trials}.")
    if time_limit is not None and time_limit <= 0:
        raise ValueError(f"--time-limit must be a positive number of minutes; got {time_limit}.")
    search = search_of(config, overrides, space, out)
    study, module = open_study(search, load_config(config, overrides).seed)
    retried = _retry_interrupted(study, module)
    done = [t for t in study.get_trials(deepcopy=False) if t.state in _counted(module)]
    todo = max(0, trials - len(done))
    if done:
        log.info("Continuing the study in %s: %d trial(s) done, %d to run.", search.folder / STUDY_DB, len(done),
                 todo)
    started = time.monotonic()
    if todo:
        study.optimize(_objective(search, module), n_trials=todo, timeout=time_limit * 60 if time_limit else None,
                       catch=(), gc_after_trial=True)
    summary = write_results(search, study, module)
    summary.update(retried=retried, ran=len(summary["trials"]) - len(done), seconds=round(time.monotonic() - started))
    return summary


def _counted(module):
    s = module.trial.TrialState
    return (s.COMPLETE, s.PRUNED)


def write_results(search: Search, study, module) -> Dict:
    """best.yaml, trials.csv, trials.png, tune.md and tune.json of the search folder."""
    from emoclf.search.figures import plot_trials

    trials = [t for t in study.get_trials(deepcopy=False) if t.state in _counted(module)]
    rows = [{"trial": t.number, "state": t.state.name.lower(), "f1_macro": t.value,
             "epochs": len(t.intermediate_values), **t.params} for t in trials]
    complete = [t for t in trials if t.state == module.trial.TrialState.COMPLETE]
    summary = {"study": str((search.folder / STUDY_DB).resolve()), "trials": rows, "best": None,
               "space": [d.__dict__ for d in search.space], "out_dir": str(search.folder)}
    lines = ["trial,state,f1_macro,epochs," + ",".join(d.key for d in search.space)]
    lines += [",".join("" if r.get(k) is None else str(r.get(k)) for k in ["trial", "state", "f1_macro", "epochs"] +
                       [d.key for d in search.space]) for r in rows]
    atomic_write_text(search.folder / TRIALS_CSV, "\n".join(lines) + "\n")
    if complete:
        best = max(complete, key=lambda t: t.value)
        cfg = trial_config(search, best.params, best.number)
        base = load_config(search.config, search.overrides)
        cfg.output.dir, cfg.output.name = base.output.dir, f"{search.name}-tuned"
        save_config(cfg, search.folder / BEST_CONFIG)
        summary["best"] = {"trial": best.number, "f1_macro": best.value, "params": best.params,
                           "config": str(search.folder / BEST_CONFIG),
                           "run_dir": best.user_attrs.get("run_dir", str(search.folder / f"trial-{best.number:03d}"))}
    figure = plot_trials(rows, search.folder / TRIALS_PNG)
    summary["figure"] = figure.name if figure else None
    atomic_write_text(search.folder / TUNE_MD, tune_report(summary, search))
    atomic_write_json(search.folder / TUNE_JSON, summary)
    return summary


def tune_report(summary: Dict, search: Search) -> str:
    """tune.md: the space, every trial and the best config."""
    keys = [d.key for d in search.space]
    out = [f"# Search: {search.name}", "", f"Study: `{summary['study']}` ({len(summary['trials'])} trial(s) finished "
           f"or pruned). Objective: validation macro F1 of each trial's best epoch; trials below the median of "
           f"earlier ones at the same epoch are pruned.", "", "| key | searched |", "| --- | --- |"]
    for d in search.space:
        what = f"one of {d.choices}" if d.kind == "choice" else \
            f"{d.kind} in [{d.low:g}, {d.high:g}]" + (" (log scale)" if d.log else "") + \
            (f" step {d.step:g}" if d.step else "")
        out.append(f"| `{d.key}` | {what} |")
    out += ["", "Macro F1 of a pruned trial: that of the last epoch it trained.", "",
            "| trial | state | macro F1 | epochs | " + " | ".join(keys) + " |",
            "| --- | --- | --- | --- |" + " --- |" * len(keys)]
    for r in summary["trials"]:
        values = [f"{r[k]:.4g}" if isinstance(r.get(k), float) else str(r.get(k)) for k in keys]
        f1 = "" if r["f1_macro"] is None else f"{r['f1_macro']:.4f}"
        out.append(f"| {r['trial']} | {r['state']} | {f1} | {r['epochs']} | " + " | ".join(values) + " |")
    best = summary["best"]
    if best:
        out += ["", f"**Best:** trial {best['trial']}, validation macro F1 {best['f1_macro']:.4f} "
                f"(run folder `{best['run_dir']}`). Its config: `{best['config']}`; train it again with "
                f"`emoclf train --config {best['config']}`.", ""]
        cfg = to_dict(load_config(best["config"]))
        out += ["```yaml", yaml.safe_dump({k: cfg[k.split('.')[0]][k.split('.')[1]] if '.' in k else cfg[k]
                                           for k in keys}, sort_keys=False).strip(), "```"]
    else:
        out += ["", "No trial finished yet."]
    if summary.get("figure"):
        out += ["", f"![trials]({summary['figure']})"]
    return "\n".join(out) + "\n"
