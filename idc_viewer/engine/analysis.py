"""Whole-slide analysis as a generator: slide -> tissue -> patches -> CNN -> stored heatmap.

:func:`analyze` is the one engine loop shared by the GUI worker and the ``idc-viewer analyze``
command. It yields immutable events (:mod:`idc_viewer.engine.events`: the start, one per
batch with its cells and probabilities, the end) and holds no heatmap of its own. It honours
a :class:`~idc_viewer.core.jobs.CancelToken` within one batch, overlaps patch reading and
decoding (a background thread feeding a bounded queue) with the CNN, and writes every batch
to a :class:`~idc_viewer.core.store.ResultStore`, so that a cancel or a crash keeps what
was done and a rerun resumes instead of starting over.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

from idc_viewer.core.analysis_key import AnalysisKey
from idc_viewer.core.fingerprint import slide_fingerprint
from idc_viewer.core.jobs import DEFAULT_BATCH_SIZE, CancelToken, RateMeter
from idc_viewer.core.patches import (
    Cell,
    PatchGrid,
    iter_patch_batches,
    make_grid,
    order_for_reading,
)
from idc_viewer.core.slide import Slide
from idc_viewer.core.store import ResultStore
from idc_viewer.core.stored_analysis import StoredAnalysis
from idc_viewer.core.tissue import TissueMap, detect_tissue
from idc_viewer.engine.events import (
    AnalysisEvent,
    Batch,
    Finished,
    NoTissue,
    ScoredCells,
    Started,
    frozen_tissue,
)

if TYPE_CHECKING:
    from idc_viewer.ml.inference import Predictor
    from idc_viewer.ml.spec import ModelSpec

#: How many decoded batches the reader thread may hold ready ahead of the CNN.
DEFAULT_PREFETCH_BATCHES = 3
#: Bumped when a change in the engine changes which probabilities a stored analysis holds.
ENGINE_PARAMS_VERSION = 1


class AnalysisModel(Protocol):
    """What the engine needs of a model (``ml.loading.LoadedModel`` is one)."""

    @property
    def spec(self) -> ModelSpec:
        """The model's contract (patch size and scale, thresholds, hash)."""
        ...

    @property
    def predictor(self) -> Predictor:
        """What scores patches."""
        ...


def analysis_params(grid: PatchGrid) -> str:
    """The parameters that decide a stored analysis's content, as canonical JSON."""
    return json.dumps(
        {
            "engine": ENGINE_PARAMS_VERSION,
            "patch_px": int(grid.patch_px),
            "model_mpp": float(grid.model_mpp),
            "slide_mpp": round(float(grid.slide_mpp), 6),
        },
        sort_keys=True,
    )


def tissue_cells(mask: np.ndarray) -> list[Cell]:
    """Tissue cells of a [rows, cols] mask as (col, row), in row-major (reading) order."""
    rows, cols = np.nonzero(np.asarray(mask, dtype=bool))
    return list(zip(cols.tolist(), rows.tolist(), strict=True))


def _as_cell_set(done: object) -> set[Cell]:
    """Normalise whatever the store returns for done cells into a set of (col, row)."""
    if done is None:
        return set()
    if isinstance(done, np.ndarray):
        if done.dtype == bool:  # a [rows, cols] mask
            return set(tissue_cells(done))
        return {(int(c), int(r)) for c, r in done.reshape(-1, 2)}
    return {(int(c), int(r)) for c, r in done}  # type: ignore[attr-defined]


def _resumed(stored: StoredAnalysis, grid: PatchGrid, cells: list[Cell]) -> ScoredCells:
    """The tissue cells ``stored`` already holds, with their probabilities."""
    probs = np.asarray(stored.heatmap().probabilities, dtype=np.float32)
    if probs.shape != (grid.rows, grid.cols):
        return ScoredCells.none()
    done = _as_cell_set(stored.done_cells()) & set(cells)
    ordered = [c for c in cells if c in done]  # reading order, like the tissue cells
    cols = np.fromiter((c for c, _ in ordered), dtype=np.int32, count=len(ordered))
    rows = np.fromiter((r for _, r in ordered), dtype=np.int32, count=len(ordered))
    return ScoredCells.of(cols, rows, probs[rows, cols])


def _open_stored(
    store: ResultStore,
    slide: Slide,
    spec: ModelSpec,
    grid: PatchGrid,
    tissue: TissueMap,
    fingerprint: str | Callable[[], str] | None,
) -> StoredAnalysis:
    # the threshold travels with the probabilities: another model's heatmap shown later must
    # be flagged at its own model's threshold, not at the loaded model's
    meta = {
        "slide_path": str(slide.info.path),
        "model_name": spec.name,
        "model_threshold": float(spec.threshold),
    }
    if fingerprint is None:  # hashed once, cached by size/mtime
        fingerprint = slide_fingerprint(slide, store.fingerprint_dir)
    elif callable(fingerprint):
        fingerprint = fingerprint()
    key = AnalysisKey(fingerprint, spec.model_hash, analysis_params(grid))
    return store.open(key, grid, tissue.mask, meta)


def analyze(
    slide: Slide,
    model: AnalysisModel,
    store: ResultStore | None = None,
    cancel: CancelToken | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    *,
    prefetch_batches: int = DEFAULT_PREFETCH_BATCHES,
    fingerprint: str | Callable[[], str] | None = None,
) -> Generator[AnalysisEvent, None, None]:
    """Analyse every tissue patch of ``slide`` with ``model``, yielding immutable events.

    Parameters
    ----------
    slide
        An open slide with a known µm/px (else :func:`make_grid` raises ``MissingMppError``).
    model
        A loaded model; its spec gives the patch size (px) and scale (µm/px).
    store
        Where results are kept and resumed from; None keeps them nowhere (the events only).
    cancel
        Checked before and after each batch: the run stops within one batch, keeping the
        batches already stored, and ends with ``Finished(complete=False)``.
    batch_size
        Patches per CNN call.
    prefetch_batches
        Decoded batches the reader thread may hold ahead of the CNN (bounds memory).
    fingerprint
        The slide's :func:`~idc_viewer.core.fingerprint.slide_fingerprint`, or how to get it (called
        once, when the store is opened); None computes it here. Only used with a store.

    Yields
    ------
    AnalysisEvent
        :class:`Started` (grid, tissue map, the cells resumed from the store), one
        :class:`Batch` per CNN call, then :class:`Finished`. When the tissue detector warns,
        a single :class:`NoTissue` and nothing analysed.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    spec = model.spec
    grid = make_grid(slide.info, patch_px=spec.patch_size_px, model_mpp=spec.patch_mpp)
    tissue = detect_tissue(slide, grid)
    if tissue.warning:
        yield NoTissue(tissue.warning)
        return

    cells = tissue_cells(tissue.mask)
    total = len(cells)
    stored = None if store is None else _open_stored(store, slide, spec, grid, tissue, fingerprint)
    try:
        resumed = ScoredCells.none() if stored is None else _resumed(stored, grid, cells)
        done_before = set(zip(resumed.cols.tolist(), resumed.rows.tolist(), strict=True))
        todo = order_for_reading(grid, [c for c in cells if c not in done_before])
        done_n = total - len(todo)
        meter = RateMeter(total=total, start_done=done_n)
        yield Started(grid, frozen_tissue(tissue), resumed, meter.progress(done_n))

        if todo and not (cancel and cancel.cancelled):
            for batch_cells, batch_probs in _predict_batches(
                slide, grid, todo, model, batch_size, prefetch_batches, cancel
            ):
                if stored is not None:
                    stored.write_batch(batch_cells, batch_probs)
                done_n += len(batch_cells)
                scored = ScoredCells.of(
                    [c for c, _ in batch_cells], [r for _, r in batch_cells], batch_probs
                )
                yield Batch(scored.cells, scored.probabilities, meter.progress(done_n))
                if cancel is not None and cancel.cancelled:
                    break

        if done_n < total:  # stopped by the cancel token
            yield Finished(False, meter.progress(done_n))
            return
        if stored is not None and not stored.is_complete:
            stored.mark_complete()
        yield Finished(True, meter.progress(done_n))
    finally:
        if stored is not None:
            stored.close()


def _predict_batches(
    slide: Slide,
    grid: PatchGrid,
    cells: Sequence[Cell],
    model: AnalysisModel,
    batch_size: int,
    prefetch_batches: int,
    cancel: CancelToken | None,
) -> Iterator[tuple[list[Cell], np.ndarray]]:
    """Run the CNN over ``cells`` while a reader thread decodes the next batches."""
    reader = BatchReader(slide, grid, cells, batch_size, prefetch_batches)
    reader.start()
    try:
        for batch_cells, patches in reader:
            if cancel is not None and cancel.cancelled:
                return
            batch_probs = np.asarray(model.predictor.predict(patches), dtype=np.float32)
            yield batch_cells, batch_probs.reshape(-1)
    finally:
        reader.stop()


_END = object()


class BatchReader:
    """Reads and decodes patch batches in a background thread into a bounded queue.

    At most ``prefetch_batches`` decoded batches wait in the queue, plus the one the thread is
    assembling: memory is bounded whatever the slide size. :meth:`stop` ends the thread
    promptly (it never blocks on a full queue) and is safe to call more than once.
    """

    def __init__(
        self,
        slide: Slide,
        grid: PatchGrid,
        cells: Sequence[Cell],
        batch_size: int,
        prefetch_batches: int = DEFAULT_PREFETCH_BATCHES,
    ) -> None:
        if prefetch_batches < 1:
            raise ValueError(f"prefetch_batches must be at least 1, got {prefetch_batches}")
        self._slide = slide
        self._grid = grid
        self._cells = list(cells)
        self._batch_size = batch_size
        self._queue: queue.Queue[object] = queue.Queue(maxsize=prefetch_batches)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="idc-patch-reader", daemon=True)
        self.batches_read = 0

    def start(self) -> None:
        """Start the reader thread."""
        self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for batch_cells, patches in iter_patch_batches(
                self._slide, self._grid, self._cells, self._batch_size
            ):
                if self._stop.is_set():
                    return
                self.batches_read += 1
                if not self._put(([(int(c), int(r)) for c, r in batch_cells], patches)):
                    return
        except BaseException as exc:  # handed to the consumer, re-raised there
            self._error = exc
        finally:
            self._put(_END)

    def __iter__(self) -> Iterator[tuple[list[Cell], np.ndarray]]:
        while True:
            item = self._queue.get()
            if item is _END:
                if self._error is not None:
                    raise self._error
                return
            yield item  # type: ignore[misc]

    def stop(self) -> None:
        """Stop the thread and drop queued batches; returns once the thread has ended."""
        self._stop.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join()
