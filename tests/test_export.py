"""emoclf export (ONNX, TorchScript) and predict with onnxruntime: same numbers, metadata, safe writes."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from PIL import Image

from emoclf.cli.app import main
from emoclf.config import load_config
from emoclf.data.synthetic import face_photo
from emoclf.inference.export import export_run, read_torchscript, side_file
from emoclf.inference.predict import Predictor
from emoclf.runs import checkpoint as ck

RECORD_KEYS = {"image", "run", "width", "height", "haar", "faces", "label", "score", "scores"}


def _onnx():
    pytest.importorskip("onnx")
    return pytest.importorskip("onnxruntime")


def _batch(n: int, channels: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, channels, size, size), dtype=np.uint8)


@pytest.fixture(scope="module")
def cnn_run(runs, tmp_path_factory) -> Path:
    """A copy of the shared grayscale CNN run, so exports land in a folder of this module's own."""
    return Path(shutil.copytree(runs.cnn, tmp_path_factory.mktemp("export") / "cnn"))


@pytest.fixture(scope="module")
def cnn_onnx(cnn_run) -> Path:
    _onnx()
    return export_run(cnn_run, "onnx")


@pytest.fixture(scope="module")
def mobilenet_run(dataset, tmp_path_factory) -> Path:
    """An untrained (random init) MobileNetV3-Small run at 48x48 RGB: enough to compare two runtimes."""
    import torch

    from emoclf.models.factory import architecture

    out = tmp_path_factory.mktemp("mnet")
    cfg = load_config(str(REPO / "configs" / "mobilenet_v3.yaml"), [
        f"data.root={dataset}", "data.image_size=48", "model.pretrained=false", f"output.dir={out}"])
    torch.manual_seed(0)
    model = architecture(cfg, 4).eval()
    for m in model.modules():  # non-trivial BatchNorm statistics, as after training
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    run = out / "mobilenet_v3"
    ck.save(ck.make_checkpoint(model, cfg, ["angry", "happy", "sad", "surprise"], 1, {}), run / "best.pt")
    return run


@pytest.mark.parametrize("which", ["cnn", "mobilenet_v3_small"])
def test_onnx_matches_pytorch_for_any_batch_size(which, cnn_run, cnn_onnx, mobilenet_run):
    from emoclf.inference.onnx_predict import OnnxPredictor

    run = cnn_run if which == "cnn" else mobilenet_run
    path = cnn_onnx if which == "cnn" else export_run(run, "onnx")
    torch_pred, onnx_pred = Predictor(run, "cpu", tta="none"), OnnxPredictor(path, tta="none")
    assert onnx_pred.session.get_inputs()[0].shape[0] == "batch"  # dynamic batch axis
    p = torch_pred.prep
    for n in (1, 5):
        x = _batch(n, 1 if p["grayscale"] else 3, p["image_size"], seed=n)
        got, want = onnx_pred.probabilities(x), torch_pred.probabilities(x)
        assert got.shape == (n, len(torch_pred.class_names))
        np.testing.assert_allclose(got.sum(1), 1, atol=1e-5)  # probabilities, not logits
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


def test_metadata_in_the_onnx_file_and_side_file(cnn_run, cnn_onnx):
    import onnx

    assert cnn_onnx == cnn_run / "export" / "model.onnx"
    props = {p.key: json.loads(p.value) for p in onnx.load(str(cnn_onnx)).metadata_props}
    c = ck.read(cnn_run / "best.pt")
    assert props["class_names"] == c["class_names"] == ["angry", "happy", "sad", "surprise"]
    assert (props["image_size"], props["grayscale"], props["color_mode"], props["channels"]) == (32, True, "L", 1)
    assert props["aspect"] == c["preprocessing"]["aspect"]
    assert props["mean"] == pytest.approx(c["preprocessing"]["mean"]) and len(props["std"]) == 1
    assert props["model_name"] == "cnn" and props["emoclf_version"] == c["emoclf_version"]
    assert props["output_kind"] == "probabilities" and props["normalization_in_model"] is True
    assert props["input_name"] == "pixels" and props["output_name"] == "probabilities"
    assert json.loads(side_file(cnn_onnx).read_text()) == props
    assert not [p for p in cnn_onnx.parent.iterdir() if p.name.endswith(".tmp")]  # atomic: no leftovers


def test_torchscript_round_trip(cnn_run, tmp_path, capsys):
    out = tmp_path / "cnn.pt"
    assert main(["export", str(cnn_run), "--format", "torchscript", "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    module, meta = read_torchscript(out)
    assert meta["class_names"] == ["angry", "happy", "sad", "surprise"] and meta["file_format"] == "torchscript"
    assert json.loads(side_file(out).read_text()) == meta
    import torch

    pred = Predictor(cnn_run, "cpu", tta="none")
    for n in (1, 5):
        x = _batch(n, 1, 32, seed=10 + n)
        with torch.no_grad():
            got = module(torch.from_numpy(x).float()).numpy()
        np.testing.assert_allclose(got, pred.probabilities(x), atol=1e-5, rtol=0)


def test_existing_file_is_not_replaced_without_force(cnn_run, tmp_path, capsys):
    out = tmp_path / "m.pt"
    out.write_bytes(b"keep me")
    assert main(["export", str(cnn_run), "-f", "torchscript", "-o", str(out)]) == 2
    assert "--force" in capsys.readouterr().err and out.read_bytes() == b"keep me"
    assert main(["export", str(cnn_run), "-f", "torchscript", "-o", str(out), "--force"]) == 0
    assert read_torchscript(out)[1]["model_name"] == "cnn"
    with pytest.raises(ValueError, match="onnx, torchscript"):
        export_run(cnn_run, "tflite")
    assert main(["export", str(tmp_path / "no_run")]) == 2
    assert "Run not found" in capsys.readouterr().err


def test_missing_packages_say_what_to_install(cnn_run, tmp_path, monkeypatch):
    from emoclf.inference.onnx_predict import OnnxPredictor

    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ValueError, match=r"pip install 'emoclf\[onnx\]'"):
        export_run(cnn_run, "onnx", tmp_path / "m.onnx")
    with pytest.raises(ValueError, match=r"pip install 'emoclf\[onnx\]'"):
        OnnxPredictor(tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def _records(capsys, argv) -> list:
    assert main(argv) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def _same_scores(a: dict, b: dict) -> None:
    assert a["label"] == b["label"] and a["score"] == pytest.approx(b["score"], abs=1e-4)
    assert list(a["scores"]) == list(b["scores"])
    assert list(a["scores"].values()) == pytest.approx(list(b["scores"].values()), abs=1e-4)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list:
    d = tmp_path_factory.mktemp("photos")
    face_photo(160, faces=2).save(d / "drawn.png")
    Image.new("RGB", (300, 200), (30, 80, 160)).save(d / "blank.jpg")
    try:
        from skimage import data

        Image.fromarray(data.astronaut()).save(d / "astronaut.jpg", quality=92)
    except ImportError:
        pass
    return sorted(str(p) for p in d.iterdir())


@pytest.mark.parametrize("haar", [False, True])
def test_predict_with_onnx_file_matches_run_folder(haar, cnn_run, cnn_onnx, photos, capsys):
    extra = ["--json", "--no-figure"] + (["--haar"] if haar else [])
    want = _records(capsys, ["predict", *photos, "--run", str(cnn_run), *extra])
    got = _records(capsys, ["predict", *photos, "--run", str(cnn_onnx), *extra])
    assert len(got) == len(want) == len(photos)
    for g, w in zip(got, want):
        assert set(g) == set(w) >= RECORD_KEYS and g["run"] == str(cnn_onnx)
        assert (g["width"], g["height"], g["haar"], g.get("fallback")) == (w["width"], w["height"], haar,
                                                                           w.get("fallback"))
        _same_scores(g, w)
        assert [f["box"] for f in g["faces"]] == [f["box"] for f in w["faces"]]
        for gf, wf in zip(g["faces"], w["faces"]):
            _same_scores(gf, wf)
    if haar and len(photos) == 3:
        assert any(r["faces"] for r in got)  # the astronaut's face went through the crop path


@pytest.mark.parametrize("tta", ["flip", "tencrop"])
def test_test_time_augmentation_matches_pytorch(tta, cnn_run, cnn_onnx):
    from emoclf.inference.onnx_predict import OnnxPredictor

    x = _batch(3, 1, 32, seed=7)
    want = Predictor(cnn_run, "cpu", tta=tta).probabilities(x)
    np.testing.assert_allclose(OnnxPredictor(cnn_onnx, tta=tta).probabilities(x), want, atol=1e-4, rtol=0)


def test_backend_onnx_exports_once_then_reuses(runs, photos, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    run = Path(shutil.copytree(runs.rgb, tmp_path / "rgb"))
    want = _records(capsys, ["predict", photos[0], "--run", str(run), "--json", "--no-figure"])[0]
    got = _records(capsys, ["predict", photos[0], "--run", str(run), "--backend", "onnx", "--json", "--no-figure"])[0]
    assert got["run"] == str(run / "export" / "model.onnx") and (run / "export" / "model.onnx.json").is_file()
    _same_scores(got, want)
    stamp = (run / "export" / "model.onnx").stat().st_mtime_ns
    _records(capsys, ["predict", photos[0], "--run", str(run), "--backend", "onnx", "--json", "--no-figure"])
    assert (run / "export" / "model.onnx").stat().st_mtime_ns == stamp


def test_onnx_without_emoclf_metadata_is_refused(cnn_onnx, tmp_path, capsys):
    import onnx

    proto = onnx.load(str(cnn_onnx))
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "bare.onnx"))
    assert main(["predict", str(REPO / "docs" / "images" / "predict_two_faces.png"), "--run",
                 str(tmp_path / "bare.onnx"), "--no-figure"]) == 2
    assert "no emoclf metadata" in capsys.readouterr().err


def test_legacy_exporter_gives_the_same_model(cnn_run, cnn_onnx, tmp_path):
    from emoclf.inference.onnx_predict import OnnxPredictor

    legacy = export_run(cnn_run, "onnx", tmp_path / "legacy.onnx", exporter="legacy")
    x = _batch(5, 1, 32, seed=3)
    np.testing.assert_allclose(OnnxPredictor(legacy, tta="none").probabilities(x),
                               OnnxPredictor(cnn_onnx, tta="none").probabilities(x), atol=1e-5, rtol=0)


def test_auto_export_falls_back_to_the_legacy_exporter(cnn_run, tmp_path, monkeypatch, caplog):
    _onnx()
    pytest.importorskip("onnxscript")
    import torch

    from emoclf.inference.onnx_predict import OnnxPredictor

    real = torch.onnx.export

    def without_dynamo(*args, dynamo=True, **kwargs):
        if dynamo:
            raise RuntimeError("unsupported operator aten::something")
        return real(*args, dynamo=False, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", without_dynamo)
    out = export_run(cnn_run, "onnx", tmp_path / "m.onnx")
    assert "legacy exporter" in caplog.text and OnnxPredictor(out).class_names == ["angry", "happy", "sad", "surprise"]


def test_onnx_predict_never_imports_torch(cnn_onnx, photos, tmp_path):
    code = ("import sys; from emoclf.cli.app import main; "
            f"rc = main(['predict', {photos[0]!r}, '--run', {str(cnn_onnx)!r}, '--haar', '--json', '--no-figure']); "
            "assert rc == 0, rc; assert 'torch' not in sys.modules, 'torch was imported'")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads(res.stdout.splitlines()[-1])["run"] == str(cnn_onnx)


def test_tta_constants_follow_the_engine():
    from emoclf import engine
    from emoclf.inference import onnx_predict

    assert onnx_predict.TTA_MODES == engine.TTA_MODES
    assert onnx_predict.TENCROP_FRACTION == engine.TENCROP_FRACTION
