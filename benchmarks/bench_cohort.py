"""Cohort throughput: the same 20 slides serially and on 1, 2 and 4 local Dask workers.

Run from the repository root::

    .venv/bin/python benchmarks/bench_cohort.py [--real 10] [--synthetic 10] [--workers 1 2 4]

It writes 20 slides into a temporary folder: complete IDC patients from ``../shared/data/idc``
reassembled as pyramidal JPEG TIFFs at 4.0 µm/px (``training.assemble_slide``) and synthetic
H&E-like slides of several sizes (``idc_viewer.core.synthetic.SyntheticSlide`` written as TIFFs),
then times, in one run on this machine, ``idc-viewer analyze FOLDER --out ... -q`` as a subprocess
(process start, model load, cluster start included; a fresh results store each time):

- serially (no flag: today's command), the baseline;
- with ``--workers N`` for each N.

and prints per run: wall seconds, slides/s, patches/s, speed-up over serial and parallel
efficiency (speed-up / N). It also prints the cost of starting and closing a local cluster, and,
from the 4-worker run's per-slide seconds (cohort.csv), whether splitting big slides into several
tasks could shorten the run: a per-slide schedule cannot end before the longest slide, nor before
the total divided by N; it prints the longest-first (LPT) schedule's makespan against the perfect
division of the same work.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))  # pyramid_tiff
from pyramid_tiff import write_pyramid  # noqa: E402

DATA = (REPO / ".." / "shared" / "data").resolve()
#: The complete patients of ../shared/data/README.md (the whole slide can be reassembled).
COMPLETE_PATIENTS = (
    "8863",
    "8865",
    "8867",
    "8913",
    "8914",
    "8951",
    "8955",
    "8974",
    "8975",
    "8980",
    "8984",
    "9022",
    "9035",
    "9037",
    "9041",
    "9076",
    "9078",
    "9123",
    "9124",
    "9126",
)
#: Synthetic slide sizes (level-0 px at 4 µm/px), cycled: small to large, as in a real cohort.
SYNTHETIC_SIZES = ((2000, 1600), (3000, 2400), (4000, 3000), (5000, 4000), (6000, 4500))


def real_slides(n: int, folder: Path) -> list[Path]:
    from training.assemble_slide import assemble_slide

    idc = DATA / "idc"
    if n <= 0:
        return []
    if not idc.is_dir():
        print(f"note: {idc} is missing: synthetic slides only", file=sys.stderr)
        return []
    return [
        assemble_slide(idc / p, folder / f"patient-{p}.tiff").path
        for p in COMPLETE_PATIENTS[:n]
        if (idc / p).is_dir()
    ]


def synthetic_slides(n: int, folder: Path) -> list[Path]:
    from idc_viewer.core.synthetic import SyntheticSlide

    paths = []
    for k in range(n):
        width, height = SYNTHETIC_SIZES[k % len(SYNTHETIC_SIZES)]
        slide = SyntheticSlide(width, height, mpp=4.0, seed=1000 + k, n_blobs=5)
        # in strips: a pixel depends only on its position, and memory stays ~100 MB
        image = np.concatenate(
            [slide.read_region(0, y, 0, width, min(512, height - y)) for y in range(0, height, 512)]
        )
        path = folder / f"synthetic-{k:02d}.tiff"
        write_pyramid(path, image, levels=6, tile_px=256, mpp=4.0, last_below_px=1024)
        paths.append(path)
    return paths


def run_analyze(slides_dir: Path, workdir: Path, label: str, workers: int | None) -> dict:
    out, results = workdir / f"out-{label}", workdir / f"results-{label}"
    cmd = [
        sys.executable,
        "-m",
        "idc_viewer",
        "analyze",
        str(slides_dir),
        "--out",
        str(out),
        "--results-dir",
        str(results),
        "-q",
    ]
    if workers:
        cmd += ["--workers", str(workers)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=REPO)
    wall_s = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{label}: analyze failed ({proc.returncode}): {proc.stderr[-2000:]}")
    patches = sum(
        json.loads(p.read_text())["counts"]["patches_analysed"]
        for p in out.glob("*.provenance.json")
    )
    seconds = []
    if (out / "cohort.csv").exists():
        with open(out / "cohort.csv", newline="", encoding="utf-8") as fh:
            seconds = [float(r["seconds"]) for r in csv.DictReader(fh)]
    return {
        "label": label,
        "workers": workers,
        "wall_s": wall_s,
        "patches": patches,
        "slides": len(list(out.glob("*.provenance.json"))),
        "slide_seconds": seconds,
    }


def cluster_start_s(workers: int) -> float:
    """Seconds to start and close a local cluster of ``workers`` processes (no slides)."""
    code = (
        "import time; t=time.perf_counter();"
        "from idc_viewer.engine.cohort_cluster import start_local_cluster as s;"
        f"c=s({workers}); c.close(); print(time.perf_counter()-t)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    return float(proc.stdout.strip().splitlines()[-1])


def lpt_makespan_s(durations: list[float], workers: int) -> float:
    """Makespan of longest-first list scheduling of whole slides on ``workers`` slots."""
    loads = [0.0] * workers
    for d in sorted(durations, reverse=True):
        loads[loads.index(min(loads))] += d
    return max(loads)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real", type=int, default=10, help="reassembled IDC patients")
    parser.add_argument("--synthetic", type=int, default=10, help="synthetic slides")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-cohort-") as tmp:
        workdir = Path(tmp)
        slides_dir = workdir / "slides"
        slides_dir.mkdir()
        t0 = time.perf_counter()
        real = real_slides(args.real, slides_dir)
        synthetic = synthetic_slides(args.synthetic, slides_dir)
        for truth in slides_dir.glob("*.csv"):  # assemble_slide's truth CSVs are not slides
            truth.unlink()
        size_mb = sum(p.stat().st_size for p in slides_dir.iterdir()) / 1e6
        print(
            f"{len(real)} reassembled + {len(synthetic)} synthetic slides written in "
            f"{time.perf_counter() - t0:.0f} s ({size_mb:.0f} MB)"
        )
        for path in slides_dir.iterdir():  # warm the page cache for every run alike
            path.read_bytes()

        runs = [run_analyze(slides_dir, workdir, "serial", None)]
        for n in args.workers:
            runs.append(run_analyze(slides_dir, workdir, f"{n}-workers", n))
        starts = {n: cluster_start_s(n) for n in args.workers}

    cores = os.cpu_count() or 1
    base = runs[0]
    print(
        f"\nmachine: {cores} CPU cores (os.cpu_count); other jobs may share them. "
        f"{base['slides']} slides, {base['patches']:,} tissue patches; one run each."
    )
    print(
        f"{'run':<11} {'wall s':>7} {'slides/s':>9} {'patches/s':>10} {'speed-up':>9} "
        f"{'efficiency':>11} {'cluster start+close s':>22}"
    )
    for run in runs:
        n = run["workers"] or 1
        speedup = base["wall_s"] / run["wall_s"]
        start = f"{starts[run['workers']]:.1f}" if run["workers"] else "-"
        print(
            f"{run['label']:<11} {run['wall_s']:>7.1f} {run['slides'] / run['wall_s']:>9.2f} "
            f"{run['patches'] / run['wall_s']:>10,.0f} {speedup:>8.2f}x {speedup / n:>10.0%} "
            f"{start:>22}"
        )
        if run["patches"] != base["patches"]:
            print(
                f"  warning: {run['label']} analysed {run['patches']} patches, serial "
                f"{base['patches']}"
            )
    print(
        "efficiency = speed-up over serial / workers; with more workers than cores it "
        f"cannot reach 100 % (this machine has {cores} cores)."
    )

    last = runs[-1]
    if last["slide_seconds"]:
        n = last["workers"]
        durations = last["slide_seconds"]
        ideal = sum(durations) / n
        lpt = lpt_makespan_s(durations, n)
        print(
            f"\nsplitting big slides? {n}-worker run: slides took {min(durations):.1f}-"
            f"{max(durations):.1f} s each ({sum(durations):.1f} s in all); whole slides "
            f"longest first end after {lpt:.1f} s, perfectly divided work after {ideal:.1f} s: "
            f"splitting could save at most {100 * (lpt - ideal) / lpt:.0f} % of the analysis "
            "time of this cohort."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
