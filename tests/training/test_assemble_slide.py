"""Tests of training.assemble_slide: real complete patient and synthetic edge cases."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import cv2
import numpy as np
import openslide
import pytest

from training.assemble_slide import (
    assemble_patient_arrays,
    assemble_slide,
    truth_csv_path,
)
from training.cli import main

REAL_PATIENT = Path(__file__).resolve().parents[3] / "shared" / "data" / "idc" / "8863"
_NAME = re.compile(r"_x(\d+)_y(\d+)_class([01])\.png$")


def _write_png(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1]))


def _read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, path
    return np.asarray(bgr)[:, :, ::-1]


@pytest.fixture
def synthetic_patient(tmp_path: Path) -> Path:
    """Three full patches, one 30 px wide edge patch, one undecodable file, one unparseable name."""
    root = tmp_path / "idc" / "1234"
    colors = {(1, 1, 0): (200, 30, 30), (51, 1, 1): (30, 200, 30), (1, 51, 0): (30, 30, 200)}
    for (x, y, c), color in colors.items():
        _write_png(
            root / str(c) / f"1234_idx5_x{x}_y{y}_class{c}.png",
            np.full((50, 50, 3), color, np.uint8),
        )
    edge = np.zeros((50, 30, 3), np.uint8)
    edge[:, :, 0] = np.arange(50, dtype=np.uint8)[:, None] * 5
    _write_png(root / "1" / "1234_idx5_x101_y1_class1.png", edge)  # right edge: 30 px wide
    (root / "0" / "1234_idx5_x151_y1_class0.png").write_bytes(b"not a png at all")
    _write_png(root / "0" / "strange-name.png", np.zeros((50, 50, 3), np.uint8))
    return root


def test_synthetic_canvas(synthetic_patient: Path) -> None:
    result = assemble_patient_arrays(synthetic_patient)
    # canvas spans max(X-1+w) x max(Y-1+h); the undecodable patch at x=151 does not count
    assert result.canvas.shape == (100, 130, 3)
    assert len(result.patches) == 4
    assert sorted(p.name for p in result.skipped) == [
        "1234_idx5_x151_y1_class0.png",
        "strange-name.png",
    ]
    assert tuple(result.canvas[10, 10]) == (200, 30, 30)
    assert tuple(result.canvas[10, 60]) == (30, 200, 30)
    assert tuple(result.canvas[60, 10]) == (30, 30, 200)
    edge = next(p for p in result.patches if p.width == 30)
    assert (edge.l0_x, edge.l0_y, edge.height, edge.label) == (100, 0, 50, 1)
    assert result.canvas[7, 129, 0] == 35
    assert tuple(result.canvas[75, 75]) == (255, 255, 255)  # no patch there: white


def test_synthetic_slide_and_truth(synthetic_patient: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "1234.tiff"
    res = assemble_slide(synthetic_patient, out)
    assert (res.width, res.height, res.n_patches, res.n_skipped) == (130, 100, 4, 2)
    assert res.truth_csv == truth_csv_path(out) == tmp_path / "out" / "1234.truth.csv"
    with openslide.OpenSlide(str(out)) as slide:
        assert slide.dimensions == (130, 100)
        assert float(slide.properties[openslide.PROPERTY_NAME_MPP_X]) == pytest.approx(4.0)
        region = np.asarray(slide.read_region((0, 0), 0, (50, 50)).convert("RGB"), dtype=int)
    assert np.abs(region[5:45, 5:45] - (200, 30, 30)).max() <= 12
    with open(res.truth_csv, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["x", "y", "width", "height", "label"]
    assert sorted(rows[1:]) == sorted(
        [
            ["0", "0", "50", "50", "0"],
            ["50", "0", "50", "50", "1"],
            ["0", "50", "50", "50", "0"],
            ["100", "0", "30", "50", "1"],
        ]
    )
    assert not list(out.parent.glob("*.partial"))


def test_empty_and_missing_folders(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    (empty / "0").mkdir(parents=True)
    (empty / "0" / "readme.txt").write_text("no pngs")
    with pytest.raises(ValueError, match="No patch PNGs"):
        assemble_slide(empty, tmp_path / "x.tiff")
    with pytest.raises(ValueError, match="does not exist"):
        assemble_patient_arrays(tmp_path / "missing")
    broken = tmp_path / "broken"
    (broken / "1").mkdir(parents=True)
    (broken / "1" / "9_idx5_x1_y1_class1.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(ValueError, match="could be decoded"):
        assemble_patient_arrays(broken)
    assert not (tmp_path / "x.tiff").exists()


def test_bad_arguments(synthetic_patient: Path, tmp_path: Path) -> None:
    for kwargs in ({"mpp": 0.0}, {"tile": 100}, {"jpeg_quality": 0}):
        with pytest.raises(ValueError):
            assemble_slide(synthetic_patient, tmp_path / "bad.tiff", **kwargs)  # type: ignore[arg-type]


@pytest.mark.slow
@pytest.mark.skipif(not REAL_PATIENT.is_dir(), reason="real IDC patient 8863 not available")
def test_real_complete_patient(tmp_path: Path) -> None:
    pngs = sorted(REAL_PATIENT.glob("[01]/*.png"))
    matches = [_NAME.search(p.name) for p in pngs]
    coords = [(int(m[1]) - 1, int(m[2]) - 1, int(m[3])) for m in matches if m]
    assert len(coords) == len(pngs)
    sizes = {p: _read_rgb(p).shape[:2] for p in pngs}
    width = max(x + sizes[p][1] for p, (x, _, _) in zip(pngs, coords, strict=True))
    height = max(y + sizes[p][0] for p, (_, y, _) in zip(pngs, coords, strict=True))

    out = tmp_path / "8863.tiff"
    res = assemble_slide(REAL_PATIENT, out)
    assert (res.width, res.height) == (width, height)
    assert res.n_patches == len(pngs) and res.n_skipped == 0

    with open(res.truth_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(pngs)
    truth = {(int(r["x"]), int(r["y"])): int(r["label"]) for r in rows}
    assert truth == {(x, y): c for x, y, c in coords}
    assert sum(truth.values()) == len(list(REAL_PATIENT.glob("1/*.png")))

    with openslide.OpenSlide(str(out)) as slide:
        assert slide.level_count > 1
        assert slide.dimensions == (width, height)
        assert slide.level_dimensions[1] == (width // 2, height // 2)
        assert max(slide.level_dimensions[-1]) <= 512
        assert float(slide.properties[openslide.PROPERTY_NAME_MPP_X]) == pytest.approx(4.0)
        assert float(slide.properties[openslide.PROPERTY_NAME_MPP_Y]) == pytest.approx(4.0)
        rng = np.random.default_rng(0)
        for i in rng.choice(len(pngs), 15, replace=False):
            src = _read_rgb(pngs[i]).astype(int)
            x, y, _ = coords[i]
            size = (src.shape[1], src.shape[0])
            got = np.asarray(slide.read_region((x, y), 0, size).convert("RGB"), dtype=int)
            err = np.abs(got - src).mean()
            assert err < 10.0, f"{pngs[i].name}: mean abs error {err:.1f}"
            # a placement off by one grid step would be far worse than JPEG noise
            shifted = np.asarray(slide.read_region((x + 50, y), 0, size).convert("RGB"), dtype=int)
            assert np.abs(shifted - src).mean() > err
        # white where no patch lies: the (0, 0) corner is outside the tissue for this patient
        if (0, 0) not in truth:
            corner = np.asarray(slide.read_region((0, 0), 0, (20, 20)).convert("RGB"))
            assert corner.min() >= 240


def test_lossless_slide_keeps_the_patches_exact_pixels(
    synthetic_patient: Path, tmp_path: Path
) -> None:
    out = tmp_path / "lossless.tiff"
    assert main(["assemble-slide", str(synthetic_patient), str(out), "--lossless"]) == 0
    with openslide.OpenSlide(str(out)) as slide:
        region = np.asarray(slide.read_region((100, 0), 0, (30, 50)).convert("RGB"))
    edge = _read_rgb(synthetic_patient / "1" / "1234_idx5_x101_y1_class1.png")
    assert np.array_equal(region, edge)  # JPEG would blur the 5-level gradient
