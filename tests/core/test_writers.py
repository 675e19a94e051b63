"""Tests for idc_viewer.core.writers: CSV, GeoJSON and provenance files, atomic and formula-safe."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
from heatmap_fakes import heatmap_from, read_csv
from slide_fakes import one_level_info

from idc_viewer.core.heatmap import Heatmap
from idc_viewer.core.outline import region_polygons
from idc_viewer.core.regions import find_regions
from idc_viewer.core.writers import (
    PATCHES_HEADER,
    REGIONS_HEADER,
    ExportError,
    csv_safe,
    write_geojson,
    write_patches_csv,
    write_provenance,
    write_regions_csv,
)


def test_geojson_is_a_qupath_feature_collection(tmp_path: Path):
    hm = heatmap_from(["##..", "#.#.", "....", "...9"])
    regions = find_regions(hm, 0.5)
    path = write_geojson(tmp_path / "r.geojson", regions, hm)
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["type"] == "FeatureCollection"
    assert len(doc["features"]) == len(regions) == 2
    first = doc["features"][0]
    assert first["type"] == "Feature"
    props = first["properties"]
    assert props["objectType"] == "annotation"
    assert props["classification"]["name"] == "IDC"
    assert len(props["classification"]["color"]) == 3
    assert props["name"] == "IDC region 1"
    assert props["measurements"]["n_patches"] == regions[0].n_patches
    assert first["geometry"]["type"] in ("Polygon", "MultiPolygon")
    # Region 1 is the L plus the diagonal cell (prob 1.0): 2 parts.
    assert first["geometry"]["type"] == "MultiPolygon"
    # Region 2 is the 0.9 cell at (3, 3): its footprint in level-0 px.
    second = doc["features"][1]["geometry"]
    assert second["type"] == "Polygon"
    assert sorted(map(tuple, second["coordinates"][0][:-1])) == [
        (300, 300),
        (300, 400),
        (400, 300),
        (400, 400),
    ]


def test_patches_csv_header_and_rows(tmp_path: Path):
    hm = heatmap_from(["1.", ".#"], size=10.5)
    path = write_patches_csv(tmp_path / "p.csv", hm)
    rows = read_csv(path)
    assert rows[0][:5] == ["x", "y", "width", "height", "probability"]
    assert tuple(rows[0]) == PATCHES_HEADER
    assert len(rows) == 3  # only analysed patches
    assert rows[1][:5] == ["0", "0", "10", "10", "0.100000"]
    x, y, w, h = hm.grid.l0_rect(1, 1)
    assert rows[2][:5] == [str(x), str(y), str(w), str(h), "1.000000"]
    assert rows[2][5:] == ["1", "1", "1.000000"]  # without context: patch = decision


def test_regions_csv_header_exact_and_values_parse(tmp_path: Path):
    hm = heatmap_from(["##.", "...", "..7"])
    regions = find_regions(hm, 0.5)
    rows = read_csv(write_regions_csv(tmp_path / "r.csv", regions))
    assert rows[0] == list(REGIONS_HEADER)
    expected = "region_id,n_patches,area_mm2,x,y,width,height,centroid_x,centroid_y,"
    assert ",".join(rows[0]) == expected + "max_probability,mean_probability"
    first = dict(zip(rows[0], rows[1], strict=True))
    assert int(first["region_id"]) == 1
    assert int(first["n_patches"]) == 2
    assert float(first["area_mm2"]) == pytest.approx(0.08)
    assert int(first["width"]) == 200
    assert float(first["centroid_x"]) == pytest.approx(100.0)
    assert len(rows) == 3


def test_formula_injection_neutralised_numbers_untouched(tmp_path: Path):
    for text in ("=HYPERLINK(1)", "+1", "-cmd", "@SUM(A1)", "\tx", "\rx"):
        assert csv_safe(text) == "'" + text
    assert csv_safe("slide 1.svs") == "slide 1.svs"
    assert csv_safe(-3.5) == -3.5
    hm = heatmap_from(["#"])
    path = write_patches_csv(tmp_path / "p.csv", hm, extra_columns={"slide": "=cmd|' /C calc'!A0"})
    rows = read_csv(path)
    assert rows[0][-1] == "slide"
    assert rows[1][-1] == "'=cmd|' /C calc'!A0"
    assert rows[1][4] == "1.000000"


def test_csv_is_utf8(tmp_path: Path):
    path = write_patches_csv(tmp_path / "p.csv", heatmap_from(["#"]), {"slide": "µm-Ödem"})
    assert "µm-Ödem" in path.read_bytes().decode("utf-8")


def test_disk_full_raises_export_error_and_leaves_no_file(tmp_path: Path, monkeypatch):
    target = tmp_path / "p.csv"
    target.write_text("old content", encoding="utf-8")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(ExportError) as info:
        write_patches_csv(target, heatmap_from(["#"]))
    assert "disk is full" in str(info.value)
    assert "\n" not in str(info.value)
    assert target.read_text(encoding="utf-8") == "old content"  # old file untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.csv"]  # no temp left


def test_unwritable_directory_raises_export_error(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    with pytest.raises(ExportError):
        write_provenance(blocker / "p.json", {"a": 1})


def test_real_patch_grid_edge_patches_are_clipped(tmp_path: Path):
    from idc_viewer.core.patches import make_grid

    grid = make_grid(
        one_level_info(1050, 420, 0.5)
    )  # 400 px patches: 3 x 2 cells, the last ones partial
    probs = np.full(grid.shape, 0.9, dtype=np.float32)
    hm = Heatmap(grid, probs)
    (region,) = find_regions(hm, 0.5)
    assert (region.l0_width, region.l0_height) == (1050, 420)
    assert region.area_mm2 == pytest.approx(1050 * 420 * 0.5**2 * 1e-6)
    rows = read_csv(write_patches_csv(tmp_path / "p.csv", hm))
    last = dict(zip(rows[0], rows[-1], strict=True))
    assert (last["x"], last["y"], last["width"], last["height"]) == ("800", "400", "250", "20")
    (polygon,) = region_polygons(region, grid)
    assert sorted(map(tuple, polygon[0][:-1])) == [(0, 0), (0, 420), (1050, 0), (1050, 420)]
