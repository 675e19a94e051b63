"""The paper's augmentation as a tf.data map (train only; validation/test are only rescaled).

rotation ±20°, zoom 20 %, width/height shift 10 %, brightness x0.8–1.2, horizontal flip,
nearest fill (Keras ImageDataGenerator's defaults). Options beyond the paper, off by default and
recorded in the run's config and the model card when used:

- ``stain_jitter``: hue/saturation jitter in RGB (HSV).
- ``hed_jitter``: per-image scale and shift of the haematoxylin, eosin and DAB optical densities
  (Tellez et al. 2018/2019), which mimics slide-to-slide staining differences more faithfully
  than hue jitter.
- ``dihedral``: vertical flips and transposes as well, so all 8 orientations occur — tissue has
  no preferred orientation; the paper only flips horizontally.
- ``jpeg_quality``: half of the patches are JPEG-recompressed at a random quality between this
  and 100, on a randomly offset 8x8 block grid, before anything else. Whole-slide pyramids store
  JPEG tiles; a model trained only on lossless PNGs can lose several F1 points on them (measured:
  Q90 recompression lowered one validation patient's F1 from 0.874 to 0.716 for one recipe).
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Ruifrok & Johnston stain vectors (rows: haematoxylin, eosin, DAB), as in skimage.color
RGB_FROM_HED = np.array(
    [[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], dtype=np.float32
)
RGB_FROM_HED /= np.linalg.norm(RGB_FROM_HED, axis=1, keepdims=True)
HED_FROM_RGB = np.linalg.inv(RGB_FROM_HED).astype(np.float32)
_MIN_INTENSITY = 1.0 / 255.0  # keeps log() finite on pure black pixels


def build_augmenter(
    seed: int = 42, stain_jitter: float = 0.0, hed_jitter: float = 0.0, dihedral: bool = False
) -> Any:
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

    def per_image(n: Any) -> Any:
        return tf.random.uniform((n, 1, 1, 1)) < 0.5

    def augment(images: Any) -> Any:
        n = tf.shape(images)[0]
        if dihedral:
            images = tf.where(per_image(n), tf.transpose(images, (0, 2, 1, 3)), images)
            images = tf.where(per_image(n), tf.reverse(images, axis=[1]), images)
        images = geometric(images, training=True)
        if hed_jitter > 0:
            images = jitter_hed(images, hed_jitter)
        # brightness_range=(0.8, 1.2) in ImageDataGenerator multiplies the pixel values
        factor = tf.random.uniform((n, 1, 1, 1), 0.8, 1.2)
        images = images * factor
        if stain_jitter > 0:
            images = tf.image.random_hue(images, stain_jitter)
            images = tf.image.random_saturation(images, 1 - 4 * stain_jitter, 1 + 4 * stain_jitter)
        return tf.clip_by_value(images, 0.0, 1.0)

    return augment


JPEG_BLOCK = 8


def jpeg_recompress(patch: Any, min_quality: int) -> Any:
    """One uint8 (H,W,3) patch, JPEG-recompressed with probability 1/2 at quality U(min, 100).

    The patch is reflect-padded at a random offset first, so its pixels fall on a different 8x8
    block grid each time — in a slide the tiles' grid rarely lines up with the 50-px patch grid.
    """
    import tensorflow as tf

    height, width = tf.shape(patch)[0], tf.shape(patch)[1]
    dy, dx = tf.unstack(tf.random.uniform((2,), 0, JPEG_BLOCK, dtype=tf.int32))
    padded = tf.pad(patch, [[dy, JPEG_BLOCK - dy], [dx, JPEG_BLOCK - dx], [0, 0]], mode="REFLECT")
    quality = tf.random.uniform((), min_quality, 101, dtype=tf.int32)
    recompressed = tf.image.adjust_jpeg_quality(padded, quality)[dy : dy + height, dx : dx + width]
    return tf.where(tf.random.uniform(()) < 0.5, recompressed, patch)


def jitter_hed(images: Any, sigma: float) -> Any:
    """Scale each image's stain concentrations by U(1-σ, 1+σ) and shift them by U(-σ, σ)."""
    import tensorflow as tf

    n = tf.shape(images)[0]
    optical_density = -tf.math.log(tf.maximum(images, _MIN_INTENSITY))
    stains = tf.einsum("nhwc,cd->nhwd", optical_density, HED_FROM_RGB)
    scale = tf.random.uniform((n, 1, 1, 3), 1 - sigma, 1 + sigma)
    shift = tf.random.uniform((n, 1, 1, 3), -sigma, sigma)
    stains = stains * scale + shift
    optical_density = tf.einsum("nhwd,dc->nhwc", stains, RGB_FROM_HED)
    return tf.clip_by_value(tf.exp(-optical_density), 0.0, 1.0)
