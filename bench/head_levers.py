"""What makes the head train in seconds: one row per lever, on the workspace's cached features.

    python bench/head_levers.py                       # every lever below, seed 42
    python bench/head_levers.py '{"name": "x", "bs": 512, "epochs": 8, "peak": 2e-3, "schedule": "one_cycle"}'

Each configuration trains the head in this process on data/features (train and val read into
memory once) and scores val and test WITHOUT flip TTA (the pipeline's evaluate adds it), so the
rows compare levers with each other, not with metrics/evaluate.json. `reduce` puts a dense layer
over the 64 channels of each of the 36 grid cells (a 1x1 convolution) before the hidden layer;
`pca` trains on the standardised features' top principal components (fitted on a quarter of
train, time included), a fixed projection an export could fold into the first dense layer;
`drop_cells` drops whole grid cells (64 channels) at the input instead of single features.
Prints one JSON line per configuration and appends it to bench/out/head_levers.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

LEVERS = [
    {"name": "previous default (constant 0.00015, batch 256, early stopping)", "bs": 256, "epochs": 60, "in_drop": 0.52},
    {"name": "one-cycle, batch 1024, 8 epochs, peak 1e-3", "bs": 1024, "epochs": 8, "peak": 1e-3, "schedule": "one_cycle", "in_drop": 0.52},
    {"name": "one-cycle, batch 1024, 6 epochs, peak 2e-3", "bs": 1024, "epochs": 6, "peak": 2e-3, "schedule": "one_cycle", "in_drop": 0.52},
    {"name": "one-cycle, batch 1024, 12 epochs, peak 1e-3", "bs": 1024, "epochs": 12, "peak": 1e-3, "schedule": "one_cycle", "in_drop": 0.52},
    {"name": "+ 1x1 reduction to 16 channels", "bs": 1024, "epochs": 8, "peak": 2e-3, "schedule": "one_cycle", "in_drop": 0.52, "reduce": 16},
    {"name": "one-cycle, batch 512, 10 epochs, peak 1e-3", "bs": 512, "epochs": 10, "peak": 1e-3, "schedule": "one_cycle", "in_drop": 0.52},
    {"name": "batch 512, 8 epochs, peak 1e-3, input dropout 0.3", "bs": 512, "epochs": 8, "peak": 1e-3, "schedule": "one_cycle"},
    {"name": "batch 512, 6 epochs, peak 1e-3, input dropout 0.3", "bs": 512, "epochs": 6, "peak": 1e-3, "schedule": "one_cycle"},
    {"name": "batch 512, 8 epochs, peak 1e-3, input dropout 0.3, hidden 256", "bs": 512, "epochs": 8, "peak": 1e-3, "schedule": "one_cycle", "hidden": [256]},
    {"name": "batch 512, 8 epochs, peak 2e-3, input dropout 0.3 (the new default)", "bs": 512, "epochs": 8, "peak": 2e-3, "schedule": "one_cycle"},
    {"name": "the default on the top 768 principal components", "bs": 512, "epochs": 8, "peak": 2e-3, "schedule": "one_cycle", "pca": 768},
    {"name": "the default, input dropout by grid cell", "bs": 512, "epochs": 8, "peak": 2e-3, "schedule": "one_cycle", "drop_cells": True},
]


def load():
    from imgclf.core import paths
    from imgclf.core.npy_rows import NpyRows, Selection
    from imgclf.data.manifest import load_set

    m = load_set(paths.AUGMENTED, lazy=True).manifest
    y, x = m["label"].to_numpy(), NpyRows(paths.FEATURES)
    masks = {s: (m["split"] == s).to_numpy() for s in ("train", "val", "test")}
    return {s: np.asarray(Selection(x, v)) for s, v in masks.items()}, {s: y[v] for s, v in masks.items()}


def run(X, Y, name, seed=42, bs=256, epochs=26, peak=1.5e-4, schedule="constant", reduce=0, hidden=(512,),
        in_drop=0.3, drop=0.17, pca=0, whiten=False, drop_cells=False) -> dict:
    import keras

    from imgclf.models.training import make_deterministic, one_cycle, row_batches

    make_deterministic(seed)
    lr = peak if schedule == "constant" else one_cycle(peak, len(Y["train"]), bs, epochs)
    start = time.perf_counter()
    if pca:
        mu, sd = X["train"][::4].mean(0), X["train"][::4].std(0) + 1e-3
        z = (X["train"][::4] - mu) / sd
        vals, vecs = np.linalg.eigh(z.T @ z / len(z))
        proj = (vecs[:, ::-1][:, :pca] / (np.sqrt(vals[::-1][:pca]) if whiten else 1.0)).astype(np.float32)
        X = {s: ((v - mu) / sd) @ proj for s, v in X.items()}
    inputs = keras.Input((X["train"].shape[1],))
    if pca:
        h = inputs
    else:
        norm = keras.layers.Normalization(name="standardise")
        norm.adapt(X["train"][::4])
        h = norm(inputs)
    if in_drop and drop_cells:          # whole grid cells (64 channels each): one draw per cell
        cells = keras.layers.Reshape((-1, 64))(h)
        h = keras.layers.Flatten()(keras.layers.Dropout(in_drop, noise_shape=(None, cells.shape[1], 1), seed=seed + 100)(cells))
    elif in_drop:
        h = keras.layers.Dropout(in_drop, seed=seed + 100)(h)
    if reduce:
        h = keras.layers.Flatten()(keras.layers.Dense(reduce, activation="relu")(keras.layers.Reshape((-1, 64))(h)))
    for i, units in enumerate(hidden):
        h = keras.layers.Dropout(drop, seed=seed + i)(keras.layers.Dense(units, activation="relu")(h))
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(h))
    model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy", metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=6 if schedule == "constant" else epochs,
                                         restore_best_weights=True)
    fit_start = time.perf_counter()
    history = model.fit(row_batches(X["train"], Y["train"], bs, seed=seed), validation_data=row_batches(X["val"], Y["val"], bs),
                        epochs=epochs, callbacks=[stop], verbose=0)
    seconds = time.perf_counter() - start
    fit_seconds = time.perf_counter() - fit_start
    score = {s: round(float((model.predict(X[s], batch_size=1024, verbose=0).argmax(1) == Y[s]).mean()), 4) for s in ("val", "test")}
    return {"name": name, "seed": seed, "batch": bs, "epochs_run": len(history.history["val_loss"]), "schedule": schedule,
            "peak": peak, "reduce": reduce, "hidden": list(hidden), "input_dropout": in_drop,
            "pca": pca, "whiten": whiten, "drop_cells": drop_cells, "parameters": int(model.count_params()), "train_seconds": round(seconds, 1),
            "fit_seconds": round(fit_seconds, 1), **score}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("levers", nargs="*", help="JSON objects of run()'s arguments (default: LEVERS)")
    args = parser.parse_args()
    from imgclf.core.provenance import announce, ran_with
    record = announce(ran_with(args, {"features": "data/features of the workspace"}))
    X, Y = load()
    out = Path("bench/out/head_levers.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    for lever in [json.loads(s) for s in args.levers] or LEVERS:
        row = {**run(X, Y, **lever), "commit": record["commit"], "cpu": record["cpu"]}
        print(json.dumps(row), flush=True)
        with open(out, "a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    sys.exit(main())
