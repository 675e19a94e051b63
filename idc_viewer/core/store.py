"""Keep every analysis on disk, per slide, model and parameters, written batch by batch.

Each analysis is one SQLite file in WAL mode under
``<root>/<hash of slide fingerprint>/<hash of AnalysisKey>.sqlite3``, read and written through
:class:`~idc_viewer.core.stored_analysis.StoredAnalysis`. Reopening the same key resumes from
:meth:`StoredAnalysis.done_cells`; reopening a slide finds its analyses with
:meth:`ResultStore.find` and can show the latest heatmap at once. A damaged file is moved
aside (never deleted) and the analysis starts afresh.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from idc_viewer import __version__
from idc_viewer.core.analysis_key import AnalysisKey
from idc_viewer.core.app_dirs import default_results_dir
from idc_viewer.core.errors import one_line
from idc_viewer.core.patches import PatchGrid
from idc_viewer.core.stored_analysis import (
    DamagedAnalysisError,
    ResultStoreError,
    StoredAnalysis,
    grid_from_json,
    grid_to_json,
    now_iso,
    pack_mask,
    store_error,
)

__all__ = ["SCHEMA_VERSION", "ResultStore"]

SCHEMA_VERSION = 1
_SUFFIX = ".sqlite3"
_BUSY_TIMEOUT_S = 10.0


def _while_locked(statement: Callable[[], object]) -> None:
    """Run ``statement``, retrying while another process holds the file (up to 10 s).

    Two processes creating one analysis at once (two cohort workers given the same slide) race
    to switch the new file to WAL; SQLite answers the loser "database is locked" at once,
    without waiting on its busy timeout (measured: 1 run in ~30 of
    tests/core/test_store_concurrency.py before this retry).
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
        """Where slide fingerprints are cached (see ``core.fingerprint.slide_fingerprint``)."""
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
            raise ResultStoreError(f"cannot open results store {path}: {one_line(exc)}") from exc
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
            raise store_error(path, exc, f"cannot open results store {path}") from exc

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
        grid_json = grid_to_json(grid)
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
                now = now_iso()
                full_meta = {
                    **meta,
                    "created": now,
                    "app_version": __version__,
                    "schema_version": SCHEMA_VERSION,
                }
                rows = [
                    ("schema_version", SCHEMA_VERSION),
                    ("key", key.to_json()),
                    ("grid", grid_json),
                    ("meta", json.dumps(full_meta, default=str)),
                    ("tissue_mask", pack_mask(tissue_mask)),
                    ("complete", 0),
                    ("updated", now),
                ]
                conn.executemany("INSERT OR REPLACE INTO info(name, value) VALUES (?, ?)", rows)
        except sqlite3.Error as exc:
            raise store_error(path, exc, f"cannot write results store {path}") from exc

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
                analysis = StoredAnalysis(path, conn, grid_from_json(grid_json[0]))
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
