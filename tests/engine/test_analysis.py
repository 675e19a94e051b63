"""The analysis generator: progress, cancel, resume, bounded read-ahead, tissue warnings."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import numpy as np
import pytest
from model_fakes import (  # tests/, on sys.path via conftest
    FakeModel,
    FakePredictor,
    fake_spec,
    save_random_model,
)

from idc_viewer.core.jobs import CancelToken
from idc_viewer.core.memory import ArraySlide
from idc_viewer.core.patches import make_grid
from idc_viewer.core.slide import MissingMppError
from idc_viewer.core.store import ResultStore
from idc_viewer.core.synthetic import SyntheticSlide
from idc_viewer.core.tissue import detect_tissue
from idc_viewer.engine.analysis import (
    BatchReader,
    analysis_params,
    analyze,
    tissue_cells,
)
from idc_viewer.engine.events import AnalysisEvent, Batch, Finished, NoTissue, Started, fold


def tissue_image(width: int = 1000, height: int = 800, seed: int = 0) -> np.ndarray:
    """White glass with a pink/purple textured tissue rectangle and noise, at 4.0 µm/px."""
    rng = np.random.default_rng(seed)
    image = np.full((height, width, 3), 245, dtype=np.uint8)
    y0, y1, x0, x1 = height // 5, height * 4 // 5, width // 6, width * 5 // 6
    tissue = rng.integers(0, 80, size=(y1 - y0, x1 - x0, 1), dtype=np.int16)
    base = np.array([200, 120, 170], dtype=np.int16)
    image[y0:y1, x0:x1] = np.clip(base - tissue, 0, 255).astype(np.uint8)
    return image


class CountingSlide(ArraySlide):
    """An ArraySlide that counts region reads (thread-safe), to watch the reader thread."""

    def __init__(self, image: np.ndarray, mpp: float = 4.0) -> None:
        super().__init__([image], mpp=mpp, path="counting")
        self.lock = threading.Lock()
        self.reads: list[tuple[int, int, int, int, int]] = []

    def read_region(self, l0_x: int, l0_y: int, level: int, lvl_w: int, lvl_h: int) -> np.ndarray:
        with self.lock:
            self.reads.append((l0_x, l0_y, level, lvl_w, lvl_h))
        return super().read_region(l0_x, l0_y, level, lvl_w, lvl_h)


@pytest.fixture
def fake_model() -> FakeModel:
    return FakeModel()


@pytest.fixture
def small_slide() -> ArraySlide:
    """1000 x 800 px at 4.0 µm/px: a 20 x 16 grid with a tissue block in the middle."""
    return ArraySlide([tissue_image()], mpp=4.0, path="small")


@pytest.fixture(scope="session")
def random_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised native (50 px) model saved through the model contract."""
    return save_random_model(tmp_path_factory.mktemp("model"))


def run_all(*args: object, **kwargs: object) -> list[AnalysisEvent]:
    return list(analyze(*args, **kwargs))  # type: ignore[arg-type]


def batches(events: list[AnalysisEvent]) -> list[Batch]:
    return [e for e in events if isinstance(e, Batch)]


def final_heatmap(events: list[AnalysisEvent]):
    heatmap = fold(events).heatmap
    assert heatmap is not None
    return heatmap


def expected_tissue(slide: ArraySlide) -> np.ndarray:
    grid = make_grid(slide.info, 50, 4.0)
    return detect_tissue(slide, grid).mask


def test_progress_is_monotone_and_totals_are_right(small_slide, fake_model):
    updates = run_all(small_slide, fake_model, None, None, batch_size=16)
    mask = expected_tissue(small_slide)
    total = int(mask.sum())
    assert total > 50  # the fixture really has tissue
    assert all(u.progress.total == total for u in updates)  # type: ignore[union-attr]
    done = [u.progress.done for u in updates]  # type: ignore[union-attr]
    assert done == sorted(done) and done[0] == 0 and done[-1] == total
    assert isinstance(updates[0], Started) and isinstance(updates[-1], Finished)
    assert updates[-1].complete
    assert sum(len(u) for u in batches(updates)) == total
    assert fake_model.predictor.patches_seen == total
    assert max(fake_model.predictor.batch_sizes) == 16
    heatmap = final_heatmap(updates)
    assert np.array_equal(~np.isnan(heatmap.probabilities), mask)  # every tissue cell, only those


def test_batch_cells_match_probabilities_and_patches(small_slide, fake_model):
    from idc_viewer.core.patches import read_patch

    updates = run_all(small_slide, fake_model, None, None, batch_size=32)
    grid = updates[0].grid  # type: ignore[union-attr]
    batch = batches(updates)[0]
    heatmap = final_heatmap(updates)
    for col, row, p in zip(batch.cols, batch.rows, batch.probabilities, strict=True):
        patch = read_patch(small_slide, grid, int(col), int(row))
        assert p == pytest.approx(patch[..., 0].mean() / 255.0, abs=1e-6)
        assert heatmap.probabilities[row, col] == pytest.approx(p)


def test_events_are_frozen_and_hold_read_only_copies(small_slide, fake_model):
    updates = run_all(small_slide, fake_model, None, None, batch_size=16)
    started, batch = updates[0], batches(updates)[0]
    assert isinstance(started, Started)
    with pytest.raises(dataclasses.FrozenInstanceError):
        batch.progress = None  # type: ignore[misc]
    for array in (batch.cells, batch.probabilities, started.tissue.mask, started.resumed.cells):
        assert not array.flags.writeable
        with pytest.raises(ValueError):
            array[...] = 0
    # the builder's heatmap is its own: filling it leaves the events untouched
    builder = fold(updates)
    assert builder.heatmap is not None and builder.complete
    builder.heatmap.probabilities[...] = 0.5
    assert not np.all(batch.probabilities == 0.5)


def test_rate_and_eta_are_reported(small_slide):
    model = FakeModel(predictor=FakePredictor(delay_s=0.01))
    updates = run_all(small_slide, model, None, None, batch_size=16)
    mid = batches(updates)[:-1]
    assert mid and all(u.progress.rate_per_s > 0 for u in mid)
    assert all(u.progress.eta_s is not None and u.progress.eta_s >= 0 for u in mid)


def test_cancel_stops_within_one_batch_and_keeps_done_cells(small_slide, tmp_path):
    store = ResultStore(tmp_path)
    cancel = CancelToken()
    model = FakeModel()
    updates = []
    for update in analyze(small_slide, model, store, cancel, batch_size=16):
        updates.append(update)
        if update.progress.done >= 32:
            cancel.cancel()
    last = updates[-1]
    assert isinstance(last, Finished) and not last.complete
    assert last.progress.done == 32  # stopped right after the batch in hand
    assert model.predictor.patches_seen == 32  # the next decoded batch never reached the CNN
    assert final_heatmap(updates).analysed_count == 32


def test_cancel_from_another_thread_mid_batch(small_slide):
    cancel = CancelToken()
    # Cancel while the CNN works on its second batch: that batch completes, no third starts.
    predictor = FakePredictor(on_call=lambda i: cancel.cancel() if i == 1 else None)
    updates = run_all(small_slide, FakeModel(predictor=predictor), None, cancel, batch_size=16)
    assert isinstance(updates[-1], Finished) and not updates[-1].complete
    assert predictor.calls == 2
    assert updates[-1].progress.done == 32


def test_resume_processes_only_the_rest_and_matches_an_uninterrupted_run(small_slide, tmp_path):
    full = final_heatmap(run_all(small_slide, FakeModel(), None, None, batch_size=16))

    store = ResultStore(tmp_path / "store")
    cancel = CancelToken()
    for update in analyze(small_slide, FakeModel(), store, cancel, batch_size=16):
        if update.progress.done >= 48:
            cancel.cancel()
    total = full.analysed_count

    second = FakeModel()
    reopened = ResultStore(tmp_path / "store")  # as after a restart
    updates = run_all(small_slide, second, reopened, None, batch_size=16)
    assert isinstance(updates[0], Started)
    assert len(updates[0].resumed) == 48
    assert updates[0].progress.done == 48
    assert second.predictor.patches_seen == total - 48
    assert isinstance(updates[-1], Finished) and updates[-1].complete
    np.testing.assert_array_equal(final_heatmap(updates).probabilities, full.probabilities)

    # Complete: a third run shows everything at once and runs no CNN.
    third = FakeModel()
    again = run_all(small_slide, third, ResultStore(tmp_path / "store"), None, batch_size=16)
    assert third.predictor.calls == 0
    assert isinstance(again[0], Started) and len(again[0].resumed) == total
    assert len(again) == 2 and isinstance(again[-1], Finished) and again[-1].complete
    np.testing.assert_array_equal(final_heatmap(again[:1]).probabilities, full.probabilities)


def test_another_model_or_mpp_does_not_reuse_results(small_slide, tmp_path):
    store = ResultStore(tmp_path)
    run_all(small_slide, FakeModel(), store, None, batch_size=64)
    other = FakeModel(spec=dataclasses.replace(fake_spec("other"), weights_sha256="cd" * 32))
    updates = run_all(small_slide, other, store, None, batch_size=64)
    assert isinstance(updates[0], Started) and len(updates[0].resumed) == 0
    assert other.predictor.patches_seen == updates[-1].progress.total  # type: ignore[union-attr]


def test_crash_in_reader_keeps_done_batches(tmp_path):
    class FailingSlide(CountingSlide):
        def read_region(self, l0_x, l0_y, level, lvl_w, lvl_h):  # type: ignore[override]
            if lvl_h <= 100 and len(self.reads) > 3:
                raise OSError("disk gone")
            return super().read_region(l0_x, l0_y, level, lvl_w, lvl_h)

    slide = FailingSlide(tissue_image())
    store = ResultStore(tmp_path)
    seen = 0
    with pytest.raises(OSError, match="disk gone"):
        for update in analyze(slide, FakeModel(), store, None, batch_size=10):
            seen = update.progress.done  # type: ignore[union-attr]
    assert seen > 0
    resumed = run_all(
        ArraySlide([tissue_image()], mpp=4.0, path="counting"),
        FakeModel(),
        store,
        None,
        batch_size=10,
    )
    assert isinstance(resumed[0], Started) and len(resumed[0].resumed) == seen


def test_reader_stays_a_bounded_number_of_batches_ahead():
    # 1000 x 1000 px at 4 µm/px: a 20 x 20 grid in one read block, so each batch of 10 cells
    # is exactly one region read of at most 2 grid rows (100 px); the tissue view reads more.
    slide = CountingSlide(tissue_image(1000, 1000))
    prefetch = 2
    ahead: list[int] = []

    def watch(call: int) -> None:
        with slide.lock:
            batch_reads = sum(1 for r in slide.reads if r[4] <= 100)
        ahead.append(batch_reads - call)

    predictor = FakePredictor(delay_s=0.02, on_call=watch)
    updates = run_all(
        slide, FakeModel(predictor=predictor), None, None, batch_size=10, prefetch_batches=prefetch
    )
    assert isinstance(updates[-1], Finished) and updates[-1].complete and predictor.calls > 10
    # Batch in hand + queue + the one being assembled: never more.
    assert max(ahead) <= 1 + prefetch + 1
    assert max(ahead) >= 2  # reading really overlapped the (slow) CNN


def test_reader_thread_ends_when_the_consumer_stops_early(small_slide):
    import threading

    gen = analyze(small_slide, FakeModel(), None, None, batch_size=8, prefetch_batches=1)
    next(gen)
    next(gen)
    assert any(t.name == "idc-patch-reader" for t in threading.enumerate())
    gen.close()  # e.g. the GUI dropped the job
    assert not any(t.name == "idc-patch-reader" for t in threading.enumerate())


def test_batch_reader_reraises_errors():
    class Broken(ArraySlide):
        def read_region(self, *args):  # type: ignore[override]
            raise ValueError("bad tile")

    slide = Broken([tissue_image()], mpp=4.0)
    grid = make_grid(slide.info)
    reader = BatchReader(slide, grid, [(5, 5)], 4)
    reader.start()
    with pytest.raises(ValueError, match="bad tile"):
        list(reader)
    reader.stop()


def test_tissue_warning_stops_without_a_heatmap(tmp_path):
    slide = SyntheticSlide(4000, 3000, mpp=1.0, style="fluorescence", seed=3)
    model = FakeModel()
    updates = run_all(slide, model, ResultStore(tmp_path), None)
    assert len(updates) == 1
    assert isinstance(updates[0], NoTissue) and updates[0].warning
    assert model.predictor.calls == 0
    assert fold(updates).heatmap is None


def test_empty_glass_warns():
    slide = ArraySlide([np.full((600, 600, 3), 240, np.uint8)], mpp=4.0)
    updates = run_all(slide, FakeModel(), None, None)
    assert isinstance(updates[-1], NoTissue) and "tissue" in updates[-1].warning


def test_missing_mpp_raises(fake_model):
    slide = ArraySlide([tissue_image()], mpp=None)
    with pytest.raises(MissingMppError):
        next(analyze(slide, fake_model, None, None))


def test_synthetic_slide_at_fine_scale(fake_model):
    # 0.25 µm/px: a patch is 800 level-0 px, read from the 4x level and resampled.
    slide = SyntheticSlide(16000, 12000, mpp=0.25, seed=1)
    updates = run_all(slide, fake_model, None, None, batch_size=64)
    grid = updates[0].grid  # type: ignore[union-attr]
    assert (grid.cols, grid.rows) == (20, 15)
    assert isinstance(updates[-1], Finished) and updates[-1].complete
    assert updates[-1].progress.total > 0


def test_helpers():
    mask = np.zeros((3, 4), bool)
    mask[0, 3] = mask[2, 1] = True
    assert tissue_cells(mask) == [(3, 0), (1, 2)]
    grid = make_grid(ArraySlide([tissue_image()], mpp=2.0).info)
    assert '"slide_mpp": 2.0' in analysis_params(grid)
    with pytest.raises(ValueError):
        next(analyze(ArraySlide([tissue_image()], mpp=4.0), FakeModel(), batch_size=0))


@pytest.mark.slow
def test_real_random_model_end_to_end(small_slide, random_model_path: Path, tmp_path):
    from idc_viewer.ml.loading import load_model

    model = load_model(random_model_path)
    updates = run_all(small_slide, model, ResultStore(tmp_path), None, batch_size=64)
    heatmap = final_heatmap(updates)
    assert isinstance(updates[-1], Finished) and updates[-1].complete
    probs = heatmap.probabilities[~np.isnan(heatmap.probabilities)]
    assert probs.size == updates[-1].progress.total
    assert np.all((probs >= 0) & (probs <= 1))
