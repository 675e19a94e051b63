#!/usr/bin/env bash
# Times EXE [ARGS] (default ARGS: --demo) from launch until its window shows the slide, then it
# quits itself (IDC_VIEWER_SMOKE_TEST). A real X server (xvfb-run) when installed, else Qt's
# offscreen platform. Prints "first window: N ms (window: TITLE visible=True; PLATFORM)".
# Usage: first_window.sh EXE [ARGS...]
set -euo pipefail
exe=$1
shift
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--demo)
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
launch=()
if command -v xvfb-run >/dev/null; then
  launch=(xvfb-run -a -s "-screen 0 1280x800x24")
else
  export QT_QPA_PLATFORM=offscreen
fi
start_ns=$(date +%s%N)
out=$(IDC_VIEWER_SMOKE_TEST=1 IDC_VIEWER_DATA_DIR="$data" HOME="$data" \
  "${launch[@]}" "$exe" "${args[@]}" 2>"$data/stderr") || { cat "$data/stderr" >&2; exit 1; }
end_ns=$(date +%s%N)
if grep -q Traceback "$data/stderr"; then cat "$data/stderr" >&2; exit 1; fi
window=$(grep '^window: ' <<<"$out") || { echo "no window line in: $out" >&2; exit 1; }
echo "first window: $(( (end_ns - start_ns) / 1000000 )) ms ($window; ${launch[0]:-offscreen})"
