"""Benchmark the bottleneck cache on the real Fashion-MNIST images (not part of `make test`).

    KERAS_HOME=<dir with models/mobilenet_2_5_224_tf_no_top.h5> python bench/bottleneck_bench.py [--images 70000] [--image-size 96]

Needs data/split/ from `dvc repro split`; the backbone, cut and grid are params.yaml's. Measures, in
one process on the same images:
  1. plain batched model.predict (resize + preprocess_input + predict), images/s;
  2. the cached path on a cold store (all misses), images/s, and its ratio to (1);
  3. per-image prediction, images/s (the seeds' demo style);
  4. the cached path on a warm store (all hits): vectors/s and wall time.
Writes bench/out/bottleneck.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=70000)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--single", type=int, default=300, help="images for the per-image run")
    args = parser.parse_args()
    from imgclf.core.provenance import announce, ran_with
    from imgclf.config.params import load_params

    p = load_params("params.yaml").bottleneck
    run = announce(ran_with(args, {"bottleneck": p.model_dump()}))

    from imgclf.core.atomic import load_npy
    from imgclf.features.backbones import FeatureExtractor, FeatureRecipe, to_rgb_resized
    from imgclf.features.bottleneck import compute_features
    from imgclf.features.feature_store import FeatureStore

    images = load_npy("data/split/images.npy", mmap=True)[: args.images]
    images = np.ascontiguousarray(images)
    # The pipeline's recipe (backbone cut at bottleneck.layer, pooled to bottleneck.grid), at
    # --image-size and --batch-size: both paths below run this same model.
    ex = FeatureExtractor(FeatureRecipe(p.backbone, p.backbone_args, p.weights, args.image_size, p.resize, p.layer,
                                        p.grid), args.batch_size)
    out: dict = {"ran_with": run, "images": len(images), "image_size": args.image_size, "batch_size": args.batch_size,
                 "namespace": ex.namespace}

    # Warm up both paths (graph tracing, oneDNN kernel selection) so neither pays it in the timing.
    ex(images[: args.batch_size])
    warm = ex._preprocess(to_rgb_resized(images[: args.batch_size], args.image_size, "linear"))
    ex.model.predict(warm, batch_size=args.batch_size, verbose=0)

    t = time.perf_counter()
    for b in range(0, len(images), 4096):
        x = ex._preprocess(to_rgb_resized(images[b:b + 4096], args.image_size, "linear"))
        ex.model.predict(x, batch_size=args.batch_size, verbose=0)
    plain = len(images) / (time.perf_counter() - t)
    out["plain_predict_images_per_s"] = round(plain, 1)

    with tempfile.TemporaryDirectory() as tmp:
        with FeatureStore(Path(tmp) / "features.sqlite") as store:
            t = time.perf_counter()
            cold_feats, cold = compute_features(images, ex, store, show_progress=False)
            cold_s = time.perf_counter() - t
            t = time.perf_counter()
            warm_feats, hot = compute_features(images, ex, store, show_progress=False)
            hot_s = time.perf_counter() - t
            out["store_mib"] = round((Path(tmp) / "features.sqlite").stat().st_size / 2**20, 1)
    assert hot.misses == 0 and np.array_equal(cold_feats, warm_feats)
    out["cached_cold_images_per_s"] = round(len(images) / cold_s, 1)
    out["cached_cold_over_plain"] = round(len(images) / cold_s / plain, 3)
    out["cold_misses"] = cold.misses
    out["cached_warm_vectors_per_s"] = round(len(images) / hot_s, 1)
    out["cached_warm_wall_s"] = round(hot_s, 2)
    out["cached_warm_hits"] = hot.hits

    single = images[: args.single]
    x1 = ex._preprocess(to_rgb_resized(single[:1], args.image_size, "linear"))
    ex.model.predict(x1, verbose=0)
    t = time.perf_counter()
    for img in single:
        x1 = ex._preprocess(to_rgb_resized(img[None], args.image_size, "linear"))
        ex.model.predict(x1, verbose=0)
    out["per_image_predict_images_per_s"] = round(len(single) / (time.perf_counter() - t), 1)
    out["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)

    Path("bench/out").mkdir(parents=True, exist_ok=True)
    Path("bench/out/bottleneck.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
