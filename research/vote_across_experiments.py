"""Would a soft vote over experiments already run beat the best of them? Answered from the
classifiers DVC cached for each experiment, before anyone spends another half hour per member
training an ensemble (`train.ensemble`).

    python research/vote_across_experiments.py cnn-w32-flip-e10 cnn-cpc-w48-e9 HEAD

Each argument is an experiment name (`dvc exp show`) or any git revision whose dvc.lock has an
evaluate stage; its `models/classifier.keras` is read from the local DVC cache. The models
predict the official test images of the workspace's `data/augmented`, which must come from the
same split as every revision's (checked by the split's hash in each dvc.lock). Prints each model's
test accuracy, every combination's soft vote, and for each pair the test images both get wrong:
errors that coincide are what no vote can fix.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

from imgclf.core import paths
from imgclf.core.revisions import experiment_refs, read_at, resolve, split_hash
from imgclf.review.agreement import shared_errors, votes

CLASSIFIER = paths.EXPORTED.as_posix()


def _predict(rev: str, images: np.ndarray) -> np.ndarray:
    import dvc.api
    import keras

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "classifier.keras"  # Keras picks the format by the extension
        with dvc.api.open(CLASSIFIER, rev=rev, mode="rb") as src:
            path.write_bytes(src.read())
        model = keras.models.load_model(path, safe_mode=True)
        return model.predict(images, batch_size=1024, verbose=0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("experiments", nargs="+", help="experiment names or git revisions")
    args = parser.parse_args(argv)

    from imgclf.data.manifest import load_set

    refs = experiment_refs()
    revs = {name: resolve(name, refs) for name in args.experiments}
    from imgclf.core.provenance import announce, ran_with
    announce(ran_with(args, {"experiments": {n: f"{r}: its params.yaml" for n, r in revs.items()}}))
    workspace = split_hash(yaml.safe_load(Path("dvc.lock").read_text()), "dvc.lock of the workspace")
    for name, rev in revs.items():
        lock = read_at(rev, "dvc.lock")
        if lock is None:
            raise SystemExit(f"{name} ({rev[:7]}): no dvc.lock in that commit")
        if split_hash(yaml.safe_load(lock), f"dvc.lock of {name}") != workspace:
            raise SystemExit(f"{name} ({rev[:7]}) was scored on another split than the workspace's data/split "
                             f"({workspace}); `dvc exp apply` a run of the same split first")

    data = load_set(paths.AUGMENTED, lazy=True)
    mask = (data.manifest["split"] == "test").to_numpy()
    images, y = np.asarray(data.images[mask]), data.manifest["label"].to_numpy()[mask]
    probs = {}
    for name, rev in revs.items():
        probs[name] = _predict(rev, images)
        print(f"{name} ({rev[:7]}): test accuracy {(probs[name].argmax(axis=1) == y).mean():.4f}", flush=True)

    rows = votes(probs, y)
    best_single = max(acc for names, acc in rows if len(names) == 1)  # the accuracies printed above
    print(f"\nsoft votes on {len(y):,} test images (best single model {best_single:.4f}):")
    for names, acc in rows:
        if len(names) > 1:
            print(f"  {acc:.4f} ({acc - best_single:+.4f})  {' + '.join(names)}")
    print("\nerrors in common (both wrong / either wrong):")
    for a, b, both, either in shared_errors(probs, y):
        print(f"  {both:5d} / {either:5d}  {a} & {b}")


if __name__ == "__main__":
    from imgclf.core.errors import UserError

    try:
        sys.exit(main())
    except UserError as err:            # a name that is no experiment, a lock without a split
        sys.exit(f"error: {err}")
