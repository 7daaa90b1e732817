"""The Python API: the same runs, records and messages as the command line, and the docs/api.md example runs."""
from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, tiny_overrides
from PIL import Image

import emoclf
from emoclf.cli.app import main


@pytest.fixture(scope="module")
def api_run(small_faces, tmp_path_factory):
    out = tmp_path_factory.mktemp("api")
    return emoclf.train({"model": {"name": "cnn"}, "output": {"name": "from_dict"}},
                        overrides=tiny_overrides(small_faces, out, epochs=2))


def test_train_takes_a_dict_a_path_or_a_config_with_overrides(api_run, small_faces, tmp_path):
    rows = list(csv.DictReader((api_run / "history.csv").open()))
    assert api_run.name == "from_dict" and len(rows) == 2 and (api_run / "report.md").is_file()
    cfg = emoclf.make_config(str(REPO / "configs/cnn.yaml"), {"train.epochs": 3, "data.drop_classes": ["sad"],
                                                             "output.dir": str(tmp_path)})
    assert (cfg.train.epochs, cfg.data.drop_classes, cfg.output.name, cfg.run_dir) == (3, ["sad"], "cnn",
                                                                                       tmp_path / "cnn")
    again = emoclf.make_config(cfg, ["train.epochs=5"])
    assert again.train.epochs == 5 and again.data.drop_classes == ["sad"] and cfg.train.epochs == 3
    assert emoclf.make_config({"train": {"lr": 0.01}}, {"train.lr": 0.02}).train.lr == 0.02


def test_errors_are_exceptions_with_the_command_line_messages(api_run, capsys):
    with pytest.raises(ValueError, match=r"Unknown key 'train.epoch'.*Did you mean 'epochs'") as exc:
        emoclf.train(str(REPO / "configs/cnn.yaml"), {"train.epoch": 3})
    assert main(["train", "--config", str(REPO / "configs/cnn.yaml"), "--set", "train.epoch=3"]) == 2
    assert f"emoclf train: error: {exc.value}" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="Run not found"):
        emoclf.Predictor(api_run.parent / "missing")
    with pytest.raises(ValueError, match="Unknown face detector 'hair'"):
        emoclf.evaluate(api_run, face="hair")
    with pytest.raises(ValueError, match="uint8"):
        emoclf.Predictor(api_run).predict(np.zeros((8, 8), dtype=np.float32))
    with pytest.raises(ValueError, match="takes no finished RUN folders"):
        emoclf.compare(runs=[api_run], configs=[str(REPO / "configs/cnn.yaml")], seeds=2)
    with pytest.raises(ValueError, match="list of 'section.key=value'"):
        emoclf.make_config(None, "train.epochs=3")


def test_predict_takes_a_path_a_pil_image_or_an_array_and_matches_predict_json(api_run, small_faces, capsys,
                                                                               tmp_path):
    photo = sorted((small_faces / "validation" / "happy").iterdir())[0]
    predictor = emoclf.Predictor(api_run)
    by_path = predictor.predict(photo)
    capsys.readouterr()
    assert main(["predict", str(photo), "--run", str(api_run), "--json", "--no-figure"]) == 0
    assert by_path == json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    with Image.open(photo) as img:  # a JPEG or PNG file object, not yet converted: the failing case once
        by_pil = predictor.predict(img)
    rgb, grey = (np.asarray(Image.open(photo).convert(mode)) for mode in ("RGB", "L"))
    for got in (by_pil, predictor.predict(rgb), predictor.predict(grey), predictor.predict(grey[..., None])):
        assert got["scores"] == by_path["scores"] and got["image"] is None
        assert (got["width"], got["height"]) == (by_path["width"], by_path["height"])
    jpeg = tmp_path / "face.jpg"
    Image.open(photo).save(jpeg)
    with Image.open(jpeg) as img:  # a JpegImageFile, as opened: read from memory, not as a file object
        got = predictor.predict(img)["scores"]
    want = predictor.predict(jpeg)["scores"]  # from the file, libjpeg decodes straight to grey: last digits differ
    assert got == {c: pytest.approx(p, abs=1e-4) for c, p in want.items()}
    assert predictor.class_names == ["angry", "happy", "sad"] == sorted(by_path["scores"])
    assert [r["image"] for r in predictor.predict_many([photo, str(photo)])] == [str(photo)] * 2


def test_evaluate_and_load_run(api_run):
    m = emoclf.evaluate(api_run)
    saved = json.loads((Path(m["out_dir"]) / "metrics.json").read_text())
    assert m["f1_macro"] == saved["f1_macro"] and m["num_images"] == 12
    cropped = emoclf.evaluate(api_run, face="haar", min_neighbors=5)  # each photo through its largest face's crop
    assert cropped["face"] == "haar" and cropped["face_options"] == {"min_neighbors": 5}
    assert cropped["faces_found"] + cropped["fallbacks"] == cropped["num_images"] == 12
    assert Path(cropped["out_dir"]).name.endswith("-haar") and cropped["out_dir"] != m["out_dir"]
    loaded = emoclf.load_run(api_run, device="cpu")
    assert loaded.class_names == ["angry", "happy", "sad"] and loaded.cfg.output.name == "from_dict"


SCRIPT = """
import logging, sys
import emoclf
{setup}
emoclf.train({{"model": {{"name": "cnn"}}}}, overrides={overrides!r})
"""


@pytest.mark.parametrize("setup", ["", pytest.param("logging.basicConfig(level=logging.INFO, format='mine: "
                                                     "%(message)s')", marks=pytest.mark.slow)])
def test_training_from_python_shows_each_epoch_line_once(setup, small_faces, tmp_path):
    overrides = tiny_overrides(small_faces, tmp_path, epochs=2)
    code = SCRIPT.format(setup=setup, overrides=overrides)
    err = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300).stderr
    lines = [line for line in err.splitlines() if re.search(r"epoch \d/2 ", line)]
    assert len(lines) == 2, err
    assert all(line.startswith("mine: ") == bool(setup) for line in lines), err


def test_logs_show_only_when_the_caller_configured_none(monkeypatch):
    import logging

    from emoclf.api import show_logs

    lib, root = logging.getLogger("emoclf"), logging.getLogger()
    monkeypatch.setattr(lib, "handlers", [])
    monkeypatch.setattr(lib, "level", logging.NOTSET)
    monkeypatch.setattr(root, "handlers", [logging.NullHandler()])
    show_logs()
    assert lib.handlers == [] and lib.level == logging.NOTSET  # the program set up logging: its choice
    monkeypatch.setattr(root, "handlers", [])
    show_logs()
    show_logs()
    assert len(lib.handlers) == 1 and lib.level == logging.INFO
    monkeypatch.setattr(root, "handlers", [logging.NullHandler()])  # the program sets up logging later
    logging.getLogger("emoclf.training.trainer").info("epoch 1/2")
    assert lib.handlers == [] and lib.level == logging.NOTSET  # from then on its configuration alone decides


@pytest.mark.slow
def test_the_cli_shows_each_epoch_line_once(small_faces, tmp_path):
    sets = [a for o in tiny_overrides(small_faces, tmp_path, epochs=2) for a in ("--set", o)]
    err = subprocess.run([sys.executable, "-m", "emoclf", "train", "--config", "configs/cnn.yaml", *sets],
                         capture_output=True, text=True, cwd=REPO, timeout=300).stderr
    assert len([line for line in err.splitlines() if re.search(r"epoch \d/2 ", line)]) == 2, err


def python_blocks(page: Path):
    return re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S)


def test_the_example_of_docs_api_runs(tmp_path, monkeypatch):
    """Every python block of docs/api.md, in order, in one namespace, in an empty folder (with configs/)."""
    blocks = python_blocks(REPO / "docs/api.md")
    assert len(blocks) >= 4
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__api_example__"}
    for block in blocks:
        exec(compile(block, "docs/api.md", "exec"), namespace)
    assert (tmp_path / "outputs/cnn/report.md").is_file() and (tmp_path / "outputs/cnn_wide/report.md").is_file()
    assert (tmp_path / "outputs/comparison/comparison.md").is_file()
    assert namespace["summary"]["best"]["run"] in ("cnn", "cnn_wide")
    assert namespace["metrics"]["f1_macro"] == json.loads(
        (Path(namespace["metrics"]["out_dir"]) / "metrics.json").read_text())["f1_macro"]

