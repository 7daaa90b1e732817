#!/usr/bin/env bash
# One click from a fresh clone to a comparison report: virtual environment, install, dataset,
# train the CNN, ResNet18 and MobileNetV3, compare them. Every step is a call of `emoclf`.
#
# Usage: ./run_pipeline.sh [SOURCE] [--quick] [--no-install] [--set SECTION.KEY=VALUE ...]
#   SOURCE            dataset for `emoclf download --source` (or $EMOCLF_SOURCE; default: the course dataset)
#   --quick           smoke run: 1 epoch, 32-pixel inputs, small CNN (or QUICK=1); writes to outputs/quick
#   --no-install      use $EMOCLF_PYTHON (default python3) as it is: no virtual environment, no pip
#   --set K=V         passed to `emoclf compare`, applied to every config (repeatable)
# Environment:
#   EMOCLF_DATA_ROOT  an existing dataset folder (train/ and validation/ class folders): skips the download
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
trap 'status=$?; echo "run_pipeline.sh: stopped at step \"$step\" (exit code $status); see the message above." >&2' ERR

source_arg="${EMOCLF_SOURCE:-}"
quick="${QUICK:-0}"
install=1
sets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --no-install) install=0 ;;
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

if [ "$install" = "1" ]; then
  step="virtual environment"
  venv="${EMOCLF_VENV:-.venv}"
  if [ ! -x "$venv/bin/python" ]; then
    echo "==> Creating the virtual environment $venv"
    "${PYTHON:-python3}" -m venv "$venv"
  fi
  py="$venv/bin/python"
  step="install"
  echo "==> Installing emoclf into $venv (an installed torch is kept)"
  "$py" -m pip install --quiet --upgrade pip
  "$py" -m pip install --quiet -e .
else
  py="${EMOCLF_PYTHON:-python3}"
  if ! "$py" -c "import emoclf, torch, torchvision" 2>/dev/null; then
    echo "run_pipeline.sh: --no-install needs emoclf, torch and torchvision importable by $py. Install them" \
         "(pip install -e .), point EMOCLF_PYTHON at an interpreter that has them, or drop --no-install." >&2
    exit 2
  fi
fi

if [ -n "${EMOCLF_DATA_ROOT:-}" ]; then
  data_root="$(from_caller "$EMOCLF_DATA_ROOT")"
  if [ ! -d "$data_root" ]; then
    echo "run_pipeline.sh: EMOCLF_DATA_ROOT=$EMOCLF_DATA_ROOT is not a folder ($data_root). Point it at a dataset" \
         "with train/ and validation/ class folders, or leave it unset to download the dataset." >&2
    exit 2
  fi
  echo "==> Using the dataset in $data_root (no download)"
else
  step="download"
  data_root="data"
  [ -n "${EMOCLF_DATA:-}" ] && data_root="$(from_caller "$EMOCLF_DATA")"
  echo "==> Getting the dataset into $data_root"
  if [ -n "$source_arg" ]; then
    "$py" -m emoclf download --source "$source_arg" --dest "$data_root"
  else
    "$py" -m emoclf download --dest "$data_root"
  fi
fi

quick_sets=()
if [ "$quick" = "1" ]; then
  echo "==> Quick mode: 1 epoch, 32-pixel inputs (a smoke run, not a result)"
  quick_sets=(--set train.epochs=1 --set data.image_size=32 --set model.width=8 --set model.depth=2
              --set train.batch_size=32)
fi

step="train and compare"
echo "==> Training what is missing and comparing: ${configs[*]}"
"$py" -m emoclf compare --config "${configs[@]}" --set "data.root=$data_root" --set "output.dir=$out" \
  ${quick_sets[@]+"${quick_sets[@]}"} ${sets[@]+"${sets[@]}"} --out "$out/${EMOCLF_COMPARISON:-comparison}"

echo "==> Done. Report: $out/${EMOCLF_COMPARISON:-comparison}/comparison.md"
echo "    Try it on a photo: $py -m emoclf predict PHOTO.jpg --haar --runs-dir $out"
