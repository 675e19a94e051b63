#!/usr/bin/env bash
# Creates .venv with the app, its tests and dev tools (idempotent; safe to rerun).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
# (grep only hides this machine's harmless "Location ... is ignored" index warnings)
set +o pipefail
.venv/bin/python -m pip install --quiet -e ".[dev]" 2>&1 | grep -v "^WARNING: Location"
status=${PIPESTATUS[0]}
set -o pipefail
[ "$status" -eq 0 ] || { echo "setup failed: pip install exited with $status" >&2; exit "$status"; }
TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/python -c "import idc_viewer, openslide, PySide6, tensorflow, ai_edge_litert" \
  || { echo "setup failed: the environment cannot import its dependencies" >&2; exit 1; }
