"""A dense classifier head on frozen bottleneck features, trained deterministically; early
stopping restores the weights of the best val-loss epoch."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from imgclf.config.params import HeadParams
from imgclf.core.npy_rows import Selection, chunk_rows, row_chunks
from imgclf.models.training import Stopping, fit, make_deterministic, one_cycle, row_batches


class HeadConfig(HeadParams):
    """The validated `train.head` params plus this ensemble member's seed: the schema (whose
    defaults are params.yaml's) is the only place a head setting is defined."""

    seed: int


def learning_rate(cfg: HeadConfig, n_train: int):
    """cfg.learning_rate, or with one_cycle its schedule over all of training's steps."""
    if cfg.schedule == "constant":
        return cfg.learning_rate
    return one_cycle(cfg.learning_rate, n_train, cfg.batch_size, cfg.epochs)


def build_head(x_train, n_classes: int, cfg: HeadConfig):
    """x_train: an array, or a Selection of rows on disk; its statistics are gathered in the same
    chunks either way, so both give the same head."""
    import keras

    norm = keras.layers.Normalization(name="standardise")
    # Features are ReLU6 averages; Adam prefers unit scale.
    rows = chunk_rows(int(np.prod(x_train.shape[1:])) * x_train.dtype.itemsize)
    norm.adapt(x_train.chunks(rows) if isinstance(x_train, Selection) else (c for _, c in row_chunks(x_train, rows)))
    inputs = keras.Input(shape=(x_train.shape[1],), name="bottleneck")
    x = norm(inputs)
    if cfg.input_dropout:
        # Thousands of correlated spatial features and 50k images: the head memorises within a
        # few epochs unless it must not rely on any single cell.
        x = keras.layers.Dropout(cfg.input_dropout, seed=cfg.seed + 100, name="dropout_input")(x)
    for i, units in enumerate(cfg.hidden_units):
        x = keras.layers.Dense(units, activation="relu", name=f"dense_{i}")(x)
        x = keras.layers.Dropout(cfg.dropout, seed=cfg.seed + i, name=f"dropout_{i}")(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs, name="head")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate(cfg, len(x_train))),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def train_head(x_train, y_train, x_val, y_val, n_classes: int, cfg: HeadConfig, *,
               live_dir: Path | str | None = None, verbose: int = 2):
    """Returns (model, summary). x_train and x_val: arrays or Selections of rows on disk (same
    result either way). Training curves go to live_dir through dvclive, if given."""
    make_deterministic(cfg.seed)
    model = build_head(x_train, n_classes, cfg)
    summary = fit(model, row_batches(x_train, np.asarray(y_train), cfg.batch_size, seed=cfg.seed),
                  row_batches(x_val, np.asarray(y_val), cfg.batch_size),
                  Stopping(cfg.epochs, cfg.epochs if cfg.schedule == "one_cycle" else cfg.patience),
                  live_dir=live_dir, verbose=verbose)
    return model, summary
