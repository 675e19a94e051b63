"""Keep every analysis on disk, per slide, model and parameters, written batch by batch.

Each analysis is one SQLite file in WAL mode under
``<root>/<hash of slide fingerprint>/<hash of AnalysisKey>.sqlite3``. Every
:meth:`StoredAnalysis.write_batch` is one transaction, so a crash or a killed process loses
at most the batch being written and never damages earlier ones; reopening the same key
resumes from :meth:`StoredAnalysis.done_cells`. Reopening a slide finds its analyses with
:meth:`ResultStore.find` and can show the latest heatmap at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from idc_viewer import __version__
from idc_viewer.core.errors import IdcViewerError
from idc_viewer.core.heatmap import Heatmap, cells_to_arrays

if TYPE_CHECKING:
    from idc_viewer.core.patches import PatchGrid

#: Environment variable that moves the application's data folder (results go in ``results/``).
DATA_DIR_ENV = "IDC_VIEWER_DATA_DIR"
SCHEMA_VERSION = 1
_SUFFIX = ".sqlite3"
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


def default_results_dir() -> Path:
    """Return the platform's folder for stored analyses.

    ``$IDC_VIEWER_DATA_DIR/results`` when that variable is set; otherwise
    ``%LOCALAPPDATA%\\idc-viewer\\results`` on Windows,
    ``~/Library/Application Support/idc-viewer/results`` on macOS and
    ``${XDG_DATA_HOME:-~/.local/share}/idc-viewer/results`` elsewhere.
    """
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        return Path(override).expanduser() / "results"
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "idc-viewer" / "results"


def _normalise(value: Any) -> Any:
    """Make equal parameters serialise equally: ``4.0`` and ``4`` become ``4``, tuples lists."""
    if isinstance(value, Mapping):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys and normalised numbers (see :class:`AnalysisKey`)."""
    return json.dumps(_normalise(value), sort_keys=True, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True, eq=False)
class AnalysisKey:
    """What makes two analyses the same: slide content, model and result-changing settings.

    Parameters
    ----------
    slide_fingerprint : str
        From ``slide_fingerprint(slide)``.
    model_hash : str
        The model's weights hash (from its spec).
    params : mapping or str
        Settings that change the probabilities, such as patch µm/px, patch px and tissue
        detection settings, but not the display threshold. A JSON string is accepted.

    Notes
    -----
    Equality and hashing use :attr:`digest`, the SHA-256 of the canonical JSON of all three
    fields, so key order and ``4`` vs ``4.0`` do not split analyses.
    """

    slide_fingerprint: str
    model_hash: str
    params: Mapping[str, Any] | str  # always a normalised dict after construction

    def __post_init__(self) -> None:
        params = json.loads(self.params) if isinstance(self.params, str) else self.params
        if not isinstance(params, Mapping):
            raise TypeError(f"params must be a mapping or a JSON object, got {params!r}")
        object.__setattr__(self, "params", _normalise(dict(params)))

    @property
    def params_dict(self) -> dict[str, Any]:
        """:attr:`params` as a (normalised) dict, typed for callers."""
        return dict(self.params) if isinstance(self.params, Mapping) else {}

    @property
    def params_json(self) -> str:
        """Canonical JSON of :attr:`params`."""
        return canonical_json(self.params)

    @property
    def digest(self) -> str:
        """Hex SHA-256 identifying the key."""
        text = canonical_json([self.slide_fingerprint, self.model_hash, self.params])
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AnalysisKey) and other.digest == self.digest

    def __hash__(self) -> int:
        return hash(self.digest)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _grid_to_json(grid: PatchGrid) -> str:
    if dataclasses.is_dataclass(grid) and not isinstance(grid, type):
        return json.dumps(dataclasses.asdict(grid), sort_keys=True)
    raise TypeError(f"grid must be a PatchGrid dataclass, got {type(grid).__name__}")


def _grid_from_json(text: str) -> PatchGrid:
    # Imported here so the store can be used (and tested) without the slide stack loaded.
    from idc_viewer.core.patches import PatchGrid

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


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


class StoredAnalysis:
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
            raise DamagedAnalysisError(path, _one_line(exc)) from exc
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
                if _is_corruption(exc):
                    raise DamagedAnalysisError(self._path, _one_line(exc)) from exc
                raise ResultStoreError(f"results store {self._path}: {_one_line(exc)}") from exc

    def _execute(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
        try:
            return self._conn.execute(sql, args)
        except sqlite3.Error as exc:
            if _is_corruption(exc):
                raise DamagedAnalysisError(self._path, _one_line(exc)) from exc
            raise ResultStoreError(f"results store {self._path}: {_one_line(exc)}") from exc

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
        """Metadata: what the caller gave (slide path, model name...) plus ``created``,
        ``app_version`` and ``schema_version``. A copy; changes are not stored."""
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

    @overload
    def write_batch(self, cells: Any, probabilities: ArrayLike, /) -> None: ...

    @overload
    def write_batch(self, cols: Any, rows: Any, probabilities: ArrayLike, /) -> None: ...

    def write_batch(self, first: Any, second: Any, third: Any = None, /) -> None:
        """Store probabilities for a batch of cells in one transaction.

        Call as ``write_batch(cells, probabilities)`` with ``(col, row)`` pairs, or as
        ``write_batch(cols, rows, probabilities)`` with parallel integer arrays. Cells written
        again are overwritten. All of the batch is stored, or (on a crash) none of it.

        Raises
        ------
        ResultStoreError
            The disk is full, the file is read-only, or the database is damaged.
        ValueError
            Lengths differ or a cell lies outside the grid.
        """
        if third is None:
            cols, rows = cells_to_arrays(first)
            probs = np.asarray(second, dtype=np.float64).reshape(-1)
        else:
            cols = np.asarray(first, dtype=np.int64).reshape(-1)
            rows = np.asarray(second, dtype=np.int64).reshape(-1)
            probs = np.asarray(third, dtype=np.float64).reshape(-1)
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
                    self._set_info("updated", _now())
            except sqlite3.Error as exc:
                if _is_corruption(exc):
                    raise DamagedAnalysisError(self._path, _one_line(exc)) from exc
                raise ResultStoreError(
                    f"cannot save results to {self._path}: {_one_line(exc)}"
                ) from exc

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
            raise DamagedAnalysisError(self._path, f"SQLite check: {_one_line(Exception(detail))}")
        self._cells()

    def mark_complete(self) -> None:
        """Record that every tissue cell was analysed."""
        with self._lock:
            try:
                with self._conn:
                    self._set_info("complete", 1)
                    self._set_info("updated", _now())
            except sqlite3.Error as exc:
                if _is_corruption(exc):
                    raise DamagedAnalysisError(self._path, _one_line(exc)) from exc
                raise ResultStoreError(f"cannot save {self._path}: {_one_line(exc)}") from exc

    def close(self) -> None:
        """Close the database; the object must not be used afterwards."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> StoredAnalysis:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"StoredAnalysis({self._path.name}, complete={self.is_complete})"


def _pack_mask(mask: ArrayLike | None) -> bytes | None:
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


_BUSY_TIMEOUT_S = 10.0


def _while_locked(statement: Callable[[], object]) -> None:
    """Run ``statement``, retrying while another process holds the file (up to 10 s).

    Two processes creating one analysis at once (two cohort workers given the same slide) race
    to switch the new file to WAL; SQLite answers the loser "database is locked" at once,
    without waiting on its busy timeout (measured: 1 run in ~30 of
    tests/core/test_results_concurrency.py before this retry).
    """
    deadline = time.monotonic() + _BUSY_TIMEOUT_S
    delay_s = 0.005
    while True:
        try:
            statement()
            return
        except sqlite3.OperationalError as exc:
            text = str(exc).lower()
            if ("locked" not in text and "busy" not in text) or time.monotonic() > deadline:
                raise
            time.sleep(delay_s)
            delay_s = min(2 * delay_s, 0.1)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS info (name TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cells (
    col INTEGER NOT NULL, row INTEGER NOT NULL, probability REAL NOT NULL,
    PRIMARY KEY (col, row)
) WITHOUT ROWID;
"""


class ResultStore:
    """All stored analyses under one folder.

    Parameters
    ----------
    root_dir : path-like, optional
        Folder of the store; :func:`default_results_dir` when omitted. Created on first write.
    on_damaged : callable, optional
        Called with a one-line message when :meth:`open` finds the analysis damaged and moves
        it aside (``<file>.damaged-<time>``, never deleted) to start afresh; without it the
        message is logged as a warning.
    """

    def __init__(
        self,
        root_dir: Path | str | None = None,
        on_damaged: Callable[[str], None] | None = None,
    ) -> None:
        self.root = Path(root_dir) if root_dir is not None else default_results_dir()
        # told (one line) when a damaged analysis is moved aside; logged when not given
        self._on_damaged = on_damaged

    @property
    def fingerprint_dir(self) -> Path:
        """Where slide fingerprints are cached (see ``core.slide.slide_fingerprint``)."""
        return self.root / "fingerprints"

    def _slide_dir(self, slide_fingerprint: str) -> Path:
        # Hash the fingerprint: it may hold characters no file system accepts.
        return self.root / hashlib.sha256(slide_fingerprint.encode("utf-8")).hexdigest()[:32]

    def path_for(self, key: AnalysisKey) -> Path:
        """The SQLite file that holds (or will hold) ``key``'s analysis."""
        return self._slide_dir(key.slide_fingerprint) / f"{key.digest[:32]}{_SUFFIX}"

    def _connect(self, path: Path) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_S, check_same_thread=False)
        except sqlite3.Error as exc:
            raise ResultStoreError(f"cannot open results store {path}: {_one_line(exc)}") from exc
        try:
            # WAL: readers never block the writer and a crash keeps every committed batch.
            _while_locked(lambda: conn.execute("PRAGMA journal_mode=WAL"))
            # NORMAL is durable against process crashes in WAL mode; only an OS crash may lose
            # the last batches, never corrupt the file.
            conn.execute("PRAGMA synchronous=NORMAL")
            _while_locked(lambda: conn.executescript(_SCHEMA))
            return conn
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
            if _is_corruption(exc):
                raise DamagedAnalysisError(path, _one_line(exc)) from exc
            raise ResultStoreError(f"cannot open results store {path}: {_one_line(exc)}") from exc

    def open(
        self,
        key: AnalysisKey,
        grid: PatchGrid,
        tissue_mask: ArrayLike | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> StoredAnalysis:
        """Create the analysis for ``key``, or reopen it to resume.

        Parameters
        ----------
        key : AnalysisKey
            Slide, model and parameters.
        grid : PatchGrid
            The slide's patch grid. If a stored analysis has a different grid its results
            cannot be placed and it is started afresh.
        tissue_mask : array_like, optional
            ``bool[rows, cols]``; stored on creation (a reopened analysis keeps its own).
        meta : mapping, optional
            JSON-serialisable details (slide path, model name, ...); stored on creation,
            missing keys are added on reopening.

        Raises
        ------
        ResultStoreError
            The folder cannot be created or written (read-only, disk full, damaged file).
        """
        if tissue_mask is not None and np.shape(tissue_mask) != (grid.rows, grid.cols):
            raise ValueError(f"tissue mask shape {np.shape(tissue_mask)} != grid shape")
        path = self.path_for(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ResultStoreError(
                f"cannot create results folder {path.parent}: {exc.strerror or exc}"
            ) from exc
        grid_json = _grid_to_json(grid)
        try:
            return self._open_checked(path, key, grid, grid_json, tissue_mask, meta or {})
        except DamagedAnalysisError as exc:
            aside = self._move_aside(path)
            self._report(
                f"the stored analysis {path.name} was damaged ({exc.reason}); moved it to "
                f"{aside} and analysing afresh"
            )
        return self._open_checked(path, key, grid, grid_json, tissue_mask, meta or {})

    def _open_checked(
        self,
        path: Path,
        key: AnalysisKey,
        grid: PatchGrid,
        grid_json: str,
        tissue_mask: ArrayLike | None,
        meta: Mapping[str, Any],
    ) -> StoredAnalysis:
        conn = self._connect(path)
        try:
            self._initialise(conn, path, key, grid_json, tissue_mask, meta)
            analysis = StoredAnalysis(path, conn, grid)
        except BaseException:
            conn.close()
            raise
        try:
            analysis.check()
        except BaseException:
            analysis.close()
            raise
        return analysis

    def _move_aside(self, path: Path) -> Path:
        """Rename a damaged analysis (and its WAL files) out of the store's way, keeping it."""
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        aside = path.with_name(f"{path.name}.damaged-{stamp}")
        try:
            for suffix in ("-wal", "-shm", ""):  # the main file last: it names the set
                src = Path(f"{path}{suffix}")
                if src.exists():
                    os.replace(src, Path(f"{aside}{suffix}"))
        except OSError as exc:
            raise ResultStoreError(
                f"results store {path} is damaged and cannot be moved aside "
                f"({exc.strerror or exc}); delete it and rerun"
            ) from exc
        return aside

    def _report(self, message: str) -> None:
        if self._on_damaged is not None:
            self._on_damaged(message)
        else:
            logging.getLogger(__name__).warning("%s", message)

    def _initialise(
        self,
        conn: sqlite3.Connection,
        path: Path,
        key: AnalysisKey,
        grid_json: str,
        tissue_mask: ArrayLike | None,
        meta: Mapping[str, Any],
    ) -> None:
        try:
            with conn:
                info = dict(conn.execute("SELECT name, value FROM info").fetchall())
                missing = [n for n in ("key", "grid", "meta") if n not in info]
                if info and missing:  # rows gone: damage, not an analysis to overwrite
                    raise DamagedAnalysisError(path, f"its {missing[0]} row is missing")
                if info and info.get("grid") != grid_json:
                    # Same key, different geometry: the old cells would land in wrong places.
                    conn.execute("DELETE FROM cells")
                    conn.execute("DELETE FROM info")
                    info = {}
                if info:
                    try:
                        stored_meta = json.loads(info["meta"])
                    except (TypeError, ValueError) as exc:
                        raise DamagedAnalysisError(path, "its metadata is not JSON") from exc
                    if not isinstance(stored_meta, dict):
                        raise DamagedAnalysisError(path, "its metadata is not a JSON object")
                    added = {k: v for k, v in meta.items() if k not in stored_meta}
                    if added:
                        new_meta = json.dumps({**stored_meta, **added}, default=str)
                        conn.execute("UPDATE info SET value = ? WHERE name = 'meta'", (new_meta,))
                    return
                now = _now()
                full_meta = {
                    **meta,
                    "created": now,
                    "app_version": __version__,
                    "schema_version": SCHEMA_VERSION,
                }
                key_json = json.dumps(
                    {
                        "slide_fingerprint": key.slide_fingerprint,
                        "model_hash": key.model_hash,
                        "params": key.params_dict,
                    }
                )
                rows = [
                    ("schema_version", SCHEMA_VERSION),
                    ("key", key_json),
                    ("grid", grid_json),
                    ("meta", json.dumps(full_meta, default=str)),
                    ("tissue_mask", _pack_mask(tissue_mask)),
                    ("complete", 0),
                    ("updated", now),
                ]
                conn.executemany("INSERT OR REPLACE INTO info(name, value) VALUES (?, ?)", rows)
        except sqlite3.Error as exc:
            if _is_corruption(exc):
                raise DamagedAnalysisError(path, _one_line(exc)) from exc
            raise ResultStoreError(f"cannot write results store {path}: {_one_line(exc)}") from exc

    def find(self, slide_fingerprint: str) -> list[StoredAnalysis]:
        """Open every stored analysis of a slide, most recently updated first.

        Files that cannot be read or do not check out (damaged, from a newer version) are
        skipped; reanalysing such a slide moves the damaged file aside. The caller closes the
        returned analyses.
        """
        folder = self._slide_dir(slide_fingerprint)
        if not folder.is_dir():
            return []
        found = []
        for path in sorted(folder.glob(f"*{_SUFFIX}")):
            conn = None
            try:
                conn = self._connect(path)
                grid_json = conn.execute("SELECT value FROM info WHERE name = 'grid'").fetchone()
                if grid_json is None:
                    conn.close()
                    continue
                analysis = StoredAnalysis(path, conn, _grid_from_json(grid_json[0]))
                conn = None
                try:
                    analysis.check()
                except ResultStoreError:
                    analysis.close()
                    raise
                found.append(analysis)
            except (ResultStoreError, sqlite3.Error, ValueError, TypeError, KeyError):
                if conn is not None:
                    conn.close()
                continue
        found.sort(key=lambda a: a.updated, reverse=True)
        return found

    def delete(self, key: AnalysisKey) -> bool:
        """Remove ``key``'s analysis (close it first); return whether one existed."""
        path = self.path_for(key)
        existed = path.exists()
        try:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        except OSError as exc:
            raise ResultStoreError(f"cannot delete {path}: {exc.strerror or exc}") from exc
        return existed
