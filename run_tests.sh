#!/usr/bin/env bash
# Set up .venv with emoclf and its test dependencies, then run the test suite (arguments go to pytest).
# The first run downloads torch: about 1 GB as the CPU-only build, several GB as PyPI's CUDA build (the default
# on Linux); allow 5-20 minutes. On a machine without an NVIDIA GPU, install the CPU build first:
#   EMOCLF_TORCH_INDEX=https://download.pytorch.org/whl/cpu ./run_tests.sh
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "==> Creating the virtual environment .venv"
    "$PYTHON" -m venv .venv
fi
started=$SECONDS
# pip runs only when pyproject.toml changed since the last install into .venv (a stamp records it): no minute of
# pip and no repeated build banner on every run (delete .venv/.emoclf-installed-dev to run pip anyway).
stamp=.venv/.emoclf-installed-dev
want="$(.venv/bin/python -c 'import hashlib, os; print(hashlib.sha256(open("pyproject.toml", "rb").read()).hexdigest(), os.getcwd())')"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && .venv/bin/python -c "import emoclf, torch, pytest" >/dev/null 2>&1; then
    echo "==> emoclf and its test dependencies are installed in .venv and pyproject.toml is unchanged: no pip run"
    exec .venv/bin/python -m pytest "$@"
fi
if .venv/bin/python -c "import torch, torchvision" 2>/dev/null; then
    echo "==> Checking emoclf and its test dependencies in .venv with pip (the installed torch is kept; a minute)"
else
    echo "==> Installing emoclf, torch and the test dependencies into .venv: about 1 GB as the CPU-only torch,"
    echo "    several GB as PyPI's CUDA build on Linux; allow 5-20 minutes. Without an NVIDIA GPU, stop and run"
    echo "    EMOCLF_TORCH_INDEX=https://download.pytorch.org/whl/cpu ./run_tests.sh to get the CPU build."
    if [ -n "${EMOCLF_TORCH_INDEX:-}" ]; then
        echo "==> Installing torch and torchvision from $EMOCLF_TORCH_INDEX"
        .venv/bin/python -m pip install --quiet --disable-pip-version-check torch torchvision \
            --index-url "$EMOCLF_TORCH_INDEX"
    fi
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
printf '%s\n' "$want" > "$stamp"
echo "==> Ready in $((SECONDS - started)) s; running the tests (pytest $*)"
exec .venv/bin/python -m pytest "$@"
