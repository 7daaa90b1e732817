#!/usr/bin/env bash
# One click from a fresh clone to a comparison report: virtual environment, install, dataset,
# train the CNN, ResNet18 and MobileNetV3, compare them. Every step is a call of `emoclf`.
#
# Usage: ./run_pipeline.sh [SOURCE] [--quick] [--no-install] [--overwrite] [--force] [--device D]
#                          [--set SECTION.KEY=VALUE ...]
#   SOURCE            dataset for `emoclf download --source`: an archive (.zip, .tar.gz), a folder, a fer2013.csv,
#                     a Drive link or a URL (or $EMOCLF_SOURCE; default: the dataset already recorded in data/,
#                     else the course dataset from Google Drive)
#   --quick           smoke run: 1 epoch, 32-pixel inputs, small CNN, every model from scratch (no ImageNet
#                     weights, so it works offline) (or QUICK=1); writes to outputs/quick
#   --no-install      use $EMOCLF_PYTHON (default python3) as it is: no virtual environment, no pip
#   --overwrite       passed to `emoclf compare`: retrain finished runs whose saved config differs
#   --force           passed to `emoclf download`: download and unpack the dataset again
#   --device D        passed to `emoclf compare` (cpu, cuda, cuda:N, mps; default: auto)
#   --set K=V         passed to `emoclf compare`, applied to every config (repeatable)
# Offline: download the dataset in a browser, then ./run_pipeline.sh path/to/archive.zip --set model.pretrained=false
#   (ImageNet weights for ResNet18 and MobileNetV3 need the internet too).
# Environment:
#   EMOCLF_DATA_ROOT  an existing dataset folder (train/ and validation/ class folders): skips the download;
#                     an archive there is installed like SOURCE
#   EMOCLF_TORCH_INDEX  a pip index for torch, installed first when missing, e.g. the CPU-only build:
#                     https://download.pytorch.org/whl/cpu (default: PyPI's, with CUDA on Linux: several GB)
#   EMOCLF_DATA       where `emoclf download` puts the dataset (default: data)
#   EMOCLF_SET        space-separated SECTION.KEY=VALUE overrides, e.g. "model.pretrained=false"
#   EMOCLF_OUTPUTS    parent folder of the run folders (default: outputs, or outputs/quick in quick mode)
#   EMOCLF_VENV       virtual environment folder (default: .venv); PYTHON makes it (default: python3)
#   EMOCLF_PYTHON     the interpreter used with --no-install (default: python3)
#   EMOCLF_CONFIGS    space-separated config files (default: configs/cnn.yaml, resnet18.yaml, mobilenet_v3.yaml)
#   EMOCLF_COMPARISON name of the comparison folder inside EMOCLF_OUTPUTS (default: comparison)
# Relative paths you pass are taken from the folder you call the script in; the defaults live in the project.
set -euo pipefail
caller="$PWD"
cd "$(dirname "$0")"
# A path given by the caller, made absolute (it is relative to where the script was called from).
from_caller() { case "$1" in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$caller/$1" ;; esac; }

step="start"
name="${EMOCLF_SCRIPT_NAME:-$0}"  # for the commands this script suggests (run_comparison.sh sets its own name)
trap 'status=$?; echo "run_pipeline.sh: stopped at step \"$step\" (exit code $status); see the message above." >&2' ERR

source_arg="${EMOCLF_SOURCE:-}"
quick="${QUICK:-0}"
install=1
sets=()
compare_args=()
download_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --no-install) install=0 ;;
    --overwrite) compare_args+=(--overwrite) ;;
    --force) download_args+=(--force) ;;
    --device) [ $# -ge 2 ] || { echo "run_pipeline.sh: --device needs a value (cpu, cuda, mps)" >&2; exit 2; }
              compare_args+=(--device "$2"); shift ;;
    --device=*) compare_args+=(--device "${1#--device=}") ;;
    --set) [ $# -ge 2 ] || { echo "run_pipeline.sh: --set needs SECTION.KEY=VALUE" >&2; exit 2; }
           sets+=(--set "$2"); shift ;;
    --set=*) sets+=(--set "${1#--set=}") ;;
    -h|--help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    -*) echo "run_pipeline.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) source_arg="$1" ;;
  esac
  shift
done
for kv in ${EMOCLF_SET:-}; do sets+=(--set "$kv"); done
[ "$quick" = "1" ] && out="outputs/quick" || out="outputs"
[ -n "${EMOCLF_OUTPUTS:-}" ] && out="$(from_caller "$EMOCLF_OUTPUTS")"
[ -n "$source_arg" ] && [ -e "$caller/$source_arg" ] && source_arg="$(from_caller "$source_arg")"
configs=()
for c in ${EMOCLF_CONFIGS:-configs/cnn.yaml configs/resnet18.yaml configs/mobilenet_v3.yaml}; do
  [ -f "$c" ] || c="$(from_caller "$c")"
  configs+=("$c")
done

# The dataset folder is checked before anything is installed: a wrong path fails in a second, not after pip.
if [ -n "${EMOCLF_DATA_ROOT:-}" ]; then
  data_root="$(from_caller "$EMOCLF_DATA_ROOT")"
  if [ -f "$data_root" ] && [ -z "$source_arg" ]; then
    echo "==> EMOCLF_DATA_ROOT=$EMOCLF_DATA_ROOT is a file: installing it as the dataset, as $name $EMOCLF_DATA_ROOT does"
    source_arg="$data_root"
    unset EMOCLF_DATA_ROOT
  elif [ ! -d "$data_root" ]; then
    echo "run_pipeline.sh: EMOCLF_DATA_ROOT=$EMOCLF_DATA_ROOT is not a folder ($data_root). Point it at a dataset" \
         "folder (train/ and validation/ class folders, see docs/data.md), pass an archive as the first argument" \
         "($name path/to/archive.zip), or leave it unset to download the dataset." >&2
    exit 2
  fi
fi

if [ "$install" = "1" ]; then
  step="virtual environment"
  venv="${EMOCLF_VENV:-.venv}"
  if [ ! -x "$venv/bin/python" ]; then
    echo "==> Creating the virtual environment $venv"
    "${PYTHON:-python3}" -m venv "$venv"
  fi
  py="$venv/bin/python"
  step="install"
  # pip runs only when pyproject.toml changed since the last install into this environment (a stamp records
  # it): an unchanged project is not reinstalled, and pip's build banner is not repeated on every run.
  stamp="$venv/.emoclf-installed"
  want="$("$py" -c 'import hashlib, os; print(hashlib.sha256(open("pyproject.toml", "rb").read()).hexdigest(), os.getcwd())')"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$py" -c "import emoclf, torch, torchvision" 2>/dev/null; then
    echo "==> emoclf is installed in $venv and pyproject.toml is unchanged: no pip run"
  else
    if "$py" -c "import torch, torchvision" 2>/dev/null; then
      echo "==> Installing emoclf into $venv (the installed torch is kept; about a minute)"
    else
      echo "==> Installing emoclf and its dependencies into $venv. pip downloads torch and torchvision first:"
      echo "    about 1 GB as the CPU-only build, several GB as PyPI's CUDA build on Linux; allow 5-20 minutes."
      echo "    A machine without an NVIDIA GPU needs only the CPU build: EMOCLF_TORCH_INDEX=https://download.pytorch.org/whl/cpu"
      if [ -n "${EMOCLF_TORCH_INDEX:-}" ]; then
        echo "==> Installing torch and torchvision from $EMOCLF_TORCH_INDEX"
        "$py" -m pip install --quiet --disable-pip-version-check torch torchvision --index-url "$EMOCLF_TORCH_INDEX"
      fi
    fi
    started=$SECONDS
    "$py" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$py" -m pip install --quiet --disable-pip-version-check -e .
    printf '%s\n' "$want" > "$stamp"
    echo "==> Installed in $((SECONDS - started)) s"
  fi
else
  py="${EMOCLF_PYTHON:-python3}"
  if ! "$py" -c "import emoclf, torch, torchvision" 2>/dev/null; then
    echo "run_pipeline.sh: --no-install needs emoclf, torch and torchvision importable by $py. Install them" \
         "(pip install -e .), point EMOCLF_PYTHON at an interpreter that has them, or drop --no-install." >&2
    exit 2
  fi
fi

if [ -n "${EMOCLF_DATA_ROOT:-}" ]; then
  echo "==> Using the dataset in $data_root (no download)"
else
  step="download"
  data_root="data"
  [ -n "${EMOCLF_DATA:-}" ] && data_root="$(from_caller "$EMOCLF_DATA")"
  echo "==> Getting the dataset into $data_root"
  src=()
  [ -n "$source_arg" ] && src=(--source "$source_arg")
  rc=0
  "$py" -m emoclf download ${src[@]+"${src[@]}"} --dest "$data_root" ${download_args[@]+"${download_args[@]}"} || rc=$?
  if [ "$rc" != 0 ]; then
    echo "$name: stopped at step \"download\" (exit code $rc); see the message above." >&2
    if [ -z "$source_arg" ] || [ ! -e "$source_arg" ]; then
      echo "  Without internet: download the file in a browser (the page is named above), then run" >&2
      echo "    $name path/to/archive.zip --set model.pretrained=false" >&2
      echo "  (ResNet18's and MobileNetV3's ImageNet weights need the internet too; false trains them from scratch)." >&2
    fi
    exit "$rc"
  fi
fi

quick_sets=()
if [ "$quick" = "1" ]; then
  echo "==> Quick mode: 1 epoch, 32-pixel inputs, every model from scratch (no ImageNet weights: works offline;"
  echo "    a smoke run, not a result)"
  quick_sets=(--set train.epochs=1 --set data.image_size=32 --set model.width=8 --set model.depth=2
              --set train.batch_size=32 --set model.pretrained=false)
fi

step="train and compare"
echo "==> Training what is missing and comparing: ${configs[*]}"
"$py" -m emoclf compare --config "${configs[@]}" --set "data.root=$data_root" --set "output.dir=$out" \
  ${quick_sets[@]+"${quick_sets[@]}"} ${sets[@]+"${sets[@]}"} ${compare_args[@]+"${compare_args[@]}"} --out "$out/${EMOCLF_COMPARISON:-comparison}"

echo "==> Done. Report: $out/${EMOCLF_COMPARISON:-comparison}/comparison.md"
echo "    Try it on a photo: $py -m emoclf predict PHOTO.jpg --haar --runs-dir $out"
