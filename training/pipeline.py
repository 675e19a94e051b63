"""TensorFlow's side of a run: its threads, and the tf.data streams of training patches.

The training stream is balanced as the config says (one undersampled subset, a fresh balanced
subset every epoch, or all patches), optionally JPEG-recompressed, then batched, rescaled and
augmented; validation batches are rescaled only and cached.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from training.config import TrainConfig
from training.data import undersample
from training.run_data import SplitArrays

RECALIBRATION_BATCHES = 64  # x 64 patches; with momentum 0.9 the old statistics weigh 0.1 %


def set_threads() -> None:
    """TensorFlow's thread pools, as measured fastest (``IDC_TF_THREADS`` intra-op threads)."""
    import tensorflow as tf

    # measured: intra-op 2 / inter-op 1 is fastest on the 2-core machine (STACK-NOTES)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(
            int(os.environ.get("IDC_TF_THREADS", 2))
        )
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # already initialised in this process


def rescaler(size: int) -> Callable[[Any], Any]:
    """uint8 batch -> float32 in [0, 1] at the model's input size (the paper's rescale)."""
    import tensorflow as tf

    def rescale(images: Any) -> Any:
        images = tf.cast(images, tf.float32) / 255.0
        if size != images.shape[1]:
            images = tf.image.resize(images, (size, size), method="bilinear")
        return images

    return rescale


def training_patches(x: np.ndarray, y: np.ndarray, balance: str, seed: int) -> Any:
    """The training (patch, label) stream of one epoch, before batching and augmentation."""
    import tensorflow as tf

    def shuffled(index: np.ndarray) -> Any:
        return tf.data.Dataset.from_tensor_slices((x[index], y[index].astype(np.float32))).shuffle(
            len(index), seed=seed, reshuffle_each_iteration=True
        )

    if balance != "resample":
        return shuffled(np.arange(len(y)))
    # both classes drawn with equal odds from endless reshuffled streams; an epoch is as long as
    # the paper's undersampled one, but each epoch sees a different slice of the majority class
    by_class = [np.flatnonzero(y == label) for label in (0, 1)]
    minority = min(len(index) for index in by_class)
    return tf.data.Dataset.sample_from_datasets(
        [shuffled(index).repeat() for index in by_class], [0.5, 0.5], seed=seed
    ).take(2 * minority)


def make_datasets(
    config: TrainConfig, data: SplitArrays
) -> tuple[Any, Any, dict[int, float] | None]:
    """The training and validation datasets of a run, and class weights when balanced so."""
    import tensorflow as tf

    from training.augment import build_augmenter
    from training.data import class_weights

    x_train, y_train = data.x["train"], data.y["train"]
    weights = None
    if config.balance == "undersample":
        keep = undersample(y_train, config.seed)
        x_train, y_train = x_train[keep], y_train[keep]
    elif config.balance == "class-weights":
        weights = class_weights(y_train)
    elif config.balance not in ("resample", "none"):
        raise ValueError(f"Unknown balance {config.balance!r}.")
    rescale = rescaler(config.input_size)
    augment = build_augmenter(
        config.seed, config.stain_jitter, config.hed_jitter, dihedral=config.dihedral
    )

    patches = training_patches(x_train, y_train, config.balance, config.seed)
    if config.jpeg_quality:
        from training.augment import jpeg_recompress

        patches = patches.map(
            lambda x, y: (jpeg_recompress(x, config.jpeg_quality), y),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    train = (
        patches.batch(config.batch_size)
        .map(lambda x, y: (augment(rescale(x)), y), num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
    val = (
        tf.data.Dataset.from_tensor_slices(
            (data.x["validation"], data.y["validation"].astype(np.float32))
        )
        .batch(256)
        .map(lambda x, y: (rescale(x), y))
        .cache()
        .prefetch(tf.data.AUTOTUNE)
    )
    return train, val, weights


def clean_training_batches(config: TrainConfig, data: SplitArrays) -> Any:
    """Un-augmented, class-balanced training batches for re-estimating BatchNorm statistics."""
    import tensorflow as tf

    keep = undersample(data.y["train"], config.seed)
    rescale = rescaler(config.input_size)

    return (
        tf.data.Dataset.from_tensor_slices(data.x["train"][keep])
        .shuffle(len(keep), seed=config.seed, reshuffle_each_iteration=True)
        .batch(64, drop_remainder=True)
        .take(RECALIBRATION_BATCHES)
        .map(rescale)
    )


def reestimate_batchnorm(model: Any, batches: Iterable[Any]) -> None:
    """Refit every BatchNorm layer's statistics to ``batches`` (momentum 0.9, then restored)."""
    import keras

    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = 0.9
    for batch in batches:
        model(batch, training=True)
    for layer, momentum in zip(norms, momenta, strict=True):
        layer.momentum = momentum
