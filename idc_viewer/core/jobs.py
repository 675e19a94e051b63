"""Progress reports and cancellation shared by every long-running job.

Long work is a generator that yields :class:`Progress` and checks a :class:`CancelToken`
between steps; the CLI's progress bar and the GUI's worker drive the same generator.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

#: Patches per CNN call unless asked otherwise (the engine, the CLI, cohorts and the GUI).
DEFAULT_BATCH_SIZE = 256


class Cancelled(Exception):
    """Raised inside a job when its :class:`CancelToken` was set."""


class CancelToken:
    """A thread-safe flag a job checks between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Ask the job to stop at its next check."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise :class:`Cancelled` once :meth:`cancel` was called."""
        if self._event.is_set():
            raise Cancelled()


@dataclass(frozen=True)
class Progress:
    """How far a job is: ``done`` of ``total`` units, with throughput and time left."""

    done: int
    total: int
    rate_per_s: float = 0.0
    eta_s: float | None = None
    message: str = ""

    @property
    def fraction(self) -> float:
        """``done / total`` in [0, 1] (1 for an empty job)."""
        return 1.0 if self.total <= 0 else min(1.0, self.done / self.total)


@dataclass
class RateMeter:
    """Turns (done, total) counts into :class:`Progress` with a rate and an ETA."""

    total: int
    start_done: int = 0
    _t0: float = field(default_factory=time.perf_counter)

    def progress(self, done: int, message: str = "") -> Progress:
        """The :class:`Progress` at ``done`` units, with the rate since the meter started."""
        elapsed = max(time.perf_counter() - self._t0, 1e-9)
        rate = (done - self.start_done) / elapsed
        eta = (self.total - done) / rate if rate > 0 else None
        return Progress(done=done, total=self.total, rate_per_s=rate, eta_s=eta, message=message)
