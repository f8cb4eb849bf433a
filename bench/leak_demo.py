"""What a leak costs: augmenting before splitting vs splitting by source first.

    KERAS_HOME=<dir with models/mobilenet_2_5_224_tf_no_top.h5> python bench/leak_demo.py [--sources 3000] [--multiplier 4]

Same small subset of the real Fashion-MNIST training set, same augmenters, same backbone
features and head as the pipeline's defaults:
  (a) leaky: every source is augmented first, then the augmented images are split at random into
      train/val, so variants of one source land on both sides (the classic mistake);
  (b) clean: sources are split first (imgclf.data.split), then only train is augmented (imgclf.data.augment).
Both are scored on val and on the official test set. The near-duplicate audit (the split stage's,
with params.yaml's settings) is then run on the leaky result: of the leaked (val image, train
image of the same source) pairs, how many it would have kept together (same group of confirmed
near-duplicates and identical images), and how many it confirms directly as a pair.
Writes bench/out/leak_demo.json.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

AUGMENTERS = [{"name": "Fliplr", "args": {"p": 0.5}},
              {"name": "Affine", "args": {"translate_px": {"x": [-3, 3], "y": [-3, 3]}, "mode": "constant", "cval": 0}}]


def audit_leaky(everything, is_val: np.ndarray) -> dict:
    """What the split's near-duplicate audit makes of the leaky split: the share of leaked
    (val, train) pairs of one source that it groups together, and that it confirms directly."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from imgclf.config.params import load_params
    from imgclf.data.near_duplicates import AuditConfig, near_duplicates

    p = load_params("params.yaml").split
    config = AuditConfig(max_shift=p.near_duplicate_max_shift, neighbours=p.near_duplicate_neighbours,
                         max_rms=p.near_duplicate_max_rms)
    pairs, _ = near_duplicates(everything.images, config)
    m = everything.manifest
    n = len(m)
    same_pixels = m.groupby("sha256").ngroup().to_numpy()
    first = np.unique(same_pixels, return_index=True)[1][same_pixels]      # link to the first identical image
    graph = coo_matrix((np.ones(len(pairs) + n), (np.concatenate([pairs.a, np.arange(n)]),
                                                   np.concatenate([pairs.b, first]))), shape=(n, n))
    group = connected_components(graph, directed=False)[1]
    confirmed = set(zip(pairs.a.tolist(), pairs.b.tolist())) | {(j, i) for i, j in zip(pairs.a.tolist(), pairs.b.tolist())}
    parent = m["parent_id"].to_numpy()
    val_rows, train_rows = np.flatnonzero(is_val), np.flatnonzero(~is_val)
    by_parent: dict = {}
    for t in train_rows:
        by_parent.setdefault(parent[t], []).append(t)
    leaked = [(v, t) for v in val_rows for t in by_parent.get(parent[v], [])]
    grouped = sum(group[v] == group[t] for v, t in leaked)
    direct = sum((v, t) in confirmed or same_pixels[v] == same_pixels[t] for v, t in leaked)
    return {"leaked_pairs": len(leaked),
            "leaked_pairs_the_audit_groups": round(grouped / max(len(leaked), 1), 4),
            "leaked_pairs_the_audit_confirms_directly": round(direct / max(len(leaked), 1), 4)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sources", type=int, default=3000)
    parser.add_argument("--multiplier", type=int, default=4)
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from imgclf.core.paths import project_root
    from imgclf.data.augment import Recipe, augment_set
    from imgclf.data.manifest import load_set
    from imgclf.data.split import assign_splits
    from imgclf.features.backbones import FeatureExtractor, FeatureRecipe
    from imgclf.features.bottleneck import compute_features
    from imgclf.features.feature_store import FeatureStore
    from imgclf.models.head import HeadConfig, train_head

    full = load_set("data/split")
    m = full.manifest
    train_pool = full.subset((m["official_split"] == "train").to_numpy()).subset(np.arange(args.sources))
    test = full.subset((m["official_split"] == "test").to_numpy())
    ex = FeatureExtractor(FeatureRecipe("MobileNet", {"alpha": 0.25}, "imagenet", 96, "linear"), 256)
    store = FeatureStore(project_root() / ".cache" / "bottlenecks" / "features.sqlite")
    cfg = HeadConfig(seed=args.seed, hidden_units=[256], input_dropout=0.0, dropout=0.3, learning_rate=1e-3,
                     batch_size=256, epochs=60, patience=6)
    from imgclf.core.provenance import announce, ran_with
    provenance = announce(ran_with(args, {"head": cfg.model_dump(), "bottleneck": ex.namespace}))
    test_x, _ = compute_features(np.asarray(test.images), ex, store, show_progress=False)
    test_y = test.manifest["label"].to_numpy()

    def run(train_set, val_set):
        tx, _ = compute_features(train_set.images, ex, store, show_progress=False)
        vx, _ = compute_features(val_set.images, ex, store, show_progress=False)
        ty, vy = train_set.manifest["label"].to_numpy(), val_set.manifest["label"].to_numpy()
        model, _ = train_head(tx, ty, vx, vy, 10, cfg, verbose=0)
        val_acc = float((model.predict(vx, verbose=0).argmax(1) == vy).mean())
        test_acc = float((model.predict(test_x, verbose=0).argmax(1) == test_y).mean())
        return {"train_images": len(ty), "val_images": len(vy), "val_accuracy": round(val_acc, 4),
                "test_accuracy": round(test_acc, 4), "val_minus_test": round(val_acc - test_acc, 4)}

    pool = train_pool.manifest.assign(split="train")
    recipe = Recipe(args.multiplier, 42, AUGMENTERS)
    everything, _ = augment_set(type(train_pool)(train_pool.images, pool), recipe, show_progress=False)
    rng = np.random.default_rng(args.seed)
    is_val = rng.random(len(everything.images)) < args.val_fraction
    leaky = run(everything.subset(~is_val), everything.subset(is_val))
    val_rows = everything.manifest["parent_id"].to_numpy()[is_val]
    train_parents = set(everything.manifest["parent_id"].to_numpy()[~is_val])
    leaky["val_images_whose_source_is_in_train"] = int(sum(p in train_parents for p in val_rows))
    leaky.update(audit_leaky(everything, is_val))

    split = assign_splits(train_pool, args.val_fraction, args.seed)
    augmented, _ = augment_set(split, recipe, show_progress=False)
    am = augmented.manifest
    clean = run(augmented.subset((am["split"] == "train").to_numpy()), augmented.subset((am["split"] == "val").to_numpy()))
    clean_parents = am["parent_id"].to_numpy()
    clean_train = set(clean_parents[(am["split"] == "train").to_numpy()])
    clean["val_images_whose_source_is_in_train"] = int(sum(p in clean_train for p in clean_parents[(am["split"] == "val").to_numpy()]))

    out = {"ran_with": provenance, "sources": args.sources, "multiplier": args.multiplier, "leaky_augment_then_split": leaky,
           "clean_split_then_augment": clean}
    Path("bench/out").mkdir(parents=True, exist_ok=True)
    Path("bench/out/leak_demo.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
