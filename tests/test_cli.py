"""Command line: one clear line and exit code 2 for user mistakes; nothing on disk damaged."""
from __future__ import annotations

import os
import sys

import pytest
import torch

from emoclf.cli import app as cli_module
from emoclf.cli.app import main
from emoclf.models import build_model


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_train_and_evaluate_through_the_cli(small_faces, tmp_path, capsys):
    code, out, _ = _run(capsys, "-q", "train", "-c", "configs/cnn.yaml", "--set", f"data.root={small_faces}",
                        "--set", f"output.dir={tmp_path}", "--set", "train.epochs=1", "--set", "data.image_size=24")
    assert code == 0 and "Run folder" in out
    code, out, _ = _run(capsys, "-q", "evaluate", str(tmp_path / "cnn"))
    assert code == 0 and "macro F1" in out


@pytest.mark.parametrize("argv, message", [
    (["train", "-c", "configs/cnn.yaml", "--set", "data.root=/nonexistent/x"], "does not exist"),
    (["train", "-c", "configs/cnn.yaml", "--set", "train.epoch=3"], "Did you mean 'epochs'"),
    (["train", "-c", "configs/cnn.yaml", "--set", "train.batch_size=0"], "out of range"),
    (["train", "-c", "configs/nope.yaml"], "Config file not found"),
    (["evaluate", "outputs/no-such-run"], "Run not found"),
    (["train", "-c", "configs/cnn.yaml", "--set", "data.seed=3"], "'seed' is a top-level key"),
    (["train", "-c", "configs/cnn.yaml", "--set", "data.mean=[0.5,0.5,0.5]"], "needs 1 value for grayscale input"),
    (["compare", "outputs/no-such-run", "outputs/nor-this"], "outputs/no-such-run does not exist"),
])
def test_user_mistakes_exit_2_with_one_line(small_faces, tmp_path, capsys, argv, message):
    code, _, err = _run(capsys, *argv, *(["--set", f"output.dir={tmp_path}"] if argv[0] == "train" else []))
    assert code == 2
    assert message in err and "Traceback" not in err
    assert err.strip().count("\n") == 0, err


def test_evaluate_on_missing_data_names_the_option_it_came_from(trained_run, tmp_path, capsys):
    code, _, err = _run(capsys, "evaluate", str(trained_run), "--data", str(tmp_path / "nope"))
    assert code == 2 and f"--data '{tmp_path / 'nope'}' does not exist" in err and "--set" not in err


def test_resume_and_overwrite_together_are_refused(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "-c", "configs/cnn.yaml", "--resume", "--overwrite"])
    assert exc.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_messages_name_the_option_or_file_at_fault(small_faces, trained_run, tmp_path, capsys):
    typo = tmp_path / "typo.yaml"
    typo.write_text("train:\n  epoch: 3\n")
    code, _, err = _run(capsys, "compare", "--config", str(typo), "configs/cnn.yaml")
    assert code == 2 and f"{typo}: Unknown key 'train.epoch'" in err
    code, _, err = _run(capsys, "train", "-c", "configs/cnn.yaml", "--set", f"data.root={small_faces}", "--set",
                        f"output.dir={tmp_path}", "--set", "data.drop_classes=[angry,happy]")
    assert code == 2 and "data.drop_classes=['angry', 'happy'] leaves 1 class(es) (sad)" in err
    if not torch.cuda.is_available():
        code, _, err = _run(capsys, "evaluate", str(trained_run), "--device", "cuda")
        assert code == 2 and "--device='cuda' but CUDA is not available here; use --device=auto or cpu" in err


def test_unknown_model_name_exits_2(small_faces, tmp_path, capsys):
    code, _, err = _run(capsys, "train", "-c", "configs/cnn.yaml", "--set", f"data.root={small_faces}",
                        "--set", f"output.dir={tmp_path}", "--set", "model.name=resnet81")
    assert code == 2 and "Did you mean resnet18" in err


def test_damaged_and_foreign_checkpoints_are_refused(trained_run, tmp_path, capsys):
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes((trained_run / "best.pt").read_bytes()[:1000])
    code, _, err = _run(capsys, "evaluate", str(damaged))
    assert code == 2 and "damaged" in err
    ckpt = torch.load(trained_run / "best.pt", weights_only=True)
    ckpt["model_state"] = build_model("mobilenet_v3_small", 5).state_dict()
    torch.save(ckpt, tmp_path / "foreign.pt")
    code, _, err = _run(capsys, "evaluate", str(tmp_path / "foreign.pt"))
    assert code == 2 and "do not fit model 'cnn'" in err


@pytest.mark.parametrize("name, content, kind", [
    ("notes.pt", b"just some text\n", "neither a zip archive nor a pickle"),
    ("model.onnx", b"\x08\x07\x12\x07pytorch", "an ONNX model"),
    ("empty.pt", b"", "an empty file"),
    ("scripted.pt", None, "a TorchScript model"),
])
def test_files_that_are_not_checkpoints_are_named_as_such(tmp_path, capsys, recwarn, name, content, kind):
    path = tmp_path / name
    if content is None:
        torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), path)
    else:
        path.write_bytes(content)
    code, _, err = _run(capsys, "evaluate", str(path))
    assert code == 2 and f"is not a PyTorch checkpoint ({kind})" in err and "weights_only" not in err
    assert not [w for w in recwarn if "TorchScript" in str(w.message)]


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch /tmp/emoclf-pwned",))


def test_checkpoint_that_would_run_code_is_refused(tmp_path, capsys):
    evil = tmp_path / "evil.pt"
    torch.save({"format": "emoclf-checkpoint", "payload": _Exploit()}, evil)
    if os.path.exists("/tmp/emoclf-pwned"):
        os.remove("/tmp/emoclf-pwned")
    code, _, err = _run(capsys, "evaluate", str(evil))
    assert code == 2 and "Refusing to load" in err
    assert not os.path.exists("/tmp/emoclf-pwned")


def test_a_missing_dependency_is_named_with_the_install_command():
    import subprocess

    code = "import sys; sys.modules['torch'] = None; from emoclf.cli.app import main; sys.exit(main(['models']))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "the package 'torch' is missing" in done.stderr and "pip install -e ." in done.stderr


@pytest.mark.skipif(sys.version_info < (3, 10), reason="sys.stdlib_module_names")
def test_a_missing_part_of_python_itself_is_not_blamed_on_the_install(monkeypatch, capsys):
    def needs_lzma(args):
        raise ModuleNotFoundError("No module named '_lzma'", name="_lzma")

    monkeypatch.setattr(cli_module, "cmd_models", needs_lzma)
    code, _, err = _run(capsys, "models")
    assert code == 2 and "Python's own module '_lzma' is missing" in err and "pip install" not in err


def test_python_dash_m_entry_point():
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "emoclf", "--version"], capture_output=True, text=True)
    assert res.returncode == 0 and "emoclf" in res.stdout
