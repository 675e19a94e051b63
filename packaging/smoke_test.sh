#!/usr/bin/env bash
# Smoke test of the frozen build, run as on a machine with no Python set up: PATH=/usr/bin only,
# an empty environment, the project's .venv moved aside, and the app folder itself relocated
# (hard-linked copy) so no path of the build machine can be relied on.
#   version; analyze the demo slide (CSV identical to the unfrozen run's, also with --workers 2
#   on Dask); gradcam PNG; the GUI on a virtual screen opening a slide given as argument (as a
#   double-click does), titled IDC, quitting cleanly; Model › Retrain… running idc-train from inside the build (one epoch on a
#   handful of real patches from ../shared/data/idc) and switching to the new model.
# Usage: bash packaging/smoke_test.sh [APP_DIR]   (default: dist/IDC Viewer)
#        KEEP_VENV=1 leaves .venv in place (e.g. while other work uses it).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
app=${1:-dist/IDC Viewer}
hidden="$repo/.venv.smoke-hidden"
# a run killed outright (SIGKILL) leaves .venv aside: put it back first
if [ -d "$hidden" ] && [ ! -e .venv ]; then mv "$hidden" .venv; fi
data_root=${IDC_SHARED_DATA:-$repo/../shared/data}
[ -x "$app/idc-viewer" ] ||
  { echo "smoke: no build in $app: run bash packaging/build.sh" >&2; exit 1; }
[ -x .venv/bin/idc-viewer ] ||
  { echo "smoke: .venv is needed for the reference run: bash scripts/setup.sh" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/idc-smoke.XXXXXX")
cleanup() {
  if [ -d "$hidden" ]; then mv "$hidden" "$repo/.venv"; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM  # so that cleanup runs on Ctrl-C and kill too
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
fail() { echo "smoke: FAILED: $*" >&2; exit 1; }

# -- the unfrozen reference, while .venv is there
demo_rel=idc_viewer/resources/demo/patient-9037.tiff
want_version=$(.venv/bin/idc-viewer --version)
TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/idc-viewer analyze "$demo_rel" --out "$work/ref" \
  --results-dir "$work/ref-results" --quiet >/dev/null 2>&1 || fail "the unfrozen reference run"
# the most probable patch's centre, for Grad-CAM
read -r gx gy < <(tail -n +2 "$work/ref/patient-9037.patches.csv" | sort -t, -k5 -g -r |
  awk -F, 'NR == 1 {print $1 + $3 / 2, $2 + $4 / 2}')
patches="$work/patches"
if [ -d "$data_root/idc" ]; then  # 4 patients (not complete slides) x 16 patches per class
  for patient in 10253 10254 10255 10256; do
    for cls in 0 1; do
      mkdir -p "$patches/$patient/$cls"
      # (no `| head` in a pipeline: under pipefail its early exit can kill the run with SIGPIPE)
      mapfile -t pngs < <(find "$data_root/idc/$patient/$cls" -name '*.png' | sort)
      [ ${#pngs[@]} -eq 0 ] || cp -t "$patches/$patient/$cls" "${pngs[@]:0:16}"
    done
  done
fi

# -- the frozen build, relocated, with no Python around
cp -al "$app" "$work/IDC Viewer" 2>/dev/null || cp -a "$app" "$work/IDC Viewer"
exe="$work/IDC Viewer/idc-viewer"
demo="$work/IDC Viewer/_internal/$demo_rel"
[ -n "${KEEP_VENV:-}" ] || mv "$repo/.venv" "$hidden"
mkdir -p "$work/home" "$work/data"
bare() { (cd "$work" && env -i PATH=/usr/bin HOME="$work/home" IDC_VIEWER_DATA_DIR="$work/data" \
  LANG=C.UTF-8 "$@"); }

t=$(date +%s%N)
got_version=$(bare "$exe" --version)
[ "$got_version" = "$want_version" ] || fail "--version says '$got_version', not '$want_version'"
echo "ok version: $got_version ($(ms "$t") ms)"

t=$(date +%s%N)
bare "$exe" analyze "$demo" --out "$work/frozen" --results-dir "$work/frozen-results" --quiet \
  >/dev/null 2>"$work/analyze.err" || { cat "$work/analyze.err" >&2; fail analyze; }
for table in patches.csv regions.csv; do
  cmp -s "$work/ref/patient-9037.$table" "$work/frozen/patient-9037.$table" ||
    fail "frozen $table differs from the unfrozen run's"
done
rows=$(( $(wc -l < "$work/frozen/patient-9037.patches.csv") - 1 ))
echo "ok analyze: $rows patch probabilities identical to the unfrozen run's ($(ms "$t") ms)"

t=$(date +%s%N)  # Dask worker processes are the frozen executable again (freeze_support)
bare "$exe" analyze "$demo" --workers 2 --out "$work/workers" --results-dir "$work/workers-results" \
  --quiet >/dev/null 2>"$work/workers.err" || { cat "$work/workers.err" >&2; fail "analyze --workers"; }
cmp -s "$work/ref/patient-9037.patches.csv" "$work/workers/patient-9037.patches.csv" ||
  fail "analyze --workers 2 differs from the unfrozen run"
echo "ok analyze --workers 2: the same probabilities from 2 Dask worker processes ($(ms "$t") ms)"

t=$(date +%s%N)
bare "$exe" gradcam "$demo" --x "$gx" --y "$gy" -o "$work/gradcam.png" >"$work/gradcam.out" \
  2>"$work/gradcam.err" || { cat "$work/gradcam.err" >&2; fail gradcam; }
[ "$(head -c 8 "$work/gradcam.png" | od -An -tx1 | tr -d ' ')" = 89504e470d0a1a0a ] ||
  fail "gradcam wrote no PNG"
! grep -q "Unable to locate the source" "$work/gradcam.err" || fail "autograph found no source"
echo "ok gradcam: $(grep -o 'P(IDC).*' "$work/gradcam.err") ($(ms "$t") ms)"

window=$(bare bash "$repo/packaging/first_window.sh" "$exe" "$demo") || fail "GUI"
grep -q "IDC" <<<"$window" && grep -q "patient-9037.tiff" <<<"$window" ||
  fail "window not titled IDC with the slide: $window"
echo "ok GUI: $window"

if [ -d "$patches" ]; then
  launch=(); if [ -x /usr/bin/xvfb-run ]; then launch=(xvfb-run -a -s "-screen 0 1280x800x24");
  else launch=(env QT_QPA_PLATFORM=offscreen); fi
  t=$(date +%s%N)
  out=$(bare env IDC_VIEWER_SMOKE_TEST=1 IDC_VIEWER_SMOKE_RETRAIN="$patches" \
    "${launch[@]}" "$exe" --demo 2>"$work/retrain.err") ||
    { tail -20 "$work/retrain.err" >&2; fail retrain; }
  spec=$(sed -n 's/^retrain: exit=0 exported=\(.*\.spec\.json\)$/\1/p' <<<"$out")
  [ -n "$spec" ] && [ -f "$spec" ] || { echo "$out" >&2; fail "Retrain exported no model"; }
  grep -qxF "model in use: $spec" <<<"$out" ||
    { echo "$out" >&2; fail "the new model is not in use"; }
  echo "ok retrain: Model › Retrain… ran idc-train in the build, 1 epoch on" \
    "$(find "$patches" -name '*.png' | wc -l) real patches; new model in use ($(ms "$t") ms)"
else
  echo "SKIPPED retrain: no $data_root/idc for the handful of real patches"
fi
size_mb=$(( $(du -sb "$app" | cut -f1) / 1000000 ))
echo "smoke: PASSED $(date -u +%Y-%m-%dT%H:%MZ), $app $size_mb MB"
