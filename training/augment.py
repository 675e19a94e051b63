"""The paper's augmentation as a tf.data map (train only; validation/test are only rescaled).

rotation ±20°, zoom 20 %, width/height shift 10 %, brightness x0.8–1.2, horizontal flip,
nearest fill (Keras ImageDataGenerator's defaults). Optional stain jitter (hue/saturation)
is off by default and documented in the model card when used.
"""

from __future__ import annotations

from typing import Any


def build_augmenter(seed: int = 42, stain_jitter: float = 0.0) -> Any:
    """A callable mapping a float32 batch in [0, 1] (N,H,W,3) to an augmented batch."""
    import keras
    import tensorflow as tf

    geometric = keras.Sequential(
        [
            keras.layers.RandomRotation(20 / 360, fill_mode="nearest", seed=seed),
            keras.layers.RandomZoom(0.2, 0.2, fill_mode="nearest", seed=seed + 1),
            keras.layers.RandomTranslation(0.1, 0.1, fill_mode="nearest", seed=seed + 2),
            keras.layers.RandomFlip("horizontal", seed=seed + 3),
        ],
        name="paper_augmentation",
    )

    def augment(images: Any) -> Any:
        images = geometric(images, training=True)
        n = tf.shape(images)[0]
        # brightness_range=(0.8, 1.2) in ImageDataGenerator multiplies the pixel values
        factor = tf.random.uniform((n, 1, 1, 1), 0.8, 1.2)
        images = images * factor
        if stain_jitter > 0:
            images = tf.image.random_hue(images, stain_jitter)
            images = tf.image.random_saturation(images, 1 - 4 * stain_jitter, 1 + 4 * stain_jitter)
        return tf.clip_by_value(images, 0.0, 1.0)

    return augment
