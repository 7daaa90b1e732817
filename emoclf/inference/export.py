"""Export a finished run to ONNX or TorchScript, with its preprocessing travelling inside the file."""
from __future__ import annotations

import json
import logging
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Optional

from emoclf.config import check_class_names, check_preprocessing
from emoclf.runs.folder import BEST_CHECKPOINT
from emoclf.utils.extras import require_extra
from emoclf.utils.version import __version__

log = logging.getLogger(__name__)
FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
EXPORT_FORMAT = "emoclf-export"
METADATA_FILE = "emoclf.json"  # name of the metadata entry inside a TorchScript archive
OPSET = 18  # read by onnxruntime >= 1.14
INPUT_NAME, OUTPUT_NAME = "pixels", "probabilities"
INPUT_DOC = ("float32 N x C x S x S: the image resized to image_size x image_size (see aspect), then, when crop > 0, "
             "its centre crop x crop (tencrop: the 4 corner and centre crops and their flips), so S is crop or "
             "image_size; raw pixel values 0..255, RGB channel order or one gray channel; scaling to 0..1 and the "
             "mean/std normalization happen inside the model")
OUTPUT_DOC = "float32 N x K softmax probabilities (each row sums to 1), columns in class_names order"
ONNX_PACKAGES = "onnx, onnxruntime, onnxscript"  # what emoclf[onnx] installs


def check_format(fmt: str) -> str:
    """Reject an unknown export format, naming the known ones."""
    if fmt not in FORMATS:
        raise ValueError(f"Unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    return fmt


def require_onnx():
    """The onnx package, or a ValueError that says how to install it."""
    return require_extra("onnx", "onnx", "Exporting to ONNX", packages=ONNX_PACKAGES)


def metadata(loaded, fmt: str) -> Dict:
    """Everything an app needs to feed the exported model: preprocessing, classes, output meaning."""
    from emoclf.config import preprocessing_crop

    p, cfg = loaded.preprocessing, loaded.cfg
    channels = 1 if p["grayscale"] else 3
    crop = preprocessing_crop(p, str(loaded.checkpoint))
    side = crop or int(p["image_size"])  # what the model reads
    return {
        "format": EXPORT_FORMAT, "format_version": 1, "file_format": fmt, "emoclf_version": __version__,
        "model_name": cfg.model.name, "class_names": list(loaded.class_names),
        "num_classes": len(loaded.class_names), "image_size": int(p["image_size"]),
        "grayscale": bool(p["grayscale"]), "color_mode": "L" if p["grayscale"] else "RGB", "channels": channels,
        "aspect": p["aspect"], "mean": [float(v) for v in p["mean"]], "std": [float(v) for v in p["std"]],
        "normalization_in_model": True, "input_name": INPUT_NAME, "input": INPUT_DOC,
        "crop": crop, "input_shape": ["N", channels, side, side],
        "output_name": OUTPUT_NAME, "output": OUTPUT_DOC, "output_kind": "probabilities",
        "tta": cfg.train.tta, "run_name": cfg.run_name, "source_checkpoint": str(loaded.checkpoint),
    }


def _wrapped(loaded):
    """The run's model with input scaling, normalization and softmax built in (eval mode, CPU)."""
    import torch
    import torch.nn as nn

    class Exported(nn.Module):
        def __init__(self, model: nn.Module, mean, std):
            super().__init__()
            self.model = model
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
            self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

        def forward(self, pixels: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.model((pixels / 255.0 - self.mean) / self.std), 1)  # as augment.Normalizer

    p = loaded.preprocessing
    return Exported(loaded.model.float(), p["mean"], p["std"]).eval()


def _example(meta: Dict):
    import torch

    gen = torch.Generator().manual_seed(0)
    # Batch 2, not 1: a size-1 example would be specialised and lose the dynamic batch axis.
    side = meta["input_shape"][-1]
    return torch.rand(2, meta["channels"], side, side, generator=gen) * 255


def _has_onnxscript() -> bool:
    try:
        import onnxscript  # noqa: F401
    except ImportError:
        return False
    return True


@contextmanager
def _quiet(*names: str):
    """Keep the exporters' per-pass INFO lines out of emoclf's log."""
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _torch_to_onnx(model, example, path: Path, exporter: str) -> None:
    """Trace to ONNX with a dynamic batch axis: torch.export-based when onnxscript is there, else the legacy tracer."""
    import torch

    dynamo = {"auto": _has_onnxscript(), "dynamo": True, "legacy": False}[exporter]
    names = {"input_names": [INPUT_NAME], "output_names": [OUTPUT_NAME], "opset_version": OPSET}
    with warnings.catch_warnings(), _quiet("onnxscript", "onnx_ir", "torch.onnx"):
        warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning, UserWarning))
        if dynamo:
            batch = torch.export.Dim("batch")
            torch.onnx.export(model, (example,), str(path), dynamo=True, dynamic_shapes={"pixels": {0: batch}},
                              external_data=False, verbose=False, **names)
        else:
            axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
            torch.onnx.export(model, (example,), str(path), dynamo=False, dynamic_axes=axes, **names)


def _write_onnx(model, meta: Dict, tmp: Path, exporter: str) -> None:
    onnx = require_onnx()
    import torch

    with tempfile.TemporaryDirectory() as work, torch.no_grad():
        raw = Path(work) / "model.onnx"
        try:
            _torch_to_onnx(model, _example(meta), raw, exporter)
        except Exception as exc:  # the torch.export-based exporter still misses some operators
            if exporter != "auto" or not _has_onnxscript():
                raise
            log.warning("torch.export-based ONNX export failed (%s); using the legacy exporter.",
                        str(exc).splitlines()[0][:200])
            _torch_to_onnx(model, _example(meta), raw, "legacy")
        proto = onnx.load(str(raw))
    proto.doc_string = f"emoclf {meta['model_name']} emotion classifier; output: {OUTPUT_DOC}"
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)  # every value is JSON text
    onnx.save(proto, str(tmp))


def _write_torchscript(model, meta: Dict, tmp: Path) -> None:
    import torch

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning))
        traced = torch.jit.trace(model, _example(meta))
        torch.jit.save(traced, str(tmp), _extra_files={METADATA_FILE: json.dumps(meta)})


def default_out(checkpoint: Path, fmt: str) -> Path:
    """RUN/export/model.onnx (or model.pt); a checkpoint other than best.pt keeps its own stem."""
    checkpoint = Path(checkpoint)
    stem = "model" if checkpoint.name == BEST_CHECKPOINT else checkpoint.stem
    return checkpoint.parent / "export" / f"{stem}{FORMATS[fmt]}"


def side_file(out: Path) -> Path:
    """The JSON side file of an exported model: ``<out>.json``."""
    return Path(out).with_name(Path(out).name + ".json")


def export_run(run: Path, fmt: str = "onnx", out: Optional[Path] = None, force: bool = False,
               exporter: str = "auto") -> Path:
    """Export a run folder or checkpoint to ``out``; refuses to replace a file unless ``force``."""
    from emoclf.runs.loading import load_run
    from emoclf.utils.files import atomic_path, atomic_write_json

    check_format(fmt)
    if fmt == "onnx":
        require_onnx()
    loaded = load_run(Path(run), "cpu")
    out = Path(out) if out else default_out(loaded.checkpoint, fmt)
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give a file name such as {out / ('model' + FORMATS[fmt])}.")
    if out.exists() and not force:
        raise ValueError(f"{out} already exists; pass --force to replace it, or choose another --out.")
    meta, model = metadata(loaded, fmt), _wrapped(loaded)
    with atomic_path(out) as tmp:
        _write_onnx(model, meta, tmp, exporter) if fmt == "onnx" else _write_torchscript(model, meta, tmp)
    atomic_write_json(side_file(out), meta)
    return out


def read_torchscript(path: Path):
    """A TorchScript export and its metadata."""
    import torch

    files = {METADATA_FILE: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated in favour of torch.export
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=files)
    if not files[METADATA_FILE]:
        raise ValueError(f"{path} is a TorchScript file without emoclf metadata; export it with emoclf export.")
    try:
        meta = json.loads(files[METADATA_FILE])
    except ValueError:
        meta = None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: its emoclf metadata is not a JSON object; export the run again.")
    check_class_names(meta.get("class_names"), str(path))
    meta.update(check_preprocessing(meta, str(path)))
    return module, meta


def onnx_for_run(run: Path) -> Path:
    """RUN/export/model.onnx of a run folder, exported now when missing."""
    run = Path(run)
    ckpt = run / BEST_CHECKPOINT if run.is_dir() else run
    target = default_out(ckpt, "onnx")
    if not target.is_file():
        log.info("No ONNX export of %s yet; exporting it to %s", run, target)
        return export_run(run, "onnx", target)
    if ckpt.is_file() and ckpt.stat().st_mtime > target.stat().st_mtime:
        log.warning("%s is older than %s; re-export it with: emoclf export %s --force", target, ckpt, run)
    return target
