"""Background work for the GUI: the only module that knows about threads.

Long work is a generator (the engine's :func:`~idc_viewer.engine.analysis.analyze`) or a plain
call (loading a model, computing a Grad-CAM, whose first call imports TensorFlow). Each runs in
its own :class:`QThread`; results come back to the GUI thread as queued signals, exceptions as
the exception object itself (superqt's habit: the receiver formats it with
:func:`~idc_viewer.core.errors.one_line` and can react to its type; the full traceback goes to
the log). Cancelling only sets a
:class:`~idc_viewer.core.jobs.CancelToken` that the generator checks between batches.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable, Iterator
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from idc_viewer.core.jobs import Cancelled, CancelToken

log = logging.getLogger(__name__)


class _Runner(QObject):
    """Lives in the worker thread; runs ``body`` when the thread starts."""

    def __init__(self, body: Callable[[], None]) -> None:
        super().__init__()
        self._body = body

    @Slot()
    def run(self) -> None:
        self._body()


class Worker(QObject):
    """Base of the workers: owns a QThread, a cancel token and the standard signals.

    Signals
    -------
    failed(object)
        The exception that escaped the work (its traceback dropped: it is in the log).
    cancelled()
        The work stopped on the cancel token.
    finished(object)
        The work completed; the payload depends on the worker.
    stopped()
        Emitted last, whatever the outcome (the thread is about to end).
    """

    failed = Signal(object)
    cancelled = Signal()
    finished = Signal(object)
    stopped = Signal()

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self.token = CancelToken()
        self._thread: QThread | None = None
        self._runner: _Runner | None = None
        self._running = False

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Start the work in a new thread (once)."""
        if self._thread is not None:
            raise RuntimeError(f"worker {self.name} was already started")
        thread = QThread()
        thread.setObjectName(f"idc-{self.name}")
        runner = _Runner(self._guarded)
        runner.moveToThread(thread)
        thread.started.connect(runner.run)
        self._thread, self._runner = thread, runner
        self._running = True
        thread.start()

    def cancel(self) -> None:
        """Ask the work to stop at its next check (thread-safe, returns at once)."""
        self.token.cancel()

    @property
    def running(self) -> bool:
        """The work has started and not yet stopped."""
        return self._running

    def wait(self, timeout_ms: int = 30_000) -> bool:
        """Block until the thread has ended; True if it did within ``timeout_ms``."""
        if self._thread is None:
            return True
        return bool(self._thread.wait(timeout_ms))

    def _guarded(self) -> None:
        try:
            self._work()
        except Cancelled:
            self.cancelled.emit()
        except Exception as exc:  # every failure reaches the user, the app carries on
            log.error("worker %s failed:\n%s", self.name, traceback.format_exc())
            self.failed.emit(exc.with_traceback(None))  # the frames need not outlive the log
        finally:
            self._running = False
            self.stopped.emit()
            thread = QThread.currentThread()
            thread.quit()

    def _work(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class CallWorker(Worker):
    """Runs ``fn()`` off the GUI thread and emits ``finished(result)``."""

    def __init__(self, name: str, fn: Callable[[], Any], parent: QObject | None = None) -> None:
        super().__init__(name, parent)
        self._fn = fn

    def _work(self) -> None:
        result = self._fn()
        self.finished.emit(result)


class Mailbox:
    """Items handed from a worker thread to the GUI thread, taken all at once.

    :meth:`put` says whether the box was empty: only then does the worker signal the GUI, so
    at most one notification waits in the GUI's event queue however fast the worker is, and
    the GUI always takes everything produced so far (its display cannot fall behind).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[Any] = []

    def put(self, item: Any) -> bool:
        """Add ``item``; True when the box was empty (then signal the GUI)."""
        with self._lock:
            self._items.append(item)
            return len(self._items) == 1

    def take(self) -> list[Any]:
        """Everything put since the last take, in order."""
        with self._lock:
            items, self._items = self._items, []
        return items


class GeneratorWorker(Worker):
    """Drives a generator off the GUI thread, emitting ``item(object)`` for each value.

    ``make_generator(token)`` builds the generator; it should check the token between steps.
    ``finished`` carries the last item (or None); when the token is set the loop stops after
    the current item and ``cancelled`` is emitted instead.

    With ``coalesce=True`` items are not emitted one by one: they wait in a :class:`Mailbox`
    and ``items_ready()`` tells the GUI to :meth:`take_items` (every item is delivered, in
    order, before ``finished``/``cancelled``).
    """

    item = Signal(object)
    items_ready = Signal()

    def __init__(
        self,
        name: str,
        make_generator: Callable[[CancelToken], Iterator[Any]],
        parent: QObject | None = None,
        coalesce: bool = False,
    ) -> None:
        super().__init__(name, parent)
        self._make = make_generator
        self._mailbox = Mailbox() if coalesce else None

    def take_items(self) -> list[Any]:
        """The items produced since the last call (coalescing workers; GUI thread)."""
        return self._mailbox.take() if self._mailbox is not None else []

    def _work(self) -> None:
        last: Any = None
        gen = self._make(self.token)
        box = self._mailbox
        try:
            for value in gen:
                last = value
                if box is None:
                    self.item.emit(last)
                elif box.put(last):
                    self.items_ready.emit()
        finally:
            close = getattr(gen, "close", None)
            if close is not None:
                close()
        if self.token.cancelled:
            self.cancelled.emit()
        else:
            self.finished.emit(last)


class WorkerPool(QObject):
    """Keeps running workers alive until they stop; cancels and joins them all on close."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._workers: list[Worker] = []

    def start(self, worker: Worker) -> Worker:
        """Keep ``worker`` until it stops, and start it."""
        self._workers.append(worker)
        worker.stopped.connect(self._on_worker_stopped)
        worker.start()
        return worker

    @Slot()
    def _on_worker_stopped(self) -> None:
        worker = self.sender()
        if isinstance(worker, Worker):
            worker.wait(5_000)  # the thread is only returning from run()
            if worker in self._workers:
                self._workers.remove(worker)

    @property
    def active(self) -> list[Worker]:
        """The workers still running."""
        return [w for w in self._workers if w.running]

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Cancel every worker and wait for its thread; True if all ended in time."""
        for worker in self._workers:
            worker.cancel()
        ok = all(worker.wait(timeout_ms) for worker in list(self._workers))
        return ok
