"""Binary classification figures computed with numpy only.

Class 1 is IDC-positive, class 0 IDC-negative. A patch is predicted positive when its probability is
``>= threshold``. Figures that are undefined for the given labels (ROC AUC with a single class) are
``None`` so the result stays valid JSON; a ratio with an empty denominator is 0.0, as scikit-learn's
``zero_division=0``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from training.figures import BinaryMetrics

__all__ = [
    "THRESHOLD_CRITERIA",
    "best_threshold",
    "binary_metrics",
    "classification_report_text",
    "patient_bootstrap_interval",
    "roc_auc",
    "roc_curve",
]

THRESHOLD_CRITERIA = ("f1", "balanced_accuracy", "youden")


def _as_arrays(y_true: ArrayLike, y_prob: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true).reshape(-1)
    p = np.asarray(y_prob, dtype=np.float64).reshape(-1)
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} values but y_prob has {p.size}.")
    if t.size and not np.isin(t, (0, 1)).all():
        raise ValueError("y_true must hold only 0 and 1.")
    if not np.isfinite(p).all():
        raise ValueError("y_prob holds NaN or infinite values.")
    return t.astype(np.int64), p


def _both_classes(
    y_true: ArrayLike, y_prob: ArrayLike, refusal: str
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Labels, scores and the counts of positives and negatives; ValueError without both."""
    t, p = _as_arrays(y_true, y_prob)
    n_pos = int(np.sum(t == 1))
    n_neg = t.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(refusal)
    return t, p, n_pos, n_neg


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else 0.0


def _f1(precision: float, recall: float) -> float:
    return _ratio(2.0 * precision * recall, precision + recall)


def _confusion(t: np.ndarray, pred: np.ndarray) -> tuple[int, int, int, int]:
    tp = int(np.sum((t == 1) & (pred == 1)))
    tn = int(np.sum((t == 0) & (pred == 0)))
    fp = int(np.sum((t == 0) & (pred == 1)))
    fn = int(np.sum((t == 1) & (pred == 0)))
    return tn, fp, fn, tp


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of ``values``; tied values share the mean of their ranks."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    _, first, counts = np.unique(sorted_values, return_index=True, return_counts=True)
    mean_rank = first + (counts + 1) / 2.0  # mean of 1-based ranks first+1 .. first+count
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, counts)
    return ranks


def roc_auc(y_true: ArrayLike, y_prob: ArrayLike) -> float | None:
    """Area under the ROC curve by the Mann-Whitney U statistic (ties count one half).

    Parameters
    ----------
    y_true : array_like
        Labels, 0 or 1.
    y_prob : array_like
        Scores; higher means more likely class 1.

    Returns
    -------
    float or None
        The AUC in [0, 1], or None when only one class is present.
    """
    t, p = _as_arrays(y_true, y_prob)
    n_pos = int(np.sum(t == 1))
    n_neg = t.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = _average_ranks(p)
    u = float(np.sum(ranks[t == 1])) - n_pos * (n_pos + 1) / 2.0
    return u / (n_pos * n_neg)


def _per_class(tn: int, fp: int, fn: int, tp: int) -> dict[str, dict[str, float | int]]:
    p1, r1 = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    p0, r0 = _ratio(tn, tn + fn), _ratio(tn, tn + fp)
    return {
        "0": {"precision": p0, "recall": r0, "f1": _f1(p0, r0), "support": tn + fp},
        "1": {"precision": p1, "recall": r1, "f1": _f1(p1, r1), "support": tp + fn},
    }


def binary_metrics(y_true: ArrayLike, y_prob: ArrayLike, threshold: float = 0.5) -> BinaryMetrics:
    """All figures of a binary classifier at one threshold.

    Parameters
    ----------
    y_true : array_like
        Labels, 0 (IDC-negative) or 1 (IDC-positive).
    y_prob : array_like
        Predicted probability of class 1.
    threshold : float
        A sample is predicted 1 when its probability is ``>= threshold``.

    Returns
    -------
    BinaryMetrics
        ``n``, ``threshold``, ``accuracy``, ``balanced_accuracy``, ``roc_auc`` (None with a
        single class), ``confusion_matrix`` ``[[tn, fp], [fn, tp]]``, ``per_class``
        ``{"0"|"1": {precision, recall, f1, support}}``, ``support`` ``{"0": n0, "1": n1}``,
        ``macro_avg`` and ``weighted_avg`` ``{precision, recall, f1}``, and the class-1 shortcuts
        ``precision``, ``recall`` (= ``sensitivity``), ``f1``, plus ``specificity``.
    """
    t, p = _as_arrays(y_true, y_prob)
    pred = (p >= threshold).astype(np.int64)
    tn, fp, fn, tp = _confusion(t, pred)
    per_class = _per_class(tn, fp, fn, tp)
    n = t.size
    sens, spec = per_class["1"]["recall"], per_class["0"]["recall"]
    keys = ("precision", "recall", "f1")
    macro = {k: (float(per_class["0"][k]) + float(per_class["1"][k])) / 2 for k in keys}
    weighted = {
        k: _ratio(float(per_class["0"][k]) * (tn + fp) + float(per_class["1"][k]) * (tp + fn), n)
        for k in keys
    }
    present = [c for c in ("0", "1") if per_class[c]["support"]]
    balanced = _ratio(sum(float(per_class[c]["recall"]) for c in present), len(present))
    return BinaryMetrics(
        n=int(n),
        threshold=float(threshold),
        accuracy=_ratio(tp + tn, n),
        balanced_accuracy=balanced,
        roc_auc=roc_auc(t, p),
        confusion_matrix=[[tn, fp], [fn, tp]],
        per_class=per_class,
        support={"0": tn + fp, "1": tp + fn},
        macro_avg=macro,
        weighted_avg=weighted,
        precision=float(per_class["1"]["precision"]),
        recall=float(sens),
        f1=float(per_class["1"]["f1"]),
        sensitivity=float(sens),
        specificity=float(spec),
    )


def roc_curve(y_true: ArrayLike, y_prob: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Receiver operating characteristic, one point per distinct score.

    Parameters
    ----------
    y_true : array_like
        Labels, 0 or 1; both must be present.
    y_prob : array_like
        Scores; higher means more likely class 1.

    Returns
    -------
    fpr, tpr : np.ndarray
        False and true positive rates, starting at (0, 0) and ending at (1, 1).
    thresholds : np.ndarray
        Decreasing; point ``i`` predicts positive for scores ``>= thresholds[i]``;
        ``thresholds[0]`` is ``inf`` (nothing positive), as in scikit-learn.

    Raises
    ------
    ValueError
        If only one class is present.
    """
    t, p, n_pos, n_neg = _both_classes(y_true, y_prob, "ROC curve needs both classes in y_true.")
    thresholds, tps, fps = _cumulative_counts(t, p)
    fpr = np.concatenate([[0.0], fps / n_neg])
    tpr = np.concatenate([[0.0], tps / n_pos])
    return fpr, tpr, np.concatenate([[np.inf], thresholds])


def _cumulative_counts(t: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct scores (descending) and the TP / FP counts when predicting ``p >= score``."""
    order = np.argsort(-p, kind="mergesort")
    p_sorted, t_sorted = p[order], t[order]
    last_of_group = np.r_[np.nonzero(np.diff(p_sorted))[0], p_sorted.size - 1]
    tps = np.cumsum(t_sorted)[last_of_group].astype(np.float64)
    fps = (last_of_group + 1 - tps).astype(np.float64)
    return p_sorted[last_of_group], tps, fps


def best_threshold(y_true: ArrayLike, y_prob: ArrayLike, criterion: str = "f1") -> float:
    """Threshold that maximises a criterion; use it on validation patients only.

    Every distinct score is tried as a cut (predict positive when ``p >= score``). The returned
    threshold is the midpoint between the best score and the next lower distinct score, so that
    tiny numeric differences (e.g. a LiteRT model against its Keras twin) do not flip the boundary
    patch; when the best cut is the lowest score the score itself is returned. Ties go to the cut
    closest to 0.5.

    Parameters
    ----------
    y_true : array_like
        Labels, 0 or 1; both must be present.
    y_prob : array_like
        Predicted probability of class 1.
    criterion : {"f1", "balanced_accuracy", "youden"}
        F1 of class 1, balanced accuracy, or Youden's J = TPR - FPR (same optimum as balanced
        accuracy).

    Returns
    -------
    float
        The threshold.

    Raises
    ------
    ValueError
        Unknown criterion, or a single class in ``y_true``.
    """
    if criterion not in THRESHOLD_CRITERIA:
        raise ValueError(f"Unknown criterion {criterion!r}; choose one of {THRESHOLD_CRITERIA}.")
    t, p, n_pos, n_neg = _both_classes(
        y_true, y_prob, "Choosing a threshold needs both classes among the validation labels."
    )
    scores, tps, fps = _cumulative_counts(t, p)
    tpr, fpr = tps / n_pos, fps / n_neg
    if criterion == "f1":
        predicted = tps + fps
        precision = np.divide(tps, predicted, out=np.zeros_like(tps), where=predicted > 0)
        den = precision + tpr
        value = np.divide(2 * precision * tpr, den, out=np.zeros_like(tps), where=den > 0)
    elif criterion == "balanced_accuracy":
        value = (tpr + 1.0 - fpr) / 2.0
    else:
        value = tpr - fpr
    cuts = np.r_[(scores[:-1] + scores[1:]) / 2.0, scores[-1]]
    best = np.flatnonzero(np.isclose(value, value.max(), rtol=0.0, atol=1e-12))
    chosen = best[np.argmin(np.abs(cuts[best] - 0.5))]
    return float(cuts[chosen])


def classification_report_text(
    y_true: ArrayLike,
    y_prob: ArrayLike,
    threshold: float = 0.5,
    *,
    target_names: Sequence[str] = ("0", "1"),
    digits: int = 2,
) -> str:
    """Text report laid out like scikit-learn's ``classification_report``.

    Parameters
    ----------
    y_true : array_like
        Labels, 0 or 1.
    y_prob : array_like
        Predicted probability of class 1 (0/1 predictions work too with the default threshold).
    threshold : float
        Predicted 1 when ``y_prob >= threshold``.
    target_names : sequence of str
        Row names for class 0 and class 1.
    digits : int
        Decimals of the figures.

    Returns
    -------
    str
        The report, ending with a newline.
    """
    if len(target_names) != 2:
        raise ValueError("target_names needs exactly two names (class 0, class 1).")
    m = binary_metrics(y_true, y_prob, threshold)
    headers = ("precision", "recall", "f1-score", "support")
    width = max(*(len(n) for n in target_names), len("weighted avg"), digits)
    out = ("{:>{width}s} " + " {:>9}" * 4).format("", *headers, width=width) + "\n\n"
    row_fmt = "{:>{width}s} " + " {:>9.{digits}f}" * 3 + " {:>9}\n"
    for name, key in zip(target_names, ("0", "1"), strict=True):
        c = m.per_class[key]
        out += row_fmt.format(
            name, c["precision"], c["recall"], c["f1"], c["support"], width=width, digits=digits
        )
    out += "\n"
    acc_fmt = "{:>{width}s} " + " {:>9}" * 2 + " {:>9.{digits}f} {:>9}\n"
    out += acc_fmt.format("accuracy", "", "", m.accuracy, m.n, width=width, digits=digits)
    for label, avg in (("macro avg", m.macro_avg), ("weighted avg", m.weighted_avg)):
        out += row_fmt.format(
            label, avg["precision"], avg["recall"], avg["f1"], m.n, width=width, digits=digits
        )
    return out


def patient_bootstrap_interval(
    y_true: ArrayLike,
    y_prob: ArrayLike,
    patients: Sequence[str],
    threshold: float,
    *,
    n_resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, list[float]]:
    """Percentile intervals of F1 (IDC) and balanced accuracy when the *patients* are resampled.

    Patches of one patient are not independent, so the spread that matters for "another set of
    patients" comes from drawing patients with replacement (all their patches with them).
    Returns ``{"f1": [low, high], "balanced_accuracy": [low, high]}``.
    """
    t, p = _as_arrays(y_true, y_prob)
    groups = np.asarray(patients)
    if len(groups) != len(t):
        raise ValueError("one patient per patch is needed")
    names, index = np.unique(groups, return_inverse=True)
    pred = p >= threshold
    # per patient: tp, fp, fn, tn; a resample is a weighted sum of these rows
    counts = np.zeros((len(names), 4))
    for column, mask in enumerate((pred & (t == 1), pred & (t == 0), ~pred & (t == 1))):
        counts[:, column] = np.bincount(index, weights=mask, minlength=len(names))
    counts[:, 3] = np.bincount(index, minlength=len(names)) - counts[:, :3].sum(axis=1)
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(len(names), np.full(len(names), 1 / len(names)), size=n_resamples)
    tp, fp, fn, tn = (weights @ counts).T
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
        sensitivity = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        specificity = np.where(tn + fp > 0, tn / (tn + fp), 0.0)
    tail = 100 * (1 - level) / 2
    return {
        name: [float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))]
        for name, values in (("f1", f1), ("balanced_accuracy", (sensitivity + specificity) / 2))
    }
