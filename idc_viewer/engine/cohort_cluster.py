"""The Dask side of a cohort run: a local cluster or a running one, and what it is told.

``dask``/``distributed`` are imported lazily, here and in :mod:`cohort_task` only: the serial
command and the GUI never load them.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

from idc_viewer.core.errors import IdcViewerError, one_line
from idc_viewer.engine.cohort_task import SlideTask

#: Scheduler settings of a local cluster: a task whose worker dies twice is reported
#: (``allowed-failures: 1``), and a worker holds only the slide it is analysing
#: (``worker-saturation: 1.0``), so a dying worker never charges a death to queued slides.
LOCAL_SCHEDULER_CONFIG = {
    "distributed.scheduler.allowed-failures": 1,
    "distributed.scheduler.worker-saturation": 1.0,
}


class CohortError(IdcViewerError):
    """The cohort cannot run at all (no Dask installed, scheduler unreachable); one line."""


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
def connect(workers: int | None, scheduler: str | None) -> Iterator[tuple[Any, Any]]:
    """A connected client, and the local cluster of ``workers`` it owns (else None).

    Without ``workers``, a client of the running cluster at ``scheduler``.
    """
    distributed = _distributed()
    cluster = None
    try:
        if workers is not None:
            try:
                cluster = start_local_cluster(workers)
            except Exception as exc:
                raise CohortError(
                    f"cannot start {workers} local workers: {one_line(exc)}"
                ) from None
            client = distributed.Client(cluster)
        else:
            try:
                client = distributed.Client(scheduler, timeout="20s")
            except (OSError, TimeoutError, ValueError) as exc:
                raise CohortError(
                    f"cannot reach the Dask scheduler {scheduler}: {one_line(exc)}"
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
    """LiteRT threads per task slot for each host of a running cluster.

    A host's cores are shared by all the slots its workers offer.
    """
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


def with_host_threads(client: Any, tasks: list[SlideTask]) -> list[SlideTask]:
    """Tasks that pick their LiteRT threads by the host they land on."""
    from dataclasses import replace

    try:
        threads = _threads_by_host(client)
    except Exception:  # a cluster that refuses run(): each worker divides its own cores
        return tasks
    return [replace(t, litert_threads_by_host=threads) for t in tasks]


def _allowed_failures(dask_scheduler: Any) -> int:
    return int(dask_scheduler.allowed_failures)


def retry_note(client: Any) -> str | None:
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
