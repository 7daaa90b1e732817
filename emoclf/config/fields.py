"""The config's fields: every key's type, default, documentation and allowed values, written once (``setting``)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional, Sequence

from emoclf.utils.text import show as _show

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
    channels: List[int] = setting([], "cnn: channels of each block, e.g. [16, 32, 64, 192, 384] (1 to 6 blocks); "
                                  "replaces width and depth when given", low=1, high=1024)
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
    amp: str = setting("auto", "mixed precision: auto is bf16 on CUDA when supported, else fp16; on a CPU full "
                       "precision unless bf16 is asked for", choices=("auto", "bf16", "fp16", "off"))
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
SECTION_CLASSES = {"data": DataConfig, "augment": AugmentConfig, "model": ModelConfig, "train": TrainConfig,
                    "output": OutputConfig}


def rules(section: str, key: str) -> dict:
    """The documentation and allowed values of ``section.key`` (``section`` "" for the top-level seed)."""
    cls = SECTION_CLASSES[section] if section else Config
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
