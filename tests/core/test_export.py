"""Tests for idc_viewer.core.export: regions, CSV/GeoJSON/provenance writers, atomicity."""

from __future__ import annotations

import csv
import errno
import itertools
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from idc_viewer.core import export
from idc_viewer.core.export import (
    PATCHES_HEADER,
    REGIONS_HEADER,
    ExportError,
    Region,
    csv_safe,
    export_all,
    find_regions,
    region_polygons,
    write_geojson,
    write_patches_csv,
    write_provenance,
    write_regions_csv,
)
from idc_viewer.core.heatmap import Heatmap


@dataclass(frozen=True)
class StandInGrid:
    """The documented PatchGrid attributes, for tests independent of patches.py."""

    l0_patch_size: float
    cols: int
    rows: int
    patch_px: int
    model_mpp: float
    slide_mpp: float
    read_level: int
    l0_width: int
    l0_height: int

    def l0_rect(self, col: int, row: int) -> tuple[int, int, int, int]:
        x0, y0 = math.floor(col * self.l0_patch_size), math.floor(row * self.l0_patch_size)
        x1 = min(math.floor((col + 1) * self.l0_patch_size), self.l0_width)
        y1 = min(math.floor((row + 1) * self.l0_patch_size), self.l0_height)
        return x0, y0, x1 - x0, y1 - y0


def grid_for(cols: int, rows: int, size: float = 100.0, mpp: float = 2.0, edge: float = 0.0):
    """A grid of ``cols x rows`` patches of ``size`` level-0 px; ``edge`` trims the last ones."""
    return StandInGrid(
        l0_patch_size=size,
        cols=cols,
        rows=rows,
        patch_px=50,
        model_mpp=size * mpp / 50,
        slide_mpp=mpp,
        read_level=0,
        l0_width=int(cols * size - edge),
        l0_height=int(rows * size - edge),
    )


def heatmap_from(rows: list[str], size: float = 100.0, mpp: float = 2.0) -> Heatmap:
    """Build a heatmap from ASCII art: '.' NaN, digits 0-9 -> 0.0..0.9, '#' -> 1.0."""
    values = {".": np.nan, "#": 1.0, **{str(d): d / 10 for d in range(10)}}
    probs = np.array([[values[ch] for ch in line] for line in rows], dtype=np.float32)
    return Heatmap(grid_for(probs.shape[1], probs.shape[0], size, mpp), probs)


# --------------------------------------------------------------------------- regions


def test_regions_use_diagonal_connectivity_and_threshold_at_or_above():
    hm = heatmap_from(
        [
            "5.....",
            ".5..4.",
            "..5...",
            "....#9",
        ]
    )
    regions = find_regions(hm, 0.5)
    # The diagonal 0.5 chain is one region (8-connected); 0.4 is below; '#9' is another.
    assert [r.n_patches for r in regions] == [2, 3]
    assert regions[0].max_probability == pytest.approx(1.0)
    assert set(regions[1].cells) == {(0, 0), (1, 1), (2, 2)}
    assert regions[1].max_probability == pytest.approx(0.5)  # equal to threshold counts


def test_regions_sorted_by_max_probability_with_ids_in_order():
    hm = heatmap_from(["6.9.7", ".....", "#...8"])
    regions = find_regions(hm, 0.5)
    assert [r.region_id for r in regions] == [1, 2, 3, 4, 5]
    assert [round(r.max_probability, 2) for r in regions] == [1.0, 0.9, 0.8, 0.7, 0.6]


def test_region_geometry_area_bbox_centroid():
    hm = heatmap_from(["....", ".##.", ".#..", "...."], size=100.0, mpp=2.0)
    (region,) = find_regions(hm, 0.5)
    assert region.n_patches == 3
    # Each patch is 100 px * 2 µm = 0.2 mm wide -> 0.04 mm².
    assert region.area_mm2 == pytest.approx(3 * 0.04)
    assert (region.l0_x, region.l0_y, region.l0_width, region.l0_height) == (100, 100, 200, 200)
    assert region.l0_centroid_x == pytest.approx((150 + 250 + 150) / 3)
    assert region.l0_centroid_y == pytest.approx((150 + 150 + 250) / 3)
    assert region.mean_probability == pytest.approx(1.0)


def test_region_area_clipped_at_slide_edge():
    # Slide 160 x 60 px: the last column is 60 px wide and the only row 60 px high.
    grid = grid_for(2, 1, size=100.0, mpp=1.0, edge=40)
    hm = Heatmap(grid, np.array([[0.9, 0.9]], dtype=np.float32))
    (region,) = find_regions(hm, 0.5)
    assert region.area_mm2 == pytest.approx((100 * 60 + 60 * 60) * 1e-6)
    assert region.l0_width == 160


def test_no_regions_when_nothing_flagged():
    assert find_regions(heatmap_from(["12", ".3"]), 0.5) == []
    assert find_regions(heatmap_from(["..", ".."]), 0.0) == []


# --------------------------------------------------------------------------- outlines


def _rasterise(polygons, grid) -> np.ndarray:
    """Paint GeoJSON polygons back onto the cell grid by testing each cell centre."""
    out = np.zeros((grid.rows, grid.cols), dtype=bool)
    for polygon in polygons:
        outer, *holes = (np.array(ring, dtype=np.float32) for ring in polygon)
        for r in range(grid.rows):
            for c in range(grid.cols):
                x0, y0, w, h = grid.l0_rect(c, r)
                centre = (x0 + w / 2, y0 + h / 2)
                inside = cv2.pointPolygonTest(outer, centre, False) > 0
                if inside and not any(cv2.pointPolygonTest(h_, centre, False) > 0 for h_ in holes):
                    out[r, c] = True
    return out


def _ring_area(ring) -> float:
    return 0.5 * sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in itertools.pairwise(ring))


def test_single_patch_outline_is_its_footprint():
    hm = heatmap_from(["...", ".#.", "..."], size=10.5)
    (region,) = find_regions(hm, 0.5)
    (polygon,) = region_polygons(region, hm.grid)
    (outer,) = polygon
    x, y, w, h = hm.grid.l0_rect(1, 1)
    assert outer[0] == outer[-1]
    assert sorted(map(tuple, outer[:-1])) == sorted(
        [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
    )


def test_ring_outline_has_a_hole_with_correct_winding():
    hm = heatmap_from(["###", "#.#", "###"])
    (region,) = find_regions(hm, 0.5)
    (polygon,) = region_polygons(region, hm.grid)
    outer, hole = polygon
    assert _ring_area(outer) > 0 > _ring_area(hole)  # RFC 7946 winding (y read as a number)
    assert sorted(map(tuple, hole[:-1])) == [(100, 100), (100, 200), (200, 100), (200, 200)]
    assert len(outer) == 5  # four corners + closing point, no collinear vertices
    assert np.array_equal(_rasterise([polygon], hm.grid), hm.flagged_mask(0.5))


def test_diagonal_touch_becomes_multipolygon():
    hm = heatmap_from(["#.", ".#"])
    (region,) = find_regions(hm, 0.5)
    polygons = region_polygons(region, hm.grid)
    assert len(polygons) == 2
    assert all(len(p) == 1 and len(p[0]) == 5 for p in polygons)


def test_random_masks_round_trip_through_outlines():
    rng = np.random.default_rng(7)
    for _ in range(25):
        probs = np.where(rng.random((9, 11)) < 0.55, 0.9, np.nan).astype(np.float32)
        hm = Heatmap(grid_for(11, 9, size=7.3), probs)
        painted = np.zeros(probs.shape, dtype=bool)
        for region in find_regions(hm, 0.5):
            polygons = region_polygons(region, hm.grid)
            for polygon in polygons:
                assert _ring_area(polygon[0]) > 0
                assert all(_ring_area(h) < 0 for h in polygon[1:])
            mine = _rasterise(polygons, hm.grid)
            assert not (painted & mine).any()
            painted |= mine
        assert np.array_equal(painted, hm.flagged_mask(0.5))


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


# --------------------------------------------------------------------------- CSV


def _read_csv(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh))


def test_patches_csv_header_and_rows(tmp_path: Path):
    hm = heatmap_from(["1.", ".#"], size=10.5)
    path = write_patches_csv(tmp_path / "p.csv", hm)
    rows = _read_csv(path)
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
    rows = _read_csv(write_regions_csv(tmp_path / "r.csv", regions))
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
    rows = _read_csv(path)
    assert rows[0][-1] == "slide"
    assert rows[1][-1] == "'=cmd|' /C calc'!A0"
    assert rows[1][4] == "1.000000"


def test_csv_is_utf8(tmp_path: Path):
    path = write_patches_csv(tmp_path / "p.csv", heatmap_from(["#"]), {"slide": "µm-Ödem"})
    assert "µm-Ödem" in path.read_bytes().decode("utf-8")


# --------------------------------------------------------------------------- atomicity


def test_disk_full_raises_export_error_and_leaves_no_file(tmp_path: Path, monkeypatch):
    target = tmp_path / "p.csv"
    target.write_text("old content", encoding="utf-8")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(export.os, "fsync", full)
    with pytest.raises(ExportError) as info:
        write_patches_csv(target, heatmap_from(["#"]))
    assert "disk is full" in str(info.value)
    assert "\n" not in str(info.value)
    assert target.read_text(encoding="utf-8") == "old content"  # old file untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.csv"]  # no temp left


def test_export_all_disk_full_leaves_nothing(tmp_path: Path, monkeypatch):
    calls = {"n": 0}
    real_fsync = os.fsync

    def full_on_third(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(export.os, "fsync", full_on_third)
    with pytest.raises(ExportError):
        export_all(tmp_path / "out", "slide", heatmap_from(["##"]), 0.5, {})
    assert list((tmp_path / "out").iterdir()) == []


def test_unwritable_directory_raises_export_error(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    with pytest.raises(ExportError):
        write_provenance(blocker / "p.json", {"a": 1})


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
    assert len(_read_csv(paths[0])) == 4
    assert len(_read_csv(paths[1])) == 2


def test_region_is_frozen():
    hm = heatmap_from(["#"])
    (region,) = find_regions(hm, 0.5)
    assert isinstance(region, Region)
    with pytest.raises(AttributeError):
        region.n_patches = 3  # type: ignore[misc]


def test_real_patch_grid_edge_patches_are_clipped(tmp_path: Path):
    from idc_viewer.core.patches import make_grid
    from idc_viewer.core.slide import SlideInfo

    info = SlideInfo(
        path="memory",
        format="generic-tiff",
        l0_width=1050,
        l0_height=420,
        level_count=1,
        level_dimensions=((1050, 420),),
        level_downsamples=(1.0,),
        mpp=0.5,
        mpp_source="metadata",
        objective_power=None,
        properties={},
    )
    grid = make_grid(info)  # 400 px patches: 3 x 2 cells, the last ones partial
    probs = np.full(grid.shape, 0.9, dtype=np.float32)
    hm = Heatmap(grid, probs)
    (region,) = find_regions(hm, 0.5)
    assert (region.l0_width, region.l0_height) == (1050, 420)
    assert region.area_mm2 == pytest.approx(1050 * 420 * 0.5**2 * 1e-6)
    rows = _read_csv(write_patches_csv(tmp_path / "p.csv", hm))
    last = dict(zip(rows[0], rows[-1], strict=True))
    assert (last["x"], last["y"], last["width"], last["height"]) == ("800", "400", "250", "20")
    (polygon,) = region_polygons(region, grid)
    assert sorted(map(tuple, polygon[0][:-1])) == [(0, 0), (0, 420), (1050, 0), (1050, 420)]
