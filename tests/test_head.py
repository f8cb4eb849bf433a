"""The head trains from features on disk, batch by batch, exactly as from features in memory."""

import numpy as np
import pytest

from imgclf.core.npy_rows import NpyRows, Selection, in_memory_if_it_fits
from imgclf.models.head import HeadConfig, learning_rate, train_head
from imgclf.models.training import Stopping, fit, row_batches


def _cfg(**kw) -> HeadConfig:
    base = dict(seed=5, hidden_units=[16], input_dropout=0.1, dropout=0.2, learning_rate=0.01,
                batch_size=32, epochs=8, patience=8)
    return HeadConfig(**{**base, **kw})


def _features(n=300, d=12, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 4
    x = (rng.normal(size=(n, d)) + y[:, None] * np.linspace(0.5, 2.0, d)).astype(np.float32)
    return x, y


@pytest.mark.parametrize("schedule", ["one_cycle", "constant"])
def test_training_from_rows_on_disk_equals_training_in_memory(tmp_path, schedule):
    """The train stage reads the features into memory when they fit: the head must not notice."""
    x, y = _features()
    np.save(tmp_path / "f.npy", x)
    train, val = np.arange(300) % 5 != 0, np.arange(300) % 5 == 0
    rows = NpyRows(tmp_path / "f.npy")
    loaded = in_memory_if_it_fits([Selection(rows, train), Selection(rows, val)])
    assert all(isinstance(s, np.ndarray) for s in loaded)
    assert in_memory_if_it_fits([Selection(rows, train)], share=0.0)[0].__class__ is Selection
    a, sa = train_head(*loaded[:1], y[train], loaded[1], y[val], 4, _cfg(schedule=schedule), verbose=0)
    b, sb = train_head(Selection(rows, train), y[train], Selection(rows, val), y[val], 4, _cfg(schedule=schedule), verbose=0)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)
    assert {k: v for k, v in sa.items() if k != "train_seconds"} == {k: v for k, v in sb.items() if k != "train_seconds"}
    assert sa["best_val_accuracy"] > 0.5                 # it learnt the 4 classes, not chance (0.25)


def _rows_keras_trains_on(seed: int, n: int = 100, batch: int = 16, epochs: int = 4) -> list[np.ndarray]:
    """The row ids of every batch model.fit consumed, in order, through row_batches."""
    import keras

    seen: list[np.ndarray] = []

    class Record(keras.layers.Layer):
        def call(self, inputs, training=None):
            if training:
                seen.append(np.asarray(inputs)[:, 0].astype(int))
            return inputs

    ids = np.arange(n, dtype=np.float32)[:, None]
    inputs = keras.Input((1,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(Record()(inputs)))
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"], run_eagerly=True)
    fit(model, row_batches(ids, np.arange(n) % 2, batch, seed=seed), row_batches(ids, np.arange(n) % 2, batch),
        Stopping(epochs, patience=epochs), verbose=0)
    rows = np.concatenate(seen)
    return [rows[e * n:(e + 1) * n] for e in range(epochs)]


def test_keras_trains_on_every_row_once_per_epoch_in_an_order_set_by_seed_and_epoch():
    """What model.fit actually consumes: Keras prefetches the next epoch's batches before its
    on_epoch_end, so an order switched there mixes epochs; counted from the batches served, each
    epoch is a permutation of all rows, a new one each epoch, the same for the same seed."""
    first, again, other = _rows_keras_trains_on(7), _rows_keras_trains_on(7), _rows_keras_trains_on(8)
    for epoch in first:
        assert sorted(epoch) == list(range(100))
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert len({tuple(e) for e in first}) == len(first)
    assert not np.array_equal(first[0], other[0])


def test_one_cycle_warms_up_to_the_peak_then_decays_to_zero_and_runs_every_epoch():
    cfg = _cfg(schedule="one_cycle", learning_rate=0.01, batch_size=10, epochs=5, patience=1)
    schedule = learning_rate(cfg, 100)                 # 10 steps an epoch, 50 in all, 5 of warm-up
    rates = [float(schedule(step)) for step in (0, 5, 27, 50)]
    assert rates[0] == 0.0 and abs(rates[1] - 0.01) < 1e-9 and 0 < rates[2] < 0.01 and rates[3] < 1e-9
    assert learning_rate(_cfg(schedule="constant", learning_rate=0.01), 100) == 0.01
    x, y = _features()
    _, summary = train_head(x[:240], y[:240], x[240:], y[240:], 4, cfg, verbose=0)
    assert summary["epochs_run"] == 5                  # patience applies to the constant schedule only
