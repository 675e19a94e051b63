"""How a model is named next to its results, in the GUI and in stored analyses (Qt-free)."""

from __future__ import annotations


def model_label(name: str, model_hash: str) -> str:
    """``name (hash[:8])``; the name alone when the hash is unknown."""
    return f"{name} ({model_hash[:8]})" if model_hash else name
