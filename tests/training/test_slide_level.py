"""Slide-level figures: a complete patient reassembled lossless and as JPEG, scored by the app."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from idc_viewer.core.bundled import models_dir
from training.data import load_patches, scan_dataset
from training.metrics import binary_metrics
from training.slide_eval import complete_patients, slide_level_figures

MODELS = models_dir()
BUNDLED_SPEC = MODELS / "idc-native-50.spec.json"
PATIENT = "8951"  # a small complete patient (613 patches, 180 IDC)
VALIDATION_PATIENT = "9035"  # the smallest complete patient (236 patches)


def test_lossless_slide_scores_as_the_patches_and_jpeg_is_reported_beside_it(
    shared_data: Path, tmp_path: Path
) -> None:
    from idc_viewer.ml.loading import load_model

    patient_dir = shared_data / "idc" / PATIENT
    if not patient_dir.is_dir():
        pytest.skip(f"complete patient {PATIENT} not in {shared_data / 'idc'}")
    split_file = tmp_path / "split.json"
    split_file.write_text(
        json.dumps({"test": [PATIENT, "not-a-complete-patient"], "large_patients": [PATIENT]})
    )
    loaded = load_model(BUNDLED_SPEC)
    patients = complete_patients(split_file, "test")
    figures = slide_level_figures(loaded, patients, shared_data / "idc", log=print).to_dict()
    rows = figures["per_slide"]
    # the CNN alone on three storages, then the bundled model's context stage on the same three
    storages = ["lossless", "JPEG Q90", "20x"]
    assert loaded.spec.context is not None
    assert [(r["patient"], r["storage"], r["mode"]) for r in rows] == [
        *((PATIENT, s, "cnn") for s in storages),
        *((PATIENT, s, "context") for s in storages),
    ]
    rows = rows[:3]
    lossless, jpeg, scanned_20x = rows
    assert lossless["patches"] == jpeg["patches"] == scanned_20x["patches"] == 613
    assert lossless["idc_patches"] == 180
    assert [r["storage"] for r in figures["pooled"]] == storages * 2
    assert figures["pooled"][0]["f1"] == pytest.approx(lossless["f1"])  # one slide pooled

    # truth: the same patches straight from their PNGs, through the app's predictor
    records = [r for r in scan_dataset(shared_data / "idc").records if r.patient == PATIENT]
    x, y, _, _ = load_patches(records)
    prob = np.concatenate(
        [loaded.new_predictor().predict(x[i : i + 256]) for i in range(0, len(x), 256)]
    )
    direct = binary_metrics(y, prob, loaded.spec.threshold).to_dict()
    # the engine skips a few near-empty patches as background (counted as negative calls)
    assert lossless["not_analysed_by_engine"] <= 10
    assert lossless["f1"] == pytest.approx(direct["f1"], abs=0.02)
    assert jpeg["f1"] != lossless["f1"]  # JPEG tiles really change the pixels the model sees
    # resampled by the engine from a 0.5 µm/px pyramid: close to, not equal to, the original
    assert scanned_20x["f1"] == pytest.approx(lossless["f1"], abs=0.1)


def test_rescore_slides_updates_report_and_card_and_leaves_the_model_alone(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import hashlib
    import shutil

    from training.cli import main

    for path in MODELS.glob("idc-native-50.*"):
        shutil.copy(path, tmp_path / path.name)
    # small complete patients keep the test short: one to choose the context on, one to test
    (tmp_path / "idc-native-50.split.json").write_text(
        json.dumps(
            {
                "train": [],
                "validation": [VALIDATION_PATIENT],
                "test": [PATIENT],
                "complete_patients": [PATIENT, VALIDATION_PATIENT],
            }
        )
    )
    weights = tmp_path / "idc-native-50.keras"
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    card = tmp_path / "idc-native-50.model_card.md"
    sections_before = [line for line in card.read_text().splitlines() if line.startswith("## ")]

    spec = tmp_path / "idc-native-50.spec.json"
    args = ["rescore-slides", str(spec), str(shared_data / "idc"), "--choose-context"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"slide {PATIENT} (lossless, cnn)" in out
    report = json.loads((tmp_path / "idc-native-50.report.json").read_text())
    choice = report["context_choice"]
    assert choice["candidates"][0]["sigma_patches"] == 0.0  # "no context" is a candidate too
    from idc_viewer.ml.spec import read_spec

    context = read_spec(spec).context
    if choice["sigma_patches"] > 0:  # written into the contract, with its threshold
        assert context is not None and context.sigma_patches == choice["sigma_patches"]
        assert context.threshold == pytest.approx(choice["threshold"])
        assert f"slide {PATIENT} (lossless, context)" in out
    else:
        assert context is None
    storages = {(row["storage"], row["mode"]) for row in report["slide_level"]["per_slide"]}
    assert ("lossless", "cnn") in storages and ("20x", "cnn") in storages
    text = card.read_text()
    assert f"| {PATIENT} | lossless | cnn |" in text
    assert "Context stage, chosen on validation" in text
    assert "Target (F1" in text
    assert [line for line in text.splitlines() if line.startswith("## ")] == sections_before
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == digest
