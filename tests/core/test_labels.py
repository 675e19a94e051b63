"""How a model is named next to its results."""

from __future__ import annotations

from idc_viewer.core.labels import model_label


def test_model_label_names_the_hash_prefix() -> None:
    assert model_label("idc-native", "0123456789abcdef") == "idc-native (01234567)"
    assert model_label("idc-native", "") == "idc-native"
