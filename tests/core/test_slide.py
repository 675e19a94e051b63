"""Tests for idc_viewer.core.slide: opening, scale metadata, reads, errors, fingerprints."""

from __future__ import annotations

import math
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from idc_viewer.core.fingerprint import slide_fingerprint
from idc_viewer.core.memory import ArraySlide
from idc_viewer.core.readers import open_slide
from idc_viewer.core.scale import resolve_mpp
from idc_viewer.core.slide import SlideError
from idc_viewer.core.synthetic import SyntheticSlide

PINK = (230, 150, 190)


def _assert_one_line_error(exc: pytest.ExceptionInfo[SlideError], *words: str) -> None:
    text = str(exc.value)
    assert "\n" not in text and text.startswith("cannot ")
    for word in words:
        assert word.lower() in text.lower(), text


# --- scale policy -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("props", "user", "expected"),
    [
        ({"openslide.mpp-x": "0.5", "openslide.mpp-y": "0.5"}, None, (0.5, "metadata")),
        ({"openslide.mpp-x": "0.24", "openslide.mpp-y": "0.26"}, None, (0.25, "metadata")),
        ({"openslide.mpp-x": "0.3"}, None, (0.3, "metadata")),
        ({"openslide.objective-power": "40"}, None, (0.25, "objective-power")),
        ({"openslide.objective-power": "20"}, None, (0.5, "objective-power")),
        # 72 dpi default written by TIFF libraries: bogus, fall back to the objective.
        (
            {
                "openslide.mpp-x": "352.77",
                "openslide.mpp-y": "352.77",
                "openslide.objective-power": "20",
            },
            None,
            (0.5, "objective-power"),
        ),
        ({"openslide.mpp-x": "352.77", "openslide.mpp-y": "352.77"}, None, (None, None)),
        ({"openslide.mpp-x": "nan", "openslide.mpp-y": "0"}, None, (None, None)),
        ({"openslide.mpp-x": "abc", "openslide.objective-power": "0"}, None, (None, None)),
        ({}, None, (None, None)),
        ({"openslide.mpp-x": "0.5", "openslide.mpp-y": "0.5"}, 0.25, (0.25, "user")),
    ],
)
def test_resolve_mpp(
    props: dict[str, str], user: float | None, expected: tuple[float | None, str | None]
) -> None:
    mpp, source, _ = resolve_mpp(props, user)
    assert source == expected[1]
    if expected[0] is None:
        assert mpp is None
    else:
        assert mpp == pytest.approx(expected[0])


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
def test_invalid_user_mpp_is_rejected(bad: float) -> None:
    with pytest.raises(SlideError):
        ArraySlide([np.zeros((4, 4, 3), np.uint8)], mpp=bad)


# --- OpenSlide-backed files ---------------------------------------------------------------------


def test_generic_tiff_opens_with_mpp_and_levels(synthetic_tiff: Callable[..., Path]) -> None:
    path = synthetic_tiff(mpp=0.5, levels=3)
    with open_slide(path) as slide:
        info = slide.info
        assert info.format == "generic-tiff"
        assert (info.l0_width, info.l0_height) == (512, 384)
        assert info.level_count == 3
        assert info.level_downsamples == pytest.approx((1.0, 2.0, 4.0))
        assert info.mpp == pytest.approx(0.5)
        assert info.mpp_source == "metadata"
        region = slide.read_region(200, 150, 0, 20, 10)
        assert region.shape == (10, 20, 3) and region.dtype == np.uint8
        assert np.abs(region.astype(int) - PINK).max() <= 6  # JPEG
        # Out of bounds (transparent in OpenSlide) is white.
        outside = slide.read_region(500, 370, 0, 30, 30)
        assert (outside[20:, :] == 255).all() and (outside[:, 20:] == 255).all()


def test_user_mpp_overrides_metadata(synthetic_tiff: Callable[..., Path]) -> None:
    with open_slide(synthetic_tiff(mpp=0.5), mpp=0.25) as slide:
        assert slide.info.mpp == 0.25
        assert slide.info.mpp_source == "user"


def test_bogus_tiff_resolution_means_no_mpp(synthetic_tiff: Callable[..., Path]) -> None:
    with open_slide(synthetic_tiff(mpp=25.4e3 / 72)) as slide:  # 72 dpi
        assert slide.info.mpp is None
        assert slide.info.mpp_source is None


def test_thumbnail_keeps_aspect(synthetic_tiff: Callable[..., Path]) -> None:
    with open_slide(synthetic_tiff()) as slide:
        thumb = slide.thumbnail(128)
    assert thumb.shape == (96, 128, 3)
    assert np.abs(thumb[50, 70].astype(int) - PINK).max() <= 8


def test_concurrent_reads_agree(synthetic_tiff: Callable[..., Path]) -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (384, 512, 3), dtype=np.uint8)
    with open_slide(synthetic_tiff(image, compression=None)) as slide:
        expected = slide.read_region(0, 0, 0, 512, 384)
        np.testing.assert_array_equal(expected, image)
        errors: list[str] = []

        def worker(seed: int) -> None:
            r = np.random.default_rng(seed)
            for _ in range(40):
                x, y = int(r.integers(0, 450)), int(r.integers(0, 330))
                got = slide.read_region(x, y, 0, 50, 50)
                if not np.array_equal(got, image[y : y + 50, x : x + 50]):
                    errors.append(f"mismatch at {x},{y}")

        threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []


def test_read_after_close_is_a_slide_error(synthetic_tiff: Callable[..., Path]) -> None:
    slide = open_slide(synthetic_tiff())
    slide.close()
    with pytest.raises(SlideError):
        slide.read_region(0, 0, 0, 4, 4)


# --- bad files ---------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SlideError) as exc:
        open_slide(tmp_path / "nope.svs")
    _assert_one_line_error(exc, "nope.svs", "not found")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.svs"
    path.write_bytes(b"")
    with pytest.raises(SlideError) as exc:
        open_slide(path)
    _assert_one_line_error(exc, "empty")


def test_folder(tmp_path: Path) -> None:
    with pytest.raises(SlideError) as exc:
        open_slide(tmp_path)
    _assert_one_line_error(exc, "folder")


def test_text_file_renamed_svs(tmp_path: Path) -> None:
    path = tmp_path / "notes.svs"
    path.write_text("these are not the pixels you are looking for\n" * 50)
    with pytest.raises(SlideError) as exc:
        open_slide(path)
    _assert_one_line_error(exc, "notes.svs", "not a readable .svs slide")


def test_unknown_extension(tmp_path: Path) -> None:
    path = tmp_path / "data.xyz"
    path.write_bytes(b"\x00\x01\x02" * 100)
    with pytest.raises(SlideError) as exc:
        open_slide(path)
    _assert_one_line_error(exc, "unsupported format")


@pytest.mark.parametrize("keep", [0.02, 0.3, 0.6])
def test_truncated_tiff(synthetic_tiff: Callable[..., Path], tmp_path: Path, keep: float) -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (1024, 1024, 3), dtype=np.uint8)
    data = synthetic_tiff(image, levels=3).read_bytes()
    cut = tmp_path / "cut.tiff"
    cut.write_bytes(data[: int(len(data) * keep)])
    # Either opening or reading must fail, cleanly.
    with pytest.raises(SlideError) as exc, open_slide(cut) as slide:
        slide.read_region(0, 0, 0, 1024, 1024)
    _assert_one_line_error(exc, "cut.tiff")


def test_truncated_png(tmp_path: Path) -> None:
    image = np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".png", image)
    assert ok
    path = tmp_path / "cut.png"
    path.write_bytes(buf.tobytes()[: len(buf) // 2])
    with pytest.raises(SlideError) as exc:
        open_slide(path)
    _assert_one_line_error(exc, "cut.png")


# --- plain images ------------------------------------------------------------------------------


def test_plain_png_with_alpha_opens_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((600, 800, 4), dtype=np.uint8)
    rgba[..., :3] = PINK
    rgba[:, :400, 3] = 255  # left half opaque pink, right half transparent
    path = tmp_path / "image.png"
    cv2.imwrite(str(path), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    with open_slide(path) as slide:
        info = slide.info
        assert info.format == "image/png"
        assert (info.l0_width, info.l0_height) == (800, 600)
        assert info.mpp is None
        assert info.level_count >= 2  # virtual pyramid keeps thumbnails cheap
        region = slide.read_region(390, 0, 0, 20, 5)
    assert (region[:, :10] == PINK).all()
    assert (region[:, 10:] == 255).all()


def test_plain_jpeg_with_user_mpp(tmp_path: Path) -> None:
    path = tmp_path / "image.jpg"
    cv2.imwrite(str(path), np.full((100, 120, 3), 128, np.uint8))
    with open_slide(path, mpp=4.0) as slide:
        assert slide.info.format == "image/jpeg"
        assert slide.info.mpp == 4.0 and slide.info.mpp_source == "user"


def test_plain_untiled_tiff(tmp_path: Path) -> None:
    import tifffile

    image = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    path = tmp_path / "strips.tif"
    tifffile.imwrite(path, image)
    with open_slide(path) as slide:
        assert slide.info.format == "image/tiff"
        np.testing.assert_array_equal(slide.read_region(0, 0, 0, 160, 120), image)


# --- in-memory twins ---------------------------------------------------------------------------


def test_array_slide_levels_and_padding() -> None:
    l0 = np.arange(64 * 64 * 3, dtype=np.uint32).reshape(64, 64, 3).astype(np.uint8)
    l1 = l0[::4, ::4]
    slide = ArraySlide([l0, l1], mpp=1.0)
    assert slide.info.level_downsamples == (1.0, 4.0)
    assert slide.best_level_for_downsample(3.9) == 0
    assert slide.best_level_for_downsample(4.0) == 1
    np.testing.assert_array_equal(slide.read_region(8, 4, 1, 3, 2), l1[1:3, 2:5])
    padded = slide.read_region(-2, 60, 0, 4, 8)
    assert (padded[:, :2] == 255).all() and (padded[4:] == 255).all()
    np.testing.assert_array_equal(padded[:4, 2:], l0[60:64, 0:2])


def test_synthetic_slide_is_consistent_and_bounded() -> None:
    slide = SyntheticSlide(100_000, 100_000, mpp=0.25, seed=3)
    info = slide.info
    assert info.level_downsamples[:4] == (1.0, 4.0, 16.0, 64.0)
    assert max(info.level_dimensions[-1]) <= 512
    # Overlapping reads agree pixel for pixel (values depend on absolute position only).
    blob = slide.blobs[0]
    x, y = int(blob.cx) - 100, int(blob.cy) - 100
    big = slide.read_region(x, y, 0, 200, 200)
    small = slide.read_region(x + 37, y + 11, 0, 50, 60)
    np.testing.assert_array_equal(small, big[11:71, 37:87])
    # Blob centre is stained tissue, a corner is glass.
    centre = big[100, 100].astype(int)
    assert centre[1] < 200
    corner = slide.read_region(0, 0, 0, 4, 4)
    assert (corner > 230).all()
    # The coarsest level is cheap and shows the same blobs.
    w, h = info.level_dimensions[-1]
    thumb = slide.read_region(0, 0, info.level_count - 1, w, h)
    assert thumb.shape == (h, w, 3)
    assert (thumb.min(axis=2) < 220).any()


def test_synthetic_slide_can_lack_mpp() -> None:
    assert SyntheticSlide(1000, 1000, mpp=None).info.mpp is None


# --- fingerprints ------------------------------------------------------------------------------


def test_fingerprint_follows_content_not_path(
    synthetic_tiff: Callable[..., Path], tmp_path: Path
) -> None:
    path = synthetic_tiff()
    copy = tmp_path / "copy.tiff"
    shutil.copy(path, copy)
    other = synthetic_tiff(np.zeros((384, 512, 3), np.uint8), name="other.tiff")
    with open_slide(path) as a, open_slide(copy) as b, open_slide(other) as c:
        fa = slide_fingerprint(a)
        assert fa == slide_fingerprint(b)
        assert fa != slide_fingerprint(c)
        assert len(fa) == 64


def test_fingerprint_of_in_memory_slides() -> None:
    assert slide_fingerprint(SyntheticSlide(500, 500, seed=1)) == slide_fingerprint(
        SyntheticSlide(500, 500, seed=1)
    )
    assert slide_fingerprint(SyntheticSlide(500, 500, seed=1)) != slide_fingerprint(
        SyntheticSlide(500, 500, seed=2)
    )
    a = np.zeros((10, 10, 3), np.uint8)
    b = a.copy()
    b[5, 5] = 1
    assert slide_fingerprint(ArraySlide([a], 1.0)) != slide_fingerprint(ArraySlide([b], 1.0))


# --- real files --------------------------------------------------------------------------------


def test_real_aperio_mpp_from_metadata(shared_data: Path) -> None:
    with open_slide(shared_data / "wsi" / "CMU-1-Small-Region.svs") as slide:
        info = slide.info
        assert info.format == "aperio"
        assert (info.l0_width, info.l0_height) == (2220, 2967)
        assert info.mpp == pytest.approx(0.499)
        assert info.mpp_source == "metadata"
        assert info.objective_power == 20
        region = slide.read_region(1000, 1000, 0, 64, 64)
    assert region.shape == (64, 64, 3) and region.dtype == np.uint8


def test_real_tcga_has_no_mpp(shared_data: Path) -> None:
    with open_slide(shared_data / "wsi" / "tcga-cr-7395-01a-01-ts1.svs") as slide:
        assert slide.info.mpp is None
        assert slide.info.mpp_source is None
        assert slide.info.level_count == 2


def test_real_ndpi(shared_data: Path) -> None:
    with open_slide(shared_data / "wsi" / "fluorescence-DAPI.ndpi") as slide:
        assert slide.info.format == "hamamatsu"
        assert slide.info.mpp == pytest.approx(0.228, abs=1e-3)
        assert slide.info.level_count == 7


def test_real_boxes_tiff_bogus_mpp(shared_data: Path) -> None:
    with open_slide(shared_data / "wsi" / "boxes.tiff") as slide:
        assert slide.info.format == "generic-tiff"
        assert slide.info.mpp is None


def test_real_dicom_opens(shared_data: Path) -> None:
    with open_slide(shared_data / "wsi" / "boxes_0.dcm") as slide:
        assert slide.info.format == "dicom"
        assert (slide.info.l0_width, slide.info.l0_height) == (16, 16)
        assert slide.info.mpp == pytest.approx(0.499)
        assert slide.read_region(0, 0, 0, 16, 16).shape == (16, 16, 3)


def test_real_broken_dicom_is_explained(shared_data: Path) -> None:
    with pytest.raises(SlideError) as exc:
        open_slide(shared_data / "wsi" / "broken-dicom.dcm")
    _assert_one_line_error(exc, "broken-dicom.dcm", "image flavor")
    assert str(shared_data) not in str(exc.value)  # the reason, not OpenSlide's long path


def test_real_plain_png(shared_data: Path) -> None:
    with open_slide(shared_data / "images" / "he-1000px.png") as slide:
        assert slide.info.format == "image/png"
        assert (slide.info.l0_width, slide.info.l0_height) == (1000, 1000)
        assert slide.info.mpp is None


def test_large_level0_reads_come_in_strips_with_the_same_pixels(
    synthetic_tiff, monkeypatch
) -> None:
    """A big level-0 read is split into strips (short GIL holds), pixel for pixel the same."""
    import idc_viewer.core.readers.openslide_reader as reader_module

    rng = np.random.default_rng(3)
    image = rng.integers(0, 255, size=(300, 400, 3), dtype=np.uint8)
    path = synthetic_tiff(image=image, name="strips.tiff", mpp=0.5, levels=2)
    slide = open_slide(path)
    try:
        assert slide.info.format == "generic-tiff"  # read through OpenSlide
        whole = slide.read_region(-5, 7, 0, 410, 290)  # crosses the edge: white padding
        calls: list[tuple[int, int]] = []
        real = slide._osr.read_region  # type: ignore[attr-defined]

        def counting(location, level, size):  # type: ignore[no-untyped-def]
            calls.append(size)
            return real(location, level, size)

        monkeypatch.setattr(slide._osr, "read_region", counting)  # type: ignore[attr-defined]
        monkeypatch.setattr(reader_module, "_STRIP_PX", 410 * 50)
        striped = slide.read_region(-5, 7, 0, 410, 290)
        np.testing.assert_array_equal(striped, whole)
        assert len(calls) == 6 and all(w == 410 and h <= 50 for w, h in calls)
    finally:
        slide.close()
