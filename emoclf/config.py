"""Typed experiment configuration: defaults < YAML file < ``--set section.key=value``."""
from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional

import yaml

from emoclf.utils.yamlio import read_yaml, safe_yaml, show as _show  # noqa: F401  (read_yaml: part of this module's API)


@dataclass
class DataConfig:
    """Where the images are and how each one becomes a tensor."""

    root: str = "data"  # dataset folder with train/ and validation/ (or val/, test/) class folders
    image_size: int = 48  # pixels, side of the square model input (8..1024)
    grayscale: bool = True  # true: 1 channel; false: RGB
    aspect: str = "pad"  # non-square images: "pad" (letterbox) or "crop" (centre crop); never stretched
    val_fraction: float = 0.15  # share of train held out when there is no validation folder (0..0.9)
    drop_classes: List[str] = field(default_factory=list)  # class names (any alias) to leave out
    mean: Optional[List[float]] = None  # per-channel normalization mean; null: ImageNet's
    std: Optional[List[float]] = None  # per-channel normalization std; null: ImageNet's
    cache_dir: Optional[str] = None  # decoded-image cache; null: <root>/.emoclf-cache (or ~/.cache/emoclf)


@dataclass
class AugmentConfig:
    """Training-time augmentation, applied on whole batches; never at evaluation."""

    hflip: bool = True  # random horizontal flip (p=0.5)
    rotation: float = 10.0  # degrees, uniform in [-rotation, rotation] (0..180)
    translate: float = 0.1  # random shift as a share of the side, like a padded random crop (0..0.5)
    scale: float = 0.1  # random zoom in [1-scale, 1+scale] (0..0.9)
    brightness: float = 0.2  # brightness jitter factor in [1-b, 1+b] (0..1)
    contrast: float = 0.2  # contrast jitter factor in [1-c, 1+c] (0..1)
    erasing: float = 0.25  # probability of random erasing of one rectangle (0..1)


@dataclass
class ModelConfig:
    """Which network, and how it starts."""

    name: str = "cnn"  # registered model: cnn, resnet18, mobilenet_v3_small, mobilenet_v3_large, or any torchvision classifier
    pretrained: bool = False  # load torchvision's ImageNet weights (downloads once into the torch cache)
    weights_path: Optional[str] = None  # local weights file (torchvision state dict or emoclf checkpoint)
    freeze: str = "none"  # "none": fine-tune everything; "backbone": train only the classifier head
    stem: str = "auto"  # "imagenet" keeps the stem; "small" keeps resolution for small faces; "auto": small below 96 px
    dropout: float = 0.3  # dropout before the classifier of the cnn (0..0.9)
    width: int = 32  # cnn: channels of the first block, doubled per block (4..512)
    depth: int = 4  # cnn: number of conv blocks (1..6)
    norm: str = "batch"  # cnn: "batch" (BatchNorm) or "group" (GroupNorm: independent of the batch size)


@dataclass
class TrainConfig:
    """The optimisation loop."""

    epochs: int = 15  # passes over the training set (1..10000)
    batch_size: int = 64  # images per step, per process under torchrun (1..65536)
    lr: float = 1e-3  # peak learning rate (>0)
    optimizer: str = "adamw"  # adam | adamw | sgd
    momentum: float = 0.9  # sgd momentum (0..1)
    weight_decay: float = 1e-4  # (>=0)
    scheduler: str = "cosine"  # cosine | step | plateau | none
    warmup_epochs: int = 0  # linear warm-up epochs before the schedule (>=0)
    step_size: int = 10  # step: epochs between decays (>=1)
    gamma: float = 0.1  # step/plateau: decay factor (0..1)
    plateau_patience: int = 3  # plateau: epochs without a better validation macro F1 before decaying (>=0)
    label_smoothing: float = 0.0  # (0..0.5)
    class_weights: str = "none"  # "none" or "balanced" (inverse class frequency in the loss)
    sampler: str = "shuffle"  # "shuffle" or "balanced" (oversample rare classes)
    early_stopping: int = 0  # stop after this many epochs without a better validation macro F1; 0: off
    device: str = "auto"  # auto (CUDA, then MPS, then CPU) | cpu | cuda | cuda:N | mps
    amp: str = "auto"  # mixed precision: auto (bf16 on CUDA when supported) | bf16 | fp16 | off
    channels_last: str = "auto"  # auto | on | off
    compile: bool = False  # torch.compile the model
    sync_bn: bool = False  # torchrun on CUDA: synchronise BatchNorm statistics across processes
    time_limit: float = 0.0  # minutes of training after which the run stops cleanly; 0: none
    num_threads: int = 0  # CPU threads for torch; 0: all cores
    eval_batch_size: int = 256  # images per evaluation step (1..65536)
    tta: str = "none"  # test-time augmentation of the final scoring: none | flip | tencrop (5 crops and their flips)


@dataclass
class OutputConfig:
    """Where the run folder goes."""

    dir: str = "outputs"  # parent folder of run folders
    name: Optional[str] = None  # run folder name; null: the config file's name, else the model name


@dataclass
class Config:
    """One experiment."""

    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    seed: int = 42  # seeds data order, augmentation and initialisation

    @property
    def run_name(self) -> str:
        """Name of the run folder."""
        return self.output.name or self.model.name

    @property
    def run_dir(self) -> Path:
        """Path of the run folder."""
        return Path(self.output.dir) / self.run_name


MAX_SEED = 2**32 - 1
SECTIONS = {f.name: f.type for f in dataclasses.fields(Config) if f.name != "seed"}

CHOICES = {
    ("data", "aspect"): ("pad", "crop"),
    ("model", "freeze"): ("none", "backbone"),
    ("model", "stem"): ("auto", "imagenet", "small"),
    ("model", "norm"): ("batch", "group"),
    ("train", "optimizer"): ("adam", "adamw", "sgd"),
    ("train", "scheduler"): ("cosine", "step", "plateau", "none"),
    ("train", "class_weights"): ("none", "balanced"),
    ("train", "sampler"): ("shuffle", "balanced"),
    ("train", "amp"): ("auto", "bf16", "fp16", "off"),
    ("train", "channels_last"): ("auto", "on", "off"),
    ("train", "tta"): ("none", "flip", "tencrop"),
}

# (low, high, low inclusive, high inclusive); None is unbounded
RANGES = {
    ("data", "image_size"): (8, 1024, True, True),
    ("data", "val_fraction"): (0.0, 0.9, False, True),
    ("augment", "rotation"): (0, 180, True, True),
    ("augment", "translate"): (0, 0.5, True, True),
    ("augment", "scale"): (0, 0.9, True, True),
    ("augment", "brightness"): (0, 1, True, True),
    ("augment", "contrast"): (0, 1, True, True),
    ("augment", "erasing"): (0, 1, True, True),
    ("model", "dropout"): (0, 0.9, True, True),
    ("model", "width"): (4, 512, True, True),
    ("model", "depth"): (1, 6, True, True),
    ("train", "epochs"): (1, 10000, True, True),
    ("train", "batch_size"): (1, 65536, True, True),
    ("train", "lr"): (0, 10, False, True),
    ("train", "momentum"): (0, 1, True, True),
    ("train", "weight_decay"): (0, None, True, True),
    ("train", "warmup_epochs"): (0, None, True, True),
    ("train", "step_size"): (1, None, True, True),
    ("train", "gamma"): (0, 1, False, True),
    ("train", "plateau_patience"): (0, None, True, True),
    ("train", "label_smoothing"): (0, 0.5, True, True),
    ("train", "early_stopping"): (0, None, True, True),
    ("train", "time_limit"): (0, None, True, True),
    ("train", "num_threads"): (0, 4096, True, True),
    ("train", "eval_batch_size"): (1, 65536, True, True),
}


def did_you_mean(name: str, known: typing.Iterable[str]) -> str:
    if len(name) > 100:
        return ""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
    return f" Did you mean '{close[0]}'?" if close else ""


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
            return str(value)
    elif origin in (list, List):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, (list, tuple)):
            return [_coerce(f"{where}[{i}]", v, args[0]) for i, v in enumerate(value)]
    type_name = getattr(hint, "__name__", str(hint))
    raise ValueError(f"{where} must be {type_name}, got {_show(value)}.")


def _check_range(section: str, key: str, value: Any) -> None:
    where = f"{section}.{key}"
    if (section, key) in CHOICES and value not in CHOICES[(section, key)]:
        choices = ", ".join(CHOICES[(section, key)])
        raise ValueError(f"{where} must be one of {choices}; got {_show(value)}.{did_you_mean(str(value), CHOICES[(section, key)])}")
    if (section, key) in RANGES and value is not None:
        lo, hi, lo_inc, hi_inc = RANGES[(section, key)]
        bad_lo = lo is not None and (value < lo if lo_inc else value <= lo)
        bad_hi = hi is not None and (value > hi if hi_inc else value >= hi)
        if bad_lo or bad_hi:
            lo_s = "-inf" if lo is None else f"{lo}"
            hi_s = "inf" if hi is None else f"{hi}"
            brackets = ("[" if lo_inc else "(") + f"{lo_s}, {hi_s}" + ("]" if hi_inc else ")")
            raise ValueError(f"{where}={_show(value)} is out of range; allowed: {brackets}.")


def _validate(cfg: Config) -> None:
    from emoclf.models import check_model_name

    check_model_name(cfg.model.name)
    for section in SECTIONS:
        obj = getattr(cfg, section)
        for f in dataclasses.fields(obj):
            _check_range(section, f.name, getattr(obj, f.name))
    for key in ("mean", "std"):
        val = getattr(cfg.data, key)
        channels = 1 if cfg.data.grayscale else 3
        if val is not None and len(val) not in (1, channels):
            need = "1 value for grayscale input" if channels == 1 else "1 or 3 values for RGB input"
            raise ValueError(f"data.{key} needs {need}; got {val}.")
    if cfg.data.std is not None and any(s <= 0 for s in cfg.data.std):
        raise ValueError(f"data.std values must be > 0; got {cfg.data.std}.")
    if not 0 <= cfg.seed <= MAX_SEED:
        raise ValueError(f"seed={_show(cfg.seed)} is out of range; allowed: [0, {MAX_SEED}].")
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
            raise ValueError(f"Unknown key '{section}.{_show(key, False)}'.{did_you_mean(str(key), hints)} Known keys in '{section}': {', '.join(hints)}.")
        if isinstance(value, bool) and (section, key) in CHOICES:  # YAML 1.1 reads on/off, yes/no as booleans
            choices = CHOICES[(section, key)]
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
            raise ValueError(f"Unknown section '{_show(section, False)}'.{did_you_mean(str(section), known)} Known sections: {', '.join(known)}.")
    return cfg


def parse_override(text: str) -> dict:
    """Turn ``section.key=value`` into ``{section: {key: value}}``; the value is parsed as YAML."""
    if "=" not in text:
        raise ValueError(f"--set expects section.key=value, got {_show(text)}.")
    dotted, raw = text.split("=", 1)
    parts = dotted.strip().split(".")
    value = safe_yaml(raw, f"--set {_show(text)}: the value") if raw.strip() else None
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
