"""Decode slide tiles off the GUI thread; deliver only results the view still wants.

A :class:`TileRequest` is an immutable value that carries the request generation. Each call
to :meth:`TileLoader.request` starts a new generation: the pending queue is replaced, results
of older generations that were already being decoded still go into the cache (the pixels are
right) but are not announced, so the view never repaints for a place it has left.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from idc_viewer.core.errors import one_line
from idc_viewer.core.tile_cache import TileCache, TileKey
from idc_viewer.qt.image_convert import qimage_for_painting

if TYPE_CHECKING:
    from idc_viewer.core.slide import Slide

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TileRequest:
    """One tile to decode.

    Attributes
    ----------
    key : TileKey
        Cache key (slide id, level, col, row).
    generation : int
        The view state that asked for it; results of an older generation are stale.
    l0_x, l0_y : int
        Level-0 position of the tile's top-left corner (what ``Slide.read_region`` takes).
    lvl_w, lvl_h : int
        Size of the tile in pixels of its level.
    slide : Slide
        Where to read from (thread-safe reads); not part of equality.
    """

    key: TileKey
    generation: int
    l0_x: int
    l0_y: int
    lvl_w: int
    lvl_h: int
    slide: Slide = field(compare=False, repr=False)


class TileLoader(QObject):
    """A small pool of reader threads with a newest-first queue and a Qt signal back.

    Parameters
    ----------
    cache : TileCache
        Where decoded tiles (``QImage``) go; checked before decoding.
    n_threads : int
        Reader threads (slide decoding releases the GIL in OpenSlide / OpenCV).
    parent : QObject, optional

    Signals
    -------
    tile_ready(TileRequest)
        In the GUI thread, for a request of the current generation whose tile is now cached.
    tile_failed(TileRequest, object)
        In the GUI thread, when reading a current tile raised: the exception.
    """

    tile_ready = Signal(object)
    tile_failed = Signal(object, object)
    _result_ready = Signal(object)  # (TileRequest, exception or None), from readers

    def __init__(
        self, cache: TileCache[QImage], n_threads: int = 2, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self._cache = cache
        self._queue: deque[TileRequest] = deque()
        self._cond = threading.Condition()
        self._generation = 0
        self._in_flight = 0
        self._stopping = False
        self.dropped_count = 0
        """Results thrown away because their generation was stale (for tests and stats)."""
        self._result_ready.connect(self._on_result_ready)
        self._threads = [
            threading.Thread(target=self._work, name=f"tile-loader-{i}", daemon=True)
            for i in range(max(1, n_threads))
        ]
        for thread in self._threads:
            thread.start()

    @property
    def generation(self) -> int:
        """The current request generation."""
        with self._cond:
            return self._generation

    @property
    def pending_count(self) -> int:
        """Tiles queued or being decoded."""
        with self._cond:
            return len(self._queue) + self._in_flight

    def request(self, requests: Sequence[TileRequest], generation: int) -> None:
        """Replace the queue with ``requests`` (most wanted first) of a new ``generation``."""
        with self._cond:
            self._generation = generation
            self._queue.clear()
            # Workers pop from the right: put the most wanted tile last so it goes first.
            self._queue.extend(reversed(requests))
            self._cond.notify_all()

    def cancel_all(self) -> None:
        """Forget pending work and make every result in flight stale."""
        with self._cond:
            self._generation += 1
            self._queue.clear()

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Stop the threads (waits for tiles being decoded, up to ``timeout_s`` seconds each)."""
        with self._cond:
            self._stopping = True
            self._queue.clear()
            self._cond.notify_all()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout_s)

    def _next_request(self) -> TileRequest | None:
        with self._cond:
            while True:
                if self._stopping:
                    return None
                while self._queue:
                    request = self._queue.pop()
                    if request.generation == self._generation:
                        self._in_flight += 1
                        return request
                self._cond.wait()

    def _work(self) -> None:
        while (request := self._next_request()) is not None:
            error: Exception | None = None
            try:
                if self._cache.get(request.key) is None:
                    image = qimage_for_painting(self._read(request))
                    self._cache.put(request.key, image, image.sizeInBytes())
            except Exception as exc:  # a bad tile must not kill the reader thread
                error = exc.with_traceback(None)
                log.warning(
                    "tile %s failed: %s: %s", request.key, type(exc).__name__, one_line(exc)
                )
            finally:
                with self._cond:
                    self._in_flight -= 1
                    stopping = self._stopping
            if not stopping:
                try:
                    self._result_ready.emit((request, error))
                except RuntimeError:  # the QObject was deleted under us
                    return

    @staticmethod
    def _read(request: TileRequest) -> NDArray[np.uint8]:
        return request.slide.read_region(
            request.l0_x, request.l0_y, request.key.level, request.lvl_w, request.lvl_h
        )

    def _on_result_ready(self, result: tuple[TileRequest, Exception | None]) -> None:
        request, error = result
        if request.generation != self.generation:
            self.dropped_count += 1
            return
        if error is None:
            self.tile_ready.emit(request)
        else:
            self.tile_failed.emit(request, error)
