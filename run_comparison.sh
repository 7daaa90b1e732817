#!/usr/bin/env bash
# ResNet18 against MobileNetV3: the steps and options of run_pipeline.sh (see ./run_pipeline.sh --help)
# with these two configs; finished runs of run_pipeline.sh are reused, not retrained.
# Usage: ./run_comparison.sh [SOURCE] [--quick] [--no-install] [--overwrite] [--force] [--device D]
#                            [--set SECTION.KEY=VALUE ...]
set -euo pipefail
export EMOCLF_SCRIPT_NAME="${EMOCLF_SCRIPT_NAME:-$0}"
export EMOCLF_CONFIGS="${EMOCLF_CONFIGS:-configs/resnet18.yaml configs/mobilenet_v3.yaml}"
export EMOCLF_COMPARISON="${EMOCLF_COMPARISON:-comparison_resnet18_vs_mobilenet_v3}"
exec "$(dirname "$0")/run_pipeline.sh" "$@"
