"""What a cohort run shows while it runs: the progress line and one line per slide."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from idc_viewer.core.formatting import format_duration
from idc_viewer.engine.cohort_task import DONE, FAILED, SlideOutcome


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
        """Take in a task's progress event (a retry on another worker makes a note)."""
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
        """Count a finished slide."""
        with self.lock:
            self.running.pop(outcome.index, None)
            self.finished += 1
            self.failed += outcome.status == FAILED

    def take_notes(self) -> list[str]:
        """The notes since the last call."""
        with self.lock:
            notes, self.notes = self.notes, []
        return notes

    @property
    def patches_per_s(self) -> float:
        """Patches analysed per second by all workers together."""
        with self.lock:
            patches = sum(self.analysed.values())
        return patches / max(time.perf_counter() - self.t0, 1e-9)

    @property
    def eta_s(self) -> float | None:
        """Seconds left, from the finished and running slides' shares (None: unknown)."""
        with self.lock:
            partial = sum(d / t for d, t in self.running.values() if t > 0)
            fraction = (self.finished + partial) / max(self.total, 1)
        if fraction <= 0:
            return None
        return (time.perf_counter() - self.t0) * (1.0 - fraction) / fraction

    def line(self, width: int = 24) -> str:
        """The progress line: slides done, failed, patches/s, ETA."""
        frac = self.finished / max(self.total, 1)
        filled = round(frac * width)
        eta = self.eta_s
        failed = f", {self.failed} failed" if self.failed else ""
        return (
            f"cohort [{'#' * filled}{'.' * (width - filled)}] {self.finished}/{self.total} "
            f"slides{failed}, {self.patches_per_s:,.0f} patches/s, "
            f"ETA {'--:--' if eta is None else format_duration(eta)}"
        )


class Screen:
    """The progress line (redrawn in place on a terminal) and the lines printed above it."""

    def __init__(self, stream: TextIO, quiet: bool) -> None:
        self.stream = stream
        self.quiet = quiet
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self._drawn = False

    def say(self, text: str) -> None:
        """Print a line above the progress line."""
        self.clear()
        self.stream.write(text + "\n")
        self.stream.flush()

    def draw(self, line: str) -> None:
        """Redraw the progress line (terminals only, unless quiet)."""
        if self.quiet or not self.tty:
            return
        self.stream.write("\r\x1b[2K" + line)
        self.stream.flush()
        self._drawn = True

    def clear(self) -> None:
        """Erase the progress line."""
        if self._drawn:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self._drawn = False


def describe(outcome: SlideOutcome) -> str:
    """One line of what became of a slide."""
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
