"""What training the head and the CNN share: determinism, early stopping, dvclive curves and
the summary written to metrics/train.json."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def make_deterministic(seed: int) -> None:
    """Seed every RNG Keras uses and make TensorFlow's ops deterministic: same data and params,
    same weights."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def row_batches(x, y: np.ndarray, batch_size: int, seed: int | None = None):
    """Batches of (x rows, labels) as a tf.data pipeline, read when TensorFlow asks for them: x is
    an array or a Selection of rows on disk, so training holds a few batches, never the whole
    feature matrix (or Keras' copies of it). With a seed the rows are shuffled afresh every
    epoch, from (seed, epoch) only: the same order in memory and on disk, run after run.

    Why a generator that counts its own epochs, not a keras PyDataset reshuffled in on_epoch_end:
    Keras creates the next epoch's iterator, which starts prefetching, before on_epoch_end, and it
    reads batch 0 once more to learn the shapes; either way batches of two orders get mixed (rows
    trained on twice in an epoch, others not at all). Each pass over this dataset starts the
    generator once, and its epoch is fixed when it starts."""
    import tensorflow as tf

    passes = itertools.count()

    def batches():
        epoch = next(passes)
        order = np.arange(len(y)) if seed is None else np.random.default_rng([seed, epoch]).permutation(len(y))
        for start in range(0, len(y), batch_size):
            rows = order[start:start + batch_size]
            yield np.asarray(x[rows]), y[rows]

    signature = (tf.TensorSpec((None, *x.shape[1:]), tf.as_dtype(x.dtype)), tf.TensorSpec((None,), tf.as_dtype(y.dtype)))
    n_batches = -(-len(y) // batch_size)         # told to Keras, which cannot count a generator
    dataset = tf.data.Dataset.from_generator(batches, output_signature=signature)
    # No autotuning: a fixed prefetch of 2 needs no tuner, and deleting an iterator waits for the
    # tuner thread to wake from its sleep, which stalled every process thread for about 4 s at
    # the start of one epoch in three (the head's train time, docs/results.md).
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.apply(tf.data.experimental.assert_cardinality(n_batches)).prefetch(2).with_options(options)


def one_cycle(peak: float, rows: int, batch_size: int, epochs: int):
    """The learning rate over training's steps: a linear rise over the first tenth to `peak`, then
    a cosine fall to 0 (the head's one_cycle and the CNN's schedule)."""
    import keras

    steps = -(-rows // batch_size) * epochs
    return keras.optimizers.schedules.CosineDecay(0.0, decay_steps=steps - steps // 10, warmup_target=peak,
                                                  warmup_steps=steps // 10)


@dataclass(frozen=True)
class InMemory:
    """Arrays that Keras batches and shuffles itself (the CNN); data that
    batches itself (row_batches) is passed to fit as it is."""
    x: np.ndarray
    y: np.ndarray
    batch_size: int


@dataclass(frozen=True)
class Stopping:
    """How long to train: at most `epochs`, stopping `patience` epochs after the best val loss;
    keep_best restores that epoch's weights (the CNN's EMA keeps its average instead)."""
    epochs: int
    patience: int
    keep_best: bool = True


def fit(model, train, val, stopping: Stopping, *, live_dir: Path | str | None = None, verbose: int = 2) -> dict:
    """model.fit with early stopping on val loss and, if live_dir is given, per-epoch curves through
    dvclive. train and val: both InMemory, or both data that batches itself. Returns the summary
    for metrics/train.json."""
    import keras

    callbacks = [keras.callbacks.EarlyStopping(monitor="val_loss", patience=stopping.patience,
                                               restore_best_weights=stopping.keep_best)]
    live = None
    if live_dir is not None:
        from dvclive import Live
        from dvclive.keras import DVCLiveCallback

        # dvcyaml=None: plots are declared in our dvc.yaml, dvclive must not rewrite it.
        live = Live(dir=str(live_dir), dvcyaml=None, save_dvc_exp=False, report=None)
        callbacks.append(DVCLiveCallback(live=live))
    if isinstance(train, InMemory):
        data = dict(x=train.x, y=train.y, validation_data=(val.x, val.y), batch_size=train.batch_size, shuffle=True)
    else:                      # it shuffles its rows itself
        data = dict(x=train, validation_data=val, shuffle=False)
    start = time.perf_counter()
    history = model.fit(**data, epochs=stopping.epochs, callbacks=callbacks, verbose=verbose)
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
