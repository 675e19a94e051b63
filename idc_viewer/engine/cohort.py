"""Analyse a cohort of slides on a Dask cluster: one task per slide, progress, faults, summary.

``idc-viewer analyze SLIDES --out DIR --workers N`` starts a :class:`distributed.LocalCluster` of
N worker processes on this machine; ``--scheduler ADDRESS`` uses a running cluster (``dask
scheduler`` + ``dask worker`` on machines that see the same slides and ``--out``). Each slide is one
task (:func:`idc_viewer.engine.cohort_task.run_slide_task`), biggest file first so the last slides
to finish are small ones.

Faults: a worker that dies mid-slide costs that slide's unfinished batches. The scheduler reruns the
task on another worker, which resumes from the result store (on the same machine, or on any when
``--results-dir`` is a folder they share). A local cluster gives up on a slide after its second
dead worker (``allowed-failures: 1``) and reports it; a slide that fails on its own (a bad file) is
reported at once, never retried. Ctrl-C sets a cluster-wide event that every task reads between
batches: workers stop within a batch, stop writing, and ``cohort.csv`` lists what was finished.

``dask``/``distributed`` are imported only here and in :mod:`cohort_task`, lazily: the serial
command and the GUI never load them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from idc_viewer.core.errors import IdcViewerError
from idc_viewer.core.formatting import format_duration
from idc_viewer.engine.cohort_summary import write_cohort_csv
from idc_viewer.engine.cohort_task import (
    CANCELLED,
    DONE,
    FAILED,
    NO_TISSUE,
    SlideOutcome,
    SlideTask,
    cancel_event_name,
    progress_topic,
    run_slide_task,
)

#: Scheduler settings of a local cluster: a task whose worker dies twice is reported
#: (``allowed-failures: 1``), and a worker holds only the slide it is analysing
#: (``worker-saturation: 1.0``), so a dying worker never charges a death to queued slides.
LOCAL_SCHEDULER_CONFIG = {
    "distributed.scheduler.allowed-failures": 1,
    "distributed.scheduler.worker-saturation": 1.0,
}
#: How long Ctrl-C waits for running tasks to stop after their current batch.
CANCEL_WAIT_S = 30.0
POLL_S = 0.2


class CohortError(IdcViewerError):
    """The cohort cannot run at all (no Dask installed, scheduler unreachable); one line."""


@dataclass(frozen=True)
class CohortOptions:
    """How to run a cohort: where, with which model and parameters, on which cluster.

    Exactly one of ``workers`` (a local cluster of that many processes) and ``scheduler`` (the
    address of a running one) is given. ``model_path`` None is each worker's bundled model;
    ``model_hash`` is the model the client checked (workers with another refuse).
    """

    out_dir: Path
    model_hash: str
    model_path: str | None = None
    results_dir: str | None = None
    threshold: float | None = None
    mpp: float | None = None
    batch_size: int = 256
    workers: int | None = None
    scheduler: str | None = None
    quiet: bool = False

    def __post_init__(self) -> None:
        if (self.workers is None) == (self.scheduler is None):
            raise ValueError("give exactly one of workers and scheduler")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")


@dataclass
class CohortReport:
    """Every slide's outcome (input order), the summary file, and whether Ctrl-C stopped it."""

    outcomes: list[SlideOutcome]
    csv_path: Path | None
    interrupted: bool = False

    @property
    def failed(self) -> list[SlideOutcome]:
        return [o for o in self.outcomes if o.status == FAILED]


def litert_threads_per_worker(workers: int, cores: int | None = None) -> int:
    """A fair share of the cores for each of ``workers`` processes (at least one thread)."""
    return max(1, (cores if cores is not None else os.cpu_count() or 1) // max(1, workers))


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise CohortError(
            "--workers and --scheduler need Dask: pip install 'idc-viewer[cluster]' "
            "(dask and distributed)"
        ) from None
    return distributed


def start_local_cluster(n_workers: int, **worker_kwargs: Any) -> Any:
    """A :class:`distributed.LocalCluster` of ``n_workers`` single-slot processes on loopback.

    No dashboard, Dask's own log lines silenced below errors. The workers preload
    :func:`idc_viewer.engine.cohort_task.dask_setup` (they leave Ctrl-C to the client) and any
    ``preload`` given; other ``worker_kwargs`` go to the workers as they are.
    """
    import dask

    distributed = _distributed()
    preload = ["idc_viewer.engine.cohort_task", *worker_kwargs.pop("preload", [])]
    with dask.config.set(LOCAL_SCHEDULER_CONFIG):
        return distributed.LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            # no dashboard; the scheduler's bare HTTP server on a free loopback port, not 8787
            dashboard_address=None,
            scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
            silence_logs=logging.ERROR,
            preload=preload,
            **worker_kwargs,
        )


@contextlib.contextmanager
def _client(options: CohortOptions) -> Iterator[tuple[Any, Any]]:
    """A connected client (and the local cluster it owns, or None)."""
    distributed = _distributed()
    cluster = None
    try:
        if options.workers is not None:
            try:
                cluster = start_local_cluster(options.workers)
            except Exception as exc:
                raise CohortError(
                    f"cannot start {options.workers} local workers: {_one_line(exc)}"
                ) from None
            client = distributed.Client(cluster)
        else:
            try:
                client = distributed.Client(options.scheduler, timeout="20s")
            except (OSError, TimeoutError, ValueError) as exc:
                raise CohortError(
                    f"cannot reach the Dask scheduler {options.scheduler}: {_one_line(exc)}"
                ) from None
        try:
            yield client, cluster
        finally:
            with contextlib.suppress(Exception):
                client.close(timeout=10)
    finally:
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close(timeout=20)


def _threads_by_host(client: Any) -> tuple[tuple[str, int], ...]:
    """LiteRT threads per task slot for each host of a running cluster: its cores shared by all
    the slots its workers offer."""
    from distributed.comm.addressing import get_address_host

    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    cores = client.run(os.cpu_count)
    slots: dict[str, int] = {}
    host_cores: dict[str, int] = {}
    for address, info in workers.items():
        host = get_address_host(address)
        slots[host] = slots.get(host, 0) + int(info.get("nthreads", 1) or 1)
        host_cores[host] = int(cores.get(address) or 1)
    return tuple(sorted((h, max(1, host_cores[h] // max(1, s))) for h, s in slots.items()))


def _one_line(message: object) -> str:
    return " ".join(str(message).split()) or "unknown error"


@dataclass
class CohortProgress:
    """Live state of a run, fed by the tasks' progress events (from Dask's event thread)."""

    total: int
    names: Sequence[str]
    finished: int = 0
    failed: int = 0
    #: latest (done, total) per running slide and the pid that reported it
    running: dict[int, tuple[int, int]] = field(default_factory=dict)
    pids: dict[int, int] = field(default_factory=dict)
    #: patches analysed per (slide, pid) attempt: their sum is the cohort's throughput
    analysed: dict[tuple[int, int], int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    t0: float = field(default_factory=time.perf_counter)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def on_event(self, msg: dict[str, Any]) -> None:
        index, pid = int(msg["index"]), int(msg["pid"])
        with self.lock:
            previous = self.pids.get(index)
            if previous is not None and previous != pid:
                self.notes.append(
                    f"{self.names[index]}: its worker stopped; retried on another worker, "
                    f"resuming at {msg['done']:,}/{msg['total']:,} patches"
                )
            self.pids[index] = pid
            self.running[index] = (int(msg["done"]), int(msg["total"]))
            self.analysed[(index, pid)] = int(msg["new"])

    def on_outcome(self, outcome: SlideOutcome) -> None:
        with self.lock:
            self.running.pop(outcome.index, None)
            self.finished += 1
            self.failed += outcome.status == FAILED

    def take_notes(self) -> list[str]:
        with self.lock:
            notes, self.notes = self.notes, []
        return notes

    @property
    def patches_per_s(self) -> float:
        with self.lock:
            patches = sum(self.analysed.values())
        return patches / max(time.perf_counter() - self.t0, 1e-9)

    @property
    def eta_s(self) -> float | None:
        with self.lock:
            partial = sum(d / t for d, t in self.running.values() if t > 0)
            fraction = (self.finished + partial) / max(self.total, 1)
        if fraction <= 0:
            return None
        return (time.perf_counter() - self.t0) * (1.0 - fraction) / fraction

    def line(self, width: int = 24) -> str:
        frac = self.finished / max(self.total, 1)
        filled = round(frac * width)
        eta = self.eta_s
        failed = f", {self.failed} failed" if self.failed else ""
        return (
            f"cohort [{'#' * filled}{'.' * (width - filled)}] {self.finished}/{self.total} "
            f"slides{failed}, {self.patches_per_s:,.0f} patches/s, "
            f"ETA {'--:--' if eta is None else format_duration(eta)}"
        )


class _Screen:
    """The progress line (redrawn in place on a terminal) and the lines printed above it."""

    def __init__(self, stream: TextIO, quiet: bool) -> None:
        self.stream = stream
        self.quiet = quiet
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self._drawn = False

    def say(self, text: str) -> None:
        self.clear()
        self.stream.write(text + "\n")
        self.stream.flush()

    def draw(self, line: str) -> None:
        if self.quiet or not self.tty:
            return
        self.stream.write("\r\x1b[2K" + line)
        self.stream.flush()
        self._drawn = True

    def clear(self) -> None:
        if self._drawn:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self._drawn = False


def _describe(outcome: SlideOutcome) -> str:
    name = Path(outcome.file).name
    if outcome.status == DONE:
        return (
            f"{name}: {outcome.tissue_patches} tissue patches, {outcome.flagged_patches} at "
            f"or above the threshold, {outcome.flagged_area_mm2:.3g} mm² flagged "
            f"({outcome.seconds:.1f} s)"
        )
    if outcome.status == FAILED and name in outcome.message:
        return outcome.message
    return f"{name}: {outcome.status}: {outcome.message}"


def _failed_outcome(task: SlideTask, message: str) -> SlideOutcome:
    return SlideOutcome(
        index=task.index,
        file=task.slide_path,
        stem=task.stem,
        status=FAILED,
        message=_one_line(message),
        model_hash=task.model_hash,
    )


def _collect(future: Any, task: SlideTask) -> SlideOutcome:
    """The outcome of a finished future: its result, or why the task itself failed."""
    from distributed import KilledWorker

    if future.status == "finished":
        outcome = future.result()
        if isinstance(outcome, SlideOutcome):
            return outcome
        return _failed_outcome(task, f"the worker returned {type(outcome).__name__}")
    if future.status == "cancelled":
        return SlideOutcome(
            index=task.index,
            file=task.slide_path,
            stem=task.stem,
            status=CANCELLED,
            message="cancelled",
            model_hash=task.model_hash,
        )
    try:
        exc = future.exception()
    except Exception as lost:  # the cluster lost the task (scheduler gone, ...)
        return _failed_outcome(task, f"the cluster lost it: {type(lost).__name__}: {lost}")
    if isinstance(exc, KilledWorker):
        deaths = int(getattr(exc, "allowed_failures", 1)) + 1
        return _failed_outcome(
            task,
            f"its worker died {deaths} times while analysing it "
            "(out of memory? killed?); not retried again",
        )
    return _failed_outcome(task, f"{type(exc).__name__}: {exc}")


def run_cohort(
    slides: Sequence[Path],
    stems: Sequence[str],
    options: CohortOptions,
    *,
    stream: TextIO | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> CohortReport:
    """Analyse ``slides`` (written as ``stems`` in ``options.out_dir``) on a Dask cluster.

    Prints the progress line and, at the end, one line per failed slide and a summary on
    ``stream`` (stderr by default); writes ``cohort.csv``. ``on_event`` sees every progress event
    (``index, done, total, new, pid, final``) as it arrives, on Dask's event thread.

    Raises
    ------
    CohortError
        Dask is missing, the cluster cannot start, or the scheduler cannot be reached.
    KeyboardInterrupt
        After Ctrl-C, once the workers stopped and ``cohort.csv`` was written.
    """
    if len(slides) != len(stems):
        raise ValueError("one output stem per slide")
    screen = _Screen(stream if stream is not None else sys.stderr, options.quiet)
    run_id = uuid.uuid4().hex[:12]
    tasks = [
        SlideTask(
            # absolute: workers run elsewhere (another folder, another machine)
            index=i,
            slide_path=str(Path(path).absolute()),
            stem=stem,
            out_dir=str(Path(options.out_dir).absolute()),
            model_hash=options.model_hash,
            run_id=run_id,
            model_path=options.model_path,
            results_dir=options.results_dir,
            threshold=options.threshold,
            mpp=options.mpp,
            batch_size=options.batch_size,
            litert_threads=(
                litert_threads_per_worker(options.workers) if options.workers else None
            ),
        )
        for i, (path, stem) in enumerate(zip(slides, stems, strict=True))
    ]
    progress = CohortProgress(len(tasks), [Path(t.slide_path).name for t in tasks])
    outcomes: dict[int, SlideOutcome] = {}
    interrupted = False
    with _client(options) as (client, _cluster):
        from distributed import Event

        if options.scheduler is not None:
            tasks = _with_host_threads(client, tasks)
            note = _retry_note(client)
            if note and not options.quiet:
                screen.say(note)

        def handler(event: tuple[float, dict[str, Any]]) -> None:
            msg = event[1]
            progress.on_event(msg)
            if on_event is not None:
                on_event(msg)

        client.subscribe_topic(progress_topic(run_id), handler)
        cancel = Event(cancel_event_name(run_id), client=client)  # type: ignore[no-untyped-call]
        pending: dict[int, Any] = {}
        progress.t0 = time.perf_counter()

        def collect_done() -> None:
            for i, future in list(pending.items()):
                if future.done():
                    outcome = _collect(future, tasks[i])
                    outcomes[i] = outcome
                    del pending[i]
                    progress.on_outcome(outcome)
                    if outcome.status == DONE and not options.quiet:
                        screen.say(_describe(outcome))
            for note in progress.take_notes():
                if not options.quiet:
                    screen.say(note)

        try:
            for i, task in enumerate(tasks):
                pending[i] = client.submit(
                    run_slide_task,
                    task,
                    key=f"idc-slide-{i}-{run_id}",
                    pure=False,
                    priority=_size(task.slide_path),
                )
            while pending:
                collect_done()
                screen.draw(progress.line())
                time.sleep(POLL_S)
        except KeyboardInterrupt:
            interrupted = True
            screen.say(
                "interrupting: every worker stops after its current batch "
                "(Ctrl-C again to stop waiting)"
            )
            with contextlib.suppress(Exception):
                cancel.set()  # type: ignore[no-untyped-call]
            with contextlib.suppress(KeyboardInterrupt):
                deadline = time.monotonic() + CANCEL_WAIT_S
                while pending and time.monotonic() < deadline:
                    collect_done()
                    time.sleep(POLL_S / 2)
            with contextlib.suppress(Exception):
                client.cancel(list(pending.values()), force=True)
            for i in range(len(tasks)):
                if i in outcomes:
                    continue
                outcomes[i] = SlideOutcome(
                    index=i,
                    file=tasks[i].slide_path,
                    stem=tasks[i].stem,
                    status=CANCELLED,
                    message="cancelled; rerun to resume",
                    model_hash=options.model_hash,
                )
        finally:
            screen.clear()
            with contextlib.suppress(Exception):
                client.unsubscribe_topic(progress_topic(run_id))
    ordered = [outcomes[i] for i in range(len(tasks))]
    report = CohortReport(ordered, None, interrupted)
    _finish(report, options, screen)
    if interrupted:
        raise KeyboardInterrupt
    return report


def _with_host_threads(client: Any, tasks: list[SlideTask]) -> list[SlideTask]:
    """Tasks that pick their LiteRT threads by the host they land on."""
    from dataclasses import replace

    try:
        threads = _threads_by_host(client)
    except Exception:  # a cluster that refuses run(): each worker divides its own cores
        return tasks
    return [replace(t, litert_threads_by_host=threads) for t in tasks]


def _allowed_failures(dask_scheduler: Any) -> int:
    return int(dask_scheduler.allowed_failures)


def _retry_note(client: Any) -> str | None:
    """A note when a running cluster retries a slide after more than one dead worker."""
    try:
        allowed = int(client.run_on_scheduler(_allowed_failures))
    except Exception:
        return None
    if allowed <= 1:
        return None
    return (
        f"note: this scheduler reruns a slide after up to {allowed} dead workers; start it "
        "with DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=1 to report a slide after two"
    )


def _size(path: str) -> int:
    """Scheduling priority: bigger files first (the last tasks of a run are then short)."""
    try:
        return int(Path(path).stat().st_size)
    except OSError:
        return 0


def _finish(report: CohortReport, options: CohortOptions, screen: _Screen) -> None:
    """Write cohort.csv and print the failures (one line each) and a summary."""
    try:
        report.csv_path = write_cohort_csv(options.out_dir, report.outcomes)
    except OSError as exc:
        screen.say(f"error: cannot write {options.out_dir / 'cohort.csv'}: {exc.strerror or exc}")
    for outcome in report.outcomes:
        if outcome.status == NO_TISSUE:
            screen.say(f"warning: {_describe(outcome)}")
    for outcome in report.failed:
        screen.say(f"error: {_describe(outcome)}")
    n = len(report.outcomes)
    counts = {s: sum(o.status == s for o in report.outcomes) for s in (FAILED, CANCELLED)}
    summary = (
        f"{n - counts[FAILED] - counts[CANCELLED]} of {n} slide{'s' if n != 1 else ''} analysed"
    )
    if counts[FAILED]:
        summary += f", {counts[FAILED]} failed"
    if counts[CANCELLED]:
        summary += f", {counts[CANCELLED]} cancelled"
    if report.csv_path is not None:
        summary += f"; summary in {report.csv_path}"
    screen.say(summary)
