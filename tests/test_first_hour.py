"""What a new user meets first: offline downloads, a recorded dataset reused, messages that name the next step."""
from __future__ import annotations

import sys
import types
import zipfile
from pathlib import Path

import pytest

from emoclf.data import download as dl
from emoclf.data.synthetic import make_dataset


def _offline(monkeypatch):
    import requests

    def offline(**kwargs):
        raise requests.exceptions.ConnectionError("HTTPSConnectionPool(host='drive.google.com', port=443): Max "
                                                  "retries exceeded with url: /uc?id=x (Caused by "
                                                  "NameResolutionError(\"<urllib3.connection>: no such host\"))")

    monkeypatch.setitem(sys.modules, "gdown", types.SimpleNamespace(download=offline))


def test_offline_drive_message_is_short_and_names_the_browser_page(tmp_path, monkeypatch):
    _offline(monkeypatch)
    with pytest.raises(RuntimeError) as err:
        dl.download(None, str(tmp_path / "data"))
    text = str(err.value)
    assert "https://drive.google.com/file/d/1aPHE00zkDhEV1waJKhaOJMdN6-lUc0iT/view" in text
    assert "--source path/to/archive.zip" in text and "HTTPSConnectionPool" not in text and len(text) < 400


def test_a_recorded_dataset_is_reused_without_a_source(tmp_path, monkeypatch):
    data = make_dataset(tmp_path / "src" / "course", classes=("happy", "sad"), train_per_class=3, val_per_class=1,
                        size=16, seed=0)
    with zipfile.ZipFile(tmp_path / "course.zip", "w") as zf:
        for p in (p for p in data.rglob("*") if p.is_file()):
            zf.write(p, p.relative_to(tmp_path / "src"))
    first = dl.download(str(tmp_path / "course.zip"), str(tmp_path / "data"))
    _offline(monkeypatch)  # a second run without --source must not go to the network
    again = dl.download(None, str(tmp_path / "data"))
    assert again.already and again.root == first.root and "course.zip" in again.summary()
    # --force without --source unpacks the recorded course.zip again (offline too), not the default link
    forced = dl.download(None, str(tmp_path / "data"), force=True)
    assert not forced.already and forced.root == first.root and forced.counts == first.counts
    (tmp_path / "data" / dl.MARKER).unlink()  # nothing recorded: the default source, which needs the network
    with pytest.raises(RuntimeError, match="network is unreachable"):
        dl.download(None, str(tmp_path / "data"), force=True)


def _collapsed_folder(tmp_path, names=("angry", "happy", "sad")):
    import json

    import numpy as np

    from emoclf.runs.metrics import write_confusion_csv

    folder = tmp_path / "run"
    folder.mkdir()
    cm = np.zeros((len(names), len(names)), dtype=np.int64)
    cm[:, 1] = 40  # every image predicted happy
    write_confusion_csv(folder / "confusion_matrix.csv", cm, list(names))
    (folder / "metrics.json").write_text(json.dumps({"accuracy": 1 / 3, "f1_macro": 0.17, "loss": 1.1,
                                                     "num_images": 120, "inference_ms_per_image": 2.5,
                                                     "inference_batch": 256, "device": "cpu (x86_64, 2 threads)"}))
    return folder


def test_a_collapsed_model_is_warned_about_in_the_log_and_report(tmp_path, caplog):
    import numpy as np

    from emoclf.runs.report import collapse_warning, write_run_report

    folder = _collapsed_folder(tmp_path)
    report = write_run_report(folder, "cnn").read_text()
    assert "**Warning:** The model predicts happy for 100% of the 120 images" in report
    assert "a single class" in report and "train.class_weights=balanced" in report
    assert any("predicts happy" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
    assert "batches of 256" in report and "comparison.md shows other" in report  # what ms/image measured
    healthy = np.diag([30, 30, 30]) + 2
    assert collapse_warning(["a", "b", "c"], healthy) is None
    nearly = np.array([[0, 30, 0], [0, 29, 1], [0, 30, 0]])
    assert "nearly a single class (2 of 3 predicted at all)" in collapse_warning(["a", "b", "c"], nearly)
    mostly_one = np.array([[2, 0], [0, 98]])  # data that are mostly one class, predicted right
    assert collapse_warning(["a", "b"], mostly_one) is None


def test_comparison_warns_about_a_collapsed_run_and_explains_its_numbers(tmp_path):
    from emoclf.comparison.report import collapse_warnings, write_comparison_report

    folder = _collapsed_folder(tmp_path)
    rows = [{"run": "cnn", "model": "cnn", "data_root": "data", "split": "validation", "scores_dir": str(folder),
             "run_dir": str(folder), "f1_macro": 0.17}]
    warnings = collapse_warnings(rows)
    assert len(warnings) == 1 and warnings[0].startswith("cnn: the model predicts happy")
    summary = {"runs": rows, "best": rows[0], "warnings": [], "collapsed": warnings, "device": "cpu",
               "figures": ["validation_curves.png"]}
    text = write_comparison_report(tmp_path / "cmp", summary).read_text()
    assert "**Warning:** cnn: the model predicts happy" in text
    assert "A run's own report.md shows another inference ms/image" in text
    assert "on loss: each run's lowest validation loss" in text


def test_the_loss_star_sits_on_the_lowest_loss():
    from emoclf.comparison.figures import star_epoch

    h = {"epoch": [1, 2, 3], "val_f1": [0.2, 0.3, 0.5], "val_loss": [1.0, 0.8, 1.4]}
    assert star_epoch(h, "val_f1", 3) == 2 and star_epoch(h, "val_loss", 3) == 1
    assert star_epoch(h, "val_acc", 9) is None


def test_the_epoch_line_says_which_number_is_train_and_which_validation(small_faces, tmp_path, caplog):
    from conftest import fast_config

    from emoclf.training.trainer import train

    train(fast_config(small_faces, tmp_path, epochs=1))
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch 1/1"))
    assert "train/validation  loss" in line and "macro F1" in line and "*best validation macro F1" in line


def test_a_lone_validation_folder_names_the_layouts_that_train(tmp_path):
    from emoclf.config import DataConfig
    from emoclf.data.dataset import discover

    data = make_dataset(tmp_path / "d", classes=("happy", "sad"), train_per_class=2, val_per_class=2, size=16)
    import shutil

    shutil.rmtree(data / "train")
    with pytest.raises(ValueError) as err:
        discover(DataConfig(root=str(data)), 0)
    text = str(err.value)
    assert "holds validation/ but no train/ folder" in text and "train/<class>/ alone" in text
    assert "docs/data.md" in text and f"emoclf evaluate RUN --data {data}" in text and "found [" not in text


def test_a_validation_split_held_out_of_train_is_said_on_the_console(tmp_path, caplog):
    import shutil

    from emoclf.config import DataConfig
    from emoclf.data.dataset import discover

    data = make_dataset(tmp_path / "d", classes=("happy", "sad"), train_per_class=10, val_per_class=2, size=16)
    shutil.rmtree(data / "validation")
    ds = discover(DataConfig(root=str(data)), 0)
    assert ds.val_from_train
    assert any("No validation folder" in r.getMessage() and "held out for validation" in r.getMessage()
               for r in caplog.records)


def test_evaluate_on_own_photos_writes_no_cache_into_them(runs, tmp_path, monkeypatch, caplog):
    from emoclf.runs.evaluation import evaluate_run

    photos = make_dataset(tmp_path / "photos", classes=("happy", "sad"), train_per_class=0, val_per_class=3,
                          size=40, seed=5) / "validation"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    m = evaluate_run(runs.cnn, data=str(photos), out=str(tmp_path / "eval"))
    assert m["num_images"] > 0
    assert not list(photos.rglob(".emoclf-cache")) and list((tmp_path / "cache" / "emoclf").glob("*.npy"))
    assert any(str(tmp_path / "cache" / "emoclf") in r.getMessage() for r in caplog.records)  # said where


def test_supports_are_whole_numbers_whatever_scikit_learn_prints(monkeypatch):
    import numpy as np
    import sklearn.metrics

    from emoclf.runs.metrics import classification_report

    real = sklearn.metrics.classification_report

    def floats(*args, **kwargs):  # as some versions report the support over a subset of the labels
        out = real(*args, **kwargs)
        if isinstance(out, dict):
            return {k: ({**v, "support": float(v["support"])} if isinstance(v, dict) else v) for k, v in out.items()}
        return out.replace("         3\n", "       3.0\n")

    monkeypatch.setattr(sklearn.metrics, "classification_report", floats)
    text = classification_report(np.array([0, 0, 0, 1, 1, 1]), np.array([0, 0, 2, 1, 1, 1]), ["a", "b", "c"])
    assert ".0\n" not in text and "3.0" not in text
    assert [line.split()[-1] for line in text.splitlines()[2:4]] == ["3", "3"]


def test_count_colour_bars_have_whole_number_ticks(tmp_path):
    import numpy as np

    from emoclf.utils.plotting import heatmap, pyplot

    fig, ax = pyplot().subplots()
    heatmap(ax, np.array([[3, 1], [0, 2]]), ["a", "b"], False, "counts")
    ticks = ax.collections[0].colorbar.get_ticks()
    assert len(ticks) and all(float(t).is_integer() for t in ticks)


def test_inspect_says_when_the_classes_are_balanced(tmp_path):
    from emoclf.data.inspect import inspect_dataset

    data = make_dataset(tmp_path / "d", classes=("happy", "sad"), train_per_class=4, val_per_class=2, size=16)
    inspect_dataset(str(data), out=str(tmp_path / "inspect"))
    text = (tmp_path / "inspect" / "inspect.md").read_text()
    assert "Balanced train classes: 2 classes of 4 images each." in text and "smallest: happy" not in text


def test_predict_outside_the_project_says_where_it_looked(tmp_path, monkeypatch, capsys):
    from emoclf.cli.app import main

    monkeypatch.chdir(tmp_path)
    assert main(["predict", "photo.jpg"]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "outputs") in err and "--runs-dir PROJECT/outputs" in err and "--run" in err


@pytest.mark.parametrize("command", ["download", "inspect", "train", "evaluate", "compare", "predict", "export",
                                     "demo-data", "models"])
def test_every_help_page_has_a_description_and_an_example(command, capsys):
    from emoclf.cli.app import main

    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    assert "examples:\n  emoclf " + command in out
    assert out.split("\n\n")[1].strip() and not out.split("\n\n")[1].lstrip().startswith(("options:", "positional"))


@pytest.mark.parametrize("mode, shown", [("dataset", "alegria"), ("both", "alegria (happy)")])
def test_the_dataset_s_own_class_names_are_shown_when_asked(tmp_path, monkeypatch, mode, shown):
    import json

    from conftest import fast_config

    from emoclf.data.synthetic import SPANISH
    from emoclf.runs.evaluation import evaluate_run
    from emoclf.training.trainer import train

    data = make_dataset(tmp_path / "datos", classes=("happy", "sad"), train_per_class=8, val_per_class=3, size=32,
                        seed=1, names=SPANISH)
    run = train(fast_config(data, tmp_path / "out", epochs=1, extra=[f"output.class_names={mode}"]))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["class_names"] == ["happy", "sad"]  # the model's classes stay canonical
    assert metrics["display_names"][0] == shown and metrics["dataset_class_names"]["happy"] == "alegria"
    assert f"| {shown} |" in (run / "report.md").read_text()
    assert shown in (run / "classification_report.txt").read_text()
    assert "output.class_names" not in (run / "config.yaml").read_text() or mode in (run / "config.yaml").read_text()
    ev = evaluate_run(run, out=str(tmp_path / "eval"))  # an evaluation shows the names the run saved
    assert shown in (Path(ev["out_dir"]) / "classification_report.txt").read_text()
    import emoclf.runs.figures as figures

    drawn = []
    real = figures.heatmap
    monkeypatch.setattr(figures, "heatmap", lambda ax, m, names, *a: drawn.append(names) or real(ax, m, names, *a))
    figures.plot_run(run, "again")
    assert drawn and all(names[0] == shown for names in drawn)  # the confusion matrices too
    from emoclf.inference import explain_figures
    from emoclf.inference.explain import Explainer, explain_inputs

    bars = []
    monkeypatch.setattr(explain_figures, "score_bars", lambda ax, scores, label, title, names=None:
                        bars.append((title, names)))
    photo = next((data / "validation").rglob("*.png"))
    explain_inputs(Explainer(run, device="cpu"), [str(photo)], tmp_path / "cam", all_classes=True)
    assert bars and bars[0][1]["happy"] == shown  # and the Grad-CAM figure's bars


def test_inspect_figures_show_the_dataset_s_own_class_names(tmp_path, monkeypatch):
    import emoclf.data.inspect_figures as figures
    from emoclf.data.inspect import inspect_dataset
    from emoclf.data.synthetic import SPANISH

    drawn = {}
    real = figures.save_figure
    monkeypatch.setattr(figures, "save_figure", lambda fig, out: drawn.setdefault(Path(out).name, [
        t.get_text() for ax in fig.axes for t in ax.get_xticklabels() + [ax.yaxis.label]]) and real(fig, out))
    data = make_dataset(tmp_path / "d", classes=("happy", "sad"), train_per_class=4, val_per_class=2, size=16,
                        names=SPANISH)
    inspect_dataset(str(data), out=str(tmp_path / "inspect"))
    assert "alegria (happy)" in drawn["class_distribution.png"] and "tristeza (sad)" in drawn["samples.png"]


def test_the_photo_keeps_its_size_beside_five_faces(tmp_path, monkeypatch):
    import types

    import numpy as np
    from PIL import Image

    import emoclf.inference.figures as figures

    scores = {"happy": 0.7, "sad": 0.3}
    faces = [{"box": [10 + 60 * i, 20, 50, 50], "crop": [5 + 60 * i, 15, 60, 60], "label": "happy", "score": 0.7,
              "scores": scores} for i in range(5)]
    record = {"image": "group.jpg", "run": "outputs/cnn", "faces": faces, "haar": True, "label": "happy",
              "score": 0.7, "scores": scores}
    pred = types.SimpleNamespace(record=record, original=Image.new("RGB", (600, 400)),
                                 crops=[Image.new("RGB", (60, 60))] * 5, inputs=np.zeros((5, 1, 48, 48), np.uint8))
    shares = []
    real = figures.save_figure

    def measure(fig, out):
        fig.canvas.draw()
        shares.append(fig.axes[0].get_window_extent().height / fig.bbox.height)
        return real(fig, out)

    monkeypatch.setattr(figures, "save_figure", measure)
    assert figures.plot_prediction(pred, list(scores), tmp_path / "group_pred.png") is not None
    assert shares[0] > 0.6  # the photo fills most of the figure's height, not a thumbnail in a tall column


def test_prediction_bars_show_the_names_the_run_saved(tmp_path, monkeypatch):
    import json
    import types

    import numpy as np
    from PIL import Image

    import emoclf.inference.figures as figures

    run = tmp_path / "cnn"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"display_names": ["alegria", "tristeza"]}))
    scores = {"happy": 0.7, "sad": 0.3}
    record = {"image": "me.jpg", "run": str(run), "faces": [], "haar": False, "label": "happy", "score": 0.7,
              "scores": scores}
    pred = types.SimpleNamespace(record=record, original=Image.new("RGB", (64, 64)), crops=[],
                                 inputs=np.zeros((1, 1, 48, 48), np.uint8))
    labels = []
    real = figures.save_figure
    monkeypatch.setattr(figures, "save_figure", lambda fig, out: labels.extend(
        t.get_text() for ax in fig.axes for t in ax.get_yticklabels() + [ax.title]) or real(fig, out))
    figures.plot_prediction(pred, list(scores), tmp_path / "me_pred.png")
    assert "alegria" in labels and "tristeza" in labels and "whole image: alegria (0.70)" in labels


def test_compare_counts_a_collapsed_run_among_its_warnings(monkeypatch, capsys, tmp_path):
    import emoclf.comparison.compare as compare
    from emoclf.cli.app import main

    row = {"run": "cnn", "accuracy": 0.14, "f1_macro": 0.04, "inference_ms_per_image": 1.0, "run_dir": "outputs/cnn"}
    summary = {"runs": [row], "warnings": [], "collapsed": ["cnn: the model predicts happy for 100% ..."],
               "best": row, "out_dir": str(tmp_path)}
    monkeypatch.setattr(compare, "compare", lambda *a, **k: summary)
    assert main(["compare", "outputs/cnn", "outputs/resnet18", "--out", str(tmp_path)]) == 0
    assert "1 warning(s): see above and in comparison.md" in capsys.readouterr().out
