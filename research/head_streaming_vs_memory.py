"""Does training the head from streamed batches (`training.row_batches`: rows read from disk, shuffled
from (seed, epoch)) cost accuracy against Keras' in-memory path (`model.fit(x, y, shuffle=True)`
on arrays), which it replaced to bound the train stage's memory? The same batch order gives the
same weights (tests/test_head.py), so the question is only whether the streamed order is a worse
draw than Keras' own: both paths are trained with several seeds on the same features, and the
paired differences are compared with the seed-to-seed spread.

Multiplier 1 as issue 22 asks: the train rows of variant 0 only (the workspace's features at the
default augment.mirror hold the mirror as variant 1). Test accuracy is of the head alone (no flip
TTA), on the official test set.

    python research/head_streaming_vs_memory.py --seeds 42 43 44     # features of the workspace (dvc repro first)
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from imgclf.core import paths
from imgclf.core.npy_rows import NpyRows
from imgclf.data.manifest import load_set


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    args = ap.parse_args()
    from imgclf.config.params import load_params
    from imgclf.core.provenance import announce, ran_with
    from imgclf.models.head import HeadConfig, build_head, train_head
    from imgclf.models.training import InMemory, Stopping, fit, make_deterministic
    announce(ran_with(args, {"params.yaml": "train.head of the workspace"}))

    head = load_params("params.yaml").train.head
    m = load_set(paths.AUGMENTED, lazy=True).manifest
    y = m["label"].to_numpy()
    train = ((m["split"] == "train") & (m["variant"] == 0)).to_numpy()
    val, test = (m["split"] == "val").to_numpy(), (m["split"] == "test").to_numpy()
    with NpyRows(paths.FEATURES) as rows:            # only the rows used, each read once
        x_train, x_val, x_test = (np.asarray(rows[np.flatnonzero(s)]) for s in (train, val, test))
    y_train, y_val, y_test = y[train], y[val], y[test]
    print(f"{train.sum():,} train (variant 0), {val.sum():,} val, {test.sum():,} test rows of {x_train.shape[1]} features")
    results = []
    for seed in args.seeds:
        cfg = HeadConfig(seed=seed, **head.model_dump())
        scores = {}
        for path in ("streamed", "in memory"):
            start = time.perf_counter()
            if path == "streamed":
                model, summary = train_head(x_train, y_train, x_val, y_val, 10, cfg, verbose=0)
            else:
                make_deterministic(seed)
                model = build_head(x_train, 10, cfg)
                summary = fit(model, InMemory(x_train, y_train, cfg.batch_size), InMemory(x_val, y_val, cfg.batch_size),
                              Stopping(cfg.epochs, cfg.patience), verbose=0)
            acc = float(np.mean(np.argmax(model.predict(x_test, batch_size=1024, verbose=0), 1) == y_test))
            scores[path] = acc
            print(f"seed {seed} {path:9s}: test {acc:.4f}, best val {summary['best_val_accuracy']}, "
                  f"{summary['epochs_run']} epochs, {time.perf_counter() - start:.0f} s", flush=True)
        results.append(scores)
    streamed = np.array([r["streamed"] for r in results])
    memory = np.array([r["in memory"] for r in results])
    diff = streamed - memory
    print(f"mean test: streamed {streamed.mean():.4f} (sd {streamed.std(ddof=1):.4f}), in memory {memory.mean():.4f} "
          f"(sd {memory.std(ddof=1):.4f}); streamed - in memory: mean {diff.mean():+.4f}, per seed "
          + ", ".join(f"{d:+.4f}" for d in diff))


if __name__ == "__main__":
    main()
