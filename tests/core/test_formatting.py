"""Tests for idc_viewer.core.formatting: one duration, length and count format for CLI and GUI."""

from __future__ import annotations

import math

import numpy as np
import pytest

from idc_viewer.core.formatting import format_count, format_duration, format_length_um, patches


def _cli_duration_before(seconds: float) -> str:
    """The CLI's and the cohort runner's own copy before they shared this one."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def test_durations() -> None:
    assert format_duration(65.0) == "1:05"
    assert format_duration(3723) == "1:02:03"
    assert format_duration(-3.0) == "0:00"
    assert format_duration(None) == format_duration(math.nan) == format_duration(math.inf) == "--"


def test_the_cli_copy_read_the_same_for_every_finite_duration() -> None:
    rng = np.random.default_rng(0)
    values = [*rng.uniform(-100, 1e6, 2000), *np.arange(-2, 4000, 0.25), 59.5, 3599.5, 1e9]
    for seconds in values:
        assert format_duration(float(seconds)) == _cli_duration_before(float(seconds))
    assert format_duration(3600) == _cli_duration_before(3600)


@pytest.mark.parametrize(
    ("length_um", "shortest", "fixed"),
    [
        (0.5, "0.5 µm", "0 µm"),
        (500.0, "500 µm", "500 µm"),
        (999.4, "999.4 µm", "999 µm"),
        (1000.0, "1 mm", "1.00 mm"),
        (2050.0, "2.05 mm", "2.05 mm"),
        (-1500.0, "-1.5 mm", "-1.50 mm"),
    ],
)
def test_lengths_in_um_below_a_millimetre(length_um: float, shortest: str, fixed: str) -> None:
    assert format_length_um(length_um) == shortest  # a scale bar's length
    assert format_length_um(length_um, fixed_decimals=True) == fixed  # a cursor position


def test_counts_read_as_english() -> None:
    assert patches(1) == "1 patch" and patches(1111) == "1,111 patches"
    assert format_count(768, 1111) == "768 of 1,111 patches"
    assert format_count(0, 1) == "0 of 1 patch"
