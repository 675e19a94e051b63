"""Tests of training.report: files written, JSON content, model and comparison cards."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from training.card import write_comparison_card
from training.report import rewrite_report, write_evaluation_report
from training.results import GradCamExample

HISTORY = {
    "loss": [0.6, 0.4, 0.3],
    "val_loss": [0.65, 0.5, 0.45],
    "accuracy": [0.7, 0.8, 0.85],
    "val_accuracy": [0.68, 0.77, 0.8],
}


def _examples() -> list[GradCamExample]:
    rng = np.random.default_rng(1)
    patch = rng.integers(0, 256, (50, 50, 3), dtype=np.uint8)
    overlay = rng.integers(0, 256, (50, 50, 3), dtype=np.uint8)
    return [
        GradCamExample(patch=patch, overlay=overlay, label=0, probability=0.12),
        GradCamExample(patch=patch, overlay=overlay, label=1, probability=0.91),
    ]


def _report(tmp_path: Path, name: str, preset: str, *, slide_level: list[dict] | None) -> dict:
    y = np.array([0, 0, 0, 1, 1, 1, 0, 1])
    p = np.array([0.1, 0.2, 0.7, 0.8, 0.6, 0.3, 0.05, 0.95], dtype=np.float32)
    return write_evaluation_report(
        tmp_path,
        name=name,
        history=HISTORY,
        test_y=y,
        test_prob=p,
        threshold=0.5,
        gradcam_examples=_examples(),
        slide_level=slide_level,
        card_info={
            "preset": preset,
            "input_size": 50,
            "patches_per_s": 1234.5,
            "threshold_criterion": "f1",
            "split_counts": {
                "train": {"patients": 14, "patches": 9000},
                "validation": {"patients": 3, "patches": 1500},
                "test": {"patients": 3, "patches": 1600},
            },
        },
    )


def test_report_files_and_json(tmp_path: Path) -> None:
    slides = [{"patient": "8863", "n_patches": 979, "accuracy": 0.9, "f1": 0.8, "roc_auc": 0.95}]
    rep = _report(tmp_path, "idc-paper", "paper", slide_level=slides)
    for suffix in (
        "report.json",
        "classification_report.txt",
        "curves.png",
        "roc.png",
        "gradcam.png",
        "model_card.md",
    ):
        path = tmp_path / f"idc-paper.{suffix}"
        assert path.is_file() and path.stat().st_size > 0, suffix
    for png in tmp_path.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((tmp_path / "idc-paper.report.json").read_text())
    assert data == rep
    top = {"name", "threshold", "test", "slide_level", "history", "card_info", "files"}
    assert top <= set(data)
    test = data["test"]
    keys = ("accuracy", "balanced_accuracy", "roc_auc", "confusion_matrix", "per_class", "support")
    for key in keys:
        assert key in test
    # threshold 0.5: pred [0,0,1,1,1,0,0,1] -> tn=3, fp=1, fn=1, tp=3
    assert test["confusion_matrix"] == [[3, 1], [1, 3]]
    assert test["roc_auc"] == pytest.approx(14 / 16)
    assert data["slide_level"][0]["patient"] == "8863"

    text = (tmp_path / "idc-paper.classification_report.txt").read_text()
    assert "IDC-positive (1)" in text and "weighted avg" in text
    card = (tmp_path / "idc-paper.model_card.md").read_text()
    for needle in (
        "paper",
        "validation patients",
        "8863",
        "0.875",
        "not a diagnostic device",
        "4.0 µm/px",
        "H&E",
        "Single-source",
        "| train | 14 | 9000 |",
        "holds the SHA-256 of `idc-paper.keras` (`weights_sha256`)",
    ):
        assert needle in card, needle


def test_report_without_examples_or_slides(tmp_path: Path) -> None:
    rep = write_evaluation_report(
        tmp_path,
        name="m",
        history={"loss": [1.0]},
        test_y=[1, 1],
        test_prob=[0.4, 0.9],
        threshold=0.5,
        gradcam_examples=[],
        slide_level=None,
        card_info={},
    )
    assert rep["files"]["gradcam"] is None
    assert rep["test"]["roc_auc"] is None  # one class only: stays valid JSON
    assert not (tmp_path / "m.gradcam.png").exists()
    assert (tmp_path / "m.roc.png").is_file() and (tmp_path / "m.curves.png").is_file()
    json.loads((tmp_path / "m.report.json").read_text())
    assert "Slide level" not in (tmp_path / "m.model_card.md").read_text()


def test_comparison_card_lists_every_preset(tmp_path: Path) -> None:
    a = _report(tmp_path, "idc-paper", "paper", slide_level=None)
    b = _report(
        tmp_path,
        "idc-fast",
        "fast",
        slide_level=[{"patient": "9022", "f1": 0.5}, {"patient": "9035", "f1": 0.7}],
    )
    out = write_comparison_card(tmp_path / "cards" / "MODEL_CARD.md", [a, b])
    text = out.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(rows) == 3  # header + two presets
    assert "| paper | idc-paper |" in text and "| fast | idc-fast |" in text
    assert "1234.500" in text and "0.600" in text  # patches/s, mean slide-level F1 of fast
    with pytest.raises(ValueError):
        write_comparison_card(tmp_path / "x.md", [])


def test_the_card_is_rendered_from_the_report_with_the_side_by_side_table(tmp_path: Path) -> None:
    a = _report(tmp_path, "idc-paper", "paper", slide_level=None)
    b = {**_report(tmp_path, "idc-fast", "fast", slide_level=None), "validation": {"f1": 0.777}}
    card = tmp_path / "idc-fast.model_card.md"
    original = card.read_text()
    for _ in range(2):  # re-running compare renders the same card again, not a second table
        rewrite_report(tmp_path / "idc-fast.report.json", {**b, "comparison": [a, b]})
    text = card.read_text()
    assert text.startswith(original.rstrip("\n"))
    assert text.count("## Presets side by side") == 1
    assert "| paper | idc-paper |" in text and "0.777" in text
    # the card is a function of the report: rendering the stored report gives the same text
    import json

    from training.card import render_card

    stored = json.loads((tmp_path / "idc-fast.report.json").read_text())
    assert render_card(stored) == text
