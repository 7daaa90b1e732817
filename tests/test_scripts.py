"""The one-click scripts, end to end in quick mode on generated data (no network: no download, no weights)."""
from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys

import pytest
from conftest import REPO

from emoclf.data.synthetic import make_dataset

BASH = shutil.which("bash")
pytestmark = pytest.mark.skipif(BASH is None, reason="the .sh scripts need bash")


def _run(script: str, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([BASH, str(REPO / script), *args], env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture()
def env(tmp_path) -> dict:
    data = make_dataset(tmp_path / "data", classes=("happy", "sad", "surprise"), train_per_class=8,
                        val_per_class=3, size=32, seed=3)
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return dict(os.environ, PYTHONPATH=path, EMOCLF_PYTHON=sys.executable, EMOCLF_DATA_ROOT=str(data),
                EMOCLF_OUTPUTS=str(tmp_path / "outputs"), EMOCLF_SET="model.pretrained=false")


def _rows(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("script", ["run_pipeline.sh", "run_comparison.sh"])
def test_scripts_parse(script):
    assert subprocess.run([BASH, "-n", str(REPO / script)]).returncode == 0


def test_quick_pipeline_then_comparison(env, tmp_path):
    res = _run("run_pipeline.sh", env, "--quick", "--no-install", "--set", "train.batch_size=16")
    assert res.returncode == 0, res.stderr[-3000:]
    out = tmp_path / "outputs"
    rows = _rows(out / "comparison" / "comparison.csv")
    assert [r["run"] for r in rows] == ["cnn", "resnet18", "mobilenet_v3"]
    assert all(r["epochs_trained"] == "1" and r["image_size"] == "32" for r in rows)
    assert "batch_size: 16" in (out / "resnet18" / "config.yaml").read_text()  # --set reached every run
    assert f"Report: {out}/comparison/comparison.md" in res.stdout
    stamps = {name: (out / name / "best.pt").stat().st_mtime_ns for name in ("resnet18", "mobilenet_v3")}

    res = _run("run_comparison.sh", env, "--quick", "--no-install", "--set", "train.batch_size=16")
    assert res.returncode == 0, res.stderr[-3000:]
    rows = _rows(out / "comparison_resnet18_vs_mobilenet_v3" / "comparison.csv")
    assert [r["run"] for r in rows] == ["resnet18", "mobilenet_v3"]
    assert stamps == {n: (out / n / "best.pt").stat().st_mtime_ns for n in stamps}  # reused, not retrained


def test_pipeline_stops_at_the_first_failing_step(env, tmp_path):
    env["EMOCLF_SET"] += " train.epochs=0"
    res = _run("run_pipeline.sh", env, "--quick", "--no-install")
    assert res.returncode != 0
    assert "train.epochs=0 is out of range" in res.stderr and 'stopped at step "train and compare"' in res.stderr
    assert not (tmp_path / "outputs" / "comparison").exists()
    res = _run("run_pipeline.sh", env, "--bogus")
    assert res.returncode == 2 and "unknown option --bogus" in res.stderr


def test_pipeline_checks_its_environment_before_any_step(env, tmp_path):
    env["EMOCLF_DATA_ROOT"] = str(tmp_path / "missing")
    res = _run("run_pipeline.sh", env, "--quick", "--no-install")
    assert res.returncode == 2 and f"EMOCLF_DATA_ROOT={tmp_path / 'missing'} is not a folder" in res.stderr
    env["EMOCLF_PYTHON"] = "false"  # an interpreter without emoclf and torch
    res = _run("run_pipeline.sh", env, "--quick", "--no-install")
    assert res.returncode == 2 and "--no-install needs emoclf, torch and torchvision" in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "outputs").exists()
    res = _run("run_pipeline.sh", env, "--help")
    assert res.returncode == 0 and "EMOCLF_COMPARISON" in res.stdout and "set -euo" not in res.stdout


def test_pipeline_downloads_a_local_source(env, tmp_path):
    probe = subprocess.run([sys.executable, "-m", "emoclf", "download", "--help"], env=env, capture_output=True)
    if probe.returncode != 0:
        pytest.skip("emoclf download is not part of this build yet")
    source = env.pop("EMOCLF_DATA_ROOT")
    env["EMOCLF_DATA"] = str(tmp_path / "downloaded")
    res = _run("run_pipeline.sh", env, source, "--quick", "--no-install")
    assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path / "downloaded").exists()
    assert len(_rows(tmp_path / "outputs" / "comparison" / "comparison.csv")) == 3


def _python_script(script: str, *args: str) -> str:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    res = subprocess.run([sys.executable, str(REPO / "scripts" / script), *args], env=env, capture_output=True,
                         text=True, timeout=600, cwd=REPO)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def test_speed_benchmark_prints_its_table(tmp_path):
    data = make_dataset(tmp_path / "data", classes=("happy", "sad"), train_per_class=16, val_per_class=4, size=48,
                        seed=4)
    out = _python_script("benchmark_speed.py", "--data", str(data), "--images", "32", "--steps", "2",
                         "--models", "cnn", "--rounds", "2", "--set", "train.batch_size=8", "--workers", "1")
    row = next(line for line in out.splitlines() if line.startswith("cnn "))
    rates = [float(v) for v in row.split()[3:]]  # a, b, c, c', b/a, b/c, b/c', evaluation
    assert len(rates) == 8 and all(r > 0 for r in rates)
    assert rates[4] == pytest.approx(rates[1] / rates[0], abs=0.01)
    assert "rounds (a/b/c/c'):" in out


def test_predict_benchmark_prints_its_table():
    pytest.importorskip("onnxruntime")
    out = _python_script("benchmark_predict.py", "--repeats", "2", "--warmup", "1")
    rows = [line for line in out.splitlines() if line.startswith("| cnn") or line.startswith("| mobilenet")]
    assert len(rows) == 4  # two models, with and without --haar
    assert all(float(r.split("|")[4].split()[0]) > 0 for r in rows)
