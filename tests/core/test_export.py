"""Tests for idc_viewer.core.export: the four files written and replaced as one set."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
from heatmap_fakes import heatmap_from, read_csv

from idc_viewer.core.export import export_all
from idc_viewer.core.writers import (
    ExportError,
)


def test_export_all_disk_full_leaves_nothing(tmp_path: Path, monkeypatch):
    calls = {"n": 0}
    real_fsync = os.fsync

    def full_on_third(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full_on_third)
    with pytest.raises(ExportError):
        export_all(tmp_path / "out", "slide", heatmap_from(["##"]), 0.5, {})
    assert list((tmp_path / "out").iterdir()) == []


def test_export_all_writes_four_files_with_provenance(tmp_path: Path):
    hm = heatmap_from(["#8.", "...", "..3"])
    paths = export_all(tmp_path, "case", hm, 0.5, {"app_version": "0.1.0", "model_hash": "abc"})
    assert [p.name for p in paths] == [
        "case.patches.csv",
        "case.regions.csv",
        "case.regions.geojson",
        "case.provenance.json",
    ]
    info = json.loads(paths[3].read_text(encoding="utf-8"))
    assert info["threshold"] == 0.5
    assert info["model_hash"] == "abc"
    assert info["counts"] == {
        "patches_analysed": 3,
        "patches_flagged": 2,
        "regions": 1,
        "flagged_area_mm2": pytest.approx(0.08),
    }
    assert len(read_csv(paths[0])) == 4
    assert len(read_csv(paths[1])) == 2
