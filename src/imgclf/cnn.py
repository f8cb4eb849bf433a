"""A compact CNN trained from scratch on the (offline-augmented) raw images.

VGG-style blocks with batch norm (momentum 0.9, so its running statistics settle within the
few hundred steps a small dataset gives), trained with AdamW, a one-cycle cosine learning rate and label
smoothing: the recipe that gets a small model far in few epochs, which is what a 2-core CPU
allows. Seeded and deterministic like the head.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgclf.training import fit, make_deterministic


@dataclass
class CnnConfig:
    seed: int
    filters: list[int]
    dense_units: int
    dropout: float
    learning_rate: float
    weight_decay: float
    label_smoothing: float
    batch_size: int
    epochs: int


def build_cnn(input_shape: tuple[int, ...], n_classes: int, cfg: CnnConfig):
    import keras
    from keras import layers

    inputs = keras.Input(shape=input_shape, dtype="uint8", name="image")
    x = layers.Rescaling(1 / 255.0, name="scale")(inputs)
    if len(input_shape) == 2:
        x = layers.Reshape((*input_shape, 1), name="add_channel")(x)
    for i, f in enumerate(cfg.filters):
        for j in range(2):
            x = layers.Conv2D(f, 3, padding="same", use_bias=False, name=f"conv{i}_{j}")(x)
            x = layers.BatchNormalization(momentum=0.9, name=f"bn{i}_{j}")(x)
            x = layers.ReLU(name=f"relu{i}_{j}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(cfg.dropout, seed=cfg.seed, name="dropout_in")(x)
    x = layers.Dense(cfg.dense_units, use_bias=False, name="dense")(x)
    x = layers.BatchNormalization(momentum=0.9, name="bn_dense")(x)
    x = layers.ReLU(name="relu_dense")(x)
    x = layers.Dropout(cfg.dropout, seed=cfg.seed + 1, name="dropout")(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="cnn")


def train_cnn(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
              n_classes: int, cfg: CnnConfig, *, live_dir: Path | str | None = None, verbose: int = 2):
    """Returns (model, summary); the weights of the best val-loss epoch are kept."""
    import keras

    make_deterministic(cfg.seed)
    model = build_cnn(tuple(x_train.shape[1:]), n_classes, cfg)
    steps = math.ceil(len(x_train) / cfg.batch_size) * cfg.epochs
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=steps - steps // 10, warmup_target=cfg.learning_rate, warmup_steps=steps // 10)
    model.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=cfg.weight_decay),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
                  metrics=["accuracy"])
    one_hot = lambda y: keras.utils.to_categorical(y, n_classes)  # noqa: E731
    # patience = epochs: the schedule runs to its end; the best val-loss epoch's weights are kept.
    summary = fit(model, x_train, one_hot(y_train), x_val, one_hot(y_val), epochs=cfg.epochs,
                  batch_size=cfg.batch_size, patience=cfg.epochs, live_dir=live_dir, verbose=verbose)
    # Loss with label smoothing is not comparable across models: recompile plain for evaluation.
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model, summary
