"""A compact CNN trained from scratch on the (offline-augmented) raw images.

VGG-style blocks with batch norm (momentum 0.9, so its running statistics settle within the
few hundred steps a small dataset gives), trained with AdamW, a one-cycle cosine learning rate and label
smoothing: the recipe that gets a small model far in few epochs, which is what a 2-core CPU
allows. Seeded and deterministic like the head.

Two things cost almost nothing and buy accuracy on clothes: random erasing during training (the
model cannot lean on one patch, e.g. a collar, to tell a shirt from a T-shirt) and averaging the
prediction of each image with that of its mirror image (flip test-time augmentation), which the
saved model does by itself so that evaluate, export and predict all see the same classifier.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from imgclf.config.params import CnnParams
from imgclf.core.cpu import native_bfloat16
from imgclf.models.mirror_layer import mirror
from imgclf.models.training import InMemory, Stopping, fit, make_deterministic, one_cycle


class CnnConfig(CnnParams):
    """The validated `train.cnn` params plus this ensemble member's seed: the schema (whose
    defaults are params.yaml's) is the only place a CNN setting is defined."""

    seed: int


def scaled_input(inputs, input_shape):
    """uint8 (H, W) or (H, W, C) -> float32 (H, W, C) in [0, 1]."""
    from keras import layers

    x = layers.Rescaling(1 / 255.0, name="scale")(inputs)
    if len(input_shape) == 2:
        x = layers.Reshape((*input_shape, 1), name="add_channel")(x)
    return x


def build_trunk(shape: tuple[int, int, int], n_classes: int, cfg: CnnConfig):
    """The trained network, from scaled (H, W, C) floats to class probabilities."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=shape, name="scaled")
    x = inputs
    # conv-pool-conv halves each block's resolution after its first conv, so the second conv costs
    # a quarter: the same compute buys 1.5x the width (airbench's CIFAR-10 block; docs/design.md: "The CNN").
    pool_after = 0 if cfg.block == "conv-pool-conv" else 1
    for i, f in enumerate(cfg.filters):
        for j in range(2):
            x = layers.Conv2D(f, 3, padding="same", use_bias=False, name=f"conv{i}_{j}")(x)
            x = layers.BatchNormalization(momentum=0.9, name=f"bn{i}_{j}")(x)
            x = layers.ReLU(name=f"relu{i}_{j}")(x)
            if j == pool_after:
                x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(cfg.dropout, seed=cfg.seed, name="dropout_in")(x)
    x = layers.Dense(cfg.dense_units, use_bias=False, name="dense")(x)
    x = layers.BatchNormalization(momentum=0.9, name="bn_dense")(x)
    x = layers.ReLU(name="relu_dense")(x)
    x = layers.Dropout(cfg.dropout, seed=cfg.seed + 1, name="dropout")(x)
    # Probabilities in float32 even under mixed precision: the loss needs the low ones exact.
    outputs = layers.Dense(n_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="cnn_trunk")


def shifted(x, dy: int, dx: int, name: str):
    """x moved down by dy and right by dx pixels (negative: up/left), zero filled: a pad and a
    crop, plain layers that load in safe mode."""
    from keras import layers

    pad = ((max(dy, 0), max(-dy, 0)), (max(dx, 0), max(-dx, 0)))
    crop = ((max(-dy, 0), max(dy, 0)), (max(-dx, 0), max(dx, 0)))
    return layers.Cropping2D(crop, name=f"{name}_crop")(layers.ZeroPadding2D(pad, name=f"{name}_pad")(x))


def tta_views(x, shape: tuple[int, int, int], *, flip: bool, shift_px: int) -> list:
    """The test-time views whose predictions are averaged: the image, its mirror (flip), and each
    of them moved by shift_px up, down, left and right. A shift the model was trained on is a
    different sample of the same object; averaging several is a free ensemble."""
    bases = [("id", x)] + ([("mirror", mirror(x, shape[1]))] if flip else [])
    views = [v for _, v in bases]
    if shift_px > 0:
        s = shift_px
        for tag, base in bases:
            for dy, dx, where in ((-s, 0, "up"), (s, 0, "down"), (0, -s, "left"), (0, s, "right")):
                views.append(shifted(base, dy, dx, name=f"tta_{tag}_{where}"))
    return views


def build_cnn(input_shape: tuple[int, ...], n_classes: int, cfg: CnnConfig):
    """Returns (training model, inference model); both share the trunk's weights."""
    import keras
    from keras import layers

    shape = (*input_shape[:2], input_shape[2] if len(input_shape) == 3 else 1)
    trunk = build_trunk(shape, n_classes, cfg)

    inputs = keras.Input(shape=input_shape, dtype="uint8", name="image")
    x = scaled_input(inputs, input_shape)
    # Fresh variants every epoch, on top of the offline ones: a fixed set of copies seen a dozen
    # times gets memorised, new shifts and mirrors do not. Integer shifts (nearest), zero fill,
    # as the offline Affine does, so no blur the test images never have.
    if cfg.online_flip:
        x = layers.RandomFlip("horizontal", seed=cfg.seed + 3, name="online_flip")(x)
    if cfg.online_shift_px > 0:
        fy, fx = cfg.online_shift_px / shape[0], cfg.online_shift_px / shape[1]
        x = layers.RandomTranslation((-fy, fy), (-fx, fx), fill_mode="constant", fill_value=0.0,
                                     interpolation="nearest", seed=cfg.seed + 4, name="online_shift")(x)
    if cfg.random_erasing > 0:
        # Only active in training. fill_value None: noise, not a black patch that looks like background.
        x = layers.RandomErasing(factor=(cfg.random_erasing, cfg.random_erasing), value_range=(0, 1),
                                 seed=cfg.seed + 2, name="random_erasing")(x)
    training_model = keras.Model(inputs, trunk(x), name="cnn_training")

    inputs = keras.Input(shape=input_shape, dtype="uint8", name="image")
    x = scaled_input(inputs, input_shape)
    views = tta_views(x, shape, flip=cfg.flip_tta, shift_px=cfg.tta_shift_px)
    outputs = layers.Average(name="tta")([trunk(v) for v in views]) if len(views) > 1 else trunk(x)
    return training_model, keras.Model(inputs, outputs, name="cnn")


def build_cnn_in_precision(input_shape: tuple[int, ...], n_classes: int, cfg: CnnConfig):
    """build_cnn under cfg.precision. mixed_bfloat16: convolutions in bfloat16, weights in float32,
    faster on CPUs with AVX512-BF16 (docs/hardware.md); the policy is recorded in the saved model, and the global
    policy is reset afterwards so nothing built later inherits it."""
    import keras

    keras.mixed_precision.set_global_policy(cfg.precision)
    try:
        return build_cnn(input_shape, n_classes, cfg)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def make_optimizer(cfg: CnnConfig, learning_rate):
    """The optimizer of cfg; its decay shrinks every weight, batch-norm scales and biases included
    (exempting those was measured and lost: docs/results.md, cnn-nodecay)."""
    import keras

    # EMA: the optimizer averages the weights step by step and writes the average into the model at the
    # end of fit; the average of the last ~1/(1-ema) steps generalises better than the last step's weights.
    ema = {"use_ema": True, "ema_momentum": cfg.ema} if cfg.ema > 0 else {}
    if cfg.optimizer == "sgd":
        # The classic recipe for batch-normed CNNs: Nesterov momentum, decay as in L2 (lr * wd per step).
        optimizer = keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay, **ema)
    else:
        optimizer = keras.optimizers.AdamW(learning_rate, weight_decay=cfg.weight_decay, **ema)
    return optimizer


def train_cnn(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
              n_classes: int, cfg: CnnConfig, *, live_dir: Path | str | None = None, verbose: int = 2):
    """Returns (inference model, summary); the weights of the best val-loss epoch are kept."""
    import keras

    make_deterministic(cfg.seed)
    if cfg.precision == "mixed_bfloat16" and native_bfloat16() is False:
        warnings.warn("train.cnn.precision is mixed_bfloat16 but this CPU has no AVX512-BF16/AMX: bfloat16 is "
                      "emulated and training runs several times slower than with float32", stacklevel=2)
    model, inference = build_cnn_in_precision(tuple(x_train.shape[1:]), n_classes, cfg)
    schedule = one_cycle(cfg.learning_rate, len(x_train), cfg.batch_size, cfg.epochs)
    optimizer = make_optimizer(cfg, schedule)
    model.compile(optimizer=optimizer,
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
                  metrics=["accuracy"])
    # patience = epochs: the schedule runs to its end; the best val-loss epoch's weights are kept, or,
    # with EMA, the average (restoring an epoch's raw weights would throw the average away).
    stopping = Stopping(cfg.epochs, patience=cfg.epochs, keep_best=cfg.ema == 0)
    one_hot = lambda y: keras.utils.to_categorical(y, n_classes)  # noqa: E731
    train, val = InMemory(x_train, one_hot(y_train), cfg.batch_size), InMemory(x_val, one_hot(y_val), cfg.batch_size)
    summary = fit(model, train, val, stopping, live_dir=live_dir, verbose=verbose)
    # Loss with label smoothing is not comparable across models: recompile plain for evaluation.
    inference.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    summary["parameters"] = int(inference.count_params())
    return inference, summary
