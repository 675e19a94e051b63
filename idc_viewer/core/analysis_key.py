"""What makes two analyses the same: :class:`AnalysisKey` and the canonical JSON it hashes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["AnalysisKey", "canonical_json"]


def _normalise(value: Any) -> Any:
    """Make equal parameters serialise equally: ``4.0`` and ``4`` become ``4``, tuples lists."""
    if isinstance(value, Mapping):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys and normalised numbers (see :class:`AnalysisKey`)."""
    return json.dumps(_normalise(value), sort_keys=True, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True, eq=False)
class AnalysisKey:
    """What makes two analyses the same: slide content, model and result-changing settings.

    Parameters
    ----------
    slide_fingerprint : str
        From ``slide_fingerprint(slide)``.
    model_hash : str
        The model's weights hash (from its spec).
    params : mapping or str
        Settings that change the probabilities, such as patch µm/px, patch px and tissue
        detection settings, but not the display threshold. A JSON string is accepted.

    Notes
    -----
    Equality and hashing use :attr:`digest`, the SHA-256 of the canonical JSON of all three
    fields, so key order and ``4`` vs ``4.0`` do not split analyses.
    """

    slide_fingerprint: str
    model_hash: str
    params: Mapping[str, Any] | str  # always a normalised dict after construction

    def __post_init__(self) -> None:
        """Parse a JSON ``params`` and normalise it."""
        params = json.loads(self.params) if isinstance(self.params, str) else self.params
        if not isinstance(params, Mapping):
            raise TypeError(f"params must be a mapping or a JSON object, got {params!r}")
        object.__setattr__(self, "params", _normalise(dict(params)))

    @property
    def params_dict(self) -> dict[str, Any]:
        """:attr:`params` as a (normalised) dict, typed for callers."""
        return dict(self.params) if isinstance(self.params, Mapping) else {}

    @property
    def params_json(self) -> str:
        """Canonical JSON of :attr:`params`."""
        return canonical_json(self.params)

    @property
    def digest(self) -> str:
        """Hex SHA-256 identifying the key."""
        text = canonical_json([self.slide_fingerprint, self.model_hash, self.params])
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def to_json(self) -> str:
        """The three fields as the JSON object the store keeps (read back with ``**``)."""
        return json.dumps(
            {
                "slide_fingerprint": self.slide_fingerprint,
                "model_hash": self.model_hash,
                "params": self.params_dict,
            }
        )

    def __eq__(self, other: object) -> bool:
        """Same :attr:`digest`."""
        return isinstance(other, AnalysisKey) and other.digest == self.digest

    def __hash__(self) -> int:
        """Hash of the :attr:`digest`."""
        return hash(self.digest)
