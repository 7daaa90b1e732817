"""A search space over config keys: ranges (optionally on a log scale, with a step) and lists of choices."""
from __future__ import annotations

import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from emoclf.config import SECTIONS, Config, load_config
from emoclf.utils.text import did_you_mean
from emoclf.utils.yamlio import read_yaml

# Searched when no --space file is given: what matters most for every model, within safe ranges.
DEFAULT_SPACE = {
    "train.lr": {"low": 1e-4, "high": 1e-2, "log": True},
    "train.weight_decay": {"low": 1e-5, "high": 1e-2, "log": True},
    "model.dropout": {"low": 0.0, "high": 0.5},
    "train.label_smoothing": {"low": 0.0, "high": 0.2},
}
SPACE_EXAMPLE = "train.lr: {low: 1.0e-4, high: 1.0e-2, log: true} or model.width: {choices: [16, 32, 64]}"


@dataclass
class Dimension:
    """One searched config key: a float or int range, or a list of choices."""

    key: str
    kind: str  # "float", "int" or "choice"
    low: Optional[float] = None
    high: Optional[float] = None
    log: bool = False
    step: Optional[float] = None
    choices: Optional[List[Any]] = None

    def suggest(self, trial) -> Any:
        """A value for this key from an Optuna trial."""
        if self.kind == "choice":
            return trial.suggest_categorical(self.key, self.choices)
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)


def key_type(key: str):
    """The Python type of config key ``section.key`` (or ``seed``), with a did-you-mean for unknown keys."""
    if key == "seed":
        return int
    parts = key.split(".")
    if len(parts) != 2 or parts[0] not in SECTIONS:
        raise ValueError(f"Search space key {key!r} is not section.key (sections: {', '.join(SECTIONS)}); "
                         f"e.g. {SPACE_EXAMPLE}.")
    hints = typing.get_type_hints(type(getattr(Config(), parts[0])))
    if parts[1] not in hints:
        raise ValueError(f"Unknown key {key!r} in the search space.{did_you_mean(parts[1], hints)} Known keys in "
                         f"'{parts[0]}': {', '.join(hints)}.")
    hint = hints[parts[1]]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if typing.get_origin(hint) is typing.Union and len(args) == 1 else hint


def _dimension(key: str, spec: Any) -> Dimension:
    where = f"Search space key {key}"
    if isinstance(spec, list):
        spec = {"choices": spec}
    if not isinstance(spec, dict):
        raise ValueError(f"{where}: expected a mapping such as {SPACE_EXAMPLE}; got {spec!r}.")
    unknown = set(spec) - {"low", "high", "log", "step", "choices"}
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))}; use low, high, log, step "
                         f"or choices.")
    hint = key_type(key)
    if "choices" in spec:
        if set(spec) != {"choices"} or not isinstance(spec["choices"], list) or not spec["choices"]:
            raise ValueError(f"{where}: choices must be a non-empty list, given alone (without low/high).")
        return Dimension(key, "choice", choices=list(spec["choices"]))
    if "low" not in spec or "high" not in spec:
        raise ValueError(f"{where}: needs low and high (a range) or choices (a list); e.g. {SPACE_EXAMPLE}.")
    if hint not in (int, float):
        raise ValueError(f"{where}: a range needs a number key, but {key} is {getattr(hint, '__name__', hint)}; "
                         f"give choices instead.")
    try:
        low, high = float(spec["low"]), float(spec["high"])
        step = None if spec.get("step") is None else float(spec["step"])
    except (TypeError, ValueError):
        raise ValueError(f"{where}: low, high and step must be numbers; got {spec!r}.") from None
    log = bool(spec.get("log", False))
    if not low < high:
        raise ValueError(f"{where}: low must be below high; got {low} and {high}.")
    if log and (low <= 0 or step is not None):
        raise ValueError(f"{where}: a log scale needs low > 0 and no step; got low {low}, step {step}.")
    if hint is int and (not low.is_integer() or not high.is_integer()):
        raise ValueError(f"{where}: {key} takes whole numbers; got low {low}, high {high}.")
    return Dimension(key, "int" if hint is int else "float", low, high, log, step)


def read_space(path: Optional[str]) -> List[Dimension]:
    """The dimensions of a space file (``section.key: {low, high[, log][, step]}`` or ``{choices: [...]}``, or a
    list as a shorthand for choices); the default space without a file."""
    values = DEFAULT_SPACE if path is None else read_yaml(Path(path))
    if not isinstance(values, dict) or not values:
        raise ValueError(f"{path}: a search space is a mapping of config keys to ranges or choices, e.g. "
                         f"{SPACE_EXAMPLE}.")
    try:
        return [_dimension(str(k), v) for k, v in values.items()]
    except ValueError as exc:
        raise ValueError(f"{path or 'the default search space'}: {exc}") from None


def check_space(config: Optional[str], overrides: Sequence[str], space: List[Dimension]) -> None:
    """Refuse, before any trial, a space whose ends (or choices) the config itself would refuse."""
    for dim in space:
        values = dim.choices if dim.kind == "choice" else [dim.low, dim.high]
        for value in values:
            if dim.kind == "int":
                value = int(value)
            try:
                load_config(config, [*overrides, f"{dim.key}={value}"])
            except ValueError as exc:
                raise ValueError(f"Search space key {dim.key}: the value {value!r} is refused by the config: "
                                 f"{exc}") from None


def as_overrides(params: Dict[str, Any]) -> List[str]:
    """Trial parameters as ``--set`` texts (JSON values: YAML reads them as written)."""
    import json

    return [f"{k}={json.dumps(v)}" for k, v in params.items()]

