"""Peak memory of analysing a 100,000 x 100,000 px synthetic slide at 0.25 µm/px.

Run from the repository root::

    .venv/bin/python benchmarks/bench_memory.py [--model PATH] [--side 100000]

Prints the resident memory after the imports and the model load (the baseline), the peak
resident memory sampled during the analysis (every 20 ms) and the process's peak from
``getrusage(ru_maxrss)``. Target (issue 2): peak < 1.5 GB. The analysis uses the engine as the
CLI does (reader thread, bounded queue, SQLite results store in a temporary folder). Without a
bundled model a random native model is first saved in a separate process, so TensorFlow's
~600 MiB never enters the measured process (the engine itself runs on LiteRT).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
from bench_engine import given_model  # beside this script

REPO = Path(__file__).resolve().parent.parent
TARGET_BYTES = 1.5e9
_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """Current resident set size of this process."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * _PAGE


def maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


class PeakSampler(threading.Thread):
    def __init__(self, interval_s: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.interval_s = interval_s
        self.peak = rss_bytes()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(self.interval_s)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return max(self.peak, rss_bytes())


def model_path(explicit: str | None, workdir: Path) -> Path:
    given = given_model(explicit)
    if given is not None:
        return given
    code = (
        "import sys; sys.path.insert(0, sys.argv[2]); from bench_engine import find_model; "
        "from pathlib import Path; print(find_model(None, Path(sys.argv[1])))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(workdir), str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip().splitlines()[-1])


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model (default: bundled, else a random native one)")
    parser.add_argument("--side", type=int, default=100_000, help="slide side in level-0 px")
    parser.add_argument("--mpp", type=float, default=0.25)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="idc-mem-") as tmp:
        workdir = Path(tmp)
        path = model_path(args.model, workdir)
        start_rss = rss_bytes()
        from idc_viewer.core.store import ResultStore
        from idc_viewer.core.synthetic import SyntheticSlide
        from idc_viewer.engine.analysis import analyze
        from idc_viewer.engine.events import Finished, HeatmapBuilder
        from idc_viewer.ml.loading import load_model

        model = load_model(path)
        model.predictor.predict(np.zeros((args.batch_size, 50, 50, 3), np.uint8))
        baseline = rss_bytes()
        tf_loaded = "tensorflow" in sys.modules
        slide = SyntheticSlide(args.side, args.side, mpp=args.mpp, seed=7, n_blobs=12)

        sampler = PeakSampler()
        sampler.start()
        t0 = time.perf_counter()
        built = HeatmapBuilder()
        for event in analyze(
            slide, model, ResultStore(workdir / "results"), None, batch_size=args.batch_size
        ):
            built.apply(event)
            last = event
        elapsed = time.perf_counter() - t0
        peak = sampler.stop()

    assert isinstance(last, Finished) and last.complete, "the analysis did not finish"
    grid = built.grid
    assert grid is not None
    print(
        f"slide: synthetic {args.side:,} x {args.side:,} px at {args.mpp} µm/px; grid "
        f"{grid.cols} x {grid.rows}, read level {grid.read_level}; "
        f"{last.progress.total:,} tissue patches in {elapsed:.1f} s "
        f"({last.progress.total / elapsed:,.0f} patches/s); model {path.name}"
    )
    print(f"RSS at start (python + numpy):           {mib(start_rss)}")
    print(
        f"baseline RSS (imports + model loaded):   {mib(baseline)}"
        f"{'  [TensorFlow imported]' if tf_loaded else ''}"
    )
    print(
        f"peak RSS during the analysis (sampled):  {mib(peak)}  "
        f"(+{mib(peak - baseline)} over the baseline)"
    )
    print(
        f"peak RSS of the process (ru_maxrss):     {mib(maxrss_bytes())}  "
        f"[target < {TARGET_BYTES / 1e9:g} GB: "
        f"{'met' if maxrss_bytes() < TARGET_BYTES else 'NOT met'}]"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
