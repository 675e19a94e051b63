"""Fixtures for the Qt tests: an offscreen platform and small in-memory slides."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from idc_viewer.core.memory import ArraySlide
from idc_viewer.core.slide import Slide

sys.path.insert(0, str(Path(__file__).parent))  # helpers, under --import-mode=importlib
# Main-window fixtures shared by the application tests.
from window_fixtures import dialogs, make_window, questions, slide_file  # noqa: F401

RED = (220, 30, 30)
GREEN = (30, 200, 30)
BLUE = (30, 30, 220)
YELLOW = (230, 220, 20)
#: Top-left corner and side of the 1-pixel black/white checkerboard in the red quadrant.
CHECKER_L0 = (128, 128, 256)


def checker_value(l0_x: int, l0_y: int) -> int:
    """Grey value of the checkerboard at a level-0 pixel (0 or 255)."""
    return 255 * ((l0_x + l0_y) % 2)


def quadrant_image(l0_width: int = 2048, l0_height: int = 1536) -> np.ndarray:
    """Four coloured quadrants (R G / B Y) with a fine checkerboard inside the red one."""
    image = np.zeros((l0_height, l0_width, 3), dtype=np.uint8)
    half_w, half_h = l0_width // 2, l0_height // 2
    image[:half_h, :half_w] = RED
    image[:half_h, half_w:] = GREEN
    image[half_h:, :half_w] = BLUE
    image[half_h:, half_w:] = YELLOW
    x0, y0, side = CHECKER_L0
    yy, xx = np.mgrid[y0 : y0 + side, x0 : x0 + side]
    image[y0 : y0 + side, x0 : x0 + side] = ((xx + yy) % 2 * 255).astype(np.uint8)[..., None]
    return image


def pyramid(image: np.ndarray, levels: int = 3) -> list[np.ndarray]:
    """Level 0 plus 2x-downsampled levels (area averaging, so the checkerboard turns grey)."""
    out = [image]
    for _ in range(levels - 1):
        prev = out[-1]
        out.append(
            cv2.resize(prev, (prev.shape[1] // 2, prev.shape[0] // 2), interpolation=cv2.INTER_AREA)
        )
    return out


@pytest.fixture
def quadrant_slide() -> ArraySlide:
    """2048 x 1536 ArraySlide, 3 levels (downsamples 1, 2, 4), 0.25 µm/px."""
    return ArraySlide(pyramid(quadrant_image()), mpp=0.25, path="quadrants")


class GatedSlide(Slide):
    """Wraps a slide; every read waits for ``gate`` and is recorded in ``reads``."""

    def __init__(self, inner: Slide) -> None:
        super().__init__(inner.info)
        self.inner = inner
        self.gate = threading.Event()
        self.reading = threading.Event()
        self.reads: list[tuple[int, int, int, int, int]] = []
        self._lock = threading.Lock()

    def read_region(self, l0_x: int, l0_y: int, level: int, lvl_w: int, lvl_h: int) -> np.ndarray:
        with self._lock:
            self.reads.append((l0_x, l0_y, level, lvl_w, lvl_h))
        self.reading.set()
        if not self.gate.wait(10):
            raise TimeoutError("test gate never opened")
        return self.inner.read_region(l0_x, l0_y, level, lvl_w, lvl_h)

    def thumbnail(self, max_side: int) -> np.ndarray:
        return self.inner.thumbnail(max_side)


@pytest.fixture
def gated_slide(quadrant_slide: ArraySlide) -> Iterator[GatedSlide]:
    """The quadrant slide behind a gate the test opens; the gate opens at teardown."""
    slide = GatedSlide(quadrant_slide)
    yield slide
    slide.gate.set()


@pytest.fixture
def make_view(qtbot) -> Iterator[Callable[..., object]]:  # type: ignore[no-untyped-def]
    """Factory for a shown 400 x 300 SlideView whose loader threads stop at teardown."""
    from idc_viewer.qt.viewer import SlideView

    views: list[SlideView] = []

    def factory(slide: Slide | None, width: int = 400, height: int = 300, **kwargs: object):  # type: ignore[no-untyped-def]
        view = SlideView(slide, **kwargs)  # type: ignore[arg-type]
        qtbot.addWidget(view)
        view.resize(width, height)
        view.show()
        qtbot.waitExposed(view)
        views.append(view)
        return view

    yield factory
    for view in views:
        view.shutdown()


def _grab_rgb(widget) -> np.ndarray:  # type: ignore[no-untyped-def]
    from idc_viewer.qt.image_convert import array_from_qimage

    return array_from_qimage(widget.grab().toImage())[..., :3]


@pytest.fixture
def grab() -> Callable[..., np.ndarray]:
    """``grab(widget)``: paint the widget now, return ``(H, W, 3)`` uint8 RGB pixels."""
    return _grab_rgb


@pytest.fixture
def quadrants() -> SimpleNamespace:
    """Colours and checkerboard of :func:`quadrant_slide` for assertions."""
    return SimpleNamespace(
        red=RED,
        green=GREEN,
        blue=BLUE,
        yellow=YELLOW,
        checker_l0=CHECKER_L0,
        checker_value=checker_value,
    )
