"""Weight averages (EMA, SWA), mixup/CutMix, random crops with ten-crop at the crop size, Nesterov SGD: each does
what it says, resumes exactly, and predict, evaluate and export read the same crops as training scored."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import fast_config, train_interrupted_after

from emoclf.config import AugmentConfig, load_config, preprocessing_crop
from emoclf.data.augment import BatchAugment, BatchMix, Normalizer, mixed_targets
from emoclf.engine import predict_logits, tta_views
from emoclf.runs import checkpoint as ck
from emoclf.runs.evaluation import evaluate_run
from emoclf.training.averaging import WeightEMA, WeightSWA, ema_decay
from emoclf.training.optim import make_optimizer, mixed_loss, scheduled_lr
from emoclf.training.trainer import train

STILL = {"hflip": False, "rotation": 0, "translate": 0, "scale": 0, "brightness": 0, "contrast": 0, "erasing": 0}


def _tiny_bn_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 3))


def test_ema_weights_and_batchnorm_buffers_equal_the_average_by_hand():
    model = _tiny_bn_model()
    ema = WeightEMA(model, decay=0.9)
    expected = {k: v.detach().clone().double() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(1)
    for step in range(1, 31):
        x = torch.randn(8, 1, 6, 6, generator=gen)
        loss = model(x).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        ema.update()
        d = min(0.9, (1 + step) / (10 + step))
        assert ema_decay(0.9, step) == d
        for k, v in model.state_dict().items():
            v = v.double()
            expected[k] = d * expected[k] + (1 - d) * v if model.state_dict()[k].dtype.is_floating_point else v.clone()
    got = ema.module.state_dict()
    assert int(got["1.num_batches_tracked"]) == 30  # copied, not averaged
    for k, v in expected.items():
        assert torch.allclose(got[k].double(), v, atol=1e-5), k
    assert not torch.allclose(got["1.running_mean"], model.state_dict()["1.running_mean"])  # the buffers averaged
    assert ema.updates == 30 and all(not p.requires_grad for p in ema.module.parameters())


def test_swa_is_the_equal_average_and_refreshes_batchnorm_on_the_images():
    model = _tiny_bn_model()
    swa = WeightSWA(model)
    snapshots = []
    for _ in range(3):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        swa.update()
        snapshots.append([p.detach().clone() for p in model.parameters()])
    assert swa.count == 3
    for avg, *each in zip(swa.module.parameters(), *snapshots):
        assert torch.allclose(avg, sum(each) / 3, atol=1e-6)
    images = np.random.default_rng(0).integers(0, 256, (20, 1, 6, 6), dtype=np.uint8)
    norm = Normalizer([0.5], [0.25], torch.device("cpu"))
    swa.refresh(images, norm, batch_size=5)
    bn = swa.module[1]
    with torch.no_grad():
        features = swa.module[0](norm(torch.from_numpy(images)))
    assert torch.allclose(bn.running_mean, features.mean((0, 2, 3)), atol=1e-5)  # one pass: 4 equal batches
    assert not swa.module.training


def test_mixup_and_cutmix_targets_sum_to_1_and_the_loss_is_that_of_the_mixed_targets():
    gen = torch.Generator().manual_seed(0)
    x = torch.arange(4, dtype=torch.float32).view(4, 1, 1, 1).expand(4, 1, 8, 8).contiguous()
    y = torch.tensor([0, 1, 2, 0])
    for cfg in (AugmentConfig(mixup=0.4), AugmentConfig(cutmix=1.0), AugmentConfig(mixup=0.4, cutmix=1.0)):
        mix = BatchMix(cfg)
        assert mix.enabled
        for _ in range(5):
            mixed, y_other, share = mix(x, y, gen)
            assert 0.0 <= share <= 1.0
            targets = mixed_targets(y, y_other, share, 3)
            assert torch.allclose(targets.sum(1), torch.ones(4))
            # each mixed image holds its own pixels and its partner's in the proportion its targets say
            partner = mixed.mean((1, 2, 3))
            for i in range(4):
                j = [k for k in range(4) if y[k] == y_other[i]]
                assert any(abs(float(partner[i]) - (share * i + (1 - share) * k)) < 1e-4 for k in j)
            logits = torch.randn(4, 3, generator=gen)
            soft = -(targets * F.log_softmax(logits, 1)).sum(1).mean()
            assert torch.allclose(mixed_loss(nn.CrossEntropyLoss(), logits, y, y_other, share), soft, atol=1e-6)
    assert not BatchMix(AugmentConfig()).enabled


def test_random_crops_are_whole_pixel_crops_of_the_stored_image():
    gen = torch.Generator().manual_seed(3)
    images = torch.randint(0, 256, (16, 1, 12, 12), dtype=torch.uint8, generator=gen)
    norm = Normalizer([0.0], [1.0], torch.device("cpu"), crop=8)
    out = BatchAugment(AugmentConfig(crop=8, **STILL))(images, norm, gen)
    assert out.shape == (16, 1, 8, 8)
    unit = images.float() / 255
    offsets = set()
    for i in range(16):
        found = [(t, left) for t in range(5) for left in range(5)
                 if torch.allclose(out[i], unit[i, :, t:t + 8, left:left + 8], atol=1e-5)]
        assert found, i
        offsets.add(found[0])
    assert len(offsets) > 4  # offsets vary
    flipped = BatchAugment(AugmentConfig(crop=8, **{**STILL, "rotation": 10, "hflip": True}))(images, norm, gen)
    assert flipped.shape == (16, 1, 8, 8)


def test_tencrop_at_the_crop_size_cuts_the_centre_and_corners_in_torch_and_numpy_alike():
    from emoclf.inference.onnx_predict import tta_views as np_views

    x = torch.randn(2, 1, 12, 12)
    views = tta_views(x, "tencrop", crop=8)
    assert len(views) == 10 and all(v.shape == (2, 1, 8, 8) for v in views)
    assert torch.equal(views[0], x[..., 2:10, 2:10]) and torch.equal(views[1], x[..., 2:10, 2:10].flip(-1))
    assert torch.equal(views[2], x[..., :8, :8]) and torch.equal(views[8], x[..., 4:, 4:])
    assert torch.equal(tta_views(x, "none", crop=8)[0], x[..., 2:10, 2:10])
    assert len(tta_views(x, "flip", crop=8)) == 2
    assert torch.equal(tta_views(views[0], "none", crop=8)[0], views[0])  # already at the crop size
    for mode in ("none", "flip", "tencrop"):
        ours, theirs = tta_views(x, mode, crop=8), np_views(x.numpy(), mode, crop=8)
        assert len(ours) == len(theirs)
        assert all(np.array_equal(a.numpy(), b) for a, b in zip(ours, theirs))


def test_config_checks_and_nesterov_is_explicit(tmp_path):
    with pytest.raises(ValueError, match="augment.crop=48 must be smaller than data.image_size=48"):
        load_config(None, ["augment.crop=48"])
    with pytest.raises(ValueError, match="two ways to average"):
        load_config(None, ["train.ema=0.99", "train.swa_epochs=2"])
    with pytest.raises(ValueError, match="cannot follow train.time_limit"):
        load_config(None, ["train.swa_epochs=2", "train.time_limit=5"])
    with pytest.raises(ValueError, match="out of range"):
        load_config(None, ["train.ema=1"])
    model = nn.Linear(3, 2)
    sgd = make_optimizer(load_config(None, ["train.optimizer=sgd"]), model)
    assert all(g["nesterov"] and g["momentum"] == 0.9 for g in sgd.param_groups)
    plain = make_optimizer(load_config(None, ["train.optimizer=sgd", "train.nesterov=false"]), model)
    assert not any(g["nesterov"] for g in plain.param_groups)
    cfg = load_config(None, ["train.epochs=10", "train.swa_epochs=3", "train.swa_lr=0.0001", "train.lr=0.01"])
    assert scheduled_lr(cfg, 0.0) == pytest.approx(0.01)
    assert scheduled_lr(cfg, 6.999) == pytest.approx(0.0001, rel=1e-3)  # annealed to swa_lr by the SWA start
    assert scheduled_lr(cfg, 7.0) == scheduled_lr(cfg, 9.5) == 0.0001
    assert preprocessing_crop({"image_size": 48}) == 0  # a checkpoint from before crops
    with pytest.raises(ValueError, match="preprocessing.crop"):
        preprocessing_crop({"image_size": 48, "crop": 60})


def _history(run_dir):
    with open(run_dir / "history.csv", newline="") as fh:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(fh)]


@pytest.mark.parametrize("extra", [["train.ema=0.9", "augment.mixup=0.4", "augment.crop=28", "train.tta=tencrop"],
                                   ["train.swa_epochs=2", "train.swa_lr=0.002", "augment.cutmix=1.0"]],
                         ids=["ema-mixup-crop", "swa-cutmix"])
def test_a_resumed_run_with_averaged_weights_equals_an_uninterrupted_one(small_faces, tmp_path, monkeypatch, extra):
    full = train(fast_config(small_faces, tmp_path, "full", epochs=3, extra=extra))
    train_interrupted_after(fast_config(small_faces, tmp_path, "cut", epochs=3, extra=extra), 2, monkeypatch)
    last = ck.read(tmp_path / "cut" / "last.pt")
    average = "ema_state" if "train.ema=0.9" in extra else "swa_state"  # SWA averages epochs 2 and 3
    assert average in last and "train_model_state" in last  # the average is scored, the trained weights resume
    assert any(not torch.equal(last["model_state"][k], v) for k, v in last["train_model_state"].items())
    resumed = train(fast_config(small_faces, tmp_path, "cut", epochs=3, extra=extra), resume=True)
    assert _history(resumed) == _history(full)
    a, b = ck.read(full / "last.pt"), ck.read(resumed / "last.pt")
    for k, v in a["model_state"].items():
        assert torch.equal(v, b["model_state"][k]), k
    # the average is what validation scored and what best.pt holds
    best = ck.read(full / "best.pt")
    scored = evaluate_run(full, tta="none", device="cpu")  # best.pt as validation read it: no test-time views
    assert best["metrics"]["val_f1"] == pytest.approx(scored["f1_macro"], abs=1e-4)
    assert "train_model_state" not in best and average not in best
    if best["epoch"] == a["epoch"]:
        assert all(torch.equal(v, a["model_state"][k]) for k, v in best["model_state"].items())


@pytest.fixture(scope="module")
def crop_run(small_faces, tmp_path_factory):
    """A finished run on 32 px faces that reads 24 px crops and scores with ten-crop."""
    out = tmp_path_factory.mktemp("crop")
    return train(fast_config(small_faces, out, "crop", epochs=2, extra=["augment.crop=24", "train.tta=tencrop"]))


def test_crops_and_tencrop_line_up_with_predict_and_evaluate(crop_run, small_faces):
    from emoclf.data.imaging import load_array
    from emoclf.inference.predict import Predictor
    from emoclf.runs.loading import load_run

    c = ck.read(crop_run / "best.pt")
    assert c["preprocessing"]["crop"] == 24 and c["preprocessing"]["image_size"] == 32
    files = sorted((small_faces / "validation").rglob("*.png"))[:4]
    loaded = load_run(crop_run, "cpu")
    norm = Normalizer(c["preprocessing"]["mean"], c["preprocessing"]["std"], torch.device("cpu"))
    batch = np.stack([load_array(f, 32, True, "pad") for f in files])
    x = norm(torch.from_numpy(batch))
    by_hand = 0
    with torch.no_grad():
        for top, left in ((4, 4), (0, 0), (0, 8), (8, 0), (8, 8)):
            view = x[..., top:top + 24, left:left + 24].contiguous()
            by_hand = by_hand + F.softmax(loaded.model(view), 1) + F.softmax(loaded.model(view.flip(-1)), 1)
    by_hand = by_hand / 10
    predictor = Predictor(crop_run, "cpu")
    assert predictor.tta == "tencrop"
    assert np.allclose(predictor.probabilities(batch), by_hand.numpy(), atol=1e-4)
    centre = Predictor(crop_run, "cpu", tta="none").probabilities(batch)
    with torch.no_grad():
        assert np.allclose(centre, F.softmax(loaded.model(x[..., 4:28, 4:28].contiguous()), 1).numpy(), atol=1e-4)
    metrics = evaluate_run(crop_run, device="cpu")
    with open(f"{metrics['out_dir']}/predictions.csv", newline="") as fh:
        rows = {r["path"]: r for r in csv.DictReader(fh)}
    row = rows[str(files[0])] if str(files[0]) in rows else next(r for p, r in rows.items() if p.endswith(files[0].name)
                                                                  and files[0].parent.name in p)
    probs = predictor.probabilities(batch[:1])[0]
    assert np.allclose([float(row[f"p_{n}"]) for n in predictor.class_names], probs, atol=1e-3)


def test_a_checkpoint_without_a_crop_is_read_as_before(crop_run, tmp_path):
    from emoclf.inference.predict import Predictor

    c = ck.read(crop_run / "best.pt")
    c["preprocessing"].pop("crop")
    c["config"]["augment"]["crop"] = 0
    c["config"]["data"]["image_size"] = 24
    c["preprocessing"]["image_size"] = 24
    ck.save(c, tmp_path / "old.pt")
    predictor = Predictor(tmp_path / "old.pt", "cpu", tta="none")
    assert predictor.norm.crop == 0
    probs = predictor.probabilities(np.zeros((2, 1, 24, 24), dtype=np.uint8))
    assert probs.shape == (2, 3)


def test_export_reads_the_crop_size_and_onnx_predicts_as_torch(crop_run, small_faces, tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from emoclf.inference.export import export_run
    from emoclf.inference.onnx_predict import OnnxPredictor
    from emoclf.inference.predict import Predictor

    out = export_run(crop_run, "onnx", tmp_path / "model.onnx")
    meta = json.loads((tmp_path / "model.onnx.json").read_text())
    assert meta["crop"] == 24 and meta["image_size"] == 32 and meta["input_shape"][-2:] == [24, 24]
    files = sorted((small_faces / "validation").rglob("*.png"))[:3]
    onnx_pred, torch_pred = OnnxPredictor(out, "cpu"), Predictor(crop_run, "cpu")
    assert onnx_pred.tta == "tencrop"
    for f in files:
        a, b = onnx_pred.predict_file(f).record, torch_pred.predict_file(f).record
        assert a["label"] == b["label"]
        assert all(abs(a["scores"][k] - b["scores"][k]) < 1e-4 for k in a["scores"])


def test_validation_during_training_scores_the_centre_crop(crop_run):
    loaded_cfg = ck.read(crop_run / "best.pt")
    norm = Normalizer.for_preprocessing(loaded_cfg["preprocessing"], torch.device("cpu"))
    assert norm.crop == 24
    model, _ = ck.model_from_checkpoint(loaded_cfg)
    images = np.zeros((3, 1, 32, 32), dtype=np.uint8)
    assert predict_logits(model, images, norm, 2).shape == (3, 3)


@pytest.mark.slow
def test_the_feature_benchmark_prints_its_table(capsys):
    from conftest import script_module

    bench = script_module("benchmark_features")
    assert bench.main(["--images", "20", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    for row in ("off", "train.ema=0.999", "augment.crop=40", "SWA BatchNorm refresh", "scoring, tencrop at crop 40"):
        assert row in out
