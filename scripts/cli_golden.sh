#!/usr/bin/env bash
# Runs the CLI on the demo slide and writes every output (files, stdout, stderr) into DIR, with
# dates and timings masked, so two checkouts can be compared byte for byte:
#   bash scripts/cli_golden.sh /tmp/before && (other checkout) bash scripts/cli_golden.sh /tmp/after
#   diff -r /tmp/before /tmp/after
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:?usage: cli_golden.sh DIR}")
rm -rf "$out" && mkdir -p "$out"
export QT_QPA_PLATFORM=offscreen TF_CPP_MIN_LOG_LEVEL=3 IDC_VIEWER_DATA_DIR="$out/.data"
demo=idc_viewer/resources/demo/patient-9037.tiff
cli=.venv/bin/idc-viewer
run() { # name, args...
  local name=$1; shift
  set +e; "$cli" "$@" >"$out/$name.stdout" 2>"$out/$name.stderr"; echo $? >"$out/$name.rc"; set -e
}
run analyze analyze "$demo" --out "$out/analyze" --quiet
run analyze-again analyze "$demo" --out "$out/analyze-again" --quiet
run analyze-t analyze "$demo" --out "$out/analyze-t" --threshold 0.3 --quiet
run analyze-paper analyze "$demo" --out "$out/analyze-paper" --quiet \
  --model idc_viewer/resources/models/idc-paper-128.spec.json
run info info "$demo"
run gradcam-point gradcam "$demo" --x 1200 --y 700 -o "$out/gradcam-point.png"
run gradcam-region gradcam "$demo" --region 1000 1000 1500 1000 --layers both -o "$out/gradcam-region.png"
run missing analyze /nonexistent.svs --out "$out/missing" --quiet
run bad-mpp analyze "$demo" --mpp -1 --out "$out/bad-mpp" --quiet
rm -rf "$out/.data"
# mask what differs from run to run: dates, durations, rates
find "$out" -type f \( -name '*.json' -o -name '*.stdout' -o -name '*.stderr' -o -name '*.csv' \) -print0 |
  xargs -0 sed -i -E \
    -e 's/[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9:.]+(\+00:00|Z)?/<DATE>/g' \
    -e 's/[0-9][0-9,.]* patches\/s/<RATE> patches\/s/g' \
    -e 's/in [0-9][0-9.]* ?(s|ms|min)/in <TIME>/g' \
    -e "s#$out#<OUT>#g"
echo "wrote $out"
