#!/usr/bin/env bash
# Builds the desktop app as one folder, dist/IDC Viewer/ (PyInstaller onedir), then prints its
# size and the time from launch to the first window (showing the demo slide), beside the
# unfrozen app's in the same run.
# Usage: bash packaging/build.sh   (on a shared machine: nice -n 10 bash packaging/build.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
setup_started_s=$(date +%s)
bash scripts/setup.sh
set +o pipefail
.venv/bin/python -m pip install --quiet -e ".[dev,packaging]" 2>&1 | grep -v "^WARNING: Location"
set -o pipefail
APP="dist/IDC Viewer"
started_s=$(date +%s)
.venv/bin/pyinstaller --noconfirm --clean --log-level WARN \
  --distpath dist --workpath build/pyinstaller packaging/idc_viewer.spec
# idc-train beside idc-viewer: the frozen executable runs the training CLI for `-m training`
cat > "$APP/idc-train" <<'SH'
#!/bin/sh
exec "$(dirname "$(readlink -f "$0")")/idc-viewer" -m training "$@"
SH
chmod +x "$APP/idc-train"
now_s=$(date +%s)
echo "build: $(( now_s - started_s )) s (PyInstaller), $(( now_s - setup_started_s )) s with setup"
size_b=$(du -sb "$APP" | cut -f1)
echo "size: $(( size_b / 1000000 )) MB ($APP, $(find "$APP" -type f | wc -l) files)"
echo "frozen:   $(bash packaging/first_window.sh "$APP/idc-viewer")"
echo "unfrozen: $(bash packaging/first_window.sh .venv/bin/idc-viewer) (the same, from .venv)"
