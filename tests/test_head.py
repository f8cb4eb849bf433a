"""The head trains from features on disk, batch by batch, exactly as from features in memory."""

import numpy as np

from imgclf.head import HeadConfig, row_batches, train_head
from imgclf.npy_rows import NpyRows, Selection


def _cfg(**kw) -> HeadConfig:
    base = dict(seed=5, hidden_units=[16], input_dropout=0.1, dropout=0.2, learning_rate=0.01,
                batch_size=32, epochs=3, patience=2)
    return HeadConfig(**{**base, **kw})


def _features(n=300, d=12, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 4
    x = (rng.normal(size=(n, d)) + y[:, None] * np.linspace(0.5, 2.0, d)).astype(np.float32)
    return x, y


def test_training_from_rows_on_disk_equals_training_in_memory(tmp_path):
    x, y = _features()
    np.save(tmp_path / "f.npy", x)
    train, val = np.arange(300) % 5 != 0, np.arange(300) % 5 == 0
    rows = NpyRows(tmp_path / "f.npy")
    a, sa = train_head(x[train], y[train], x[val], y[val], 4, _cfg(), verbose=0)
    b, sb = train_head(Selection(rows, train), y[train], Selection(rows, val), y[val], 4, _cfg(), verbose=0)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)
    assert {k: v for k, v in sa.items() if k != "train_seconds"} == {k: v for k, v in sb.items() if k != "train_seconds"}
    assert sa["best_val_accuracy"] > 0.5                 # it learnt the 4 classes, not chance (0.25)


def test_batches_cover_every_row_once_per_epoch_in_an_order_set_by_seed_and_epoch():
    x, y = _features(100)
    orders = []
    for _ in range(2):
        batches = row_batches(x, y, 32, seed=7)
        epochs = []
        for _ in range(3):
            rows = np.concatenate([batches.order[i * 32:(i + 1) * 32] for i in range(len(batches))])
            assert sorted(rows) == list(range(100))
            np.testing.assert_array_equal(batches[0][0], x[batches.order[:32]])
            epochs.append(rows)
            batches.on_epoch_end()
        orders.append(epochs)
    assert all(np.array_equal(a, b) for a, b in zip(*orders))            # same seed, same orders
    assert not np.array_equal(orders[0][0], orders[0][1])                 # a fresh shuffle every epoch
    assert not np.array_equal(row_batches(x, y, 32, seed=8).order, orders[0][0])
    np.testing.assert_array_equal(row_batches(x, y, 32).order, np.arange(100))    # val: in order
