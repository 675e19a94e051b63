"""One byte-bounded, thread-safe LRU cache for decoded slide tiles."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, NamedTuple, TypeVar

V = TypeVar("V")

#: Default budget of the tile cache in bytes.
DEFAULT_CACHE_BYTES = 256 * 1024 * 1024


class TileKey(NamedTuple):
    """Identity of one tile: which slide, which level, which tile of that level."""

    slide_id: str
    level: int
    col: int
    row: int


class TileCache(Generic[V]):
    """Least-recently-used cache bounded by the total size of its values in bytes.

    Parameters
    ----------
    max_bytes : int
        Budget; inserting beyond it evicts the least recently used tiles first.

    Notes
    -----
    All methods take one lock, so loader threads may ``put`` while the GUI thread calls ``get``.
    A value bigger than the whole budget is not stored.
    """

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self._max_bytes = int(max_bytes)
        self._entries: OrderedDict[TileKey, tuple[V, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def max_bytes(self) -> int:
        """Budget in bytes."""
        return self._max_bytes

    @property
    def bytes_used(self) -> int:
        """Total size in bytes of the values held now."""
        with self._lock:
            return self._bytes

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._entries

    def get(self, key: TileKey) -> V | None:
        """Return the value for ``key`` (marking it most recently used), or None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: TileKey, value: V, nbytes: int) -> None:
        """Store ``value`` of size ``nbytes`` bytes, evicting old tiles to stay in budget."""
        if nbytes > self._max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._entries[key] = (value, nbytes)
            self._bytes += nbytes
            while self._bytes > self._max_bytes and self._entries:
                _, (_, evicted_bytes) = self._entries.popitem(last=False)
                self._bytes -= evicted_bytes

    def discard_slide(self, slide_id: str) -> None:
        """Drop every tile of one slide (when it is closed)."""
        with self._lock:
            for key in [k for k in self._entries if k.slide_id == slide_id]:
                self._bytes -= self._entries.pop(key)[1]

    def clear(self) -> None:
        """Drop everything."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0
