"""Cohorts on a Dask cluster: same outputs as a serial run, faults, Ctrl-C, cohort.csv.

The cluster tests start one ``LocalCluster`` of 2 worker processes on loopback (module fixture)
whose workers sleep a little per CNN batch (a preload script), so a slide lasts a few seconds and a
worker can be killed mid-slide for sure. Slides are tiny synthetic TIFFs; the model is the bundled
native one (LiteRT).
"""

from __future__ import annotations

import _thread
import csv
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

distributed = pytest.importorskip("distributed", reason="dask distributed is not installed")

from slide_fakes import write_pyramid_tiff  # noqa: E402  (tests/, on sys.path via conftest)

from idc_viewer.cli.main import main  # noqa: E402
from idc_viewer.core.fingerprint import slide_fingerprint  # noqa: E402
from idc_viewer.core.readers import open_slide  # noqa: E402
from idc_viewer.core.store import ResultStore  # noqa: E402
from idc_viewer.core.synthetic import SyntheticSlide  # noqa: E402
from idc_viewer.engine.cohort import (  # noqa: E402
    CohortOptions,
    litert_threads_per_worker,
    run_cohort,
)
from idc_viewer.engine.cohort_cluster import start_local_cluster  # noqa: E402
from idc_viewer.engine.cohort_progress import CohortProgress  # noqa: E402
from idc_viewer.engine.cohort_summary import HEADER, write_cohort_csv  # noqa: E402
from idc_viewer.engine.cohort_task import (  # noqa: E402
    CANCELLED,
    DONE,
    FAILED,
    NO_TISSUE,
    SlideOutcome,
    SlideTask,
    run_slide_task,
)
from idc_viewer.ml.loading import default_model_path, load_model  # noqa: E402

BATCH = 8
#: Seconds each worker sleeps per CNN batch: a big slide lasts 2-4 s, long enough to be
#: interrupted mid-slide for sure even when the machine is busy.
BATCH_DELAY_S = 0.1
SLOW_PRELOAD = f"""
import time
from idc_viewer.ml import inference

if not hasattr(inference.LiteRtPredictor, "_unslowed_predict"):  # Dask may run this twice
    inference.LiteRtPredictor._unslowed_predict = inference.LiteRtPredictor.predict

    def predict(self, patches):
        if len(patches) > 1:  # not the warm-up call
            time.sleep({BATCH_DELAY_S})
        return self._unslowed_predict(patches)

    inference.LiteRtPredictor.predict = predict
"""


def synthetic_tiff(path: Path, seed: int, width: int = 900, height: int = 700) -> Path:
    """A small H&E-like slide at 4 µm/px (the model's scale: one patch = 50 level-0 px)."""
    image = SyntheticSlide(width, height, mpp=4.0, seed=seed, n_blobs=4).read_region(
        0, 0, 0, width, height
    )
    return write_pyramid_tiff(path, image, levels=2, mpp=4.0, tile=128)


@pytest.fixture(scope="module")
def model_hash() -> str:
    return load_model(default_model_path()).spec.model_hash


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Four good slides (two of them bigger: the ones whose workers get killed) and a bad file."""
    folder = tmp_path_factory.mktemp("slides")
    slides = {
        "small1": synthetic_tiff(folder / "small1.tiff", 1),
        "small2": synthetic_tiff(folder / "small2.tiff", 2),
        "big1": synthetic_tiff(folder / "big1.tiff", 3, 2000, 1600),
        "big2": synthetic_tiff(folder / "big2.tiff", 4, 2000, 1600),
    }
    bad = folder / "bad.tiff"
    bad.write_bytes(b"not a slide at all")
    slides["bad"] = bad
    return slides


@pytest.fixture(scope="module")
def serial_out(cohort: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The serial run's outputs (``idc-viewer analyze`` without --workers), the reference."""
    out = tmp_path_factory.mktemp("serial")
    rc = main(
        [
            "analyze",
            *map(str, cohort.values()),
            "--out",
            str(out),
            "--results-dir",
            str(tmp_path_factory.mktemp("serial-results")),
            "--batch-size",
            str(BATCH),
            "--quiet",
        ]
    )
    assert rc == 1  # the bad file
    assert not (out / "cohort.csv").exists()  # the serial command is unchanged
    return out


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    preload = tmp_path_factory.mktemp("preload") / "slow_batches.py"
    preload.write_text(SLOW_PRELOAD)
    local = start_local_cluster(2, preload=[str(preload)])
    try:
        yield local
    finally:
        local.close(timeout=30)


def outputs_equal(serial: Path, other: Path, stem: str) -> None:
    for suffix in (".patches.csv", ".regions.csv", ".regions.geojson"):
        assert (other / f"{stem}{suffix}").read_bytes() == (serial / f"{stem}{suffix}").read_bytes()
    ours = json.loads((other / f"{stem}.provenance.json").read_text())
    theirs = json.loads((serial / f"{stem}.provenance.json").read_text())
    ours.pop("date")
    theirs.pop("date")
    assert ours == theirs


def read_cohort_csv(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "cohort.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == list(HEADER)
    return {Path(r["file"]).stem: r for r in rows}


def options(
    out: Path, results: Path, model_hash: str, cluster, batch: int = BATCH
) -> CohortOptions:
    return CohortOptions(
        out_dir=out,
        model_hash=model_hash,
        results_dir=str(results),
        batch_size=batch,
        scheduler=cluster.scheduler_address,
        quiet=True,
    )


# --------------------------------------------------------------------------- cluster runs


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_killed_workers_cost_one_slide_and_outputs_equal_the_serial_run(
    cohort, serial_out, cluster, model_hash, tmp_path
):
    """big1's worker is killed once (the slide resumes on another worker), big2's twice (it is
    reported); every other good slide equals the serial run, the bad file is reported."""
    order = list(cohort)
    targets = {order.index("big1"): 1, order.index("big2"): 2}
    killed: dict[int, list[int]] = {i: [] for i in targets}
    lock = threading.Lock()

    def on_event(msg):
        i = msg["index"]
        with lock:
            if (
                i in targets
                and len(killed[i]) < targets[i]
                and msg["pid"] not in killed[i]
                and msg["new"] >= 2 * BATCH
                and not msg["final"]
            ):
                killed[i].append(msg["pid"])
                os.kill(msg["pid"], signal.SIGKILL)

    out, results = tmp_path / "out", tmp_path / "results"
    out.mkdir()
    stems = [p.stem for p in cohort.values()]
    report = run_cohort(
        list(cohort.values()), stems, options(out, results, model_hash, cluster), on_event=on_event
    )

    assert [len(v) for v in killed.values()] == [1, 2]  # the kills really happened mid-slide
    by_name = {Path(o.file).stem: o for o in report.outcomes}
    for name in ("small1", "small2", "big1"):
        assert by_name[name].status == DONE, by_name[name]
        outputs_equal(serial_out, out, name)
    assert by_name["big1"].resumed_patches >= 2 * BATCH  # resumed from the store, not redone
    assert by_name["big2"].status == FAILED and "died 2 times" in by_name["big2"].message
    assert not (out / "big2.patches.csv").exists()
    assert by_name["bad"].status == FAILED and "bad.tiff" in by_name["bad"].message

    rows = read_cohort_csv(out)
    assert set(rows) == set(cohort)
    assert rows["big2"]["status"] == "failed" and rows["big2"]["tissue_patches"] == ""
    for name in ("small1", "small2", "big1"):
        row = rows[name]
        with open(serial_out / f"{name}.patches.csv", newline="") as fh:
            probs = [float(r["probability"]) for r in csv.DictReader(fh)]
        assert int(row["tissue_patches"]) == len(probs)
        assert float(row["max_probability"]) == pytest.approx(max(probs), abs=1e-6)
        assert row["model_hash"] == model_hash and float(row["um_per_px"]) == 4.0
        assert float(row["largest_region_mm2"]) <= float(row["flagged_area_mm2"])


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ctrl_c_stops_the_workers_within_a_batch_and_nothing_half_done_looks_complete(
    cohort, cluster, model_hash, tmp_path
):
    slides = [cohort[name] for name in ("big1", "big2", "small1", "small2")]
    interrupted = threading.Event()
    batch = BATCH // 2  # twice the batches: the slides last twice as long

    def on_event(msg):
        if msg["new"] >= 2 * batch and not interrupted.is_set():
            interrupted.set()
            _thread.interrupt_main()  # what Ctrl-C does to the client

    out, results = tmp_path / "out", tmp_path / "results"
    out.mkdir()
    t0 = time.monotonic()
    # as in a terminal: a shell's background job (some CI runners) starts with SIGINT ignored,
    # and then interrupt_main() does nothing
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_cohort(
                slides,
                [p.stem for p in slides],
                options(out, results, model_hash, cluster, batch),
                on_event=on_event,
            )
    finally:
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - t0 < 60
    rows = read_cohort_csv(out)
    assert set(rows) == {"big1", "big2", "small1", "small2"}
    cancelled = [name for name, row in rows.items() if row["status"] == CANCELLED]
    assert cancelled  # the run really was stopped part-way
    # a worker stopped mid-slide says so itself (it read the cancel event between batches)
    assert any("what was analysed is kept" in rows[n]["message"] for n in cancelled)
    for name in cancelled:
        assert not list(out.glob(f"{name}.*"))  # no output file for an unfinished slide
    store = ResultStore(results)
    for name in cancelled:
        with open_slide(cohort[name]) as slide:
            for stored in store.find(slide_fingerprint(slide)):
                assert not stored.is_complete
                stored.close()


# --------------------------------------------------------------------------- the CLI


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_cli_workers_flag_runs_a_local_cluster(cohort, serial_out, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(
        [
            "analyze",
            str(cohort["small1"]),
            str(cohort["bad"]),
            "--out",
            str(out),
            "--workers",
            "2",
            "--results-dir",
            str(tmp_path / "results"),
            "--batch-size",
            str(BATCH),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "bad.tiff" in errors[0]
    assert "1 of 2 slides analysed, 1 failed" in err
    outputs_equal(serial_out, out, "small1")
    rows = read_cohort_csv(out)
    assert rows["small1"]["status"] == "done" and rows["bad"]["status"] == "failed"


def test_workers_and_scheduler_exclude_each_other(capsys):
    with pytest.raises(SystemExit):
        main(["analyze", "x.svs", "--out", "o", "--workers", "2", "--scheduler", "tcp://h:1"])
    assert "not allowed with" in capsys.readouterr().err


# --------------------------------------------------------------------------- pieces


def local_task(
    slide: Path,
    out_dir: Path,
    model_hash: str,
    results_dir: Path,
    *,
    index: int = 0,
    stem: str | None = None,
    **options: Any,
) -> SlideTask:
    """A task of run "t" for ``slide`` (its stem by default) with ``options``, outside a cluster."""
    return SlideTask(
        index=index,
        slide_path=str(slide),
        stem=Path(slide).stem if stem is None else stem,
        out_dir=str(out_dir),
        model_hash=model_hash,
        run_id="t",
        results_dir=str(results_dir),
        **options,
    )


def test_run_slide_task_outside_a_cluster_matches_the_serial_run(
    cohort, serial_out, model_hash, tmp_path
):
    task = local_task(
        cohort["small2"], tmp_path, model_hash, tmp_path / "results", batch_size=BATCH
    )
    outcome = run_slide_task(task)
    assert outcome.status == DONE and outcome.analysed_patches == outcome.tissue_patches > 0
    outputs_equal(serial_out, tmp_path, "small2")
    again = run_slide_task(task)  # everything stored: resumed, nothing analysed again
    assert again.status == DONE and again.analysed_patches == 0
    assert again.resumed_patches == outcome.tissue_patches


def test_run_slide_task_reports_a_bad_file_and_a_foreign_model(cohort, model_hash, tmp_path):
    bad = run_slide_task(local_task(cohort["bad"], tmp_path, model_hash, tmp_path / "r", index=3))
    assert bad.status == FAILED and "bad.tiff" in bad.message and "\n" not in bad.message
    foreign = run_slide_task(
        local_task(cohort["small1"], tmp_path, "0" * 16, tmp_path / "r", stem="s")
    )
    assert foreign.status == FAILED and "same --model" in foreign.message
    assert not list(tmp_path.glob("s.*"))


def test_run_slide_task_on_empty_glass_writes_only_the_provenance(model_hash, tmp_path):
    glass = write_pyramid_tiff(
        tmp_path / "glass.tiff", np.full((600, 800, 3), 244, np.uint8), levels=1, mpp=4.0, tile=128
    )
    out = tmp_path / "out"
    outcome = run_slide_task(local_task(glass, out, model_hash, tmp_path / "r"))
    assert outcome.status == NO_TISSUE and "no heatmap written" in outcome.message
    assert sorted(p.name for p in out.iterdir()) == ["glass.provenance.json"]


def test_cohort_csv_is_complete_and_leaves_figures_empty_for_unfinished_slides(tmp_path):
    done = SlideOutcome(
        index=0,
        file="/s/a.svs",
        stem="a",
        status=DONE,
        mpp=0.25,
        tissue_patches=10,
        flagged_patches=3,
        flagged_area_mm2=0.12,
        largest_region_mm2=0.08,
        max_probability=0.97,
        model_hash="h",
        seconds=1.5,
    )
    failed = SlideOutcome(
        index=1, file="/s/=b.svs", stem="=b", status=FAILED, message="cannot open =b.svs: damaged"
    )
    path = write_cohort_csv(tmp_path, [done, failed])
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == list(HEADER)
    assert rows[1][:10] == [
        "/s/a.svs",
        "done",
        "0.250000",
        "10",
        "3",
        "0.120000",
        "0.080000",
        "0.970000",
        "h",
        "1.50",
    ]
    assert rows[2][1] == "failed" and rows[2][3:8] == [""] * 5
    assert rows[2][0] == "/s/=b.svs"  # a path starts with "/": no formula guard needed
    assert rows[2][10] == "'=b"  # formula-looking text is neutralised
    assert not list(tmp_path.glob(".*tmp"))


def test_cohort_progress_sums_the_workers_and_estimates_the_time_left():
    progress = CohortProgress(4, ["a", "b", "c", "d"])
    progress.t0 -= 10.0
    progress.on_event({"index": 0, "done": 50, "total": 100, "new": 50, "pid": 1})
    progress.on_event({"index": 1, "done": 100, "total": 200, "new": 100, "pid": 2})
    assert progress.patches_per_s == pytest.approx(15.0, rel=0.05)
    # a quarter of the cohort done (two half slides) in 10 s: about 30 s left
    assert progress.eta_s == pytest.approx(30.0, rel=0.05)
    progress.on_event({"index": 1, "done": 120, "total": 200, "new": 20, "pid": 3})
    assert "b: its worker stopped; retried on another worker" in progress.take_notes()[0]
    assert progress.patches_per_s == pytest.approx(17.0, rel=0.05)  # both attempts' work counts
    line = progress.line()
    assert "0/4 slides" in line and "patches/s" in line and "ETA" in line


def test_litert_threads_share_the_cores():
    assert litert_threads_per_worker(1, cores=2) == 2
    assert litert_threads_per_worker(2, cores=2) == 1
    assert litert_threads_per_worker(4, cores=2) == 1
    assert litert_threads_per_worker(3, cores=16) == 5


def test_options_need_exactly_one_cluster():
    with pytest.raises(ValueError):
        CohortOptions(out_dir=Path("o"), model_hash="h")
    with pytest.raises(ValueError):
        CohortOptions(out_dir=Path("o"), model_hash="h", workers=2, scheduler="tcp://h:1")
    with pytest.raises(ValueError):
        CohortOptions(out_dir=Path("o"), model_hash="h", workers=0)
