"""The one model definition matches the paper's architecture exactly."""

from __future__ import annotations

import pytest

from idc_viewer.ml.model_def import GRADCAM_LAYER, PAPER_LAYER_TABLE, PAPER_PARAMETER_COUNT


@pytest.mark.parametrize("input_size", [50, 128])
def test_paper_architecture(input_size: int) -> None:
    from idc_viewer.ml.model_def import build_model

    model = build_model(input_size)
    assert model.count_params() == PAPER_PARAMETER_COUNT == 171_329
    table = tuple((type(layer).__name__, layer.name) for layer in model.layers)
    assert table == PAPER_LAYER_TABLE
    assert len(table) == 27
    assert model.input_shape == (None, input_size, input_size, 3)
    assert model.output_shape == (None, 1)
    assert model.get_layer(GRADCAM_LAYER).__class__.__name__ == "SeparableConv2D"
    assert model.layers[-1].get_config()["activation"] == "sigmoid"


def test_too_small_input_is_refused() -> None:
    from idc_viewer.ml.model_def import build_model

    with pytest.raises(ValueError, match="at least 16"):
        build_model(8)
