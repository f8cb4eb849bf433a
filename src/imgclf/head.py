"""A dense classifier head on frozen bottleneck features, trained deterministically.

Seeds every RNG Keras uses and enables TensorFlow's deterministic ops, so the same features and
params give the same weights; early stopping restores the weights of the best val-loss epoch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class HeadConfig:
    seed: int
    hidden_units: list[int]
    dropout: float
    learning_rate: float
    batch_size: int
    epochs: int
    patience: int


def make_deterministic(seed: int) -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def build_head(x_train: np.ndarray, n_classes: int, cfg: HeadConfig):
    import keras

    norm = keras.layers.Normalization(name="standardise")
    norm.adapt(x_train)  # features are ReLU6 averages; Adam prefers unit scale
    inputs = keras.Input(shape=(x_train.shape[1],), name="bottleneck")
    x = norm(inputs)
    for i, units in enumerate(cfg.hidden_units):
        x = keras.layers.Dense(units, activation="relu", name=f"dense_{i}")(x)
        x = keras.layers.Dropout(cfg.dropout, seed=cfg.seed + i, name=f"dropout_{i}")(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs, name="head")
    model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def train_head(x_train, y_train, x_val, y_val, n_classes: int, cfg: HeadConfig, *,
               live_dir: Path | str | None = None, verbose: int = 2):
    """Returns (model, summary). Training curves go to live_dir through dvclive, if given."""
    import keras

    make_deterministic(cfg.seed)
    model = build_head(x_train, n_classes, cfg)
    callbacks = [keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.patience,
                                               restore_best_weights=True)]
    live = None
    if live_dir is not None:
        from dvclive import Live
        from dvclive.keras import DVCLiveCallback

        # dvcyaml=None: plots are declared in our dvc.yaml, dvclive must not rewrite it.
        live = Live(dir=str(live_dir), dvcyaml=None, save_dvc_exp=False, report=None)
        callbacks.append(DVCLiveCallback(live=live))
    start = time.perf_counter()
    history = model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=cfg.epochs,
                        batch_size=cfg.batch_size, shuffle=True, callbacks=callbacks, verbose=verbose)
    seconds = time.perf_counter() - start
    if live is not None:
        live.end()
    val_loss = history.history["val_loss"]
    best = int(np.argmin(val_loss))
    summary = {
        "epochs_run": len(val_loss),
        "best_epoch": best + 1,
        "best_val_loss": round(float(val_loss[best]), 4),
        "best_val_accuracy": round(float(history.history["val_accuracy"][best]), 4),
        "train_seconds": round(seconds, 1),
        "parameters": int(model.count_params()),
    }
    return model, summary
