"""emoclf explain: Grad-CAM layer choice, map shape and range, localisation, figures through the CLI."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from emoclf.cli.app import main
from emoclf.inference.explain import Explainer, grad_cam, target_layer
from emoclf.models import build_model

skimage_data = pytest.importorskip("skimage.data")
LAYERS = {"cnn": "features", "resnet18": "layer4", "mobilenet_v3_small": "features"}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_grad_cam_on_every_cnn_family(name):
    torch.manual_seed(1)  # random weights: this seed gives each model positive evidence for its winner
    model = build_model(name, 4, in_channels=3, image_size=48, width=8, depth=3).eval()
    x = torch.randn(2, 3, 48, 48)
    layer_name, layer = target_layer(model, x)
    assert layer_name == LAYERS[name]
    maps, probs, targets = grad_cam(model, layer, x)
    assert maps.shape == (2, 1, 48, 48) and probs.shape == (2, 4)
    assert (targets[:, 0] == probs.argmax(1)).all()
    assert maps.min() >= 0 and maps.max() <= 1
    for m in maps[:, 0]:
        assert m.max() == pytest.approx(1) and m.std() > 0.01  # not constant
    every, _, targets = grad_cam(model, layer, x, torch.arange(4).repeat(2, 1))
    assert every.shape == (2, 4, 48, 48) and targets.tolist() == [[0, 1, 2, 3]] * 2
    np.testing.assert_allclose(every[np.arange(2), probs.argmax(1)], maps[:, 0], atol=1e-5)
    assert all(p.grad is None for p in model.parameters())  # explaining leaves the model untouched


def _bright_spot_model() -> nn.Module:
    """Class 0 sums where the image is bright, class 1 where it is dark: the evidence for 0 is the bright spot."""
    model = nn.Module()
    conv = nn.Conv2d(1, 2, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 1, 1], conv.weight[1, 0, 1, 1] = 1.0, -1.0
    model.features = nn.Sequential(conv, nn.ReLU(), nn.MaxPool2d(2))
    model.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        model.head[2].weight.copy_(torch.eye(2))
    model.forward = lambda x: model.head(model.features(x))
    return model.eval()


def test_grad_cam_points_at_the_evidence():
    model = _bright_spot_model()
    x = torch.full((1, 1, 40, 40), -0.2)
    x[0, 0, 4:12, 26:34] = 1.0  # the spot: top right
    name, layer = target_layer(model, x)
    assert name == "features"
    maps, probs, _ = grad_cam(model, layer, x, torch.tensor([[0]]))
    cam = maps[0, 0]
    y, xx = np.unravel_index(cam.argmax(), cam.shape)
    assert 3 <= y <= 12 and 25 <= xx <= 34
    assert cam[4:12, 26:34].mean() > 0.8 and cam[20:, :20].max() < 0.05


def test_models_without_a_feature_map_are_refused():
    with pytest.raises(ValueError, match="no convolutional feature map"):
        target_layer(nn.Sequential(nn.Flatten(), nn.Linear(12, 2)), torch.zeros(1, 3, 2, 2))


@pytest.fixture(scope="module")
def astronaut(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("astro") / "astronaut.jpg"
    Image.fromarray(skimage_data.astronaut()).save(path, quality=92)
    return path


def test_explainer_on_a_grayscale_run(runs, astronaut):
    ex = Explainer(runs.cnn, "cpu").explain_file(astronaut, all_classes=True)
    classes = len(ex.record["scores"])
    assert ex.layer == "features" and ex.maps.shape == (1, classes, 32, 32) and len(ex.views) == 1
    assert ex.classes.tolist() == [list(range(classes))]
    assert ex.views[0].size == (224, 224) and ex.views[0].mode == "RGB"


def test_explain_cli_with_haar_writes_the_figure(runs, astronaut, tmp_path, capsys):
    assert main(["explain", str(astronaut), "--run", str(runs.rgb), "--haar", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Grad-CAM layer: features" in out and "1 face(s)" in out
    figure = tmp_path / "astronaut_haar_gradcam.png"  # beside astronaut_gradcam.png of the whole photo
    assert figure.stat().st_size > 20_000 and str(figure) in out
    assert Image.open(figure).size[0] > Image.open(figure).size[1]
    assert main(["explain", str(astronaut), "--run", str(runs.rgb), "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["astronaut_gradcam.png", "astronaut_haar_gradcam.png"]


def test_explain_cli_all_classes_on_a_folder(runs, astronaut, tmp_path, capsys, caplog):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(astronaut, folder)
    shutil.copy(next((runs.root / "validation" / "happy").iterdir()), folder / "happy.jpg")
    (folder / "broken.png").write_bytes(b"not a PNG")
    out = tmp_path / "out"
    assert main(["explain", str(folder), "--run", str(runs.cnn), "--all-classes", "--json", "--out", str(out)]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [Path(r["image"]).name for r in records] == ["astronaut.jpg", "happy.jpg"]
    assert all(r["layer"] == "features" and Path(r["gradcam"]).is_file() for r in records)
    assert sorted(p.name for p in out.iterdir()) == ["astronaut_gradcam.png", "happy_gradcam.png"]
    assert "broken.png" in caplog.text


def test_explain_cli_errors(runs, tmp_path, capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    assert main(["explain", str(bad), "--run", str(runs.cnn), "--out", str(tmp_path)]) == 2
    assert "could be read" in capsys.readouterr().err
    assert main(["explain", str(tmp_path / "missing.jpg"), "--run", str(runs.cnn)]) == 2
    assert "missing.jpg" in capsys.readouterr().err
