"""The figures training computes, typed; each writes itself as ``report.json`` has held it.

:class:`BinaryMetrics` is every figure of a classifier at one threshold, :class:`Headline` the
seven the app and the cards show. A result that carries a ``Headline`` writes its figures in
place, beside its other fields (:func:`flat_dict`), as the report's rows always were.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class Headline:
    """Accuracy, balanced accuracy, ROC AUC (None with one class) and class 1's P/R/F1."""

    accuracy: float
    balanced_accuracy: float
    roc_auc: float | None
    f1: float
    precision: float
    recall: float
    specificity: float


@dataclass(frozen=True)
class BinaryMetrics:
    """All figures of a binary classifier at one threshold (what binary_metrics returns).

    ``confusion_matrix`` is ``[[tn, fp], [fn, tp]]``; ``per_class`` ``{"0"|"1": {precision,
    recall, f1, support}}``; ``support`` ``{"0": n0, "1": n1}``; ``macro_avg`` and
    ``weighted_avg`` ``{precision, recall, f1}``; ``precision``, ``recall`` (= ``sensitivity``)
    and ``f1`` are class 1's.
    """

    n: int
    threshold: float
    accuracy: float
    balanced_accuracy: float
    roc_auc: float | None
    confusion_matrix: list[list[int]]
    per_class: dict[str, dict[str, float | int]]
    support: dict[str, int]
    macro_avg: dict[str, float]
    weighted_avg: dict[str, float]
    precision: float
    recall: float
    f1: float
    sensitivity: float
    specificity: float

    @property
    def headline(self) -> Headline:
        """The seven figures the app and the cards show."""
        return Headline(**{f.name: getattr(self, f.name) for f in fields(Headline)})

    def to_dict(self) -> dict[str, Any]:
        """The figures as ``report.json`` holds them."""
        return asdict(self)


def flat_dict(result: Any) -> dict[str, Any]:
    """A dataclass's fields in order, a :class:`Headline` field's figures spliced in its place."""
    out: dict[str, Any] = {}
    for f in fields(result):
        value = getattr(result, f.name)
        if isinstance(value, Headline):
            out.update(asdict(value))
        else:
            out[f.name] = value
    return out
