"""The CNN's training-only augmentation and its built-in test-time augmentation."""

import keras
import numpy as np
import pytest

from imgclf.models.cnn import CnnConfig, build_cnn, train_cnn
from tests.conftest import synthetic_images


def _cfg(**kw) -> CnnConfig:
    base = dict(seed=3, filters=[4, 8], dense_units=16, dropout=0.2, learning_rate=0.01, weight_decay=0.02,
                label_smoothing=0.1, batch_size=32, epochs=1, random_erasing=0.5, flip_tta=True,
                online_flip=True, online_shift_px=2, tta_shift_px=1)
    return CnnConfig(**{**base, **kw})


def _shift(a: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """(N, H, W, C) moved down dy and right dx pixels, zero filled."""
    out = np.zeros_like(a)
    h, w = a.shape[1:3]
    out[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        a[:, max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return out


def _model_and_images(shape, n: int, seed: int, **cfg):
    """(inference model, its trunk, n uint8 images, the same scaled to (n, H, W, C) floats)."""
    _, inference = build_cnn(shape, 10, _cfg(**cfg))
    x = np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)
    scaled = x.astype("float32").reshape(n, shape[0], shape[1], -1) / 255.0
    return inference, inference.get_layer("cnn_trunk"), x, scaled


@pytest.mark.parametrize("shape", [(28, 28), (20, 24, 3)])
def test_shift_tta_averages_ten_views(shape):
    inference, trunk, x, scaled = _model_and_images(shape, 5, 1, tta_shift_px=2)
    views = [_shift(base, dy, dx) for base in (scaled, scaled[:, :, ::-1])
             for dy, dx in ((0, 0), (-2, 0), (2, 0), (0, -2), (0, 2))]
    expected = np.mean([trunk.predict(v, verbose=0) for v in views], axis=0)
    np.testing.assert_allclose(inference.predict(x, verbose=0), expected, atol=1e-6)


@pytest.mark.parametrize("shape", [(28, 28), (20, 24, 3)])
def test_flip_tta_is_the_mean_of_the_image_and_its_mirror(shape):
    inference, trunk, x, scaled = _model_and_images(shape, 6, 0, tta_shift_px=0)
    expected = (trunk.predict(scaled, verbose=0) + trunk.predict(scaled[:, :, ::-1].copy(), verbose=0)) / 2
    np.testing.assert_allclose(inference.predict(x, verbose=0), expected, atol=1e-6)
    # An asymmetric image is not its own mirror: the two halves of the vote differ.
    assert not np.allclose(trunk.predict(scaled, verbose=0), trunk.predict(scaled[:, :, ::-1].copy(), verbose=0))


def test_random_erasing_only_in_training():
    training, _ = build_cnn((28, 28), 10, _cfg())
    erasing = training.get_layer("random_erasing")
    x = np.full((64, 28, 28, 1), 0.5, np.float32)
    np.testing.assert_array_equal(np.asarray(erasing(x, training=False)), x)
    erased = np.asarray(erasing(x, training=True))
    touched = (np.abs(erased - x) > 1e-6).any(axis=(1, 2, 3))
    assert 0 < touched.sum() < 64  # some images, not all (p = 0.5)


def test_online_augmentation_makes_whole_pixel_shifts_and_mirrors_only_in_training():
    training, _ = build_cnn((28, 28), 10, _cfg(online_shift_px=2))
    x = np.random.default_rng(2).random((64, 28, 28, 1)).astype("float32")
    for name in ("online_flip", "online_shift"):
        np.testing.assert_array_equal(np.asarray(training.get_layer(name)(x, training=False)), x)
    flipped = np.asarray(training.get_layer("online_flip")(x, training=True))
    mirrored = np.array([np.array_equal(f, a[:, ::-1]) for f, a in zip(flipped, x)])
    assert all(np.array_equal(f, a) or m for f, a, m in zip(flipped, x, mirrored))
    assert 0 < mirrored.sum() < 64
    moved = np.asarray(training.get_layer("online_shift")(x, training=True))
    offsets = []
    for m, a in zip(moved, x):
        # Every output is the input moved by whole pixels within ±2, zero filled: no blur.
        match = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if np.array_equal(m, _shift(a[None], dy, dx)[0])]
        assert match, "online shift is not a whole-pixel, zero-filled shift within ±2 px"
        offsets.append(match[0])
    assert len(set(offsets)) > 5


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_trained_cnn_is_deterministic_and_saves_in_safe_mode(tmp_path, optimizer):
    images, labels = synthetic_images(200, 0)
    cfg = _cfg(optimizer=optimizer, learning_rate=0.05 if optimizer == "sgd" else 0.01)
    runs = [train_cnn(images[:160], labels[:160], images[160:], labels[160:], 10, cfg, verbose=0)
            for _ in range(2)]
    (a, summary), (b, _) = runs
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    path = tmp_path / "cnn.keras"
    a.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(loaded.predict(images[160:], verbose=0), a.predict(images[160:], verbose=0))
    assert summary["parameters"] == a.count_params()


def test_conv_pool_conv_runs_the_second_conv_of_each_block_at_half_resolution():
    shapes = {}
    for block in ("conv-conv-pool", "conv-pool-conv"):
        trunk = build_cnn((28, 28), 10, _cfg(filters=[4, 8, 16], block=block))[1].get_layer("cnn_trunk")
        shapes[block] = [(trunk.get_layer(f"conv{i}_0").output.shape[1], trunk.get_layer(f"conv{i}_1").output.shape[1])
                         for i in range(3)]
        params = shapes.setdefault("params", set())
        params.add(trunk.count_params())
    assert shapes["conv-conv-pool"] == [(28, 28), (14, 14), (7, 7)]
    assert shapes["conv-pool-conv"] == [(28, 14), (14, 7), (7, 3)]
    # Same weights either way (the flattened 3x3 map feeds the dense layer in both): only the cost differs.
    assert len(shapes["params"]) == 1


def test_bfloat16_without_hardware_support_warns(monkeypatch):
    monkeypatch.setattr("imgclf.models.cnn.native_bfloat16", lambda: False)
    images, labels = synthetic_images(64, 0)
    with pytest.warns(UserWarning, match="emulated"):
        train_cnn(images[:48], labels[:48], images[48:], labels[48:], 10,
                  _cfg(precision="mixed_bfloat16", tta_shift_px=0), verbose=0)


def test_ema_keeps_the_average_of_the_weights_and_leaves_training_unchanged():
    """EMA must not alter the raw trajectory (same data, same steps) and must hand back the average:
    with a vanishing momentum the average is the last step's weights; with 0.9 it differs from them,
    while batch-norm statistics (not averaged) are the raw run's."""
    images, labels = synthetic_images(200, 0)
    train = lambda **kw: train_cnn(images[:160], labels[:160], images[160:], labels[160:], 10,  # noqa: E731
                                   _cfg(random_erasing=0.0, **kw), verbose=0)[0]
    raw, tiny, avg = train(), train(ema=1e-7), train(ema=0.9)
    for r, t in zip(raw.trainable_weights, tiny.trainable_weights):
        np.testing.assert_allclose(np.asarray(t), np.asarray(r), atol=1e-5)
    moved = [not np.allclose(np.asarray(a), np.asarray(r), atol=1e-5)
             for r, a in zip(raw.trainable_weights, avg.trainable_weights)]
    assert sum(moved) >= len(moved) // 2, moved
    for r, a in zip(raw.non_trainable_weights, avg.non_trainable_weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(r))
