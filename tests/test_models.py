"""Every registered model builds, runs forward and trains a step; weights load safely."""
from __future__ import annotations

import urllib.error

import pytest
import torch

from emoclf.config import load_config
from emoclf.models import available_models, build_model, registered_models
from emoclf.models.factory import create_model, load_matching


@pytest.mark.parametrize("name", registered_models())
@pytest.mark.parametrize("channels", [1, 3])
def test_every_registered_model_trains_a_step(name, channels):
    torch.manual_seed(0)
    model = build_model(name, num_classes=5, in_channels=channels, image_size=32)
    x, y = torch.randn(4, channels, 32, 32), torch.tensor([0, 1, 2, 3])
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    model.train()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (4, 5)


def test_registry_lists_the_three_course_models():
    assert {"cnn", "resnet18", "mobilenet_v3_small", "mobilenet_v3_large"} <= set(registered_models())
    assert "efficientnet_b0" in available_models()


def test_any_torchvision_classifier_by_name():
    model = build_model("shufflenet_v2_x0_5", num_classes=3, in_channels=1, image_size=48)
    assert model(torch.randn(2, 1, 48, 48)).shape == (2, 3)


def test_unknown_model_suggests_names():
    with pytest.raises(ValueError, match="Did you mean resnet18"):
        build_model("resnet81", num_classes=3)


def test_small_stem_keeps_resolution():
    small = build_model("resnet18", num_classes=3, image_size=48, stem="small")
    big = build_model("resnet18", num_classes=3, image_size=48, stem="imagenet")
    assert small.conv1.stride == (1, 1) and isinstance(small.maxpool, torch.nn.Identity)
    assert big.conv1.stride == (2, 2)


def test_pretrained_offline_says_where_to_put_the_file(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    cfg = load_config("configs/resnet18.yaml")
    with pytest.raises(RuntimeError) as err:
        create_model(cfg, 7)
    text = str(err.value)
    assert "resnet18-f37072fd.pth" in text and str(tmp_path) in text and "model.weights_path" in text


def test_weights_path_adapts_rgb_stem_to_grayscale(tmp_path):
    rgb = build_model("resnet18", num_classes=1000, in_channels=3, stem="imagenet", image_size=224)
    torch.save(rgb.state_dict(), tmp_path / "imagenet.pth")
    cfg = load_config("configs/resnet18.yaml", ["model.pretrained=false", f"model.weights_path={tmp_path}/imagenet.pth",
                                                "data.grayscale=true"])
    model = create_model(cfg, 7)
    expected = rgb.conv1.weight.sum(dim=1, keepdim=True)
    assert torch.allclose(model.conv1.weight, expected)
    assert torch.allclose(model.layer1[0].conv1.weight, rgb.layer1[0].conv1.weight)
    assert model.fc.out_features == 7  # head kept new


def test_weights_of_another_model_are_refused():
    cnn = build_model("cnn", num_classes=3, in_channels=1)
    other = build_model("mobilenet_v3_small", num_classes=3).state_dict()
    with pytest.raises(ValueError, match="do not fit"):
        load_matching(cnn, other, "other.pt")


def test_freeze_backbone_trains_only_the_head(caplog):
    cfg = load_config("configs/mobilenet_v3.yaml", ["model.pretrained=false", "model.freeze=backbone"])
    model = create_model(cfg, 4)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["classifier.3.weight", "classifier.3.bias"]
    assert "only the head will learn, on random features" in caplog.text  # frozen random weights: said


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "resnet18"])
def test_batchnorm_running_statistics_settle_within_a_short_run(name):
    """After 60 training steps the running mean of BatchNorm matches the data (torchvision's 0.01 would be 45% off)."""
    torch.manual_seed(0)
    model = build_model(name, num_classes=3).train()
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    seen = []
    bn.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].mean(dim=(0, 2, 3))))
    x = torch.rand(8, 3, 32, 32) * 2 + 1  # far from ImageNet-normalized statistics
    with torch.no_grad():
        for _ in range(60):
            model(x)
    assert torch.allclose(bn.running_mean, seen[-1], rtol=0.02, atol=1e-3)


@pytest.mark.parametrize("name", ["cnn", "mobilenet_v3_small", "resnet18"])
def test_fold_batchnorm_keeps_the_outputs(name):
    from emoclf.models.surgery import fold_batchnorm

    torch.manual_seed(0)
    model = build_model(name, num_classes=7, in_channels=3)
    for m in model.modules():  # statistics far from the initial 0 / 1, so a wrong fold shows
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.3, 3)
            m.weight.data.normal_()
            m.bias.data.normal_()
    x = torch.randn(2, 3, 64, 64)
    assert fold_batchnorm(model) == 0  # training mode: BatchNorm still learns, nothing is folded
    model.eval()
    with torch.inference_mode():
        before = model(x)
        bns = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
        folded = fold_batchnorm(model)
        after = model(x)
    assert folded > 0 and sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == bns - folded
    if name != "resnet18":  # ResNet's conv1/bn1 pairs are attributes, not a Sequential: left alone
        assert folded == bns
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("side, expected", [(48, 3), (40, 3), (32, 2)])
def test_cnn_pooling_keeps_every_row_of_an_odd_map(side, expected):
    """40 px crops make a 5 x 5 map before the last pooling: it becomes 3 x 3, so the bottom row and right column
    of the face (the chin, one cheek) still reach the classifier; even maps pool as before."""
    model = build_model("cnn", num_classes=3, in_channels=1, width=4, depth=5).eval()
    with torch.no_grad():
        maps = model.features(torch.zeros(1, 1, side, side))
    assert maps.shape[-2:] == (expected, expected)


def test_cnn_channels_list_sets_each_block():
    """model.channels gives each block its channels (wider late blocks cost little: their maps are small); without
    it, width doubles per block as before."""
    from emoclf.config import load_config
    from emoclf.models.factory import architecture

    cfg = load_config(None, ["model.channels=[8,16,40]", "model.width=64", "model.depth=5", "data.image_size=24"])
    model = architecture(cfg, num_classes=3)
    convs = [m.out_channels for m in model.features.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs == [8, 8, 16, 16, 40, 40]
    assert model.classifier[-1].in_features == 40
    with torch.no_grad():
        maps = model.features(torch.zeros(2, 1, 24, 24))
    assert maps.shape == (2, 40, 6, 6)  # two poolings for three blocks
    default = build_model("cnn", num_classes=3, in_channels=1, width=8, depth=3)
    assert [m.out_channels for m in default.modules() if isinstance(m, torch.nn.Conv2d)] == [8, 8, 16, 16, 32, 32]
