"""The one-click scripts, end to end in quick mode on generated data (no network: no download, no weights)."""
from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, script_module

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
    env.pop("EMOCLF_SET")  # --quick alone trains ResNet18 and MobileNetV3 from scratch: no ImageNet weights, offline
    res = _run("run_pipeline.sh", env, "--quick", "--no-install", "--set", "train.batch_size=16")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "from scratch" in res.stdout
    out = tmp_path / "outputs"
    assert "pretrained: false" in (out / "resnet18" / "config.yaml").read_text()
    rows = _rows(out / "comparison" / "comparison.csv")
    assert [r["run"] for r in rows] == ["cnn", "resnet18", "mobilenet_v3"]
    assert all(r["epochs_trained"] == "1" and r["image_size"] == "32" for r in rows)
    assert "batch_size: 16" in (out / "resnet18" / "config.yaml").read_text()  # --set reached every run
    assert f"Report: {out}/comparison/comparison.md" in res.stdout
    stamps = {name: (out / name / "best.pt").stat().st_mtime_ns for name in ("resnet18", "mobilenet_v3")}

    res = _run("run_comparison.sh", env, "--quick", "--no-install", "--set", "train.batch_size=16", "--device", "cpu")
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
    data, env["EMOCLF_DATA_ROOT"] = env["EMOCLF_DATA_ROOT"], str(tmp_path / "missing")
    res = _run("run_pipeline.sh", env, "--quick", "--no-install")
    assert res.returncode == 2 and f"EMOCLF_DATA_ROOT={tmp_path / 'missing'} is not a folder" in res.stderr
    assert "pass an archive as the first argument" in res.stderr
    env["EMOCLF_DATA_ROOT"] = data
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
    from emoclf.inference.face import FACE_NAMES

    assert len(rows) == 2 * len(FACE_NAMES)  # two models, each face option
    assert [r.split("|")[3].strip() for r in rows[:len(FACE_NAMES)]] == list(FACE_NAMES)
    assert all(float(r.split("|")[4].split()[0]) > 0 for r in rows)


def test_pipeline_passes_on_the_options_its_messages_name(env, tmp_path):
    env["EMOCLF_CONFIGS"] = "configs/cnn.yaml configs/resnet18.yaml"
    assert _run("run_pipeline.sh", env, "--quick", "--no-install").returncode == 0
    res = _run("run_pipeline.sh", env, "--quick", "--no-install", "--set", "train.batch_size=8")
    assert res.returncode == 2 and "pass --overwrite" in res.stderr  # the finished run has another config
    res = _run("run_pipeline.sh", env, "--quick", "--no-install", "--set", "train.batch_size=8", "--overwrite")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "batch_size: 8" in (tmp_path / "outputs" / "cnn" / "config.yaml").read_text()


def test_data_root_given_an_archive_is_installed_like_a_source(env, tmp_path):
    import zipfile

    with zipfile.ZipFile(tmp_path / "course.zip", "w") as zf:
        zf.writestr("readme.txt", "no images in here")
    env["EMOCLF_DATA_ROOT"], env["EMOCLF_DATA"] = str(tmp_path / "course.zip"), str(tmp_path / "data2")
    res = _run("run_pipeline.sh", env, "--quick", "--no-install")
    assert "is a file: installing it as the dataset" in res.stdout
    assert res.returncode == 2 and "No dataset in" in res.stderr and "is not a folder" not in res.stderr


def test_offline_download_names_the_next_command(env, tmp_path):
    env.pop("EMOCLF_DATA_ROOT")
    env["EMOCLF_DATA"] = str(tmp_path / "data2")
    res = _run("run_pipeline.sh", env, "https://127.0.0.1:9/faces.zip", "--quick", "--no-install")  # refused at once
    assert res.returncode == 1 and "Cannot reach 127.0.0.1: the network is unreachable" in res.stderr
    assert "run_pipeline.sh path/to/archive.zip --set model.pretrained=false" in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr) < 1500


def _fake_venv(tmp_path) -> Path:
    """A virtual environment whose python logs pip calls (and installs nothing) and runs the rest for real."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(f'#!/bin/sh\nif [ "$1" = "-m" ] && [ "$2" = "pip" ]; then echo "$@" >> "{tmp_path}/pip.log"; '
                      f'exit 0; fi\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    return venv


def test_pipeline_installs_once_and_says_what_it_does(env, tmp_path):
    env["EMOCLF_VENV"] = str(_fake_venv(tmp_path))
    env.pop("EMOCLF_DATA_ROOT")
    res = _run("run_pipeline.sh", env, str(tmp_path / "missing.zip"))  # stops at the download, after the install
    assert res.returncode == 2 and "Installing emoclf into" in res.stdout and "Installed in" in res.stdout
    assert "-e ." in (tmp_path / "pip.log").read_text()
    (tmp_path / "pip.log").unlink()
    res = _run("run_pipeline.sh", env, str(tmp_path / "missing.zip"))
    assert res.returncode == 2 and "pyproject.toml is unchanged: no pip run" in res.stdout
    assert not (tmp_path / "pip.log").exists()


def test_run_tests_says_what_it_installs(tmp_path):
    (tmp_path / "repo").mkdir()
    shutil.copy(REPO / "run_tests.sh", tmp_path / "repo" / "run_tests.sh")
    venv = tmp_path / "repo" / ".venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "python").write_text('#!/bin/sh\ncase "$*" in *torch*) [ -n "$FAKE_TORCH" ] || exit 1 ;; esac\n'
                                 'case "$*" in *"-m pytest"*) echo "pytest ran" ;; esac\nexit 0\n')
    (venv / "python").chmod(0o755)
    res = subprocess.run([BASH, str(tmp_path / "repo" / "run_tests.sh"), "-q"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "allow 5-20 minutes" in res.stdout and "download.pytorch.org/whl/cpu" in res.stdout
    assert "running the tests (pytest -q)" in res.stdout
    res = subprocess.run([BASH, str(tmp_path / "repo" / "run_tests.sh"), "-q"], capture_output=True, text=True,
                         env=dict(os.environ, FAKE_TORCH="1"))  # installed now, pyproject.toml unchanged
    assert res.returncode == 0 and "no pip run" in res.stdout and "pytest ran" in res.stdout


def test_recipe_run_records_its_figures(tmp_path):
    """scripts/run_recipe.py on the GPU recipe, cut to one epoch on the CPU, from a zipped dataset: the JSON holds
    the scores with and without ten-crop (those of `emoclf evaluate`), the timings, the loop's b/a and the config."""
    import json
    import zipfile

    import emoclf

    data = make_dataset(tmp_path / "faces", classes=("happy", "sad"), train_per_class=16, val_per_class=6, size=48,
                        seed=5)
    archive = tmp_path / "faces.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted(data.rglob("*.png")):
            zf.write(f, f.relative_to(data.parent))
    work, out = tmp_path / "work", tmp_path / "results"
    printed = _python_script("run_recipe.py", "--config", "configs/fer2013/gpu_8min.yaml", "--data", str(archive),
                             "--out", str(out), "--workdir", str(work), "--seed", "3", "--speed", "32",
                             "--set", "train.epochs=1", "--set", "train.time_limit=0", "--set", "train.batch_size=8",
                             "--set", "train.amp=off", "--set", "train.warmup_epochs=0")
    result = json.loads((out / "gpu_8min-seed3.json").read_text())
    assert f"{out / 'gpu_8min-seed3.json'}: tencrop accuracy" in printed
    assert result["recipe"] == "gpu_8min" and result["seed"] == 3 and result["epochs"] == 1
    assert result["config"]["augment"]["crop"] == 40 and result["config"]["train"]["batch_size"] == 8
    assert 0 < result["train_seconds"] <= result["wall_seconds"]
    run = work / "runs" / "gpu_8min-seed3"
    for tta in ("tencrop", "none"):
        again = emoclf.evaluate(run, tta=tta)
        assert result["validation"][tta] == {"accuracy": round(again["accuracy"], 4),
                                             "f1_macro": round(again["f1_macro"], 4)}
    speed = result["speed"]
    assert speed["b_over_a"] == pytest.approx(speed["emoclf_images_per_s"] / speed["ceiling_images_per_s"], abs=0.01)
    assert result["machine"]["cpu_cores"] >= 1 and "torch" in result["machine"]
    assert not list(out.glob("*.pt")) and not list(out.rglob("*.pt"))  # weights stay in the work folder


def test_shape_benchmark_prints_a_row_per_shape():
    out = _python_script("benchmark_shapes.py", "--shapes", "8x2@16", "8-24@16", "--steps", "1", "--rounds", "1",
                         "--batch", "4", "--precision", "fp32", "bf16")
    rows = [[c.strip() for c in line.split("|")] for line in out.splitlines() if line.startswith("| 8-")]
    assert [r[1:3] for r in rows] == [["8-16 @ 16 px", "fp32"], ["8-16 @ 16 px", "bf16"], ["8-24 @ 16 px", "fp32"],
                                      ["8-24 @ 16 px", "bf16"]]
    assert all(float(r[4]) > 0 for r in rows)


def test_results_page_shows_every_recorded_run():
    """docs/results-fer2013.md holds the row of each record in docs/results/ (scripts/run_recipe.py --table)."""
    import json

    run_recipe = script_module("run_recipe")
    page = (REPO / "docs" / "results-fer2013.md").read_text(encoding="utf-8")
    records = sorted((REPO / "docs" / "results").glob("*.json"))
    assert records, "docs/results/ holds the JSON of each recorded run"
    for path in records:
        result = json.loads(path.read_text(encoding="utf-8"))
        assert run_recipe.table_row(result) in page, f"{path.name}: python scripts/run_recipe.py --table docs/results"
        assert result["command"] in page, f"{path.name}: the page names the command of each recorded run"


def test_speed_ceiling_steps_at_the_crop_size(tmp_path):
    """With augment.crop the model trains on crops: the ceiling (a) of benchmark_speed.py times steps on inputs of
    that size, not of the stored image, so that b/a compares like with like."""
    from conftest import tiny_overrides

    from emoclf.config import load_config
    from emoclf.training.trainer import Trainer

    bench = script_module("benchmark_speed")
    data = make_dataset(tmp_path / "data", classes=("happy", "sad"), train_per_class=8, val_per_class=2, size=32,
                        seed=6)
    trainer = Trainer(load_config(None, tiny_overrides(data, tmp_path / "runs") + ["augment.crop=24"]))
    sides = []
    trainer.model.register_forward_pre_hook(lambda module, args: sides.append(args[0].shape[-1]))
    assert bench.ceiling_rate(trainer, 1) > 0
    assert sides and set(sides) == {24}


def test_peak_memory_is_the_childs_own():
    """benchmark_speed.py --peak-memory reports the training child's own peak, not the largest of every child this
    process has waited for (RUSAGE_CHILDREN): a large child before a small one does not raise the small one's."""
    bench = script_module("benchmark_speed")
    large = bench.child_peak_mb([sys.executable, "-c", "b = bytearray(400 * 2**20); b[::4096] = b'x' * len(b[::4096])"])
    small = bench.child_peak_mb([sys.executable, "-c", "pass"])
    assert large > 400 > 100 > small
    with pytest.raises(subprocess.CalledProcessError):
        bench.child_peak_mb([sys.executable, "-c", "raise SystemExit(3)"])

