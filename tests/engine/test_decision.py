"""The decision map: the model's context stage over the CNN map, in exports and on resume."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from model_fakes import FakeModel, fake_spec  # tests/, on sys.path via conftest

from idc_viewer.core.context import context_probabilities
from idc_viewer.core.jobs import CancelToken
from idc_viewer.core.memory import ArraySlide
from idc_viewer.core.store import ResultStore
from idc_viewer.engine.analysis import analyze
from idc_viewer.engine.decision import decision_heatmap
from idc_viewer.engine.events import HeatmapBuilder, fold
from idc_viewer.engine.session import SlideSession
from idc_viewer.ml.spec import ContextSpec, ModelContractError, ModelSpec

SIGMA = 1.0


def striped_slide() -> ArraySlide:
    """1000 x 800 px at 4 µm/px: tissue whose red channel (the fake CNN's P) varies by column."""
    rng = np.random.default_rng(1)
    image = np.full((800, 1000, 3), 245, dtype=np.uint8)
    tissue = rng.integers(0, 60, size=(480, 700, 1), dtype=np.int16)
    ramp = np.linspace(90, 230, 700, dtype=np.int16)[None, :, None]
    block = np.concatenate([ramp, np.full_like(ramp, 110), np.full_like(ramp, 170)], axis=2)
    image[160:640, 150:850] = np.clip(block - tissue, 0, 255).astype(np.uint8)
    return ArraySlide([image], mpp=4.0, path="striped")


def context_model(threshold: float = 0.45) -> FakeModel:
    spec = dataclasses.replace(
        fake_spec(), context=ContextSpec(sigma_patches=SIGMA, threshold=threshold)
    )
    return FakeModel(spec=spec)


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_without_context_the_decision_map_is_the_cnn_map():
    model = FakeModel()
    heatmap = fold(analyze(striped_slide(), model, None, None)).heatmap
    assert heatmap is not None
    assert decision_heatmap(heatmap, model.spec) is heatmap
    assert model.spec.decision_threshold == model.spec.threshold


def test_exports_decide_on_the_context_map_and_keep_the_cnn_probability(tmp_path: Path):
    slide, model = striped_slide(), context_model()
    heatmap = fold(analyze(slide, model, None, None)).heatmap
    assert heatmap is not None
    written = SlideSession(slide).export(
        tmp_path, heatmap, model.spec.decision_threshold, model.spec, stem="s"
    )
    rows = read_rows(tmp_path / "s.patches.csv")
    expected = context_probabilities(heatmap.probabilities, SIGMA)
    assert len(rows) == heatmap.analysed_count
    for row in rows:
        col, r = int(row["col"]), int(row["row"])
        assert float(row["probability"]) == pytest.approx(float(expected[r, col]), abs=1e-6)
        assert float(row["patch_probability"]) == pytest.approx(
            float(heatmap.probabilities[r, col]), abs=1e-6
        )
    assert any(abs(float(r["probability"]) - float(r["patch_probability"])) > 1e-3 for r in rows)
    flagged = sum(float(r["probability"]) >= 0.45 for r in rows)
    assert written.n_flagged == flagged
    provenance = json.loads((tmp_path / "s.provenance.json").read_text())
    assert provenance["context"]["sigma_patches"] == SIGMA
    assert provenance["model"]["decision_threshold"] == 0.45


def test_a_resumed_analysis_exports_the_same_as_an_uninterrupted_one(tmp_path: Path):
    slide, model = striped_slide(), context_model()
    full = fold(analyze(slide, model, None, None, batch_size=16)).heatmap
    assert full is not None
    session = SlideSession(slide)
    session.export(tmp_path / "full", full, 0.45, model.spec, stem="s")

    store = ResultStore(tmp_path / "store")
    cancel = CancelToken()
    builder = HeatmapBuilder()
    for event in analyze(slide, model, store, cancel, batch_size=16):
        builder.apply(event)
        if builder.progress is not None and builder.progress.done >= 48:
            cancel.cancel()
    # a cancelled (half-analysed) map: context from analysed cells only
    partial = builder.heatmap
    assert partial is not None and builder.complete is False
    assert 0 < partial.analysed_count < full.analysed_count
    decided = decision_heatmap(partial, model.spec).probabilities
    assert np.isnan(decided[np.isnan(partial.probabilities)]).all()

    resumed = fold(
        analyze(slide, context_model(), ResultStore(tmp_path / "store"), None, batch_size=16)
    ).heatmap
    assert resumed is not None
    session.export(tmp_path / "resumed", resumed, 0.45, model.spec, stem="s")
    for name in ("s.patches.csv", "s.regions.csv", "s.regions.geojson"):
        assert (tmp_path / "full" / name).read_bytes() == (tmp_path / "resumed" / name).read_bytes()


def spec_dict(**context: object) -> dict[str, object]:
    data = json.loads(fake_spec().to_json())
    data["context"] = context
    return data


def test_the_spec_carries_the_context_stage_and_refuses_bad_values():
    spec = ModelSpec.from_dict(spec_dict(sigma_patches=1.5, threshold=0.3, chosen_on="val"))
    assert spec.context == ContextSpec(sigma_patches=1.5, threshold=0.3, chosen_on="val")
    assert spec.decision_threshold == 0.3
    assert ModelSpec.from_dict(json.loads(spec.to_json())) == spec
    legacy = json.loads(fake_spec().to_json())
    legacy.pop("context")
    assert ModelSpec.from_dict(legacy).context is None  # a model without it runs without context
    for bad in (
        {"sigma_patches": 0},
        {"sigma_patches": float("nan")},
        {"sigma_patches": True},
        {"threshold": 1.5},
        {"method": "median"},
        {"unknown": 1},
    ):
        with pytest.raises(ModelContractError):
            ModelSpec.from_dict(spec_dict(**bad))
    data = json.loads(fake_spec().to_json())
    data["context"] = [1.0]
    with pytest.raises(ModelContractError):
        ModelSpec.from_dict(data)
