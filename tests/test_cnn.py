"""The CNN's training-only augmentation and its built-in test-time augmentation."""

import keras
import numpy as np
import pytest

from imgclf.models.cnn import CnnConfig, build_cnn, train_cnn
from imgclf.models.training import row_batches
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


def _epoch_served(dataset, n: int) -> dict[int, bool]:
    """One pass over row_batches of the images made by _tagged: row id -> served mirrored."""
    served = np.concatenate([np.asarray(xb) for xb, _ in dataset])
    ids = served[:, 0, 0].astype(int) + served[:, 0, -1].astype(int) - 1   # the tag is at one corner only
    mirrored = served[:, 0, -1] > 0
    assert sorted(ids) == list(range(n))
    return dict(zip(ids.tolist(), mirrored.tolist()))


def _tagged(n: int) -> np.ndarray:
    """n (4, 6) images, row i tagged i + 1 in its top-left pixel: a mirror moves the tag to the top right."""
    x = np.zeros((n, 4, 6), np.uint8)
    x[:, 0, 0] = np.arange(1, n + 1)
    x[:, 1:, :2] = 200                     # the rest must mirror with it
    return x


def test_alternating_flip_serves_every_image_both_ways_in_any_two_epochs():
    n = 60
    x, y = _tagged(n), np.arange(n) % 3
    data = row_batches(x, y, 16, seed=5, alternate_mirror=True)
    first, second, third = (_epoch_served(data, n) for _ in range(3))
    assert all(first[i] != second[i] for i in range(n))        # each image switches every epoch
    assert first == third
    assert 15 < sum(first.values()) < 45                       # about half start mirrored
    assert first == _epoch_served(row_batches(x, y, 16, seed=5, alternate_mirror=True), n)   # set by the seed
    assert first != _epoch_served(row_batches(x, y, 16, seed=6, alternate_mirror=True), n)
    for xb, yb in data:                                        # whole images mirror, labels stay with them
        xb, yb = np.asarray(xb), np.asarray(yb)
        ids = xb[:, 0, 0].astype(int) + xb[:, 0, -1].astype(int) - 1
        assert (yb == y[ids]).all()
        for img, i in zip(xb, ids):
            assert np.array_equal(img, x[i]) or np.array_equal(img, x[i][:, ::-1])


def test_train_cnn_with_alternating_flip_mirrors_in_the_data_not_in_the_model(monkeypatch):
    import imgclf.models.cnn

    calls = []

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return row_batches(*args, **kwargs)

    monkeypatch.setattr(imgclf.models.cnn, "row_batches", spy)
    images, labels = synthetic_images(120, 0)
    cfg = _cfg(alternating_flip=True, online_shift_px=0)
    training, _ = build_cnn((28, 28), 10, cfg)
    assert "online_flip" not in [layer.name for layer in training.layers]   # no coin on top of the schedule
    (a, summary), (b, _) = (train_cnn(images[:96], labels[:96], images[96:], labels[96:], 10, cfg, verbose=0)
                            for _ in range(2))
    assert [c.get("alternate_mirror", False) for c in calls] == [True, False] * 2     # train, val; twice
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert summary["epochs_run"] == 1
