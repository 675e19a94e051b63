"""Dataset scanning, layout detection and the patient-level split."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from training.data import (
    DatasetError,
    load_patch,
    scan_dataset,
    split_patients,
    undersample,
)


def _png(path: Path, value: int = 120, size: tuple[int, int] = (50, 50)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((*size, 3), value, np.uint8))


def _kaggle(root: Path, patients: dict[str, tuple[int, int]]) -> Path:
    for patient, (n_neg, n_pos) in patients.items():
        for label, n in ((0, n_neg), (1, n_pos)):
            for i in range(n):
                name = f"{patient}_idx5_x{1 + 50 * i}_y{1 + 50 * label}_class{label}.png"
                _png(root / patient / str(label) / name)
    return root


def test_kaggle_layout_is_detected_with_coordinates(tmp_path: Path) -> None:
    dataset = scan_dataset(_kaggle(tmp_path, {"10": (2, 1), "11": (1, 1)}))
    assert dataset.layout == "kaggle"
    assert dataset.patients == ["10", "11"]
    first = next(r for r in dataset.records if r.patient == "10" and r.label == 1)
    assert (first.l0_x, first.l0_y) == (0, 50)  # 1-based names become 0-based pixels


def test_paper_layout_keeps_its_split(tmp_path: Path) -> None:
    for split in ("train", "val", "test"):
        _png(tmp_path / split / "0" / f"{split}a_idx5_x1_y1_class0.png")
        _png(tmp_path / split / "1" / f"{split}b_idx5_x1_y1_class1.png")
    dataset = scan_dataset(tmp_path)
    assert dataset.layout == "paper"
    assert dataset.preset_split is not None
    assert dataset.preset_split["vala"] == "validation"
    assert dataset.preset_split["testb"] == "test"


def test_empty_and_mislabelled_folders_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no folders"):
        scan_dataset(tmp_path)
    (tmp_path / "12" / "0").mkdir(parents=True)
    with pytest.raises(DatasetError, match="No labelled patches"):
        scan_dataset(tmp_path)
    _png(tmp_path / "12" / "0" / "12_idx5_x1_y1_class1.png")  # name says IDC, folder says not
    with pytest.raises(DatasetError, match="wrong class folder"):
        scan_dataset(tmp_path)


def test_undecodable_patch_is_skipped_and_edge_patch_padded(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    assert load_patch(bad) is None
    _png(tmp_path / "edge.png", value=10, size=(30, 40))
    edge = load_patch(tmp_path / "edge.png")
    assert edge is not None and edge.shape == (50, 50, 3)
    assert edge[0, 0, 0] == 10 and edge[49, 49, 0] == 255  # padded with white background


def test_split_is_by_patient_fixed_and_stratified() -> None:
    patients = [str(i) for i in range(100)]
    strata = {p: ("large" if int(p) < 20 else "sampled") for p in patients}
    split = split_patients(patients, seed=7, strata=strata)
    assert split == split_patients(patients, seed=7, strata=strata)
    members = [set(v) for v in split.values()]
    assert set().union(*members) == set(patients)
    assert sum(len(m) for m in members) == len(patients)  # no patient in two splits
    for name in ("validation", "test"):
        assert 1 <= sum(strata[p] == "large" for p in split[name]) <= 4


def test_undersample_balances_classes() -> None:
    labels = np.array([0] * 90 + [1] * 10)
    keep = undersample(labels, seed=0)
    assert np.bincount(labels[keep]).tolist() == [10, 10]
