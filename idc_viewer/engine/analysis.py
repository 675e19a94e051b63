"""Whole-slide analysis as a generator: slide -> tissue -> patches -> CNN -> stored heatmap.

:func:`analyze` is the one engine loop shared by the GUI worker and the ``idc-viewer analyze``
command. It yields an :class:`AnalysisUpdate` per batch (progress, the batch's cells and
probabilities, access to the heatmap so far), honours a :class:`~idc_viewer.core.jobs.CancelToken`
within one batch, overlaps patch reading/decoding (a background thread feeding a bounded queue)
with the CNN, and writes every batch to a :class:`~idc_viewer.core.store.ResultStore` so that a
cancel or a crash keeps what was done and a rerun resumes instead of starting over.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from idc_viewer.core.analysis_key import AnalysisKey
from idc_viewer.core.fingerprint import slide_fingerprint
from idc_viewer.core.heatmap import Heatmap
from idc_viewer.core.jobs import CancelToken, Progress, RateMeter
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

if TYPE_CHECKING:
    from idc_viewer.ml.inference import Predictor
    from idc_viewer.ml.spec import ModelSpec

#: How many decoded batches the reader thread may hold ready ahead of the CNN.
DEFAULT_PREFETCH_BATCHES = 3
DEFAULT_BATCH_SIZE = 256
#: Bumped when a change in the engine changes which probabilities a stored analysis holds.
ENGINE_PARAMS_VERSION = 1


class AnalysisModel(Protocol):
    """What the engine needs of a model (``ml.loading.LoadedModel`` is one)."""

    @property
    def spec(self) -> ModelSpec: ...

    @property
    def predictor(self) -> Predictor: ...


@dataclass(frozen=True)
class AnalysisRequest:
    """What the user asked to analyse (an immutable value the GUI and CLI pass around).

    ``model_path`` None means the bundled default model; ``threshold`` None means the model's
    own decision threshold; ``mpp`` overrides (or supplies) the slide's µm per pixel.
    """

    slide_path: str
    model_path: str | None = None
    threshold: float | None = None
    mpp: float | None = None
    batch_size: int = DEFAULT_BATCH_SIZE

    def __post_init__(self) -> None:
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must lie in [0, 1], got {self.threshold}")
        if self.mpp is not None and not self.mpp > 0:
            raise ValueError(f"mpp must be a positive number of µm per pixel, got {self.mpp}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")


@dataclass(frozen=True)
class AnalysisUpdate:
    """One step of :func:`analyze`.

    ``cols``/``rows``/``probabilities`` describe only the batch just processed (empty on the
    first, last and warning updates). ``heatmap`` is the run's live heatmap: everything
    analysed so far, filled in place as later batches arrive (``heatmap.copy()`` for a
    snapshot).
    ``done`` is True once every tissue patch has a probability; ``cancelled`` when the run
    stopped on the cancel token (what was done is kept); ``tissue_warning`` when the slide does
    not look like H&E tissue, in which case the run stops without analysing anything.
    """

    progress: Progress
    grid: PatchGrid
    heatmap: Heatmap = field(repr=False, compare=False)
    cols: np.ndarray
    rows: np.ndarray
    probabilities: np.ndarray
    tissue: TissueMap | None = None
    done: bool = False
    cancelled: bool = False
    tissue_warning: str | None = None
    resumed_cells: int = 0


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


def analysis_key(slide: Slide, model: AnalysisModel, grid: PatchGrid) -> AnalysisKey:
    """The results-store key of analysing ``slide`` with ``model`` on ``grid``."""
    return AnalysisKey(slide_fingerprint(slide), model.spec.model_hash, analysis_params(grid))


def tissue_cells(mask: np.ndarray) -> list[Cell]:
    """Tissue cells of a [rows, cols] mask as (col, row), in row-major (reading) order."""
    rows, cols = np.nonzero(np.asarray(mask, dtype=bool))
    return list(zip(cols.tolist(), rows.tolist(), strict=True))


def _empty(dtype: type) -> np.ndarray:
    return np.zeros(0, dtype=dtype)


def _as_cell_set(done: object) -> set[Cell]:
    """Normalise whatever the store returns for done cells into a set of (col, row)."""
    if done is None:
        return set()
    if isinstance(done, np.ndarray):
        if done.dtype == bool:  # a [rows, cols] mask
            return set(tissue_cells(done))
        return {(int(c), int(r)) for c, r in done.reshape(-1, 2)}
    return {(int(c), int(r)) for c, r in done}  # type: ignore[attr-defined]


def analyze(
    slide: Slide,
    model: AnalysisModel,
    store: ResultStore | None = None,
    cancel: CancelToken | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    *,
    prefetch_batches: int = DEFAULT_PREFETCH_BATCHES,
) -> Generator[AnalysisUpdate, None, None]:
    """Analyse every tissue patch of ``slide`` with ``model``, yielding progress per batch.

    Parameters
    ----------
    slide
        An open slide with a known µm/px (else :func:`make_grid` raises ``MissingMppError``).
    model
        A loaded model; its spec gives the patch size (px) and scale (µm/px).
    store
        Where results are kept and resumed from; None keeps them only in memory.
    cancel
        Checked before and after each batch: the run stops within one batch, keeping the
        batches already stored, and yields a last update with ``cancelled=True``.
    batch_size
        Patches per CNN call.
    prefetch_batches
        Decoded batches the reader thread may hold ahead of the CNN (bounds memory).

    Yields
    ------
    AnalysisUpdate
        First an update with the grid and tissue map (and resumed probabilities), then one per
        batch, then a final one with ``done=True`` (or ``cancelled=True``). When the tissue
        detector warns, a single update with ``tissue_warning`` set and nothing analysed.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    spec = model.spec
    grid = make_grid(slide.info, patch_px=spec.patch_size_px, model_mpp=spec.patch_mpp)
    tissue = detect_tissue(slide, grid)
    heatmap = Heatmap.empty(grid)
    probs = heatmap.probabilities

    def update(done_n: int, total: int, meter: RateMeter | None, **kw: object) -> AnalysisUpdate:
        progress = meter.progress(done_n) if meter else Progress(done_n, total)
        values: dict[str, object] = {
            "cols": _empty(np.int32),
            "rows": _empty(np.int32),
            "probabilities": _empty(np.float32),
        }
        values.update(kw)
        return AnalysisUpdate(
            progress=progress,
            grid=grid,
            tissue=tissue,
            heatmap=heatmap,
            **values,  # type: ignore[arg-type]
        )

    if tissue.warning:
        yield update(0, 0, None, tissue_warning=tissue.warning)
        return

    cells = tissue_cells(tissue.mask)
    total = len(cells)
    stored: StoredAnalysis | None = None
    done_before: set[Cell] = set()
    if store is not None:
        # the threshold travels with the probabilities: another model's heatmap shown later must
        # be flagged at its own model's threshold, not at the loaded model's
        meta = {
            "slide_path": str(slide.info.path),
            "model_name": spec.name,
            "model_threshold": float(spec.threshold),
        }
        slide_fingerprint(slide, store.fingerprint_dir)  # hashed once, cached by size/mtime
        stored = store.open(analysis_key(slide, model, grid), grid, tissue.mask, meta)
    try:
        if stored is not None:
            stored_probs = np.asarray(stored.heatmap().probabilities, dtype=np.float32)
            if stored_probs.shape == probs.shape:
                probs[...] = stored_probs
            done_before = _as_cell_set(stored.done_cells()) & set(cells)
        todo = order_for_reading(grid, [c for c in cells if c not in done_before])
        done_n = total - len(todo)
        meter = RateMeter(total=total, start_done=done_n)
        yield update(done_n, total, meter, resumed_cells=done_n)

        if todo and not (cancel and cancel.cancelled):
            for batch_cells, batch_probs in _predict_batches(
                slide, grid, todo, model, batch_size, prefetch_batches, cancel
            ):
                n = len(batch_cells)
                cols = np.fromiter((c for c, _ in batch_cells), dtype=np.int32, count=n)
                rows = np.fromiter((r for _, r in batch_cells), dtype=np.int32, count=n)
                if stored is not None:
                    stored.write_batch(batch_cells, batch_probs)
                probs[rows, cols] = batch_probs
                done_n += n
                yield update(done_n, total, meter, cols=cols, rows=rows, probabilities=batch_probs)
                if cancel is not None and cancel.cancelled:
                    break

        if done_n < total:  # stopped by the cancel token
            yield update(done_n, total, meter, cancelled=True)
            return
        if stored is not None and not stored.is_complete:
            stored.mark_complete()
        yield update(done_n, total, meter, done=True)
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
