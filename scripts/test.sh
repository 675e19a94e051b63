#!/usr/bin/env bash
# Sets everything up, then runs the checks and the test suite (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export QT_QPA_PLATFORM=offscreen TF_CPP_MIN_LOG_LEVEL=3
echo "== ruff";          .venv/bin/ruff check idc_viewer training tests benchmarks scripts packaging
echo "== ruff format";   .venv/bin/ruff format --check idc_viewer training tests benchmarks scripts packaging
echo "== mypy";          .venv/bin/mypy
echo "== import layers"; .venv/bin/lint-imports
echo "== pytest";        .venv/bin/pytest "$@"
