"""The one definition of the paper's CNN (Sapkota 2025), shared by the app and training.

27 layers (input included), 171,329 parameters; the Grad-CAM layer is ``separable_conv2d``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from idc_viewer.core.patches import DEFAULT_PATCH_PX

if TYPE_CHECKING:
    import keras

GRADCAM_LAYER = "separable_conv2d"
PAPER_PARAMETER_COUNT = 171_329

# (layer class name, layer name) in order; the test compares against this table.
PAPER_LAYER_TABLE: tuple[tuple[str, str], ...] = (
    ("InputLayer", "input"),
    ("Conv2D", "conv2d"),
    ("BatchNormalization", "batch_normalization"),
    ("Activation", "activation"),
    ("MaxPooling2D", "max_pooling2d"),
    ("Conv2D", "conv2d_1"),
    ("BatchNormalization", "batch_normalization_1"),
    ("Activation", "activation_1"),
    ("MaxPooling2D", "max_pooling2d_1"),
    ("Conv2D", "conv2d_2"),
    ("BatchNormalization", "batch_normalization_2"),
    ("Activation", "activation_2"),
    ("MaxPooling2D", "max_pooling2d_2"),
    ("SeparableConv2D", GRADCAM_LAYER),
    ("BatchNormalization", "batch_normalization_3"),
    ("Activation", "activation_3"),
    ("MaxPooling2D", "max_pooling2d_3"),
    ("GlobalAveragePooling2D", "global_average_pooling2d"),
    ("Dropout", "dropout"),
    ("Dense", "dense"),
    ("BatchNormalization", "batch_normalization_4"),
    ("Activation", "activation_4"),
    ("Dropout", "dropout_1"),
    ("Dense", "dense_1"),
    ("BatchNormalization", "batch_normalization_5"),
    ("Activation", "activation_5"),
    ("Dense", "dense_2"),
)


def build_model(
    input_size: int = DEFAULT_PATCH_PX,
    *,
    l2: float = 1e-4,
    dropout_head: float = 0.5,
    dropout_mid: float = 0.3,
) -> keras.Model:
    """Build the paper's CNN for ``input_size`` x ``input_size`` RGB inputs scaled to [0, 1].

    Parameters
    ----------
    input_size
        Side of the square input in pixels: 128 for the paper preset, 50 for native patches.
    l2
        L2 weight-decay factor on every convolution and dense kernel (the paper's "BCE + L2").
    dropout_head, dropout_mid
        Dropout rates after global pooling and after the first dense block.
    """
    import keras
    from keras import layers, regularizers

    if input_size < 16:
        raise ValueError(f"input_size must be at least 16 px (four 2x poolings), got {input_size}")
    reg = regularizers.L2(l2) if l2 > 0 else None

    def conv_block(x: Any, filters: int, index: int, separable: bool = False) -> Any:
        suffix = "" if index == 0 else f"_{index}"
        if separable:
            x = layers.SeparableConv2D(
                filters,
                3,
                padding="same",
                name=GRADCAM_LAYER,
                depthwise_regularizer=reg,
                pointwise_regularizer=reg,
            )(x)
        else:
            x = layers.Conv2D(
                filters, 3, padding="same", name=f"conv2d{suffix}", kernel_regularizer=reg
            )(x)
        x = layers.BatchNormalization(name=f"batch_normalization{suffix}")(x)
        x = layers.Activation("relu", name=f"activation{suffix}")(x)
        return layers.MaxPooling2D(2, name=f"max_pooling2d{suffix}")(x)

    inputs = keras.Input(shape=(input_size, input_size, 3), name="input")
    x = conv_block(inputs, 32, 0)
    x = conv_block(x, 64, 1)
    x = conv_block(x, 128, 2)
    x = conv_block(x, 256, 3, separable=True)
    x = layers.GlobalAveragePooling2D(name="global_average_pooling2d")(x)
    x = layers.Dropout(dropout_head, name="dropout")(x)
    x = layers.Dense(128, name="dense", kernel_regularizer=reg)(x)
    x = layers.BatchNormalization(name="batch_normalization_4")(x)
    x = layers.Activation("relu", name="activation_4")(x)
    x = layers.Dropout(dropout_mid, name="dropout_1")(x)
    x = layers.Dense(64, name="dense_1", kernel_regularizer=reg)(x)
    x = layers.BatchNormalization(name="batch_normalization_5")(x)
    x = layers.Activation("relu", name="activation_5")(x)
    outputs = layers.Dense(1, activation="sigmoid", name="dense_2")(x)
    return keras.Model(inputs, outputs, name=f"idc_cnn_{input_size}")
