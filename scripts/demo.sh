#!/usr/bin/env bash
# Sets everything up, then opens the bundled demo slide in the app.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/idc-viewer --demo "$@"
