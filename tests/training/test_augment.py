"""Training-time augmentation and class balancing beyond the paper's fixed undersampling."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from training.augment import build_augmenter, jitter_hed, jpeg_recompress  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.pipeline import make_datasets, training_patches  # noqa: E402
from training.run_data import SplitArrays  # noqa: E402


def _images(n: int = 8, size: int = 50) -> np.ndarray:
    return np.random.default_rng(0).uniform(0.05, 1.0, (n, size, size, 3)).astype(np.float32)


def test_hed_jitter_of_zero_is_the_identity_and_nonzero_changes_the_stain() -> None:
    images = _images()
    unchanged = jitter_hed(tf.constant(images), 0.0).numpy()
    assert np.abs(unchanged - images).max() < 1e-4  # RGB -> HED -> RGB round trip
    jittered = jitter_hed(tf.constant(images), 0.2).numpy()
    assert jittered.shape == images.shape
    assert jittered.min() >= 0.0 and jittered.max() <= 1.0
    assert np.abs(jittered - images).mean() > 0.01


def test_dihedral_augmentation_keeps_shape_and_range() -> None:
    augment = build_augmenter(seed=1, hed_jitter=0.1, dihedral=True)
    out = augment(tf.constant(_images(16))).numpy()
    assert out.shape == (16, 50, 50, 3)
    assert out.min() >= 0.0 and out.max() <= 1.0


def _tissue_like_patch() -> np.ndarray:
    import cv2

    noise = np.random.default_rng(1).integers(0, 256, (50, 50, 3), dtype=np.uint8)
    return np.asarray(cv2.GaussianBlur(noise, (5, 5), 2))


def test_jpeg_recompression_changes_about_half_the_patches_mildly() -> None:
    patch = _tissue_like_patch()
    outs = [jpeg_recompress(tf.constant(patch), 60).numpy() for _ in range(40)]
    assert all(o.shape == patch.shape and o.dtype == np.uint8 for o in outs)
    diffs = np.array([np.abs(o.astype(int) - patch).mean() for o in outs])
    assert 8 <= (diffs == 0).sum() <= 32  # recompressed with probability 1/2
    changed = diffs[diffs > 0]
    assert changed.min() > 0.5 and changed.max() < 20  # real artefacts, not a different image


def test_training_stream_with_jpeg_recompression_yields_augmented_batches(tmp_path) -> None:
    patches = np.stack([_tissue_like_patch()] * 64)
    labels = np.array([0, 1] * 32, np.int32)
    data = SplitArrays(
        x={"train": patches, "validation": patches[:8]},
        y={"train": labels, "validation": labels[:8]},
        patients={},
        records={},
        skipped=0,
    )
    config = TrainConfig(str(tmp_path), str(tmp_path), jpeg_quality=70)
    train, _, _ = make_datasets(config, data)
    images, batch_labels = next(iter(train))
    assert images.shape == (32, 50, 50, 3) and batch_labels.shape == (32,)
    assert float(tf.reduce_min(images)) >= 0.0 and float(tf.reduce_max(images)) <= 1.0


def _epochs(balance: str, n_epochs: int = 4) -> list[tuple[np.ndarray, np.ndarray]]:
    # 200 negatives, 20 positives; each patch carries its own index so draws can be identified
    index = np.arange(220)
    x = np.stack([index % 256, index // 256, index * 0], axis=-1).astype(np.uint8)[:, None, None]
    y = (index >= 200).astype(np.int64)
    stream = training_patches(x, y, balance, seed=3)
    epochs = []
    for _ in range(n_epochs):
        pairs = list(stream.as_numpy_iterator())
        ids = np.array([int(p[0][0, 0, 0]) + 256 * int(p[0][0, 0, 1]) for p in pairs])
        epochs.append((ids, np.array([p[1] for p in pairs])))
    return epochs


def test_resample_draws_balanced_epochs_from_the_whole_majority() -> None:
    negatives_seen: set[int] = set()
    for ids, labels in _epochs("resample"):
        assert len(ids) == 40  # twice the minority, as long as an undersampled epoch
        assert 10 <= labels.sum() <= 30  # both classes drawn with equal odds
        assert np.array_equal(labels, (ids >= 200).astype(np.float32))  # labels follow patches
        negatives_seen.update(ids[labels == 0].tolist())
    # one fixed undersampled subset would only ever show 20 negatives
    assert len(negatives_seen) > 40


def test_other_balances_stream_every_patch_once_per_epoch() -> None:
    for ids, _ in _epochs("none", n_epochs=2):
        assert sorted(ids.tolist()) == list(range(220))


def test_recalibrated_validation_refits_batchnorm_to_clean_patches_and_logs_val_figures() -> None:
    import keras

    from training.callbacks import recalibrated_validation

    inputs = keras.Input((4, 4, 3))
    norm = keras.layers.BatchNormalization(momentum=0.99)
    outputs = keras.layers.Dense(1, activation="sigmoid")(
        keras.layers.GlobalAveragePooling2D()(norm(inputs))
    )
    model = keras.Model(inputs, outputs)
    model.compile(loss="binary_crossentropy", metrics=["accuracy"])
    clean = [np.full((8, 4, 4, 3), 0.7, np.float32) for _ in range(64)]
    x_val = np.full((6, 4, 4, 3), 0.7, np.float32)
    y_val = np.array([0, 1, 0, 1, 0, 1], np.float32)
    val = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(3)

    callback = recalibrated_validation(clean, val)
    callback.set_model(model)
    logs: dict[str, float] = {"loss": 1.0}
    callback.on_epoch_end(0, logs)

    # 64 batches at momentum 0.9 move the moving mean from its initial 0 to the clean mean
    assert np.allclose(keras.ops.convert_to_numpy(norm.moving_mean), 0.7, atol=0.01)
    assert norm.momentum == 0.99  # restored for training
    assert {"val_loss", "val_accuracy"} <= set(logs)
