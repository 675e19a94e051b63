"""The result store with several processes at once (what a cohort's workers do).

Each writer is a separate Python process (the store is one SQLite file per analysis, WAL mode).
Several writing different slides must not disturb each other; two writing the same slide, as
when a slow worker is presumed dead and its slide rerun elsewhere, must leave one readable
analysis in which every cell holds one writer's whole value: one wins, none corrupts.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from slide_fakes import one_level_info

from idc_viewer.core.analysis_key import AnalysisKey
from idc_viewer.core.patches import PatchGrid, make_grid
from idc_viewer.core.store import ResultStore

WIDTH, HEIGHT, MPP = 4000, 3000, 4.0  # 50 px patches at 4 µm/px: 80 x 60 = 4,800 cells
BATCH = 64

WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import numpy as np
    from idc_viewer.core.patches import make_grid
    from idc_viewer.core.analysis_key import AnalysisKey
    from idc_viewer.core.store import ResultStore
    from idc_viewer.core.slide import SlideInfo

    root, slide, value, order, go = sys.argv[1:6]  # argv[6]: how many writers
    info = SlideInfo(path="memory", format="generic-tiff", l0_width={w}, l0_height={h},
                     level_count=1, level_dimensions=(({w}, {h}),), level_downsamples=(1.0,),
                     mpp={mpp}, mpp_source="metadata", objective_power=None, properties={{}})
    grid = make_grid(info)
    while not Path(go).exists():  # start together
        time.sleep(0.005)
    key = AnalysisKey(slide, "model-1", {{"patch_px": 50}})
    cells = [(c, r) for r in range(grid.rows) for c in range(grid.cols)]
    if order == "reverse":
        cells.reverse()
    stored = ResultStore(root).open(key, grid, np.ones((grid.rows, grid.cols), bool),
                                    {{"writer": value}})
    for i in range(0, len(cells), {batch}):
        batch = cells[i:i + {batch}]
        stored.write_batch(batch, np.full(len(batch), float(value)))
        Path(go).with_name(f"started-{{order}}").touch()
        if i == len(cells) // 2 // {batch} * {batch}:  # halfway: wait until the others write
            deadline = time.monotonic() + 60
            while len(list(Path(go).parent.glob("started-*"))) < int(sys.argv[6]):
                if time.monotonic() > deadline:
                    sys.exit("the other writers never wrote a batch")
                time.sleep(0.005)
    stored.mark_complete()
    stored.close()
""").format(w=WIDTH, h=HEIGHT, mpp=MPP, batch=BATCH)


def grid() -> PatchGrid:
    return make_grid(one_level_info(WIDTH, HEIGHT, MPP))


def run_writers(root: Path, writers: list[tuple[str, str, str]], tmp_path: Path) -> None:
    """Start one process per (slide, value, order), release them together, wait for all.

    ``order`` names the writer: each waits halfway until every writer has stored a batch, so
    their writing really overlaps.
    """
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER,
                str(root),
                slide,
                value,
                order,
                str(go),
                str(len(writers)),
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        for slide, value, order in writers
    ]
    time.sleep(0.5)  # let them import; the file releases them at once
    go.touch()
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err


def check_file(path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()


def test_processes_writing_different_slides_do_not_disturb_each_other(tmp_path):
    root = tmp_path / "results"
    writers = [(f"slide-{i}", str(0.125 * (i + 1)), f"w{i}") for i in range(4)]  # exact in float32
    run_writers(root, writers, tmp_path)
    store = ResultStore(root)
    g = grid()
    for slide, value, _ in writers:
        (stored,) = store.find(slide)
        check_file(stored.path)
        probs = stored.heatmap().probabilities
        assert probs.shape == (g.rows, g.cols)
        np.testing.assert_array_equal(probs, np.full(probs.shape, float(value)))
        assert stored.is_complete and stored.meta["writer"] == value
        stored.close()


@pytest.mark.parametrize(
    "values",
    [("0.25", "0.25"), ("0.25", "0.75")],
    ids=["same-probabilities", "different-probabilities"],
)
def test_two_processes_writing_the_same_slide_leave_one_sound_analysis(tmp_path, values):
    root = tmp_path / "results"
    # opposite orders: the two writers meet in the middle and overwrite each other's cells
    run_writers(
        root, [("slide-x", values[0], "forward"), ("slide-x", values[1], "reverse")], tmp_path
    )
    store = ResultStore(root)
    found = store.find("slide-x")
    assert len(found) == 1  # one analysis, not two half ones
    stored = found[0]
    check_file(stored.path)
    probs = stored.heatmap().probabilities
    assert not np.isnan(probs).any()  # every cell written
    # whole values only; with two values, both (the writers met: the first cells written last
    # by the reverse writer, the last cells by the forward one)
    assert set(np.unique(probs).tolist()) == {float(v) for v in values}
    assert stored.is_complete and stored.meta["writer"] in values
    assert stored.tissue_mask is not None and stored.tissue_mask.all()
    stored.close()
    # and it reopens for a resume like any analysis
    key = AnalysisKey("slide-x", "model-1", {"patch_px": 50})
    with store.open(key, grid()) as again:
        assert len(again.done_cells()) == probs.size
