"""Which MobileNet-0.25 feature map makes the best head? The evidence behind bottleneck.layer/grid.

    KERAS_HOME=<dir with models/mobilenet_2_5_224_tf_no_top.h5> python research/feature_layers.py [--configs output:1 conv_pw_5_relu:6 conv_pw_5_relu:7:112 ...]

Needs `dvc repro` to have run the split stage (reads data/split). Trains the head of params.yaml
(train.head) on the features of the train sources (no augmented variants, to keep it quick),
early-stopped on val, scored on the official test set. One row per layer:grid[:image_size] (the
image size the backbone sees, params.yaml's bottleneck.image_size when left out), written to
bench/out/feature_layers.json and printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

DEFAULT_CONFIGS = ["output:1", "output:3", "conv_pw_11_relu:6", "conv_pw_9_relu:6", "conv_pw_6_relu:6",
                   "conv_pw_5_relu:6", "conv_pw_5_relu:4", "conv_pw_3_relu:6"]


def features(extractor, images: np.ndarray) -> np.ndarray:
    from tqdm import tqdm

    out = np.empty((len(images), extractor.dim), np.float32)
    for s in tqdm(range(0, len(images), extractor.batch_size), desc="features", unit="batch", leave=False):
        out[s:s + extractor.batch_size] = extractor(np.asarray(images[s:s + extractor.batch_size]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS, help="layer:grid[:image_size]; layer 'output' = the last")
    args = parser.parse_args()

    from imgclf.config.params import load_params
    from imgclf.data.manifest import load_set
    from imgclf.features.backbones import extractor_for
    from imgclf.models.head import HeadConfig, train_head

    params = load_params("params.yaml")
    p, h = params.bottleneck, params.train.head
    from imgclf.core.provenance import announce, ran_with
    announce(ran_with(args, {"bottleneck": p.model_dump(), "train.head": h.model_dump()}))
    data = load_set("data/split", lazy=True)
    split, y = data.manifest["split"].to_numpy(), data.manifest["label"].to_numpy()
    tr, va, te = (split == "train"), (split == "val"), (split == "test")
    recipes = []  # through the params schema, so a bad size or grid fails before the first config runs
    for config in args.configs:
        layer, grid, *size = config.split(":")
        recipes.append(type(p).model_validate({**p.model_dump(), "layer": None if layer == "output" else layer,
                                               "grid": int(grid), "image_size": int(size[0]) if size else p.image_size}))
    rows = []
    for config, recipe in zip(args.configs, recipes):
        layer, grid, image_size = config.split(":")[0], recipe.grid, recipe.image_size
        ex = extractor_for(recipe)
        start = time.perf_counter()
        x = features(ex, data.images)
        seconds_features = time.perf_counter() - start
        model, summary = train_head(x[tr], y[tr], x[va], y[va], len(data.class_names()),
                                    HeadConfig(seed=params.train.seed, **h.model_dump()), verbose=0)
        acc = float((model.predict(x[te], batch_size=1024, verbose=0).argmax(1) == y[te]).mean())
        rows.append({"layer": layer, "grid": int(grid), "image_size": image_size, "dim": ex.dim, "val_accuracy": summary["best_val_accuracy"],
                     "test_accuracy": round(acc, 4), "feature_seconds": round(seconds_features, 1),
                     "train_seconds": summary["train_seconds"]})
        print(json.dumps(rows[-1]), flush=True)
    out = Path("bench/out/feature_layers.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n")
    print("| layer | grid | image size | dims | val accuracy | test accuracy | features (s) | head training (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['layer']} | {r['grid']} | {r['image_size']} | {r['dim']} | {r['val_accuracy']:.4f} | {r['test_accuracy']:.4f} | "
              f"{r['feature_seconds']} | {r['train_seconds']} |")


if __name__ == "__main__":
    main()
