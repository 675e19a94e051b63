"""The pre-run estimate of ``idc-viewer info``: it must follow the model's input size."""

from __future__ import annotations

import pytest

from idc_viewer.engine.plan import ESTIMATED_PATCHES_PER_S, estimated_patches_per_s


def test_estimate_scales_with_the_input_area() -> None:
    assert estimated_patches_per_s(50) == ESTIMATED_PATCHES_PER_S
    # the paper preset's 128 px input: measured 6-8x slower than 50 px, the estimate says 6.6x
    assert ESTIMATED_PATCHES_PER_S / estimated_patches_per_s(128) == pytest.approx(6.55, abs=0.01)
