"""The engine session: one fingerprint, stored analyses, one export, one Grad-CAM pipeline."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from model_fakes import FakeModel, fake_spec

from idc_viewer.core import fingerprint as fingerprint_module
from idc_viewer.core.memory import ArraySlide
from idc_viewer.core.slide import MissingMppError
from idc_viewer.core.store import ResultStore
from idc_viewer.engine.events import Finished, fold
from idc_viewer.engine.provenance import ModelRef
from idc_viewer.engine.session import SlideSession


def tissue_image(width: int = 1000, height: int = 800, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = np.full((height, width, 3), 245, dtype=np.uint8)
    tissue = rng.integers(0, 80, size=(height * 3 // 5, width * 2 // 3, 1), dtype=np.int16)
    y0, x0 = height // 5, width // 6
    block = np.clip(np.array([200, 120, 170], np.int16) - tissue, 0, 255).astype(np.uint8)
    image[y0 : y0 + block.shape[0], x0 : x0 + block.shape[1]] = block
    return image


@pytest.fixture
def slide() -> ArraySlide:
    return ArraySlide([tissue_image()], mpp=4.0, path="small")


class Cam:
    """A stand-in explainer: a flat map, the patch's mean red as P(IDC)."""

    model_label = "fake (aaaaaaaa)"

    def __init__(self) -> None:
        self.calls = 0

    def compute(self, patch: np.ndarray) -> object:
        return self.compute_batch(patch[np.newaxis])[0]

    def compute_batch(self, patches: np.ndarray) -> list[object]:
        self.calls += 1
        return [
            SimpleNamespace(
                probability=float(patch[..., 0].mean() / 255.0),
                cam=np.full(patch.shape[:2], 0.5, np.float32),
                cam_lowres=np.full((6, 6), 0.5, np.float32),
            )
            for patch in patches
        ]


def test_the_fingerprint_is_computed_once(slide, tmp_path, monkeypatch):
    calls = []
    real = fingerprint_module.slide_fingerprint

    def counting(*args: object, **kwargs: object) -> str:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    import idc_viewer.engine.session as session_module

    monkeypatch.setattr(session_module, "slide_fingerprint", counting)
    session = SlideSession(slide, ResultStore(tmp_path))
    events = list(session.analyze(FakeModel(), batch_size=64))
    assert isinstance(events[-1], Finished) and events[-1].complete
    heatmap = fold(events).heatmap
    assert heatmap is not None
    session.export(tmp_path / "out", heatmap, 0.5, FakeModel().spec, stem="s")
    assert session.stored() is not None
    assert len(calls) == 1
    given = SlideSession(slide, ResultStore(tmp_path), fingerprint=session.fingerprint)
    assert given.stored() is not None and len(calls) == 1


def test_stored_prefers_the_loaded_model_and_names_the_others(slide, tmp_path):
    store = ResultStore(tmp_path)
    session = SlideSession(slide, store)
    assert session.stored() is None
    list(session.analyze(FakeModel(), batch_size=64))
    other = FakeModel(spec=fake_spec("other", digit="b"))
    found = session.stored(other)
    assert found is not None and not found.by_loaded_model
    assert found.model == ModelRef("fake", FakeModel().spec.model_hash, 0.5)
    assert found.label == found.model.label
    mine = session.stored(FakeModel())
    assert mine is not None and mine.by_loaded_model
    assert mine.heatmap.analysed_count == int(mine.tissue_mask.sum())


def test_without_a_scale_analyze_raises_before_hashing(tmp_path):
    session = SlideSession(ArraySlide([tissue_image()], mpp=None), ResultStore(tmp_path))
    with pytest.raises(MissingMppError):
        next(session.analyze(FakeModel()))


def test_export_writes_one_provenance_for_a_loaded_or_a_stored_model(slide, tmp_path):
    session = SlideSession(slide)
    model = FakeModel()
    heatmap = fold(session.analyze(model, batch_size=64)).heatmap
    assert heatmap is not None
    written = session.export(tmp_path / "a", heatmap, 0.5, model.spec)
    assert [p.name for p in written.paths][-1] == "small.provenance.json"
    loaded = json.loads((tmp_path / "a" / "small.provenance.json").read_text())
    assert loaded["model"]["hash"] == model.spec.model_hash
    assert loaded["slide"]["fingerprint"] == session.fingerprint
    assert "decision_map" not in loaded and loaded["grid"]["cols"] == heatmap.grid.cols

    ref = ModelRef("old", "b" * 16, 0.4)
    session.export(tmp_path / "b", heatmap, 0.5, ref, decision_map="patch")
    stored = json.loads((tmp_path / "b" / "small.provenance.json").read_text())
    assert stored["model"] == {"name": "old", "hash": "b" * 16, "model_threshold": 0.4}
    assert stored["decision_map"] == "patch" and stored["slide"] == loaded["slide"]
    for name in ("small.patches.csv", "small.regions.csv", "small.regions.geojson"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_explain_returns_a_frozen_explanation(slide):
    session = SlideSession(slide)
    model = FakeModel()
    heatmap = fold(session.analyze(model, batch_size=64)).heatmap
    assert heatmap is not None
    cam = Cam()
    grid = session.grid(model.spec)
    found = session.explain(grid, (8, 8), cam, decision=heatmap)
    assert found.cell == (8, 8) and found.patch.shape == (50, 50, 3)
    assert found.probability == pytest.approx(heatmap.probabilities[8, 8], abs=1e-6)
    assert found.context_probability == pytest.approx(found.probability, abs=1e-6)
    assert found.l0_rect == (400, 400, 50, 50) and found.mpp == 4.0
    assert found.full.shape[:2] == (50, 50) and not found.is_background
    for array in (found.patch, found.full, found.cam, found.overlay, found.cam_lowres):
        assert array is not None and not array.flags.writeable
    assert session.explain(grid, (0, 0), cam).is_background
    seen: list[float] = []
    session.explain(grid, (0, 0), cam, on_background=seen.append)
    session.explain(grid, (8, 8), cam, on_background=seen.append)
    assert len(seen) == 1 and seen[0] < 0.1


def test_open_owns_and_closes_its_slide(tmp_path: Path):
    import cv2

    path = tmp_path / "plain.png"
    cv2.imwrite(str(path), tissue_image()[..., ::-1])
    with SlideSession.open(path, mpp=4.0) as session:
        assert session.info.mpp == 4.0
        grid = session.grid(FakeModel().spec)
        assert (grid.cols, grid.rows) == (20, 16)
