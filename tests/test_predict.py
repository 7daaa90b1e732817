"""emoclf predict: records, validation-identical preprocessing, faces, fallbacks, folders, JSON, default run."""
from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from emoclf.cli.app import main
from emoclf.data.synthetic import face_photo
from emoclf.inference.predict import Predictor, find_images
from emoclf.runs.folder import default_run

skimage_data = pytest.importorskip("skimage.data")
RECORD_KEYS = {"image", "run", "width", "height", "haar", "faces", "label", "score", "scores"}


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict:
    """A real face photo, the same photo twice at two sizes, a face-free image and a drawn face."""
    d = tmp_path_factory.mktemp("photos")
    astro = Image.fromarray(skimage_data.astronaut())
    astro.save(d / "astronaut.jpg", quality=92)
    two = Image.new("RGB", (512 + 400, 512), (128, 128, 128))
    two.paste(astro.resize((400, 400)), (0, 112))
    two.paste(astro, (400, 0))
    two.save(d / "two_faces.png")
    Image.new("RGB", (300, 200), (30, 80, 160)).save(d / "no_face.png")
    face_photo(128, faces=1).save(d / "drawn.webp")
    return {p.stem: p for p in d.iterdir()}


def _json_lines(capsys, argv) -> list:
    assert main(argv) == 0
    out = capsys.readouterr().out
    return [json.loads(line) for line in out.splitlines()]  # stdout holds JSON Lines and nothing else


def _check_scores(item: dict, classes) -> None:
    assert list(item["scores"]) == list(classes)
    assert abs(sum(item["scores"].values()) - 1) < 1e-4
    assert all(0 <= p <= 1 for p in item["scores"].values())
    assert item["label"] == max(item["scores"], key=item["scores"].get)
    assert item["score"] == item["scores"][item["label"]]


def test_whole_image_scores_match_validation(runs):
    """Without --haar every image goes through exactly the validation preprocessing of the run."""
    for run in (runs.cnn, runs.rgb):  # grayscale and RGB
        with open(run / "predictions.csv", newline="", encoding="utf-8") as fh:
            expected = list(csv.DictReader(fh))[:6]
        pred = Predictor(run, "cpu")  # BatchNorm folded into the convolutions: the scores stay those of validation
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in pred.loaded.model.modules())
        for row in expected:
            rec = pred.predict_file(Path(row["path"])).record
            assert rec["faces"] == [] and "fallback" not in rec and rec["haar"] is False
            for c in pred.class_names:
                assert rec["scores"][c] == pytest.approx(float(row[f"p_{c}"]), abs=2e-4)


def test_generated_image_record_and_figure(runs, photos, tmp_path):
    pred = Predictor(runs.cnn, "cpu")
    out = pred.predict_file(photos["drawn"], keep_images=True)
    assert RECORD_KEYS <= set(out.record)
    assert (out.record["width"], out.record["height"]) == Image.open(photos["drawn"]).size
    _check_scores(out.record, pred.class_names)
    assert out.inputs.shape == (1, 1, 32, 32)


def test_haar_finds_the_astronaut(runs, photos, capsys, tmp_path):
    recs = _json_lines(capsys, ["predict", str(photos["astronaut"]), "--run", str(runs.rgb), "--haar",
                                "--json", "--out", str(tmp_path)])
    assert len(recs) == 1
    rec = recs[0]
    assert RECORD_KEYS <= set(rec) and "fallback" not in rec and rec["haar"] is True
    assert len(rec["faces"]) == 1
    face = rec["faces"][0]
    x, y, w, h = face["box"]
    assert 150 <= x <= 200 and 40 <= y <= 90 and 70 <= w <= 130
    cx, cy, cw, ch = face["crop"]
    assert cw == ch > w and cx <= x and cy <= y and cx + cw >= x + w and cy + ch >= y + h
    _check_scores(face, rec["scores"])
    assert (rec["label"], rec["scores"]) == (face["label"], face["scores"])
    assert Path(rec["figure"]).is_file() and rec["run"] == str(runs.rgb)


def test_min_face_and_margin_options(runs, photos, capsys, tmp_path):
    args = ["predict", str(photos["astronaut"]), "--run", str(runs.rgb), "--haar", "--json", "--no-figure"]
    rec, = _json_lines(capsys, args + ["--min-face", "200"])  # her face is about 100 px: not looked for
    assert rec["faces"] == [] and rec["fallback"]
    assert main(args + ["--min-face", "-1"]) == 2
    assert "--min-face must be 0" in capsys.readouterr().err
    assert main(args + ["--margin", "-1"]) == 2
    out, err = capsys.readouterr()
    assert "--margin must be between 0 and 2" in err and "could be read" not in err and out == ""


def test_face_options_without_haar_are_said_to_do_nothing(runs, photos, capsys, caplog, tmp_path):
    _json_lines(capsys, ["predict", str(photos["astronaut"]), "--run", str(runs.cnn), "--json", "--no-figure",
                         "--cascade", "alt2", "--min-face", "30"])
    assert "--min-face, --cascade only apply with --haar" in caplog.text


def test_two_faces_scored_largest_first(runs, photos, capsys, tmp_path):
    rec = _json_lines(capsys, ["predict", str(photos["two_faces"]), "--run", str(runs.cnn), "--haar", "--json",
                               "--out", str(tmp_path)])[0]
    assert len(rec["faces"]) == 2
    big, small = rec["faces"]
    assert big["box"][2] > small["box"][2]
    assert big["box"][0] > 400 > small["box"][0]
    for face in rec["faces"]:
        _check_scores(face, rec["scores"])
    assert Path(rec["figure"]).stat().st_size > 10_000


def test_no_face_falls_back_to_the_whole_image(runs, photos, capsys, tmp_path):
    recs = _json_lines(capsys, ["predict", str(photos["no_face"]), "--run", str(runs.cnn), "--haar", "--json",
                                "--no-figure", "--out", str(tmp_path)])
    rec = recs[0]
    assert rec["faces"] == [] and rec["fallback"] == "whole_image"
    _check_scores(rec, rec["scores"])
    assert "figure" not in rec and not list(tmp_path.iterdir())


def test_human_output_names_the_run_and_the_fallback(runs, photos, capsys, tmp_path):
    assert main(["predict", str(photos["no_face"]), str(photos["astronaut"]), "--run", str(runs.cnn), "--haar",
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"Using run: {runs.cnn}" in out
    assert "no face found, whole image" in out and "1 face(s)" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["astronaut_haar_pred.png", "no_face_haar_pred.png"]


def test_folder_writes_csv_and_skips_broken_images(runs, photos, capsys, tmp_path, caplog):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("drawn", "astronaut", "no_face"):
        shutil.copy(photos[name], folder)
    (folder / "broken.jpg").write_bytes(b"this is not a JPEG")
    (folder / "notes.txt").write_text("not an image")
    (folder / "clip.mp4").write_bytes(b"")  # videos are scored only when named
    out = tmp_path / "out"
    recs = _json_lines(capsys, ["predict", str(folder), "--run", str(runs.rgb), "--json", "--haar",
                                "--out", str(out)])
    assert [Path(r["image"]).name for r in recs] == ["astronaut.jpg", "drawn.webp", "no_face.png"]
    assert "broken.jpg" in caplog.text and "Not scoring 1 video file(s)" in caplog.text
    with open(out / "predictions.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [Path(r["image"]).name for r in rows] == ["astronaut.jpg", "drawn.webp", "no_face.png"]
    astro = rows[0]
    assert astro["face"] == "1" and [int(astro[k]) for k in "xywh"] == recs[0]["faces"][0]["box"]
    assert rows[2]["face"] == "0" and rows[2]["fallback"] == "whole_image"
    assert float(rows[2]["p_" + recs[2]["label"]]) == pytest.approx(recs[2]["score"], abs=1e-5)
    assert len(list(out.glob("*_pred.png"))) == 3


def test_checkpoint_file_as_run(runs, photos, capsys, tmp_path):
    rec = _json_lines(capsys, ["predict", str(photos["drawn"]), "--run", str(runs.cnn / "best.pt"), "--json",
                               "--no-figure"])[0]
    assert rec["run"] == str(runs.cnn / "best.pt")


def test_only_broken_images_is_an_error(runs, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG broken")
    assert main(["predict", str(bad), "--run", str(runs.cnn), "--no-figure"]) == 2
    assert "could be read" in capsys.readouterr().err


def test_missing_inputs_and_runs_are_named(runs, tmp_path, capsys):
    assert main(["predict", str(tmp_path / "nope.jpg"), "--run", str(runs.cnn)]) == 2
    assert "nope.jpg" in capsys.readouterr().err
    assert main(["predict", str(tmp_path), "--runs-dir", str(tmp_path / "empty")]) == 2
    assert "No finished run" in capsys.readouterr().err
    with pytest.raises(ValueError, match="No images"):
        find_images([str(tmp_path)])


def test_default_run_prefers_the_latest_comparison(runs, tmp_path):
    outputs = tmp_path / "outputs"
    a, b = outputs / "a", outputs / "b"
    shutil.copytree(runs.cnn, a)
    shutil.copytree(runs.cnn, b)
    os.utime(a / "metrics.json", (1e9, 1e9))
    assert default_run(outputs)[0] == b  # newest finished run
    os.utime(b / "metrics.json", (1e9 - 10, 1e9 - 10))
    assert default_run(outputs)[0] == a
    comp = outputs / "comparison" / "comparison.json"
    comp.parent.mkdir()
    comp.write_text(json.dumps({"best": {"run": "b", "run_dir": str(b.resolve())}}))
    run, why = default_run(outputs)
    assert run == b.resolve() and "comparison" in why
    shutil.rmtree(b)  # the comparison's best run is gone: fall back to the newest finished run
    assert default_run(outputs)[0] == a


def test_predict_without_run_uses_the_default(runs, photos, tmp_path, capsys, monkeypatch):
    shutil.copytree(runs.cnn, tmp_path / "outputs" / "cnn")
    monkeypatch.chdir(tmp_path)
    assert main(["predict", str(photos["drawn"]), "--no-figure"]) == 0
    assert "Using run: outputs/cnn" in capsys.readouterr().out
