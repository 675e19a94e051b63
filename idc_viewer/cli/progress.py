"""The one-line text progress bar of ``idc-viewer analyze``."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, TextIO

from idc_viewer.core.formatting import format_duration

if TYPE_CHECKING:
    from idc_viewer.core.jobs import Progress


class ProgressBar:
    """A one-line text progress bar (done/total, patches/s, ETA) on a stream."""

    def __init__(self, label: str, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last = 0.0
        self._drawn = False

    @staticmethod
    def format(label: str, progress: Progress, width: int = 24) -> str:
        """``label [####....] done/total patches N/s ETA m:ss``."""
        frac = progress.fraction
        filled = round(frac * width)
        eta = "--:--" if progress.eta_s is None else format_duration(progress.eta_s)
        return (
            f"{label} [{'#' * filled}{'.' * (width - filled)}] {progress.done}/{progress.total} "
            f"patches {progress.rate_per_s:,.0f}/s ETA {eta}"
        )

    def update(self, progress: Progress, final: bool = False) -> None:
        """Redraw (at most every 0.1 s on a terminal; only the final line on a pipe)."""
        if not self.enabled:
            return
        now = time.monotonic()
        if not final and (not self._tty or now - self._last < 0.1):
            return
        self._last = now
        line = self.format(self.label, progress)
        if self._tty:
            self.stream.write("\r\x1b[2K" + line + ("\n" if final else ""))
        elif final:
            self.stream.write(line + "\n")
        self._drawn = not final
        self.stream.flush()

    def clear(self) -> None:
        """Erase the bar drawn on a terminal."""
        if self.enabled and self._tty and self._drawn:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self._drawn = False
