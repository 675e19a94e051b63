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

The cluster itself is :mod:`cohort_cluster`, the progress line :mod:`cohort_progress`, one
slide's task :mod:`cohort_task`, and ``cohort.csv`` :mod:`cohort_summary`. ``dask`` and
``distributed`` are imported lazily: the serial command and the GUI never load them.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from idc_viewer.core.errors import one_line
from idc_viewer.core.jobs import DEFAULT_BATCH_SIZE
from idc_viewer.engine.cohort_cluster import (
    connect,
    retry_note,
    with_host_threads,
)
from idc_viewer.engine.cohort_progress import CohortProgress, Screen, describe
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

#: How long Ctrl-C waits for running tasks to stop after their current batch.
CANCEL_WAIT_S = 30.0
POLL_S = 0.2


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
    batch_size: int = DEFAULT_BATCH_SIZE
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
        """The outcomes of the slides that failed."""
        return [o for o in self.outcomes if o.status == FAILED]


def litert_threads_per_worker(workers: int, cores: int | None = None) -> int:
    """A fair share of the cores for each of ``workers`` processes (at least one thread)."""
    return max(1, (cores if cores is not None else os.cpu_count() or 1) // max(1, workers))


def _failed_outcome(task: SlideTask, message: str) -> SlideOutcome:
    """A task that failed on the cluster's side (the worker returned no outcome)."""
    return SlideOutcome(
        index=task.index,
        file=task.slide_path,
        stem=task.stem,
        status=FAILED,
        message=one_line(message),
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
    screen = Screen(stream if stream is not None else sys.stderr, options.quiet)
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
    with connect(options.workers, options.scheduler) as (client, _cluster):
        from distributed import Event

        if options.scheduler is not None:
            tasks = with_host_threads(client, tasks)
            note = retry_note(client)
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
                        screen.say(describe(outcome))
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


def _size(path: str) -> int:
    """Scheduling priority: bigger files first (the last tasks of a run are then short)."""
    try:
        return int(Path(path).stat().st_size)
    except OSError:
        return 0


def _finish(report: CohortReport, options: CohortOptions, screen: Screen) -> None:
    """Write cohort.csv and print the failures (one line each) and a summary."""
    try:
        report.csv_path = write_cohort_csv(options.out_dir, report.outcomes)
    except OSError as exc:
        screen.say(f"error: cannot write {options.out_dir / 'cohort.csv'}: {exc.strerror or exc}")
    for outcome in report.outcomes:
        if outcome.status == NO_TISSUE:
            screen.say(f"warning: {describe(outcome)}")
    for outcome in report.failed:
        screen.say(f"error: {describe(outcome)}")
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
