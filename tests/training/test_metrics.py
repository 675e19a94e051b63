"""Tests of training.metrics against hand-computed figures."""

from __future__ import annotations

import json

import numpy as np
import pytest

from training.metrics import (
    best_threshold,
    binary_metrics,
    classification_report_text,
    patient_bootstrap_interval,
    roc_auc,
    roc_curve,
)

Y = [0, 0, 1, 1, 0, 1]
P = [0.1, 0.6, 0.4, 0.9, 0.3, 0.8]


def test_binary_metrics_hand_computed() -> None:
    # threshold 0.5 -> pred [0, 1, 0, 1, 0, 1]: tn=2, fp=1, fn=1, tp=2
    m = binary_metrics(Y, P, 0.5)
    assert m.confusion_matrix == [[2, 1], [1, 2]]
    assert m.accuracy == pytest.approx(4 / 6)
    assert m.per_class["1"]["precision"] == pytest.approx(2 / 3)
    assert m.per_class["1"]["recall"] == pytest.approx(2 / 3)
    assert m.per_class["0"]["recall"] == pytest.approx(2 / 3)
    assert m.support == {"0": 3, "1": 3}
    assert m.balanced_accuracy == pytest.approx(2 / 3)
    # pairs (pos, neg): 0.4 beats 0.1, 0.3 only; 0.9 and 0.8 beat all three -> 8/9
    assert m.roc_auc == pytest.approx(8 / 9)
    json.dumps(m.to_dict())  # JSON-ready


def test_unbalanced_case_and_threshold_equality() -> None:
    y = [1, 0, 0, 0, 0]
    p = [0.5, 0.5, 0.2, 0.1, 0.0]
    m = binary_metrics(y, p, 0.5)  # >= threshold is positive
    assert m.confusion_matrix == [[3, 1], [0, 1]]
    assert m.per_class["1"]["precision"] == pytest.approx(0.5)
    assert m.per_class["1"]["f1"] == pytest.approx(2 / 3)
    assert m.per_class["0"]["f1"] == pytest.approx(2 * 1 * 0.75 / 1.75)
    assert m.balanced_accuracy == pytest.approx((1 + 0.75) / 2)
    assert m.accuracy == pytest.approx(0.8)
    # AUC: pos 0.5 vs negs (0.5 tie=.5, 0.2, 0.1, 0.0) -> 3.5/4
    assert m.roc_auc == pytest.approx(3.5 / 4)


def test_auc_ties_perfect_and_inverted() -> None:
    assert roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == pytest.approx(0.5)
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == pytest.approx(1.0)
    assert roc_auc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == pytest.approx(0.0)
    assert roc_auc([1, 1], [0.2, 0.3]) is None


def test_auc_matches_trapezoid_of_roc_curve() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    p = np.round(rng.random(500) * 0.5 + y * 0.3, 2)  # many ties
    fpr, tpr, thr = roc_curve(y, p)
    assert fpr[0] == 0 and tpr[0] == 0 and fpr[-1] == 1 and tpr[-1] == 1
    assert np.isinf(thr[0]) and np.all(np.diff(thr[1:]) < 0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    assert roc_auc(y, p) == pytest.approx(area)


def test_roc_curve_points() -> None:
    fpr, tpr, thr = roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])
    np.testing.assert_allclose(thr[1:], [0.8, 0.4, 0.35, 0.1])
    with pytest.raises(ValueError):
        roc_curve([1, 1], [0.1, 0.2])


def test_zero_division_is_zero() -> None:
    m = binary_metrics([0, 1], [0.1, 0.2], 0.9)  # nothing predicted positive
    assert m.per_class["1"]["precision"] == 0.0
    assert m.per_class["1"]["f1"] == 0.0


def test_best_threshold() -> None:
    y = [0, 0, 0, 1, 1, 1]
    p = [0.05, 0.1, 0.3, 0.2, 0.7, 0.9]
    # f1: cut at 0.2 -> tp=3, fp=1: f1 = 6/7; cut at 0.7 -> tp=2, fp=0: f1 = 0.8
    t = best_threshold(y, p, "f1")
    assert t == pytest.approx((0.2 + 0.1) / 2)
    assert binary_metrics(y, p, t).f1 == pytest.approx(6 / 7)
    # balanced accuracy: cut 0.7 -> (2/3 + 1)/2 = 5/6; cut 0.2 -> (1 + 2/3)/2 = 5/6: tie,
    # the cut nearer 0.5 wins: (0.7 + 0.3) / 2 = 0.5
    assert best_threshold(y, p, "balanced_accuracy") == pytest.approx(0.5)
    assert best_threshold(y, p, "youden") == pytest.approx(0.5)
    # perfectly separable -> a threshold that separates
    sep = best_threshold([0, 0, 1, 1], [0.1, 0.2, 0.6, 0.7])
    assert 0.2 < sep <= 0.6
    with pytest.raises(ValueError):
        best_threshold(y, p, "accuracy")
    with pytest.raises(ValueError):
        best_threshold([0, 0], [0.1, 0.2])


def test_classification_report_layout() -> None:
    text = classification_report_text([0, 1], [0.2, 0.3], 0.5)
    expected = (
        "              precision    recall  f1-score   support\n"
        "\n"
        "           0       0.50      1.00      0.67         1\n"
        "           1       0.00      0.00      0.00         1\n"
        "\n"
        "    accuracy                           0.50         2\n"
        "   macro avg       0.25      0.50      0.33         2\n"
        "weighted avg       0.25      0.50      0.33         2\n"
    )
    assert text == expected


def test_bad_inputs() -> None:
    with pytest.raises(ValueError):
        binary_metrics([0, 1], [0.5])
    with pytest.raises(ValueError):
        binary_metrics([0, 2], [0.5, 0.5])
    with pytest.raises(ValueError):
        binary_metrics([0, 1], [0.5, float("nan")])


def test_patient_bootstrap_interval_brackets_the_figure_and_widens_with_patient_spread() -> None:
    rng = np.random.default_rng(0)
    patients = np.repeat([f"p{i}" for i in range(30)], 40)
    y = rng.integers(0, 2, len(patients))
    # every patient scored alike: a narrow interval around the pooled figure
    prob = np.where(rng.random(len(y)) < 0.85, y, 1 - y).astype(float)
    pooled = binary_metrics(y, prob, 0.5)
    alike = patient_bootstrap_interval(y, prob, patients, 0.5, n_resamples=500)
    for name in ("f1", "balanced_accuracy"):
        low, high = alike[name]
        assert low <= getattr(pooled, name) <= high and high - low < 0.1
    # half the patients scored at chance: the same pooled data per patch, a wider interval
    chance = np.isin(patients, [f"p{i}" for i in range(15)])
    mixed = np.where(chance, rng.random(len(y)), np.where(rng.random(len(y)) < 0.97, y, 1 - y))
    spread = patient_bootstrap_interval(y, mixed, patients, 0.5, n_resamples=500)
    assert spread["f1"][1] - spread["f1"][0] > alike["f1"][1] - alike["f1"][0]
    with pytest.raises(ValueError):
        patient_bootstrap_interval(y, prob, patients[:-1], 0.5)
