"""Typed experiment configuration: defaults < YAML file < ``--set section.key=value``."""
from __future__ import annotations

import dataclasses
import logging
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional, Sequence

import yaml

from emoclf.utils.text import did_you_mean
from emoclf.utils.text import show as _show
from emoclf.utils.yamlio import read_yaml, safe_yaml

log = logging.getLogger(__name__)
TTA_MODES = ("none", "flip", "tencrop")  # test-time augmentation: the input; and its mirror; or 5 crops and flips
TENCROP_FRACTION = 0.9  # tencrop: crop side as a share of the image, resized back to the model's input size
LOGGERS = ("csv", "tensorboard", "mlflow")  # output.loggers; csv (history.csv) is written by every run
CLASS_NAME_MODES = ("canonical", "dataset", "both")  # output.class_names: happy, alegria, alegria (happy)


def crop_offsets(size: int, crop: int) -> List[tuple]:
    """(top, left) of the centre crop, then the 4 corners, of ``crop`` x ``crop`` crops of a ``size`` image (the
    centre rounded as torchvision's CenterCrop): the views of tencrop at a crop size, and the centre alone for none."""
    centre, far = int(round((size - crop) / 2.0)), size - crop
    return [(centre, centre), (0, 0), (0, far), (far, 0), (far, far)]


def preprocessing_crop(prep: dict, where: str = "the checkpoint") -> int:
    """The crop side a model reads (``augment.crop``) from a checkpoint's or export's preprocessing; 0: the whole
    image (files written before crops existed carry no key)."""
    crop, size = prep.get("crop", 0) or 0, prep.get("image_size")
    if not isinstance(crop, int) or isinstance(crop, bool) or crop < 0 or (isinstance(size, int) and crop >= size):
        raise ValueError(f"{where}: preprocessing.crop must be 0 or a whole number of pixels below image_size "
                         f"({size}); got {_show(crop)}. The file is damaged or was not written by emoclf.")
    return crop


MAX_TEXT_VALUE = 4096  # characters of one text value (a path or a name): PATH_MAX on Linux


def setting(default: Any, doc: str, *, low: Optional[float] = None, high: Optional[float] = None,
            low_open: bool = False, high_open: bool = False, choices: Optional[Sequence[str]] = None) -> Any:
    """A config field with its documentation and the values it allows, written once.

    ``low``/``high`` bound a number (inclusive unless ``low_open``/``high_open``); ``choices`` lists the
    allowed strings. Loading checks them, and configs/default.yaml is generated from them."""
    meta = {"doc": doc, "low": low, "high": high, "low_open": low_open, "high_open": high_open,
            "choices": tuple(choices) if choices else None}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class DataConfig:
    """Where the images are and how each one becomes a tensor."""

    root: str = setting("data", "dataset folder with train/ and validation/ (or val/, test/) class folders")
    image_size: int = setting(48, "pixels, side of the square model input", low=8, high=1024)
    grayscale: bool = setting(True, "true: 1 channel; false: RGB")
    aspect: str = setting("pad", "non-square images: pad (letterbox) or crop (centre crop); never stretched",
                          choices=("pad", "crop"))
    val_fraction: float = setting(0.15, "share of train held out when there is no validation folder", low=0.0,
                                  high=0.9, low_open=True)
    drop_classes: List[str] = setting([], "class names (any alias) to leave out")
    mean: Optional[List[float]] = setting(None, "per-channel normalization mean; null: ImageNet's")
    std: Optional[List[float]] = setting(None, "per-channel normalization std (> 0); null: ImageNet's")
    cache_dir: Optional[str] = setting(None, "decoded-image cache; null: <root>/.emoclf-cache (or ~/.cache/emoclf)")


@dataclass
class AugmentConfig:
    """Training-time augmentation, applied on whole batches; never at evaluation."""

    hflip: bool = setting(True, "random horizontal flip (p=0.5)")
    rotation: float = setting(10.0, "degrees, uniform in [-rotation, rotation]", low=0, high=180)
    translate: float = setting(0.1, "random shift as a share of the side, like a padded random crop", low=0, high=0.5)
    scale: float = setting(0.1, "random zoom in [1-scale, 1+scale]", low=0, high=0.9)
    brightness: float = setting(0.2, "brightness jitter factor in [1-b, 1+b]", low=0, high=1)
    contrast: float = setting(0.2, "contrast jitter factor in [1-c, 1+c]", low=0, high=1)
    erasing: float = setting(0.25, "probability of random erasing of one rectangle", low=0, high=1)
    crop: int = setting(0, "pixels, side of random training crops of the data.image_size image (e.g. 40 of 48); the "
                        "model then reads this size: the centre crop when scored, the 4 corners and centre with their "
                        "flips for tencrop; 0: off", low=0, high=1024)
    mixup: float = setting(0.0, "alpha of batch mixup: images and targets blended with a Beta(alpha, alpha) share; "
                           "0: off (e.g. 0.2)", low=0, high=10)
    cutmix: float = setting(0.0, "alpha of batch CutMix: a box from another image, targets mixed by its area; 0: off "
                            "(e.g. 1.0); with mixup too, each batch takes one of the two at random", low=0, high=10)


@dataclass
class ModelConfig:
    """Which network, and how it starts."""

    name: str = setting("cnn", "registered model: cnn, resnet18, mobilenet_v3_small, mobilenet_v3_large, or any "
                        "torchvision classifier (emoclf models --all)")
    pretrained: bool = setting(False, "load torchvision's ImageNet weights (downloads once into the torch cache)")
    weights_path: Optional[str] = setting(None, "local weights file (torchvision state dict or emoclf checkpoint)")
    freeze: str = setting("none", "none: fine-tune everything; backbone: train only the classifier head",
                          choices=("none", "backbone"))
    stem: str = setting("auto", "imagenet keeps the stem; small keeps resolution for small faces; auto: small below "
                        "96 px", choices=("auto", "imagenet", "small"))
    dropout: float = setting(0.3, "dropout before the classifier of the cnn", low=0, high=0.9)
    width: int = setting(32, "cnn: channels of the first block, doubled per block", low=4, high=512)
    depth: int = setting(4, "cnn: number of conv blocks", low=1, high=6)
    norm: str = setting("batch", "cnn: batch (BatchNorm) or group (GroupNorm: independent of the batch size)",
                        choices=("batch", "group"))


@dataclass
class TrainConfig:
    """The optimisation loop."""

    epochs: int = setting(15, "passes over the training set", low=1, high=10000)
    batch_size: int = setting(64, "images per step, per process under torchrun", low=1, high=65536)
    lr: float = setting(1e-3, "peak learning rate", low=0, high=10, low_open=True)
    optimizer: str = setting("adamw", "the optimizer", choices=("adam", "adamw", "sgd"))
    momentum: float = setting(0.9, "sgd momentum", low=0, high=1)
    nesterov: bool = setting(True, "sgd: Nesterov momentum (when momentum > 0)")
    weight_decay: float = setting(1e-4, "decoupled for adamw, L2 for adam and sgd", low=0)
    scheduler: str = setting("cosine", "learning-rate schedule after the warm-up",
                             choices=("cosine", "step", "plateau", "none"))
    warmup_epochs: int = setting(0, "linear warm-up epochs before the schedule", low=0)
    step_size: int = setting(10, "step: epochs between decays", low=1)
    gamma: float = setting(0.1, "step/plateau: decay factor", low=0, high=1, low_open=True)
    plateau_patience: int = setting(3, "plateau: epochs without a better validation macro F1 before decaying", low=0)
    label_smoothing: float = setting(0.0, "share of the target spread over all classes", low=0, high=0.5)
    class_weights: str = setting("none", "balanced: inverse class frequency in the loss",
                                 choices=("none", "balanced"))
    sampler: str = setting("shuffle", "balanced: oversample rare classes", choices=("shuffle", "balanced"))
    early_stopping: int = setting(0, "stop after this many epochs without a better validation macro F1; 0: off",
                                  low=0)
    device: str = setting("auto", "auto (CUDA, then MPS, then CPU) | cpu | cuda | cuda:N | mps")
    amp: str = setting("auto", "mixed precision: auto is bf16 on CUDA when supported", choices=("auto", "bf16", "fp16",
                                                                                              "off"))
    channels_last: str = setting("auto", "NHWC memory format; auto: on for CUDA and CPU", choices=("auto", "on", "off"))
    compile: bool = setting(False, "torch.compile the model")
    sync_bn: bool = setting(False, "torchrun on CUDA: synchronise BatchNorm statistics across processes")
    time_limit: float = setting(0.0, "minutes of training after which the run stops cleanly; 0: none", low=0)
    num_threads: int = setting(0, "CPU threads for torch; 0: all cores", low=0, high=4096)
    eval_batch_size: int = setting(256, "images per evaluation step", low=1, high=65536)
    tta: str = setting("none", "test-time augmentation of the final scoring (tencrop: 5 crops and their flips)",
                       choices=TTA_MODES)
    ema: float = setting(0.0, "decay of an exponential moving average of the weights and BatchNorm buffers, updated "
                         "every step and used for validation, best.pt and export; 0: off (e.g. 0.999)", low=0, high=1,
                         high_open=True)
    swa_epochs: int = setting(0, "stochastic weight averaging: the weights after each of the last N epochs averaged, "
                              "BatchNorm statistics refreshed on the training images, and scored; 0: off", low=0)
    swa_lr: float = setting(0.0, "learning rate held during the SWA epochs, reached by the schedule at their start; "
                            "0: the schedule as it is", low=0, high=10)


@dataclass
class OutputConfig:
    """Where the run folder goes."""

    dir: str = setting("outputs", "parent folder of run folders")
    name: Optional[str] = setting(None, "run folder name; null: the config file's name, else the model name")
    loggers: List[str] = setting([], "experiment trackers besides history.csv (always written): tensorboard "
                                 "(RUN/tensorboard/), mlflow (MLFLOW_TRACKING_URI, else output.dir/mlruns/); e.g. "
                                 "[tensorboard, mlflow]", choices=LOGGERS)
    class_names: str = setting("canonical", "class names in figures and reports: canonical (happy), dataset (the "
                               "class folder's own name, e.g. alegria) or both (alegria (happy))",
                               choices=CLASS_NAME_MODES)


@dataclass
class Config:
    """One experiment."""

    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    seed: int = setting(42, "seeds data order, augmentation and initialisation", low=0, high=2**32 - 1)

    @property
    def run_name(self) -> str:
        """Name of the run folder."""
        return self.output.name or self.model.name

    @property
    def run_dir(self) -> Path:
        """Path of the run folder."""
        return Path(self.output.dir) / self.run_name

    @property
    def input_size(self) -> int:
        """Side of the model's input: the crop size when training crops, else the image size."""
        return self.augment.crop or self.data.image_size


SECTIONS = {f.name: f.type for f in dataclasses.fields(Config) if f.name != "seed"}
_SECTION_CLASSES = {"data": DataConfig, "augment": AugmentConfig, "model": ModelConfig, "train": TrainConfig,
                    "output": OutputConfig}


def rules(section: str, key: str) -> dict:
    """The documentation and allowed values of ``section.key`` (``section`` "" for the top-level seed)."""
    cls = _SECTION_CLASSES[section] if section else Config
    return next(f.metadata for f in dataclasses.fields(cls) if f.name == key)


def allowed(meta: dict) -> str:
    """The allowed values of a field for people: 'one of a, b', '[8, 1024]', '(0, inf)'; '' when any."""
    if meta.get("choices"):
        return "one of " + ", ".join(meta["choices"])
    lo, hi = meta.get("low"), meta.get("high")
    if lo is None and hi is None:
        return ""
    lo_s = "-inf" if lo is None else f"{lo}"
    hi_s = "inf" if hi is None else f"{hi}"
    return ("(" if meta["low_open"] or lo is None else "[") + f"{lo_s}, {hi_s}" + \
        (")" if meta["high_open"] or hi is None else "]")


def _coerce(where: str, value: Any, hint: Any) -> Any:
    """Check ``value`` against a dataclass field type and convert the harmless cases."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union and type(None) in args:
        if value is None:
            return None
        return _coerce(where, value, next(a for a in args if a is not type(None)))
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
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, (list, tuple)):
            return [_coerce(f"{where}[{i}]", v, args[0]) for i, v in enumerate(value)]
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
            value = _coerce(f"preprocessing.{key}", values[key], hints[key])
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


def _validate(cfg: Config) -> None:
    for section in SECTIONS:
        obj = getattr(cfg, section)
        for f in dataclasses.fields(obj):
            _check_range(section, f.name, getattr(obj, f.name))
    _check_norm(cfg.data.mean, cfg.data.std, cfg.data.grayscale, "data")
    _check_range("", "seed", cfg.seed)
    _check_averaging(cfg)
    name = cfg.output.name
    if name is not None and (not name or any(c in name for c in ("/", "\\", "\0")) or name in (".", "..")):
        raise ValueError(f"output.name must be a plain folder name; got {_show(cfg.output.name)}.")


def _merge_section(section: str, obj: Any, values: Any) -> None:
    if not isinstance(values, dict):
        raise ValueError(f"Section '{section}' must be a mapping of keys to values; got {_show(values)}.")
    hints = typing.get_type_hints(type(obj))
    for key, value in values.items():
        if key not in hints:
            if key in ("seed",):  # a top-level key written inside a section
                raise ValueError(f"Unknown key '{section}.{key}': '{key}' is a top-level key, not part of a section. "
                                 f"Write `{key}: VALUE` at the top level of the file, or --set {key}=VALUE.")
            raise ValueError(f"Unknown key '{section}.{_show(key, False)}'.{did_you_mean(str(key), hints)} "
                             f"Known keys in '{section}': {', '.join(hints)}.")
        choices = rules(section, key).get("choices")
        if isinstance(value, bool) and choices:  # YAML 1.1 reads on/off, yes/no as booleans
            if ("on" if value else "off") not in choices:
                raise ValueError(f"{section}.{key} must be one of {', '.join(choices)}; got {value} (YAML reads "
                                 f"on/off, yes/no and true/false as true or false).")
            value = "on" if value else "off"
        setattr(obj, key, _coerce(f"{section}.{key}", value, hints[key]))


def merge(cfg: Config, values: dict) -> Config:
    """Merge a nested mapping (as read from YAML) into ``cfg`` in place, checking names and types."""
    if not isinstance(values, dict):
        raise ValueError(f"A config must be a mapping of sections; got {type(values).__name__}.")
    for section, sub in values.items():
        if section == "seed":
            cfg.seed = _coerce("seed", sub, int)
        elif section in SECTIONS:
            _merge_section(section, getattr(cfg, section), sub)
        else:
            known = list(SECTIONS) + ["seed"]
            raise ValueError(f"Unknown section '{_show(section, False)}'.{did_you_mean(str(section), known)} "
                             f"Known sections: {', '.join(known)}.")
    return cfg


def _yaml_end(raw: str) -> int:
    """Where YAML stops reading ``raw``: the end of its last token (a comment, ' #...', is no token)."""
    try:
        tokens = list(yaml.scan(raw))
    except yaml.YAMLError:
        return len(raw)  # the parse itself reports the error
    return max([t.end_mark.index for t in tokens if not isinstance(t, yaml.StreamEndToken)] or [0])


def _is_text_key(parts: List[str]) -> bool:
    """Whether ``section.key`` holds a string (plain or optional): its --set value is the text as typed."""
    cls = _SECTION_CLASSES.get(parts[0]) if len(parts) == 2 else None
    hint = typing.get_type_hints(cls).get(parts[1]) if cls else None
    return hint is str or hint == Optional[str]


def parse_override(text: str) -> dict:
    """Turn ``section.key=value`` into ``{section: {key: value}}``; the value is parsed as YAML.

    A value is never cut short: where YAML would drop part of it as a comment (`` #...``), a text key keeps the
    whole text and any other key is refused. A text key also keeps words YAML reads as other types (``yes``,
    ``1e3``) as typed; ``null`` (or nothing) still means null."""
    if "=" not in text:
        raise ValueError(f"--set expects section.key=value, got {_show(text)}.")
    dotted, raw = text.split("=", 1)
    parts = dotted.strip().split(".")
    typed = raw.strip()
    value = safe_yaml(raw, f"--set {_show(text)}: the value") if typed else None
    if typed and _yaml_end(raw) < len(raw.rstrip()):  # YAML read a comment: part of the value would be lost
        if not (_is_text_key(parts) and (value is None or isinstance(value, str))):
            raise ValueError(f"--set {_show(text)}: YAML reads ' #' as the start of a comment, so only "
                             f"{_show(value)} would be used. Remove the ' #...' part, or quote the value when the '#' "
                             f"belongs to it (--set '{dotted.strip()}=\"...\"').")
        log.warning("--set %s: using the whole value %s ('#' is part of it, not a YAML comment)", dotted.strip(),
                    _show(typed))
        value = typed
    elif _is_text_key(parts) and not rules(*parts).get("choices") and not isinstance(
            value, (str, type(None), list, dict)):
        value = typed  # output.name=yes is the folder 'yes', not True
    if parts == ["seed"]:
        return {"seed": value}
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"--set expects section.key=value (e.g. train.epochs=3), got {_show(text)}.")
    return {parts[0]: {parts[1]: value}}


def load_config(path: Optional[str] = None, overrides: typing.Sequence[str] = ()) -> Config:
    """Build a validated config from defaults, an optional YAML file and ``--set`` overrides."""
    cfg = Config()
    if path is not None:
        values = read_yaml(Path(path))
        try:
            merge(cfg, values)
        except ValueError as exc:  # name the file: a comparison reads several
            raise ValueError(f"{path}: {exc}") from None
        if cfg.output.name is None:
            cfg.output.name = Path(path).stem
    for text in overrides:
        merge(cfg, parse_override(text))
    _validate(cfg)
    return cfg


def to_dict(cfg: Config) -> dict:
    """Plain nested dict of the config."""
    return dataclasses.asdict(cfg)


def from_dict(values: dict) -> Config:
    """Config from a plain nested dict (as saved in a run folder or checkpoint)."""
    cfg = merge(Config(), values)
    _validate(cfg)
    return cfg


def save_config(cfg: Config, path: Path) -> None:
    """Write the resolved config as YAML."""
    from emoclf.utils.files import atomic_write_text

    atomic_write_text(Path(path), yaml.safe_dump(to_dict(cfg), sort_keys=False))


def _type_name(hint: Any) -> str:
    args = typing.get_args(hint)
    if typing.get_origin(hint) is typing.Union and type(None) in args:
        return _type_name(next(a for a in args if a is not type(None))) + " or null"
    if typing.get_origin(hint) in (list, List):
        return f"list of {_type_name(args[0])}"
    return getattr(hint, "__name__", str(hint))


def _yaml_line(key: str, value: Any, hint: Any, meta: dict, indent: str) -> str:
    text = yaml.safe_dump({key: value}, default_flow_style=True, width=1000).strip()[1:-1]
    limits = allowed(meta)
    if limits and not meta.get("choices"):
        limits = f"range {limits}"
    doc = f"{_type_name(hint)}: {meta['doc']}" + (f"; {limits}" if limits else "")
    return f"{indent}{text}  # {doc}"


def default_yaml() -> str:
    """configs/default.yaml: every key with its default, type, meaning and allowed values."""
    lines = ["# Every config key with its default, type, meaning and allowed values; generated from emoclf/config.py",
             "# by scripts/write_default_config.py (edit the dataclasses there, not this file).",
             "# Precedence: these defaults < your YAML file < --set section.key=value on the command line.", ""]
    cfg = Config()
    for section in SECTIONS:
        obj = getattr(cfg, section)
        hints = typing.get_type_hints(type(obj))
        lines.append(f"{section}:")
        for f in dataclasses.fields(obj):
            lines.append(_yaml_line(f.name, getattr(obj, f.name), hints[f.name], dict(f.metadata), "  "))
    lines += ["", _yaml_line("seed", cfg.seed, int, rules("", "seed"), "")]
    return "\n".join(lines) + "\n"
