"""A damaged stored analysis is reported in one line, moved aside (never deleted) and recomputed;
values that are not probabilities are never read back as if they were."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from heatmap_fakes import plain_grid

from idc_viewer.core.analysis_key import AnalysisKey
from idc_viewer.core.patches import PatchGrid
from idc_viewer.core.store import ResultStore
from idc_viewer.core.stored_analysis import DamagedAnalysisError, ResultStoreError

KEY = AnalysisKey("slide-damage", "model-1", {"patch_px": 50})


def grid(cols: int = 200, rows: int = 100) -> PatchGrid:
    return plain_grid(50.0, cols, rows)  # 4.0 µm/px


def stored(tmp_path: Path) -> tuple[ResultStore, Path, list[str]]:
    """A store holding one analysis of 20,000 cells (a file of several pages), closed."""
    messages: list[str] = []
    store = ResultStore(tmp_path / "r", on_damaged=messages.append)
    g = grid()
    with store.open(KEY, g, np.ones(g.shape, bool), {"slide_path": "s.svs"}) as analysis:
        cols, rows = np.meshgrid(np.arange(g.cols), np.arange(g.rows))
        probs = np.linspace(0, 1, cols.size)
        analysis.write_batch(np.stack([cols.ravel(), rows.ravel()], axis=1), probs)
    return store, store.path_for(KEY), messages


def sql(path: Path, statement: str) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(statement)
    conn.close()


def random_middle(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2 // 4096 * 4096
    data[middle : middle + 4096] = np.random.default_rng(0).bytes(4096)
    path.write_bytes(bytes(data))


DAMAGE: dict[str, Callable[[Path], None]] = {
    "random bytes in the middle": random_middle,
    "header overwritten": lambda p: p.write_bytes(b"\0" * 100 + p.read_bytes()[100:]),
    "meta row deleted": lambda p: sql(p, "DELETE FROM info WHERE name = 'meta'"),
    "key row deleted": lambda p: sql(p, "DELETE FROM info WHERE name = 'key'"),
    "grid row deleted": lambda p: sql(p, "DELETE FROM info WHERE name = 'grid'"),
    "meta not JSON": lambda p: sql(p, "UPDATE info SET value = '{oops' WHERE name = 'meta'"),
    "tissue mask truncated": lambda p: sql(
        p, "UPDATE info SET value = x'0102' WHERE name = 'tissue_mask'"
    ),
    "cell outside the grid": lambda p: sql(
        p, "INSERT INTO cells(col, row, probability) VALUES (5000, 3, 0.5)"
    ),
    "probability 'abc'": lambda p: sql(p, "UPDATE cells SET probability = 'abc' WHERE col = 3"),
    "probability 7.0": lambda p: sql(p, "UPDATE cells SET probability = 7.0 WHERE col = 4"),
    "probability -inf": lambda p: sql(p, "UPDATE cells SET probability = -1e999 WHERE col = 5"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_analysis_is_moved_aside_and_started_afresh(tmp_path, damage):
    store, path, messages = stored(tmp_path)
    original_size = path.stat().st_size
    DAMAGE[damage](path)
    g = grid()
    with store.open(KEY, g, np.ones(g.shape, bool), {"slide_path": "s.svs"}) as fresh:
        assert fresh.done_cells() == set()  # recomputed, not the damaged values
        assert np.isnan(fresh.heatmap().probabilities).all()
        fresh.write_batch([(0, 0)], [0.5])  # and usable
    assert len(messages) == 1 and "\n" not in messages[0]
    assert "damaged" in messages[0] and "afresh" in messages[0]
    aside = [p for p in path.parent.iterdir() if ".damaged-" in p.name]
    assert aside and aside[0].stat().st_size >= original_size * 0.5  # kept, not deleted
    assert store.find(KEY.slide_fingerprint)[0].done_cells() == {(0, 0)}


@pytest.mark.parametrize(
    "damage", ["probability 7.0", "cell outside the grid", "probability 'abc'", "meta not JSON"]
)
def test_find_skips_damaged_analyses(tmp_path, damage):
    store, path, _ = stored(tmp_path)
    DAMAGE[damage](path)
    assert store.find(KEY.slide_fingerprint) == []
    assert path.exists()  # find never moves or deletes


def test_damage_found_while_reading_says_which_file_to_remove(tmp_path):
    store, path, _ = stored(tmp_path)
    with store.open(KEY, grid()) as analysis:
        sql(path, "UPDATE cells SET probability = 7.0 WHERE col = 4")
        with pytest.raises(DamagedAnalysisError) as info:
            analysis.heatmap()
    message = str(info.value)
    assert str(path) in message and "delete it" in message and "7" in message
    assert isinstance(info.value, ResultStoreError)


def test_a_batch_of_non_probabilities_is_refused(tmp_path):
    store = ResultStore(tmp_path / "r")
    with store.open(KEY, grid(4, 4)) as analysis:
        for bad in (7.0, -0.1, float("nan"), float("inf")):
            with pytest.raises(ValueError, match="probabilities"):
                analysis.write_batch([(0, 0)], [bad])
        assert analysis.done_cells() == set()
