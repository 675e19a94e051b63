"""One stored analysis: the probabilities written so far, its tissue mask and metadata.

A :class:`StoredAnalysis` wraps one SQLite file of :class:`~idc_viewer.core.store.ResultStore`;
every :meth:`StoredAnalysis.write_batch` is one transaction, so a crash loses at most the batch
being written. Every value read back is checked: a damaged file raises
:class:`DamagedAnalysisError`, never a wrong heatmap.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from idc_viewer.core.analysis_key import AnalysisKey
from idc_viewer.core.closing import Closeable
from idc_viewer.core.errors import IdcViewerError, one_line
from idc_viewer.core.heatmap import Heatmap, cells_to_arrays
from idc_viewer.core.patches import Cell, PatchGrid

__all__ = [
    "MAX_STORED_CELLS",
    "DamagedAnalysisError",
    "ResultStoreError",
    "StoredAnalysis",
    "store_error",
]

#: A stored grid larger than this is taken as damage (the engine refuses such grids anyway).
MAX_STORED_CELLS = 1 << 26


class ResultStoreError(IdcViewerError):
    """The results store cannot be read or written; ``str(exc)`` is a one-line reason."""


class DamagedAnalysisError(ResultStoreError):
    """A stored analysis is damaged (corrupt file, missing or invalid rows, bad values).

    :meth:`ResultStore.open` moves such a file aside and starts afresh; elsewhere the message
    says which file to remove.
    """

    def __init__(self, path: Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(
            f"results store {self.path} is damaged ({reason}); delete it (or move it away) "
            "and rerun to recompute"
        )


# SQLite's codes for a file that is not (or no longer) a valid database.
_CORRUPT_CODES = frozenset(
    {getattr(sqlite3, "SQLITE_CORRUPT", 11), getattr(sqlite3, "SQLITE_NOTADB", 26)}
)


def _is_corruption(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) in _CORRUPT_CODES or (
        type(exc) is sqlite3.DatabaseError
    )


def store_error(path: Path, exc: sqlite3.Error, what: str) -> ResultStoreError:
    """The error to raise for ``exc``: damage of ``path``, or ``"<what>: <SQLite's reason>"``."""
    if _is_corruption(exc):
        return DamagedAnalysisError(path, one_line(exc))
    return ResultStoreError(f"{what}: {one_line(exc)}")


def now_iso() -> str:
    """The current UTC time as ISO 8601 with microseconds (the store's timestamps)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def grid_to_json(grid: PatchGrid) -> str:
    """The grid as the JSON object the store keeps."""
    if dataclasses.is_dataclass(grid) and not isinstance(grid, type):
        return json.dumps(dataclasses.asdict(grid), sort_keys=True)
    raise TypeError(f"grid must be a PatchGrid dataclass, got {type(grid).__name__}")


def grid_from_json(text: str) -> PatchGrid:
    """The grid stored as ``text``; ``ValueError`` when it is not a plausible grid."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("the grid is not a JSON object")
    names = {f.name for f in dataclasses.fields(PatchGrid)}
    grid = PatchGrid(**{k: v for k, v in data.items() if k in names})
    for name in ("cols", "rows", "patch_px", "read_level", "l0_width", "l0_height"):
        value = getattr(grid, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"grid {name} is {value!r}")
    if grid.cols * grid.rows > MAX_STORED_CELLS:
        raise ValueError(f"the grid has {grid.cols} x {grid.rows} cells")
    return grid


def pack_mask(mask: ArrayLike | None) -> bytes | None:
    """A tissue mask as bytes: its shape (two little-endian int64), then its packed bits."""
    if mask is None:
        return None
    arr = np.asarray(mask, dtype=bool)
    header = np.asarray(arr.shape, dtype="<i8").tobytes()
    return header + np.packbits(arr.reshape(-1)).tobytes()


def _unpack_mask(blob: bytes | None) -> NDArray[np.bool_] | None:
    if blob is None:
        return None
    if not isinstance(blob, bytes) or len(blob) < 16:
        raise ValueError("the tissue mask is not a packed mask")
    rows, cols = np.frombuffer(blob[:16], dtype="<i8").tolist()
    if not (
        rows >= 0
        and cols >= 0
        and rows * cols <= MAX_STORED_CELLS
        and len(blob) - 16 == (rows * cols + 7) // 8
    ):
        raise ValueError("the tissue mask has an impossible size")
    bits = np.unpackbits(np.frombuffer(blob[16:], dtype=np.uint8), count=rows * cols)
    return bits.astype(bool).reshape(rows, cols)


class StoredAnalysis(Closeable):
    """One analysis on disk: probabilities written so far, tissue mask and metadata.

    Obtained from :meth:`ResultStore.open` or :meth:`ResultStore.find`. Safe to share between
    the analysis thread (writing) and the GUI thread (reading); close it when done.
    """

    def __init__(self, path: Path, conn: sqlite3.Connection, grid: PatchGrid) -> None:
        self._path = path
        self._conn = conn
        self._grid = grid
        self._lock = threading.Lock()
        info = self._read_info()
        try:
            key = json.loads(info["key"])
            if not isinstance(key, dict):
                raise TypeError("the key is not a JSON object")
            self._key = AnalysisKey(**key)
            meta = json.loads(info["meta"])
            if not isinstance(meta, dict):
                raise TypeError("the metadata is not a JSON object")
            self._meta: dict[str, Any] = meta
            self._tissue_mask = _unpack_mask(info.get("tissue_mask"))
        except KeyError as exc:
            raise DamagedAnalysisError(path, f"its {exc.args[0]} row is missing") from exc
        except (ValueError, TypeError) as exc:
            raise DamagedAnalysisError(path, one_line(exc)) from exc
        if self._tissue_mask is not None and self._tissue_mask.shape != grid.shape:
            raise DamagedAnalysisError(path, "its tissue mask does not fit its grid")

    # -- plumbing -----------------------------------------------------------------

    def _read_info(self) -> dict[str, Any]:
        return dict(self._query("SELECT name, value FROM info"))

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        """Run a query and fetch every row, with SQLite errors as one-line store errors."""
        with self._lock:
            try:
                return self._conn.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise store_error(self._path, exc, f"results store {self._path}") from exc

    def _execute(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
        try:
            return self._conn.execute(sql, args)
        except sqlite3.Error as exc:
            raise store_error(self._path, exc, f"results store {self._path}") from exc

    def _set_info(self, name: str, value: Any) -> None:
        self._execute("INSERT OR REPLACE INTO info(name, value) VALUES (?, ?)", (name, value))

    # -- public ---------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The analysis's SQLite file."""
        return self._path

    @property
    def key(self) -> AnalysisKey:
        """The key the analysis was stored under."""
        return self._key

    @property
    def grid(self) -> PatchGrid:
        """The patch grid the probabilities refer to."""
        return self._grid

    @property
    def meta(self) -> dict[str, Any]:
        """Metadata: what the caller gave (slide path, model name...) and more.

        Also ``created``, ``app_version`` and ``schema_version``. A copy; changes are not stored.
        """
        return dict(self._meta)

    @property
    def tissue_mask(self) -> NDArray[np.bool_] | None:
        """``bool[rows, cols]`` tissue cells the analysis covers, or None if not stored."""
        return None if self._tissue_mask is None else self._tissue_mask.copy()

    @property
    def updated(self) -> str:
        """ISO time of the last write (or of creation)."""
        return str(self._read_info().get("updated", self._meta.get("created", "")))

    @property
    def is_complete(self) -> bool:
        """True once :meth:`mark_complete` was called."""
        return self._read_info().get("complete") == 1

    def done_cells(self) -> set[tuple[int, int]]:
        """Cells that already have a probability, as ``(col, row)`` pairs."""
        cols, rows, _ = self._cells()
        return set(zip(cols.tolist(), rows.tolist(), strict=True))

    def _cells(self) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float64]]:
        """Every stored cell, checked: inside the grid, a probability in [0, 1].

        Raises
        ------
        DamagedAnalysisError
            A row holds anything else (text, NaN, 7.0, a cell outside the grid).
        """
        rows = self._query("SELECT col, row, probability FROM cells")
        if not rows:
            empty = np.zeros(0, dtype=np.intp)
            return empty, empty.copy(), np.zeros(0, dtype=np.float64)
        try:
            arr = np.asarray(rows, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise DamagedAnalysisError(
                self._path, "a cell holds a value that is not a number"
            ) from exc
        cols, rows_, probs = arr[:, 0], arr[:, 1], arr[:, 2]
        if not (np.all(cols == np.floor(cols)) and np.all(rows_ == np.floor(rows_))):
            raise DamagedAnalysisError(self._path, "a cell index is not an integer")
        if (
            cols.min() < 0
            or rows_.min() < 0
            or cols.max() >= self._grid.cols
            or rows_.max() >= self._grid.rows
        ):
            raise DamagedAnalysisError(self._path, "a cell lies outside the grid")
        if not np.all((probs >= 0.0) & (probs <= 1.0)):  # False for NaN too
            bad = probs[~((probs >= 0.0) & (probs <= 1.0))][0]
            raise DamagedAnalysisError(self._path, f"a probability is {bad:g}, not in [0, 1]")
        return cols.astype(np.intp), rows_.astype(np.intp), probs

    def done_mask(self) -> NDArray[np.bool_]:
        """``bool[rows, cols]``: True where a probability is stored."""
        return ~np.isnan(self.heatmap().probabilities)

    def write_batch(
        self, cells: Sequence[Cell] | NDArray[np.integer], probabilities: ArrayLike
    ) -> None:
        """Store probabilities for a batch of cells in one transaction.

        ``cells`` are ``(col, row)`` pairs (a list or an ``(N, 2)`` array), ``probabilities``
        one value in [0, 1] per cell. Cells written again are overwritten. All of the batch is
        stored, or (on a crash) none of it.

        Raises
        ------
        ResultStoreError
            The disk is full, the file is read-only, or the database is damaged.
        ValueError
            Lengths differ, a cell lies outside the grid or a value is not a probability.
        """
        cols, rows = cells_to_arrays(cells)
        probs = np.asarray(probabilities, dtype=np.float64).reshape(-1)
        if not len(cols) == len(rows) == len(probs):
            raise ValueError(
                f"batch lengths differ: {len(cols)} cols, {len(rows)} rows, {len(probs)} values"
            )
        if len(cols) and (
            cols.min() < 0
            or rows.min() < 0
            or cols.max() >= self._grid.cols
            or rows.max() >= self._grid.rows
        ):
            raise ValueError("batch has cells outside the grid")
        if not np.all((probs >= 0.0) & (probs <= 1.0)):  # NaN fails too
            raise ValueError("batch has probabilities outside [0, 1] or not a number")
        data = list(zip(cols.tolist(), rows.tolist(), probs.tolist(), strict=True))
        with self._lock:
            try:
                with self._conn:  # one transaction: commit on success, roll back on error
                    self._conn.executemany(
                        "INSERT OR REPLACE INTO cells(col, row, probability) VALUES (?, ?, ?)",
                        data,
                    )
                    self._set_info("updated", now_iso())
            except sqlite3.Error as exc:
                raise store_error(self._path, exc, f"cannot save results to {self._path}") from exc

    def heatmap(self) -> Heatmap:
        """Return a :class:`Heatmap` of everything stored so far (``NaN`` elsewhere).

        Raises :class:`DamagedAnalysisError` when a stored value is not a probability.
        """
        cols, rows, probs = self._cells()
        hm = Heatmap.empty(self._grid)
        hm.probabilities[rows, cols] = probs
        return hm

    def check(self) -> None:
        """Raise :class:`DamagedAnalysisError` unless the whole file reads back as valid.

        SQLite's own page check, then every row: what :meth:`ResultStore.open` and
        :meth:`ResultStore.find` do before handing an analysis out.
        """
        result = self._query("PRAGMA quick_check")
        if not result or result[0][0] != "ok":
            detail = str(result[0][0]) if result else "no answer"
            raise DamagedAnalysisError(self._path, f"SQLite check: {one_line(Exception(detail))}")
        self._cells()

    def mark_complete(self) -> None:
        """Record that every tissue cell was analysed."""
        with self._lock:
            try:
                with self._conn:
                    self._set_info("complete", 1)
                    self._set_info("updated", now_iso())
            except sqlite3.Error as exc:
                raise store_error(self._path, exc, f"cannot save {self._path}") from exc

    def close(self) -> None:
        """Close the database; the object must not be used afterwards."""
        with self._lock:
            self._conn.close()

    def __repr__(self) -> str:
        return f"StoredAnalysis({self._path.name}, complete={self.is_complete})"
