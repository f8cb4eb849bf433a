"""What training the head and the CNN share: determinism, early stopping, dvclive curves and
the summary written to metrics/train.json."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import numpy as np


def make_deterministic(seed: int) -> None:
    """Seed every RNG Keras uses and make TensorFlow's ops deterministic: same data and params,
    same weights."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


# Entropy that sets which rows start mirrored under alternate_mirror, apart from the per-epoch orders.
_MIRROR_STREAM = 0x4D49


def row_batches(x, y: np.ndarray, batch_size: int, seed: int | None = None, *, alternate_mirror: bool = False):
    """Batches of (x rows, labels) as a tf.data pipeline, read when TensorFlow asks for them: x is
    an array or a Selection of rows on disk, so training holds a few batches, never the whole
    feature matrix (or Keras' copies of it). With a seed the rows are shuffled afresh every
    epoch, from (seed, epoch) only: the same order in memory and on disk, run after run.

    alternate_mirror (images, with a seed): each image is mirrored left-right in every other epoch,
    half of them (chosen by the seed) from the first. Every image is then seen both ways in any two
    consecutive epochs; with a coin per epoch, half of them are seen one way only in any two
    (airbench's derandomised flip).

    Why a generator that counts its own epochs, not a keras PyDataset reshuffled in on_epoch_end:
    Keras creates the next epoch's iterator, which starts prefetching, before on_epoch_end, and it
    reads batch 0 once more to learn the shapes; either way batches of two orders get mixed (rows
    trained on twice in an epoch, others not at all). Each pass over this dataset starts the
    generator once, and its epoch is fixed when it starts."""
    import tensorflow as tf

    if alternate_mirror and (seed is None or len(x.shape) < 3):
        raise ValueError("alternate_mirror needs a seed and rows that are images (N, H, W[, C])")
    passes = itertools.count()
    starts_mirrored = np.random.default_rng([seed, _MIRROR_STREAM]).random(len(y)) < 0.5 if alternate_mirror else None

    def batches():
        epoch = next(passes)
        order = np.arange(len(y)) if seed is None else np.random.default_rng([seed, epoch]).permutation(len(y))
        for start in range(0, len(y), batch_size):
            rows = order[start:start + batch_size]
            xb = np.asarray(x[rows])
            if starts_mirrored is not None:
                mirrored = starts_mirrored[rows] ^ bool(epoch % 2)
                xb[mirrored] = xb[mirrored][:, :, ::-1]
            yield xb, y[rows]

    signature = (tf.TensorSpec((None, *x.shape[1:]), tf.as_dtype(x.dtype)), tf.TensorSpec((None,), tf.as_dtype(y.dtype)))
    n_batches = -(-len(y) // batch_size)         # told to Keras, which cannot count a generator
    dataset = tf.data.Dataset.from_generator(batches, output_signature=signature)
    return dataset.apply(tf.data.experimental.assert_cardinality(n_batches)).prefetch(2)


def fit(model, x_train, y_train, x_val, y_val, *, epochs: int, batch_size: int, patience: int,
        live_dir: Path | str | None = None, verbose: int = 2, keep_best: bool = True) -> dict:
    """model.fit (on arrays, or on datasets with y_train and y_val None) with early stopping on val loss (best weights restored unless keep_best is False) and,
    if live_dir is given, per-epoch curves through dvclive. Returns the summary for metrics/train.json."""
    import keras

    callbacks = [keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience,
                                               restore_best_weights=keep_best)]
    live = None
    if live_dir is not None:
        from dvclive import Live
        from dvclive.keras import DVCLiveCallback

        # dvcyaml=None: plots are declared in our dvc.yaml, dvclive must not rewrite it.
        live = Live(dir=str(live_dir), dvcyaml=None, save_dvc_exp=False, report=None)
        callbacks.append(DVCLiveCallback(live=live))
    start = time.perf_counter()
    if y_train is None:        # datasets that batch (and shuffle) themselves
        history = model.fit(x_train, validation_data=x_val, epochs=epochs, shuffle=False,   # they shuffle rows
                            callbacks=callbacks, verbose=verbose)
    else:
        history = model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=epochs,
                            batch_size=batch_size, shuffle=True, callbacks=callbacks, verbose=verbose)
    seconds = time.perf_counter() - start
    if live is not None:
        live.end()
    val_loss = history.history["val_loss"]
    best = int(np.argmin(val_loss))
    return {
        "epochs_run": len(val_loss),
        "best_epoch": best + 1,
        "best_val_loss": round(float(val_loss[best]), 4),
        "best_val_accuracy": round(float(history.history["val_accuracy"][best]), 4),
        "train_seconds": round(seconds, 1),
        "parameters": int(model.count_params()),
    }
