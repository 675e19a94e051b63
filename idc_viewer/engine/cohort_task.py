"""One slide of a cohort, as run on a Dask worker: analyse, export, summarise.

:func:`run_slide_task` is what the cohort client (:mod:`idc_viewer.engine.cohort`) submits, one
task per slide. It drives the same engine loop as the serial ``idc-viewer analyze``
(:class:`~idc_viewer.engine.session.SlideSession`: its events with the result store, then its
export), so a slide's files are the same whichever way it
ran, and a task retried after its worker died resumes from the stored batches.

Errors that belong to the slide (unreadable file, no µm/px, a store or disk error) come back as a
``failed`` :class:`SlideOutcome` with a one-line reason: they are not retried, since a bad file
fails the same way again. Only a worker's death makes Dask rerun the task.

``distributed`` is imported lazily and only inside a worker: the function also runs (and is
tested) in a plain process, where it reports no progress and cannot be cancelled from outside.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from idc_viewer.core.errors import one_line
from idc_viewer.core.jobs import DEFAULT_BATCH_SIZE, CancelToken
from idc_viewer.core.native_stderr import native_stderr_silenced

if TYPE_CHECKING:
    from idc_viewer.core.heatmap import Heatmap
    from idc_viewer.engine.session import SlideSession
    from idc_viewer.ml.inference import Predictor
    from idc_viewer.ml.loading import LoadedModel
    from idc_viewer.ml.spec import ModelSpec

#: Outcome statuses (the ``status`` column of cohort.csv).
DONE, NO_TISSUE, FAILED, CANCELLED = "done", "no tissue", "failed", "cancelled"
#: Seconds between two progress events of one task, and between two looks at the cancel flag.
PROGRESS_INTERVAL_S = 0.25
CANCEL_POLL_S = 0.25


def progress_topic(run_id: str) -> str:
    """The Dask event topic a cohort run's tasks report progress on."""
    return f"idc-cohort-progress-{run_id}"


def cancel_event_name(run_id: str) -> str:
    """The name of the ``distributed.Event`` that cancels a cohort run."""
    return f"idc-cohort-cancel-{run_id}"


@dataclass(frozen=True)
class SlideTask:
    """Everything a worker needs to analyse one slide (plain values: it travels pickled).

    ``model_path`` None means the worker's own bundled model; ``model_hash`` is what the client
    loaded, so a worker with another model refuses instead of mixing models in one cohort.
    ``results_dir`` None means the worker's default results folder. LiteRT threads:
    ``litert_threads`` when given (a local cluster), else this host's entry of
    ``litert_threads_by_host`` (a running cluster), else the worker's cores divided by its slots.
    """

    index: int
    slide_path: str
    stem: str
    out_dir: str
    model_hash: str
    run_id: str
    model_path: str | None = None
    results_dir: str | None = None
    threshold: float | None = None
    mpp: float | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    litert_threads: int | None = None
    litert_threads_by_host: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class SlideOutcome:
    """What became of one slide: one row of cohort.csv plus a few run details."""

    index: int
    file: str
    stem: str
    status: str
    message: str = ""
    mpp: float | None = None
    tissue_patches: int = 0
    flagged_patches: int = 0
    flagged_area_mm2: float = 0.0
    largest_region_mm2: float = 0.0
    max_probability: float | None = None
    model_hash: str = ""
    seconds: float = 0.0
    #: patches found already stored (a resumed run) and patches analysed by this attempt
    resumed_patches: int = 0
    analysed_patches: int = 0
    pid: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The fields as a dict."""
        return asdict(self)


@dataclass(frozen=True)
class _WithPredictor:
    """A model's spec with this thread's own predictor (what ``analyze`` needs)."""

    spec: ModelSpec
    predictor: Predictor


_models: dict[tuple[str | None, int], LoadedModel] = {}
_models_lock = threading.Lock()
_local = threading.local()


def _worker_model(model_path: str | None, threads: int) -> tuple[LoadedModel, _WithPredictor]:
    """The model for this worker process (loaded once) with this thread's warm predictor.

    A worker may run several tasks at once (``dask worker --nthreads``); predictors are not
    thread-safe, so each thread gets its own.
    """
    from idc_viewer.ml.loading import default_model_path, load_model

    key = (model_path, threads)
    with _models_lock:
        model = _models.get(key)
        if model is None:
            model = load_model(Path(model_path) if model_path else default_model_path())
            _models[key] = model
    predictors: dict[tuple[str | None, int], Predictor] = getattr(_local, "predictors", {})
    _local.predictors = predictors
    predictor = predictors.get(key)
    if predictor is None:
        predictor = model.new_predictor(num_threads=threads)
        size = model.spec.patch_size_px
        with native_stderr_silenced():  # LiteRT's "Created XNNPACK delegate" INFO line
            predictor.predict(np.zeros((1, size, size, 3), np.uint8))
        predictors[key] = predictor
    return model, _WithPredictor(model.spec, predictor)


def dask_setup(worker: Any) -> None:
    """Preload of a local cluster's workers: they ignore SIGINT.

    Ctrl-C in the terminal reaches the whole process group, but stopping is the client's to
    organise (every task stops after its batch), so the worker processes ignore SIGINT instead
    of dying mid-batch with a traceback.
    """
    import signal

    with contextlib.suppress(ValueError):  # only possible in the main thread
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _current_worker() -> Any:
    """The Dask worker running this task, or None outside one."""
    try:
        from distributed import get_worker

        return get_worker()
    except (ImportError, ValueError):
        return None


def _litert_threads(task: SlideTask, worker: Any) -> int:
    if task.litert_threads:
        return max(1, int(task.litert_threads))
    if worker is not None and task.litert_threads_by_host:
        from distributed.comm.addressing import get_address_host

        by_host = dict(task.litert_threads_by_host)
        host = get_address_host(worker.address)
        if host in by_host:
            return max(1, int(by_host[host]))
    slots = int(getattr(getattr(worker, "state", None), "nthreads", 1) or 1)
    return max(1, (os.cpu_count() or 1) // slots)


class _ClusterCancel(CancelToken):
    """A cancel token that also reads the cohort's ``distributed.Event`` (at most every 0.25 s)."""

    def __init__(self, event: Any) -> None:
        super().__init__()
        self._cluster_event = event
        self._checked = 0.0

    @property
    def cancelled(self) -> bool:
        if super().cancelled:
            return True
        now = time.monotonic()
        if now - self._checked >= CANCEL_POLL_S:
            self._checked = now
            try:
                if self._cluster_event.is_set():
                    self.cancel()
            except Exception:  # scheduler gone: the client is stopping the run anyway
                self.cancel()
        return super().cancelled


def _cancel_token(task: SlideTask, worker: Any) -> CancelToken:
    if worker is None:
        return CancelToken()
    from distributed import Event

    event = Event(cancel_event_name(task.run_id), client=worker.client)  # type: ignore[no-untyped-call]
    return _ClusterCancel(event)


class _Reporter:
    """Sends ``{index, done, total, new, pid}`` events to the client, at most every 0.25 s."""

    def __init__(self, task: SlideTask, worker: Any) -> None:
        self._worker = worker
        self._topic = progress_topic(task.run_id)
        self._index = task.index
        self._sent = 0.0

    def __call__(self, done: int, total: int, new: int, final: bool = False) -> None:
        if self._worker is None:
            return
        now = time.monotonic()
        if not final and self._sent and now - self._sent < PROGRESS_INTERVAL_S:
            return
        self._sent = now
        msg = {
            "index": self._index,
            "done": int(done),
            "total": int(total),
            "new": int(new),
            "pid": os.getpid(),
            "final": bool(final),
        }
        with contextlib.suppress(Exception):  # progress is best effort; the result is not
            self._worker.log_event(self._topic, msg)


def _missing_mpp_message(path: str) -> str:
    return (
        f"{path}: the slide stores no µm per pixel (nor an objective power); "
        "pass --mpp M (e.g. --mpp 0.25 for a 40x scan, 0.5 for 20x)"
    )


def heatmap_figures(heatmap: Heatmap, threshold: float) -> dict[str, Any]:
    """The cohort.csv figures of one analysed slide (regions as in the exported files)."""
    from idc_viewer.core.regions import find_regions

    regions = find_regions(heatmap, threshold)
    probs = heatmap.probabilities
    analysed = probs[~np.isnan(probs)]
    return {
        "tissue_patches": int(heatmap.analysed_count),
        "flagged_patches": int(heatmap.flagged_count(threshold)),
        "flagged_area_mm2": round(float(sum(r.area_mm2 for r in regions)), 6),
        "largest_region_mm2": round(float(max((r.area_mm2 for r in regions), default=0.0)), 6),
        "max_probability": round(float(analysed.max()), 6) if analysed.size else None,
    }


def run_slide_task(task: SlideTask) -> SlideOutcome:
    """Analyse one slide into ``task.out_dir`` and describe the result.

    Never raises for a problem of the slide itself (see the module notes).
    """
    from idc_viewer.core.app_dirs import default_results_dir
    from idc_viewer.core.slide import MissingMppError, SlideError
    from idc_viewer.core.store import ResultStore
    from idc_viewer.core.stored_analysis import ResultStoreError
    from idc_viewer.engine.session import SlideSession
    from idc_viewer.ml.spec import ModelContractError

    t0 = time.perf_counter()
    worker = _current_worker()
    cancel = _cancel_token(task, worker)
    base: dict[str, Any] = {
        "index": task.index,
        "file": task.slide_path,
        "stem": task.stem,
        "pid": os.getpid(),
    }

    def outcome(status: str, message: str = "", **kw: Any) -> SlideOutcome:
        return SlideOutcome(
            status=status,
            message=one_line(message) if message else "",
            seconds=round(time.perf_counter() - t0, 3),
            **base,
            **kw,
        )

    if cancel.cancelled:
        return outcome(CANCELLED, "cancelled before it started")
    path = task.slide_path
    try:
        model, engine_model = _worker_model(task.model_path, _litert_threads(task, worker))
    except (ModelContractError, OSError, ValueError, RuntimeError) as exc:
        return outcome(FAILED, f"cannot load the model on this worker: {exc}")
    base["model_hash"] = model.spec.model_hash
    if model.spec.model_hash != task.model_hash:
        return outcome(
            FAILED,
            f"this worker's model is {model.spec.model_hash}, the cohort's is "
            f"{task.model_hash}: pass the same --model to every machine",
        )
    try:
        results_dir = Path(task.results_dir) if task.results_dir else default_results_dir()
        results_dir.mkdir(parents=True, exist_ok=True)
        store = ResultStore(results_dir)
        with SlideSession.open(path, mpp=task.mpp, store=store) as session:
            return _analyse_and_export(
                task, session, model, engine_model, cancel, _Reporter(task, worker), outcome
            )
    except MissingMppError:
        return outcome(FAILED, _missing_mpp_message(path))
    except (SlideError, ResultStoreError) as exc:
        return outcome(FAILED, str(exc))
    except OSError as exc:
        return outcome(FAILED, f"{path}: {exc.strerror or exc}")


def _analyse_and_export(
    task: SlideTask,
    session: SlideSession,
    model: LoadedModel,
    engine_model: _WithPredictor,
    cancel: CancelToken,
    report: _Reporter,
    outcome: Callable[..., SlideOutcome],
) -> SlideOutcome:
    from idc_viewer.core.writers import ExportError
    from idc_viewer.engine.decision import decision_heatmap
    from idc_viewer.engine.events import Batch, Finished, HeatmapBuilder, Started

    threshold = task.threshold if task.threshold is not None else model.spec.decision_threshold
    built = HeatmapBuilder()
    with contextlib.closing(session.analyze(engine_model, cancel, task.batch_size)) as events:
        for event in events:
            built.apply(event)
            if isinstance(event, Started | Batch | Finished):
                progress = event.progress
                final = isinstance(event, Finished)
                report(progress.done, progress.total, progress.done - built.resumed_count, final)
    common = {"mpp": session.info.mpp, "resumed_patches": built.resumed_count}
    heatmap = built.heatmap
    if not built.ended:
        return outcome(FAILED, f"{task.slide_path}: the analysis produced nothing", **common)
    analysed = 0 if built.progress is None else built.progress.done - built.resumed_count
    if built.complete is False:
        return outcome(
            CANCELLED,
            "cancelled; what was analysed is kept, rerun to resume",
            analysed_patches=analysed,
            **common,
        )
    out_dir = Path(task.out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)  # the client made it too, maybe elsewhere
        if built.warning is not None:
            session.export_no_tissue(out_dir, model.spec, threshold, built.warning, stem=task.stem)
            return outcome(NO_TISSUE, f"{built.warning}; no heatmap written", **common)
        assert heatmap is not None
        decision = decision_heatmap(heatmap, model.spec)
        session.export(out_dir, heatmap, threshold, model.spec, stem=task.stem, decision=decision)
    except (OSError, ExportError) as exc:
        return outcome(FAILED, f"{task.slide_path}: {exc}", **common)
    return outcome(
        DONE,
        analysed_patches=analysed,
        **heatmap_figures(decision, threshold),
        **common,
    )
