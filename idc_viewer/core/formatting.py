"""Numbers as the app shows them: durations, lengths in µm or mm, and patch counts.

One definition for the CLI, the cohort runner and the GUI, so that a duration or a count reads
the same everywhere.
"""

from __future__ import annotations

import math

__all__ = ["format_count", "format_duration", "format_length_um", "patches"]


def format_duration(seconds: float | None) -> str:
    """``1:05`` / ``1:02:03`` (rounded to whole seconds, negatives as 0); ``--`` for unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "--"
    total = round(max(0.0, seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_length_um(length_um: float, fixed_decimals: bool = False) -> str:
    """A length in µm below 1 mm (in magnitude) and in mm from 1 mm on.

    The shortest form by default (a scale bar's ``"500 µm"``, ``"2 mm"``, ``"0.5 µm"``); with
    ``fixed_decimals`` whole µm and mm to 0.01 (a position: ``"512 µm"``, ``"2.05 mm"``).
    """
    in_mm = abs(length_um) >= 1000.0
    if fixed_decimals:
        return f"{length_um / 1000:.2f} mm" if in_mm else f"{length_um:.0f} µm"
    return f"{length_um / 1000.0:g} mm" if in_mm else f"{length_um:g} µm"


def patches(n: int) -> str:
    """``1 patch`` / ``1,111 patches``."""
    return f"{n:,} patch" if n == 1 else f"{n:,} patches"


def format_count(done: int, total: int) -> str:
    """``768 of 1,111 patches``."""
    return f"{done:,} of {patches(total)}"
