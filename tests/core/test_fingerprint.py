"""The slide fingerprint covers every byte the analysis may read: a slide edited in the middle is
another slide, never resumed from the first one's results."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from model_fakes import FakeModel
from slide_fakes import write_pyramid_tiff

from idc_viewer.core import fingerprint as fingerprint_module
from idc_viewer.core.fingerprint import slide_files, slide_fingerprint
from idc_viewer.core.readers import open_slide
from idc_viewer.core.slide import SlideError
from idc_viewer.core.store import ResultStore
from idc_viewer.engine.analysis import analyze
from idc_viewer.engine.events import fold

MIB = 1 << 20


def head_tail_fingerprint(path: Path, w: int, h: int, levels: int) -> str:
    """The v1 recipe (size, first and last MiB, dimensions), to show the files fool it."""
    digest = hashlib.sha256(b"idc-viewer-fingerprint-v1\0")
    digest.update(f"{w}x{h}:{levels}\0".encode())
    data = path.read_bytes()
    digest.update(f"file:{len(data)}\0".encode() + data[:MIB] + data[-MIB:])
    return digest.hexdigest()


def twin_slides(tmp_path: Path) -> tuple[Path, Path]:
    """Two uncompressed 1600 x 1600 TIFFs (7.7 MB) equal but for a band in the middle."""
    rng = np.random.default_rng(0)
    image = np.full((1600, 1600, 3), 240, dtype=np.uint8)
    image[200:1400, 200:1400] = rng.integers(60, 200, (1200, 1200, 3), dtype=np.uint8)
    edited = image.copy()
    edited[700:900, 200:1400] = (230, 120, 200)  # pink instead of texture: other results
    paths = []
    for folder, pixels in (("a", image), ("b", edited)):
        (tmp_path / folder).mkdir()
        paths.append(
            write_pyramid_tiff(
                tmp_path / folder / "slide.tiff", pixels, levels=1, mpp=4.0, compression=None
            )
        )
    return paths[0], paths[1]


def test_equal_head_and_tail_different_middle_are_different_slides(tmp_path):
    a, b = twin_slides(tmp_path)
    data_a, data_b = a.read_bytes(), b.read_bytes()
    assert len(data_a) == len(data_b) > 3 * MIB
    assert data_a[:MIB] == data_b[:MIB] and data_a[-MIB:] == data_b[-MIB:]
    assert head_tail_fingerprint(a, 1600, 1600, 1) == head_tail_fingerprint(b, 1600, 1600, 1)
    with open_slide(a) as sa, open_slide(b) as sb:
        assert slide_fingerprint(sa) != slide_fingerprint(sb)


def test_an_edited_slide_is_not_resumed_from_the_other(tmp_path):
    a, b = twin_slides(tmp_path)
    store = ResultStore(tmp_path / "results")

    def final_heatmap(path: Path, store: ResultStore | None) -> np.ndarray:
        with open_slide(path) as slide:
            heatmap = fold(analyze(slide, FakeModel(), store)).heatmap
        assert heatmap is not None
        return heatmap.probabilities

    final_heatmap(a, store)
    os.utime(b, ns=(a.stat().st_atime_ns, a.stat().st_mtime_ns))  # same size and mtime too
    from_store = final_heatmap(b, store)
    fresh = final_heatmap(b, None)
    np.testing.assert_array_equal(from_store, fresh)


def test_the_cache_skips_rehashing_an_unchanged_file_and_notices_edits(tmp_path, monkeypatch):
    a, _ = twin_slides(tmp_path)
    cache = tmp_path / "cache"
    with open_slide(a) as slide:
        first = slide_fingerprint(slide, cache)
    calls = []
    real = fingerprint_module._hash_files
    monkeypatch.setattr(
        fingerprint_module, "_hash_files", lambda *args: calls.append(1) or real(*args)
    )
    with open_slide(a) as slide:
        assert slide_fingerprint(slide, cache) == first
    assert calls == []  # one stat, no read
    copy = tmp_path / "copy.tiff"
    shutil.copy(a, copy)
    with open_slide(copy) as slide:
        assert slide_fingerprint(slide, cache) == first  # same bytes elsewhere: same slide
    data = bytearray(a.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte in the middle
    a.write_bytes(bytes(data))
    with open_slide(a) as slide:
        assert slide_fingerprint(slide, cache) != first


def test_companion_files_of_multi_file_formats_are_part_of_the_slide(tmp_path):
    mrxs = tmp_path / "s.mrxs"
    mrxs.write_bytes(b"index")
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "Data0000.dat").write_bytes(b"tiles")
    (tmp_path / "s" / "Slidedat.ini").write_bytes(b"ini")
    assert slide_files(mrxs) == [
        mrxs,
        tmp_path / "s" / "Data0000.dat",
        tmp_path / "s" / "Slidedat.ini",
    ]
    for name in ("b_0.dcm", "b_1.dcm", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert slide_files(tmp_path / "b_0.dcm") == [tmp_path / "b_0.dcm", tmp_path / "b_1.dcm"]


def test_a_file_that_vanishes_is_a_slide_error(tmp_path):
    a, _ = twin_slides(tmp_path)
    with open_slide(a) as slide:
        a.unlink()
        with pytest.raises(SlideError):
            slide_fingerprint(slide)
