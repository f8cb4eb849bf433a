"""What training the head and the CNN share: determinism, early stopping, dvclive curves and
the summary written to metrics/train.json."""

from __future__ import annotations

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
