"""Checks of config values, and of the preprocessing and class names read from model files, by the fields' rules."""
from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, List, Sequence

import yaml

from emoclf.config.fields import MAX_TEXT_VALUE, SECTIONS, Config, DataConfig, allowed, rules
from emoclf.utils.text import did_you_mean
from emoclf.utils.text import show as _show


def coerce(where: str, value: Any, hint: Any) -> Any:
    """Check ``value`` against a dataclass field type and convert the harmless cases."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union and type(None) in args:
        if value is None:
            return None
        return coerce(where, value, next(a for a in args if a is not type(None)))
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)
    elif hint is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value) if abs(value) < 1e300 else math.inf
        elif isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                number = float(value)
            except ValueError:
                pass
        if number is not None:
            if not math.isfinite(number):
                raise ValueError(f"{where} must be a finite number, got {_show(value)}.")
            return number
    elif hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            if len(str(value)) > MAX_TEXT_VALUE:
                raise ValueError(f"{where} is {len(str(value))} characters long (limit {MAX_TEXT_VALUE}: a path or "
                                 f"a name); got {_show(value)}.")
            return str(value)
    elif origin in (list, List):
        if isinstance(value, str):  # --set output.loggers=csv,mlflow; model.channels=16,32: numbers read as YAML
            value = [v.strip() if args[0] is str else yaml.safe_load(v) for v in value.split(",") if v.strip()]
        if isinstance(value, (list, tuple)):
            return [coerce(f"{where}[{i}]", v, args[0]) for i, v in enumerate(value)]
    type_name = getattr(hint, "__name__", str(hint))
    raise ValueError(f"{where} must be {type_name}, got {_show(value)}.")


def _check_range(section: str, key: str, value: Any, where: str = "") -> None:
    where = where or (f"{section}.{key}" if section else key)
    meta = rules(section, key)
    choices = meta.get("choices")
    if choices and isinstance(value, list):  # a list of choices (output.loggers): each item is one of them
        bad = [v for v in value if v not in choices]
        if bad:
            raise ValueError(f"{where} items must be among {', '.join(choices)}; got {_show(bad[0])}."
                             f"{did_you_mean(str(bad[0]), choices)}")
        return
    if isinstance(value, list):  # a list of numbers (model.channels): each item in range
        for i, v in enumerate(value):
            _check_range(section, key, v, f"{where}[{i}]")
        return
    if choices and value not in choices:
        raise ValueError(f"{where} must be one of {', '.join(choices)}; got {_show(value)}."
                         f"{did_you_mean(str(value), choices)}")
    lo, hi = meta.get("low"), meta.get("high")
    if value is None or (lo is None and hi is None):
        return
    bad_lo = lo is not None and (value <= lo if meta["low_open"] else value < lo)
    bad_hi = hi is not None and (value >= hi if meta["high_open"] else value > hi)
    if bad_lo or bad_hi:
        raise ValueError(f"{where}={_show(value)} is out of range; allowed: {allowed(meta)}.")


def _check_norm(mean: Any, std: Any, grayscale: bool, prefix: str) -> None:
    """mean/std: None, or 1 value (or one per RGB channel); std above 0."""
    channels = 1 if grayscale else 3
    for key, val in (("mean", mean), ("std", std)):
        if val is not None and len(val) not in (1, channels):
            need = "1 value for grayscale input" if channels == 1 else "1 or 3 values for RGB input"
            raise ValueError(f"{prefix}.{key} needs {need}; got {_show(val)}.")
    if std is not None and any(s <= 0 for s in std):
        raise ValueError(f"{prefix}.std values must be > 0; got {_show(std)}.")


# A model file names its classes; no real classifier has more, and a hostile file must not size a huge head.
MAX_CLASSES = 10_000
MAX_CLASS_NAME = 200  # characters of one class name
PREPROCESSING_KEYS = ("image_size", "grayscale", "aspect", "mean", "std")  # as data.* in a config


def check_preprocessing(values: Any, where: str, required: Sequence[str] = PREPROCESSING_KEYS) -> dict:
    """The preprocessing read from a checkpoint or an exported model, checked with the rules of the data.* config
    keys of the same names (a damaged or hostile file must not make emoclf allocate without bound or score NaN).

    ``required`` keys must be present; others are checked when present. Returns the values, converted."""
    if not isinstance(values, dict):
        raise ValueError(f"{where}: the preprocessing must be a mapping; got {_show(values)}. The file is damaged "
                         f"or was not written by emoclf.")
    hints = typing.get_type_hints(DataConfig)
    out = dict(values)
    try:
        for key in PREPROCESSING_KEYS:
            if key not in values:
                if key in required:
                    raise ValueError(f"preprocessing.{key} is missing")
                continue
            value = coerce(f"preprocessing.{key}", values[key], hints[key])
            _check_range("data", key, value, f"preprocessing.{key}")
            out[key] = value
        _check_norm(out.get("mean"), out.get("std"), bool(out.get("grayscale", False)), "preprocessing")
    except ValueError as exc:
        raise ValueError(f"{where}: {str(exc).rstrip('.')}. The file is damaged or was not written by emoclf; "
                         f"export or train the run again.") from None
    return out


def check_class_names(names: Any, where: str) -> List[str]:
    """Class names read from a model file: a list of 1 to MAX_CLASSES distinct, non-empty strings."""
    ok = isinstance(names, (list, tuple)) and 1 <= len(names) <= MAX_CLASSES and all(
        isinstance(n, str) and 0 < len(n) <= MAX_CLASS_NAME for n in names) and len(set(names)) == len(names)
    if not ok:
        raise ValueError(f"{where}: class_names must be a list of 1 to {MAX_CLASSES} distinct names of 1 to "
                         f"{MAX_CLASS_NAME} characters; got {_show(names)}. The file is damaged or was not written "
                         f"by emoclf.")
    return list(names)


def _check_averaging(cfg: Config) -> None:
    """Crops smaller than the image; one way of averaging weights; SWA epochs inside the run."""
    a, t = cfg.augment, cfg.train
    if a.crop and a.crop >= cfg.data.image_size:
        raise ValueError(f"augment.crop={a.crop} must be smaller than data.image_size={cfg.data.image_size} (crops "
                         f"are cut from the stored image); lower it or set augment.crop=0.")
    if t.ema and t.swa_epochs:
        raise ValueError("train.ema and train.swa_epochs are two ways to average the weights; set one of them to 0.")
    if t.swa_epochs and t.swa_epochs >= t.epochs:
        raise ValueError(f"train.swa_epochs={t.swa_epochs} must be fewer than train.epochs={t.epochs} (the average "
                         f"starts after the others); lower it or raise train.epochs.")
    if t.swa_epochs and t.time_limit:
        raise ValueError("train.swa_epochs counts epochs and cannot follow train.time_limit; set train.time_limit=0 "
                         "or train.swa_epochs=0 (train.ema works with a time limit).")


def validate(cfg: Config) -> None:
    """Check every value of ``cfg`` by its field's rules, then the rules between keys; a ValueError names the key."""
    for section in SECTIONS:
        obj = getattr(cfg, section)
        for f in dataclasses.fields(obj):
            _check_range(section, f.name, getattr(obj, f.name))
    _check_norm(cfg.data.mean, cfg.data.std, cfg.data.grayscale, "data")
    _check_range("", "seed", cfg.seed)
    _check_averaging(cfg)
    most = rules("model", "depth")["high"]  # the blocks a list may give are those model.depth allows
    if len(cfg.model.channels) > most:
        raise ValueError(f"model.channels lists {len(cfg.model.channels)} blocks; the cnn has 1 to {most:g} (each "
                         f"but the last halves the side).")
    name = cfg.output.name
    if name is not None and (not name or any(c in name for c in ("/", "\\", "\0")) or name in (".", "..")):
        raise ValueError(f"output.name must be a plain folder name; got {_show(cfg.output.name)}.")
