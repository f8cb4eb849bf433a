"""Which fold model finds injected label flips best, and at what cost: one row per model, on the
workspace's cached features (train and val sources, as the labels stage reads them).

    python bench/label_audit_models.py [--flip-fraction 0.01] [--folds 5]

Each row: PCA to `components` (whitened or not), a multinomial logistic regression with inverse
regularisation C per fold (by group, the same folds for both runs), and one of cleanlab's filters
on the clean labels and on a copy with a seeded share of train labels flipped; precision is over
the suspects the flips added (as in metrics/labels.json). Prints one JSON line per model and appends it to bench/out/label_audit_models.jsonl.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

FILTERS = ["prune_by_noise_rate", "prune_by_class", "both", "low_self_confidence", "low_normalized_margin"]
MODELS = [
    {"components": 256, "whiten": True, "C": 1.0},
    {"components": 256, "whiten": False, "C": 1.0},
    {"components": 512, "whiten": True, "C": 1.0},
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flip-fraction", type=float, default=0.01)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("models", nargs="*", help="JSON objects like MODELS' (default: MODELS)")
    args = parser.parse_args()
    import warnings

    from cleanlab.filter import find_label_issues
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression

    warnings.filterwarnings("ignore", module="cleanlab")

    from imgclf.core import paths
    from imgclf.core.npy_rows import NpyRows, Selection
    from imgclf.core.provenance import announce, ran_with
    from imgclf.data import label_audit
    from imgclf.data.manifest import load_set

    record = announce(ran_with(args, {"features": "data/features of the workspace"}))
    m = load_set(paths.AUGMENTED, lazy=True).manifest
    mask = (m["split"].isin(["train", "val"]) & (m["variant"] == 0)).to_numpy()
    x = np.asarray(Selection(NpyRows(paths.FEATURES), mask))
    y, groups, split = (m[c].to_numpy()[mask] for c in ("label", "group_id", "split"))
    n_classes = int(y.max()) + 1
    fold = label_audit.fold_of(y, groups, args.folds, args.seed)
    noisy, flipped = label_audit.flip_labels(y, np.flatnonzero(split == "train"), args.flip_fraction, n_classes, args.seed)
    out = Path("bench/out/label_audit_models.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    for spec in [json.loads(s) for s in args.models] or MODELS:
        start = time.perf_counter()
        sample = np.sort(np.random.default_rng(args.seed).choice(len(x), min(len(x), 20_000), replace=False))
        pca = PCA(spec["components"], whiten=spec["whiten"], random_state=args.seed).fit(x[sample])
        z = pca.transform(x).astype(np.float32)
        z /= z[:, 0].std()                      # one scale for the solver, whitened or not

        def probs(labels):
            p = np.zeros((len(labels), n_classes))
            for k in range(args.folds):
                model = LogisticRegression(C=spec["C"], max_iter=500, tol=1e-3).fit(z[fold != k], labels[fold != k])
                p[np.ix_(fold == k, model.classes_)] = model.predict_proba(z[fold == k])
            return p

        clean_p, noisy_p = probs(y), probs(noisy)
        seconds = round(time.perf_counter() - start, 1)
        for filter_by in FILTERS:
            clean = np.flatnonzero(find_label_issues(y, clean_p, filter_by=filter_by, n_jobs=1))
            found_rows = np.flatnonzero(find_label_issues(noisy, noisy_p, filter_by=filter_by, n_jobs=1))
            found = np.isin(flipped, found_rows)
            added = np.union1d(np.setdiff1d(found_rows, clean), flipped[found])
            row = {**spec, "filter_by": filter_by, "folds": args.folds,
                   "out_of_sample_accuracy": round(float((clean_p.argmax(1) == y).mean()), 4),
                   "suspects": len(clean), "flipped": len(flipped), "found": int(found.sum()),
                   "precision": round(int(found.sum()) / max(1, len(added)), 4), "recall": round(float(found.mean()), 4),
                   "seconds_both_runs": seconds, "commit": record["commit"], "cpu": record["cpu"]}
            print(json.dumps(row), flush=True)
            with open(out, "a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    sys.exit(main())
