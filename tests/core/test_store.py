"""Tests for idc_viewer.core.store: the per-slide, per-model analysis store."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from slide_fakes import one_level_info

from idc_viewer.core.analysis_key import AnalysisKey
from idc_viewer.core.app_dirs import default_results_dir
from idc_viewer.core.patches import PatchGrid, make_grid
from idc_viewer.core.store import ResultStore
from idc_viewer.core.stored_analysis import ResultStoreError


def _grid(width: int = 2000, height: int = 1200, mpp: float = 0.5) -> PatchGrid:
    return make_grid(one_level_info(width, height, mpp))  # 400 px patches -> 5 x 3 cells


KEY = AnalysisKey("slide-abc", "model-1", {"model_mpp": 4.0, "patch_px": 50, "tissue": {"t": 1}})


@pytest.fixture
def store(tmp_path: Path) -> ResultStore:
    return ResultStore(tmp_path / "results")


def test_key_is_canonical():
    params = {"tissue": {"t": 1.0}, "patch_px": 50.0, "model_mpp": 4}
    same = AnalysisKey("slide-abc", "model-1", params)
    assert same == KEY and hash(same) == hash(KEY)
    assert AnalysisKey("slide-abc", "model-1", KEY.params_json) == KEY
    assert AnalysisKey("slide-abc", "model-2", KEY.params) != KEY
    assert AnalysisKey("slide-abc", "model-1", {**KEY.params_dict, "model_mpp": 2.0}) != KEY
    with pytest.raises(TypeError):
        AnalysisKey("slide-abc", "model-1", "[1, 2]")


def test_incremental_writes_and_reopen_show_same_heatmap(store: ResultStore):
    grid = _grid()
    mask = np.zeros((grid.rows, grid.cols), dtype=bool)
    mask[1:, 2:] = True
    with store.open(KEY, grid, mask, {"slide_path": "/x/a.svs", "model_name": "m"}) as a:
        assert a.done_cells() == set()
        a.write_batch([(2, 1), (3, 1)], [0.25, 0.75])
        a.write_batch(np.array([[4, 2], [2, 2]]), np.array([0.5, 1.0], dtype=np.float32))
        first = a.heatmap().probabilities.copy()
        assert a.done_cells() == {(2, 1), (3, 1), (4, 2), (2, 2)}
        assert not a.is_complete
    assert first[1, 2] == pytest.approx(0.25)
    assert np.isnan(first[0, 0])
    with store.open(KEY, grid) as again:
        np.testing.assert_array_equal(again.heatmap().probabilities, first)
        np.testing.assert_array_equal(again.tissue_mask, mask)
        assert again.meta["slide_path"] == "/x/a.svs"
        assert again.meta["app_version"]
        assert "created" in again.meta
        assert again.done_mask().sum() == 4


def test_rewriting_a_cell_overwrites(store: ResultStore):
    with store.open(KEY, _grid()) as a:
        a.write_batch([(0, 0)], [0.1])
        a.write_batch([(0, 0)], [0.9])
        assert a.heatmap().probabilities[0, 0] == pytest.approx(0.9)
        assert len(a.done_cells()) == 1


def test_complete_flag_persists(store: ResultStore):
    with store.open(KEY, _grid()) as a:
        a.write_batch([(0, 0)], [0.1])
        a.mark_complete()
        assert a.is_complete
    with store.open(KEY, _grid()) as a:
        assert a.is_complete


def test_crash_after_batch_keeps_it(tmp_path: Path):
    """A process killed without close or mark_complete keeps every committed batch."""
    root = tmp_path / "results"
    script = textwrap.dedent(
        f"""
        import os
        import sys
        import numpy as np
        sys.path.insert(0, "tests")  # slide_fakes, as the conftest puts it
        from tests.core.test_store import KEY, _grid
        from idc_viewer.core.store import ResultStore
        a = ResultStore({str(root)!r}).open(KEY, _grid())
        a.write_batch([(0, 0), (1, 0)], [0.3, 0.6])
        a.write_batch([(2, 0)], [0.9])
        os._exit(0)  # no close, no mark_complete, no atexit
        """
    )
    repo = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", script], check=True, cwd=repo, timeout=120)
    with ResultStore(root).open(KEY, _grid()) as a:
        assert a.done_cells() == {(0, 0), (1, 0), (2, 0)}
        assert not a.is_complete
        assert a.heatmap().probabilities[0, 2] == pytest.approx(0.9)


def test_bad_batch_is_refused_whole(store: ResultStore):
    with store.open(KEY, _grid()) as a:
        a.write_batch([(0, 0)], [0.5])
        with pytest.raises(ValueError):
            a.write_batch([(1, 0), (99, 0)], [0.1, 0.2])
        with pytest.raises(ValueError):
            a.write_batch([(1, 0)], [0.1, 0.2])
        assert a.done_cells() == {(0, 0)}


def test_disk_full_raises_and_keeps_earlier_batches(tmp_path: Path):
    store = ResultStore(tmp_path / "results")
    big = _grid(width=200_000, height=200_000)  # 500 x 500 cells
    with store.open(KEY, big) as a:
        a.write_batch([(0, 0)], [0.5])
        # SQLite reports SQLITE_FULL ("database or disk is full") once the file may not grow.
        pages = a._conn.execute("PRAGMA page_count").fetchone()[0]
        a._conn.execute(f"PRAGMA max_page_count = {pages}")
        cells = [(c, r) for r in range(big.rows) for c in range(big.cols)][1:]
        with pytest.raises(ResultStoreError) as info:
            a.write_batch(cells, np.full(len(cells), 0.25))
        assert "full" in str(info.value)
        assert "\n" not in str(info.value)
        assert a.done_cells() == {(0, 0)}  # the failed batch left nothing behind
    with store.open(KEY, big) as a:
        assert a.done_cells() == {(0, 0)}


def test_resume_skips_done_cells(store: ResultStore):
    grid = _grid()
    all_cells = {(c, r) for r in range(grid.rows) for c in range(grid.cols)}
    with store.open(KEY, grid) as a:
        a.write_batch(sorted(all_cells)[:5], [0.5] * 5)
    with store.open(KEY, grid) as a:
        todo = all_cells - a.done_cells()
        assert len(todo) == len(all_cells) - 5


def test_other_model_or_params_are_separate(store: ResultStore):
    grid = _grid()
    other_model = AnalysisKey(KEY.slide_fingerprint, "model-2", KEY.params)
    other_params = AnalysisKey(KEY.slide_fingerprint, KEY.model_hash, {**KEY.params_dict, "t": 2})
    with store.open(KEY, grid) as a:
        a.write_batch([(0, 0)], [0.1])
    with store.open(other_model, grid) as b:
        assert b.done_cells() == set()
        b.write_batch([(1, 1)], [0.2])
    with store.open(other_params, grid) as c:
        assert c.done_cells() == set()
    assert len({store.path_for(k) for k in (KEY, other_model, other_params)}) == 3


def test_find_lists_latest_first_with_model(store: ResultStore):
    grid = _grid()
    with store.open(KEY, grid, meta={"model_name": "first"}) as a:
        a.write_batch([(0, 0)], [0.1])
    later = AnalysisKey(KEY.slide_fingerprint, "model-2", KEY.params)
    with store.open(later, grid, meta={"model_name": "second"}) as b:
        b.write_batch([(1, 0)], [0.2])
    with store.open(AnalysisKey("other-slide", "model-1", {}), grid):
        pass
    found = store.find(KEY.slide_fingerprint)
    try:
        assert [f.meta["model_name"] for f in found] == ["second", "first"]
        assert found[0].key == later
        assert found[0].grid == grid
        assert found[0].heatmap().probabilities[0, 1] == pytest.approx(0.2)
    finally:
        for f in found:
            f.close()
    assert store.find("never-seen") == []


def test_delete(store: ResultStore):
    with store.open(KEY, _grid()) as a:
        a.write_batch([(0, 0)], [0.1])
    assert store.delete(KEY)
    assert store.find(KEY.slide_fingerprint) == []
    assert not store.delete(KEY)
    with store.open(KEY, _grid()) as a:
        assert a.done_cells() == set()


def test_changed_grid_starts_afresh(store: ResultStore):
    with store.open(KEY, _grid()) as a:
        a.write_batch([(0, 0)], [0.1])
    with store.open(KEY, _grid(width=2400)) as a:
        assert a.done_cells() == set()
        assert a.grid.cols == 6


def test_unwritable_dir_raises_result_store_error(tmp_path: Path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x", encoding="utf-8")
    with pytest.raises(ResultStoreError) as info:
        ResultStore(blocker / "results").open(KEY, _grid())
    assert "\n" not in str(info.value)


@pytest.mark.skipif(
    sys.platform == "win32" or (hasattr(os, "geteuid") and os.geteuid() == 0),
    reason="permissions are not enforced for root / on Windows",
)
def test_read_only_store_raises_result_store_error(tmp_path: Path):
    store = ResultStore(tmp_path / "results")
    with store.open(KEY, _grid()) as a:
        a.write_batch([(0, 0)], [0.1])
    folder = store.path_for(KEY).parent
    for p in folder.iterdir():
        p.chmod(0o444)
    folder.chmod(0o555)
    try:
        with pytest.raises(ResultStoreError) as info:
            a = store.open(KEY, _grid())
            a.write_batch([(1, 0)], [0.2])
        assert "\n" not in str(info.value)
    finally:
        folder.chmod(0o755)
        for p in folder.iterdir():
            p.chmod(0o644)


def test_default_dir_honours_env(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("IDC_VIEWER_DATA_DIR", str(tmp_path))
    assert default_results_dir() == tmp_path / "results"
    assert ResultStore().root == tmp_path / "results"
    monkeypatch.delenv("IDC_VIEWER_DATA_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert default_results_dir() == tmp_path / "xdg" / "idc-viewer" / "results"
