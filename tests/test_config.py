"""Config: defaults < YAML < --set, strict keys, ranges, safe YAML, round trip."""
from __future__ import annotations

import pytest

from emoclf.config import Config, from_dict, load_config, parse_override, save_config, to_dict
from emoclf.models import check_model_name
from emoclf.training.trainer import train
from emoclf.utils.yamlio import read_yaml


def test_precedence_defaults_yaml_override(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("train:\n  epochs: 7\n  lr: 0.01\nmodel:\n  name: resnet18\n")
    cfg = load_config(str(path), ["train.epochs=3", "data.drop_classes=[disgust]", "seed=5"])
    assert cfg.train.epochs == 3  # --set beats YAML
    assert cfg.train.lr == 0.01  # YAML beats default
    assert cfg.train.batch_size == Config().train.batch_size  # default kept
    assert cfg.data.drop_classes == ["disgust"]
    assert cfg.seed == 5
    assert cfg.output.name == "exp"  # run name from the config file name


def test_a_key_given_twice_is_an_error_not_a_silent_replacement(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("train:\n  epochs: 7\nmodel:\n  name: resnet18\ntrain:\n  lr: 0.01\n")
    with pytest.raises(ValueError, match=r"found the key 'train' twice \(lines 1 and 5\)"):
        load_config(str(path))
    path.write_text("output:\n  name: a\n  name: b\n")  # any key, at any depth (a name with 'tag' in it too)
    with pytest.raises(ValueError, match=r"found the key 'name' twice \(lines 2 and 3\)"):
        load_config(str(path))
    path.write_text("tags: 1\ntags: 2\n")
    with pytest.raises(ValueError, match=r"^Config file .*: found the key 'tags' twice.*sections\)\.$"):
        read_yaml(path)
    path.write_text("base: &b {epochs: 7}\ntrain:\n  <<: *b\n  lr: 0.01\n")  # a merge key is not a repeat
    assert read_yaml(path)["train"] == {"epochs": 7, "lr": 0.01}


def test_off_is_a_choice_although_yaml_reads_it_as_false():
    assert load_config(None, ["train.amp=off", "train.channels_last=off"]).train.amp == "off"
    assert load_config(None, ["train.channels_last=on"]).train.channels_last == "on"
    with pytest.raises(ValueError, match="train.amp must be one of auto, bf16, fp16, off; got True"):
        load_config(None, ["train.amp=yes"])


def test_override_values_are_yaml_not_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_config(None, ["train.lr=1e-3"]).train.lr == 1e-3  # YAML 1.1 reads it as a string; coerced
    assert parse_override("model.weights_path=null") == {"model": {"weights_path": None}}
    cfg = load_config(None, ["model.name=__import__('os')"])  # a plain string, never evaluated
    with pytest.raises(ValueError, match="Unknown model '__import__"):  # checked by the models layer
        check_model_name(cfg.model.name)
    with pytest.raises(ValueError, match="Unknown model '__import__"):  # before a run folder is made
        train(cfg)
    assert not (tmp_path / "outputs").exists()
    with pytest.raises(ValueError, match="model.name must be str"):
        load_config(None, ["model.name=[1, 2]"])


@pytest.mark.parametrize("override, message", [
    ("train.epoch=3", "Did you mean 'epochs'"),
    ("trian.epochs=3", "Did you mean 'train'"),
    ("train.epochs=0", r"train.epochs=0 is out of range; allowed: \[1, 10000\]"),
    ("train.lr=-1", "out of range"),
    ("train.optimizer=adamm", "Did you mean 'adam'"),
    ("data.image_size=abc", "data.image_size must be int"),
    ("data.grayscale=maybe", "data.grayscale must be bool"),
    ("train.epochs", "section.key=value"),
])
def test_bad_values_name_the_problem(override, message):
    with pytest.raises(ValueError, match=message):
        load_config(None, [override])


def test_yaml_object_tags_are_refused(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("train: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ValueError, match="YAML tag that builds objects"):
        read_yaml(path)


def test_round_trip_through_saved_yaml(tmp_path):
    cfg = load_config("configs/resnet18.yaml", ["train.epochs=2", "data.mean=[0.5]", "data.grayscale=true"])
    save_config(cfg, tmp_path / "config.yaml")
    again = from_dict(read_yaml(tmp_path / "config.yaml"))
    assert to_dict(again) == to_dict(cfg)


def test_shipped_configs_load():
    for name in ("cnn", "resnet18", "mobilenet_v3", "default"):
        cfg = load_config(f"configs/{name}.yaml")
        assert cfg.model.name


def test_default_yaml_documents_every_key():
    documented = read_yaml("configs/default.yaml")
    assert to_dict(from_dict(documented)) == to_dict(Config())
    for section, values in to_dict(Config()).items():
        if isinstance(values, dict):
            assert set(documented[section]) == set(values), section


def test_default_yaml_is_generated_from_the_dataclasses_and_up_to_date():
    from pathlib import Path

    from emoclf.config import default_yaml

    path = Path(__file__).resolve().parents[1] / "configs" / "default.yaml"
    assert path.read_text(encoding="utf-8") == default_yaml(), "run: python scripts/write_default_config.py"
    defaults = to_dict(Config())
    assert to_dict(load_config(str(path))) == {**defaults, "output": {**defaults["output"], "name": "default"}}


def test_ranges_and_choices_come_from_the_field_metadata():
    from emoclf.config import TTA_MODES, allowed, rules

    assert allowed(rules("data", "image_size")) == "[8, 1024]"
    assert allowed(rules("train", "lr")) == "(0, 10]"
    assert rules("train", "tta")["choices"] == TTA_MODES
    with pytest.raises(ValueError, match=r"train.lr=0.0 is out of range; allowed: \(0, 10\]"):
        load_config(None, ["train.lr=0"])
    with pytest.raises(ValueError, match=r"seed=-1 is out of range; allowed: \[0, 4294967295\]"):
        load_config(None, ["seed=-1"])


def test_model_channels_are_checked_item_by_item():
    assert load_config(None, ["model.channels=16,32,64"]).model.channels == [16, 32, 64]
    with pytest.raises(ValueError, match=r"model.channels\[1\]=0 is out of range; allowed: \[1, 1024\]"):
        load_config(None, ["model.channels=[16,0]"])
    with pytest.raises(ValueError, match=r"model.channels\[0\] must be int, got 'wide'"):
        load_config(None, ["model.channels=wide"])
    with pytest.raises(ValueError, match="model.channels lists 7 blocks; the cnn has 1 to 6"):
        load_config(None, ["model.channels=[8,8,8,8,8,8,8]"])
