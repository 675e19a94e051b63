"""Time and peak memory of planning (``idc-viewer info``: grid + tissue detection) on huge slides.

Run from the repository root::

    .venv/bin/python benchmarks/bench_plan_memory.py [--side 200000]

Each case runs ``plan_analysis`` on a synthetic ``side`` x ``side`` px slide in a fresh process
and prints its wall time and peak resident memory (``ru_maxrss``), with both as ratios to the
first case (the same slide at 0.25 µm/px: a 40x scan, a small grid). The issue's figures before
the bounded detector: 161 s and 9.1 GB at 4 µm/px vs 1.3 s and 161 MB at 0.25 µm/px. Target:
< 1 GB whatever the µm/px.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CHILD = """
import json, resource, sys, time
from idc_viewer.core.synthetic import SyntheticSlide
from idc_viewer.engine.plan import plan_analysis
side, mpp = int(sys.argv[1]), float(sys.argv[2])
slide = SyntheticSlide(side, side, mpp=mpp, seed=3)
start = time.perf_counter()
plan = plan_analysis(slide)
print(json.dumps({"s": time.perf_counter() - start, "cells": plan.cell_count,
                  "tissue": plan.tissue_patches,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", type=int, default=200_000, help="slide side in px")
    args = parser.parse_args()
    rows = []
    for mpp in (0.25, 1.0, 4.0):
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(args.side), str(mpp)],
            capture_output=True,
            text=True,
            cwd=REPO,
            check=True,
        )
        rows.append((mpp, json.loads(proc.stdout.strip().splitlines()[-1])))
    base = rows[0][1]
    print(f"plan_analysis on a {args.side:,} x {args.side:,} px synthetic slide")
    for mpp, r in rows:
        print(
            f"  {mpp:5.2f} µm/px: {r['cells']:>12,} cells, {r['tissue']:>11,} tissue, "
            f"{r['s']:6.1f} s ({r['s'] / base['s']:5.1f} x), peak {r['rss_mb']:6.0f} MB "
            f"({r['rss_mb'] / base['rss_mb']:4.1f} x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
