"""Workers: generators and calls off the GUI thread, cancel, failures as messages."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import threading
import time
from collections.abc import Iterator

import pytest

from idc_viewer.core.errors import one_line
from idc_viewer.core.jobs import CancelToken
from idc_viewer.qt.workers import CallWorker, GeneratorWorker, WorkerPool


def counting(n: int, delay_s: float = 0.0):  # type: ignore[no-untyped-def]
    def make(token: CancelToken) -> Iterator[int]:
        for i in range(n):
            token.raise_if_cancelled()
            time.sleep(delay_s)
            yield i

    return make


def test_generator_worker_emits_every_item_then_finished(qtbot) -> None:
    worker = GeneratorWorker("count", counting(5))
    items: list[int] = []
    worker.item.connect(items.append)
    with qtbot.waitSignal(worker.finished, timeout=5_000) as blocker:
        worker.start()
    assert blocker.args == [4]
    qtbot.waitUntil(lambda: items == [0, 1, 2, 3, 4], timeout=2_000)
    assert worker.wait(2_000) and not worker.running


def test_generator_runs_off_the_gui_thread(qtbot) -> None:
    threads: list[threading.Thread] = []

    def make(_token: CancelToken) -> Iterator[int]:
        threads.append(threading.current_thread())
        yield 1

    worker = GeneratorWorker("where", make)
    with qtbot.waitSignal(worker.finished, timeout=5_000):
        worker.start()
    assert threads and threads[0] is not threading.main_thread()


def test_cancel_stops_between_items_and_keeps_what_was_emitted(qtbot) -> None:
    worker = GeneratorWorker("slow", counting(1000, delay_s=0.01))
    items: list[int] = []
    worker.item.connect(items.append)
    finished: list[object] = []
    worker.finished.connect(finished.append)
    with qtbot.waitSignal(worker.cancelled, timeout=10_000):
        worker.start()
        qtbot.waitUntil(lambda: len(items) >= 3, timeout=5_000)
        worker.cancel()
    assert 3 <= len(items) < 1000 and not finished


def test_the_exception_object_reaches_the_gui_and_is_logged(qtbot, caplog) -> None:
    def make(_token: CancelToken) -> Iterator[int]:
        yield 1
        raise RuntimeError("disk on fire\nsecond line")

    worker = GeneratorWorker("boom", make)
    with qtbot.waitSignal(worker.failed, timeout=5_000) as blocker:
        worker.start()
    (exc,) = blocker.args
    assert isinstance(exc, RuntimeError)  # the receiver can react to its type
    assert one_line(exc) == "disk on fire second line" and exc.__traceback__ is None
    assert worker.wait(2_000)
    assert any("disk on fire" in r.getMessage() for r in caplog.records)


def test_call_worker_returns_the_result(qtbot) -> None:
    worker = CallWorker("add", lambda: (threading.current_thread().name, 2 + 2))
    with qtbot.waitSignal(worker.finished, timeout=5_000) as blocker:
        worker.start()
    name, value = blocker.args[0]
    assert value == 4 and name != threading.main_thread().name


def test_worker_cannot_start_twice(qtbot) -> None:
    worker = CallWorker("once", lambda: None)
    with qtbot.waitSignal(worker.stopped, timeout=5_000):
        worker.start()
    with pytest.raises(RuntimeError):
        worker.start()


def test_pool_shutdown_cancels_and_joins(qtbot) -> None:
    pool = WorkerPool()
    worker = GeneratorWorker("endless", counting(10**9, delay_s=0.01))
    pool.start(worker)
    qtbot.waitUntil(lambda: worker.running, timeout=5_000)
    t0 = time.perf_counter()
    assert pool.shutdown(5_000)
    assert time.perf_counter() - t0 < 2.0 and not worker.running


def test_coalescing_worker_hands_over_everything_in_order_with_few_notices(qtbot) -> None:
    """A fast producer and a slow consumer: each notice takes all produced so far."""
    worker = GeneratorWorker("count", counting(200), coalesce=True)
    taken: list[list[int]] = []

    def take() -> None:
        time.sleep(0.01)  # a busy GUI thread
        taken.append(worker.take_items())

    worker.items_ready.connect(take)
    emitted: list[int] = []
    worker.item.connect(emitted.append)
    with qtbot.waitSignal(worker.stopped, timeout=10_000):
        worker.start()
    taken.append(worker.take_items())
    flat = [i for batch in taken for i in batch]
    assert flat == list(range(200)) and emitted == []
    notices = sum(1 for batch in taken if batch)
    assert notices < 50  # not one queued signal per item
