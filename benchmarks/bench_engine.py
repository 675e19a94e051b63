"""Engine throughput against the paper's own inference path, on reassembled real slides.

Run from the repository root::

    .venv/bin/python benchmarks/bench_engine.py [--patients 8867 8974 8975] [--model PATH]

It reassembles complete IDC patients from ``../shared/data/idc`` into pyramidal TIFFs at
4.0 µm/px (``training.assemble_slide``), finds their tissue patches with the engine's grid and
tissue detector, and prints, measured in one run on this machine:

(a) the paper's path: each patch resized to 128 x 128 and Keras ``model.predict`` at batch 32
    with the 128-input model (random weights: speed does not depend on them);
(b) the engine's CNN stage alone: ``predictor.predict`` on the pre-read patches, native 50 px
    model, batches of 256;
(c) ``idc-viewer analyze`` end to end as a subprocess (process start, model load, slide
    reading, tissue detection, CNN, results store and exports included);

with the ratios (c)/(a) and (b)/(a). Targets (issue 2): (b) >= 2,000 patches/s and
(c)/(a) >= 5 on a 2-core CPU. The model is the bundled one when
``idc_viewer/resources/models`` has one, else a random native model saved through
``idc_viewer.ml.saving`` into a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DATA = (REPO / ".." / "shared" / "data").resolve()
DEFAULT_PATIENTS = ("8867", "8974", "8975")
CNN_TARGET = 2000.0
END_TO_END_TARGET = 5.0


def given_model(explicit: str | None) -> Path | None:
    """``explicit``, else the bundled model; None when there is neither."""
    if explicit:
        return Path(explicit)
    bundled = sorted((REPO / "idc_viewer" / "resources" / "models").glob("*.spec.json"))
    return bundled[0] if bundled else None


def find_model(explicit: str | None, workdir: Path) -> Path:
    """The model to benchmark: ``explicit``, the bundled one, or a fresh random native one."""
    given = given_model(explicit)
    if given is not None:
        return given
    sys.path.insert(0, str(REPO / "tests"))
    from model_fakes import save_random_model  # the tests' random native model

    return save_random_model(workdir / "model")


def assemble(patients: list[str], workdir: Path) -> list[Path]:
    from training.assemble_slide import assemble_slide

    slides = []
    for patient in patients:
        source = DATA / "idc" / patient
        if not source.is_dir():
            raise SystemExit(f"error: {source} is missing (is ../shared/data present?)")
        slides.append(assemble_slide(source, workdir / "slides" / f"{patient}.tiff").path)
    return slides


def tissue_patches(slides: list[Path], patch_px: int, model_mpp: float) -> np.ndarray:
    """Every tissue patch of the slides, read as the engine reads them."""
    from idc_viewer.core.patches import iter_patch_batches, make_grid, order_for_reading
    from idc_viewer.core.readers import open_slide
    from idc_viewer.core.tissue import detect_tissue
    from idc_viewer.engine.analysis import tissue_cells

    parts: list[np.ndarray] = []
    for path in slides:
        with open_slide(path) as slide:
            grid = make_grid(slide.info, patch_px=patch_px, model_mpp=model_mpp)
            cells = order_for_reading(grid, tissue_cells(detect_tissue(slide, grid).mask))
            parts.extend(p for _, p in iter_patch_batches(slide, grid, cells, 1024))
    return np.concatenate(parts)


def bench_paper_path(patches: np.ndarray) -> float:
    """(a) resize each patch to 128 x 128, scale to [0, 1], Keras predict at batch 32."""
    import cv2

    from idc_viewer.ml.inference import configure_tensorflow_threads
    from idc_viewer.ml.model_def import build_model

    configure_tensorflow_threads()
    model = build_model(128)
    model.predict(np.zeros((32, 128, 128, 3), np.float32), batch_size=32, verbose=0)  # warm up
    start = time.perf_counter()
    x = np.stack([cv2.resize(p, (128, 128), interpolation=cv2.INTER_LINEAR) for p in patches])
    probs = model.predict(x.astype(np.float32) / 255.0, batch_size=32, verbose=0)
    elapsed = time.perf_counter() - start
    assert len(probs) == len(patches)
    return len(patches) / elapsed


def bench_cnn_stage(model_path: Path, patches: np.ndarray, batch: int = 256) -> float:
    """(b) the engine's predictor alone on pre-read patches."""
    from idc_viewer.ml.loading import load_model

    predictor = load_model(model_path).predictor
    predictor.predict(patches[:batch])  # warm up (allocation for this batch size)
    start = time.perf_counter()
    for i in range(0, len(patches), batch):
        predictor.predict(patches[i : i + batch])
    return len(patches) / (time.perf_counter() - start)


def bench_end_to_end(model_path: Path, slides: list[Path], workdir: Path, n: int) -> float:
    """(c) ``idc-viewer analyze`` as a subprocess, fresh results store, wall clock."""
    out = workdir / "out"
    results = workdir / f"results-{time.monotonic_ns()}"
    cmd = [
        sys.executable,
        "-m",
        "idc_viewer",
        "analyze",
        *map(str, slides),
        "--out",
        str(out),
        "--model",
        str(model_path),
        "--results-dir",
        str(results),
        "--quiet",
    ]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=REPO)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"error: idc-viewer analyze failed ({proc.returncode}): {proc.stderr}")
    return n / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", nargs="+", default=list(DEFAULT_PATIENTS))
    parser.add_argument("--model", help="model to benchmark (default: bundled, else random)")
    parser.add_argument(
        "--paper-max",
        type=int,
        default=0,
        help="time the paper path on at most this many patches (0 = all)",
    )
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO))
    with tempfile.TemporaryDirectory(prefix="idc-bench-") as tmp:
        workdir = Path(tmp)
        t0 = time.perf_counter()
        slides = assemble(args.patients, workdir)
        model_path = find_model(args.model, workdir)
        from idc_viewer.ml.spec import read_spec

        spec = read_spec(model_path)
        patches = tissue_patches(slides, spec.patch_size_px, spec.patch_mpp)
        n = len(patches)
        print(
            f"slides: {', '.join(p.name for p in slides)}; {n} tissue patches "
            f"(prepared in {time.perf_counter() - t0:.1f} s); model {model_path.name} "
            f"({spec.preset}, {spec.input_size} px input); {os.cpu_count()} CPUs"
        )

        paper_set = patches[: args.paper_max] if args.paper_max else patches
        end_to_end = bench_end_to_end(model_path, slides, workdir, n)  # before TF is loaded here
        cnn = bench_cnn_stage(model_path, patches)
        paper = bench_paper_path(paper_set)

    print(f"(a) paper path, 128x128 + Keras predict(batch 32): {paper:8,.0f} patches/s")
    print(
        f"(b) engine CNN stage ({spec.input_size} px, predictor):   {cnn:8,.0f} patches/s "
        f"[target >= {CNN_TARGET:,.0f}: {'met' if cnn >= CNN_TARGET else 'NOT met'}]"
    )
    print(f"(c) idc-viewer analyze end to end:             {end_to_end:8,.0f} patches/s")
    ratio_c = end_to_end / paper
    print(
        f"(c)/(a) = {ratio_c:.1f}x [target >= {END_TO_END_TARGET:g}x: "
        f"{'met' if ratio_c >= END_TO_END_TARGET else 'NOT met'}]   (b)/(a) = {cnn / paper:.1f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
