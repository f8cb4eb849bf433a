"""How much each test-time view adds, for a trained CNN: test accuracy of its trunk alone, with
the mirror image, with 1 or 2 px shifts (and the four diagonal 1 px shifts), and with both,
without retraining anything.

    python research/tta_views.py cnn-online-e20          # an experiment name, a commit, or HEAD

The model is read from the DVC cache through the revision's dvc.lock, the official test set from
data/split (the split is the same for every experiment that leaves split.* alone).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import yaml

from imgclf.core import paths
from imgclf.core.revisions import read_at, resolve
from imgclf.data.manifest import load_set
from imgclf.models.cnn import scaled_input, shifted, tta_views
from imgclf.models.mirror_layer import mirror

VIEWS = {"image only": (False, 0), "+ mirror": (True, 0), "+ 1 px shifts": (False, 1),
         "+ mirror + 1 px shifts": (True, 1), "+ mirror + 2 px shifts": (True, 2),
         "+ mirror + 1 px shifts and diagonals": (True, "diagonal")}


def views_of(scaled, shape, flip: bool, shift) -> list:
    """tta_views, or with shift "diagonal" the 1 px cross and the four diagonal 1 px shifts too."""
    if shift != "diagonal":
        return tta_views(scaled, shape, flip=flip, shift_px=shift)
    bases = [("id", scaled)] + ([("mirror", mirror(scaled, shape[1]))] if flip else [])
    views = [base for _, base in bases]
    for tag, base in bases:
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if dy or dx:
                    views.append(shifted(base, dy, dx, name=f"shift_{tag}_{dy}_{dx}"))
    return views


def model_in_cache(commit: str) -> Path:
    shown = read_at(commit, "dvc.lock")
    if shown is None:
        raise SystemExit(f"{commit[:7]}: no dvc.lock in that commit")
    lock = yaml.safe_load(shown)
    outs = {o["path"]: o["md5"] for o in lock["stages"]["train"]["outs"] if "md5" in o}
    md5 = outs[str(paths.MODEL)]
    path = Path(".dvc/cache/files/md5") / md5[:2] / md5[2:]
    if not path.exists():
        raise SystemExit(f"{paths.MODEL} of {commit[:7]} ({md5}) is not in the local DVC cache")
    return path


def main() -> None:
    import keras

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("rev", help="experiment name or git revision of a train.model=cnn run")
    args = ap.parse_args()
    commit = resolve(args.rev)
    from imgclf.core.provenance import announce, ran_with
    announce(ran_with(args, {"experiment": f"{args.rev} = {commit}: its params.yaml"}))
    path = model_in_cache(commit)
    model = keras.models.load_model(_as_keras(path), safe_mode=True)
    trunk = model.get_layer("cnn_trunk")
    data = load_set(paths.SPLIT, lazy=True)
    test = (data.manifest["split"] == "test").to_numpy()
    x, y = np.asarray(data.images[test]), data.manifest["label"].to_numpy()[test]
    shape = (*x.shape[1:3], x.shape[3] if x.ndim == 4 else 1)
    print(f"{args.rev} ({commit[:7]}): test accuracy on {len(y)} official test images by views averaged")
    for name, (flip, shift) in VIEWS.items():
        inputs = keras.Input(shape=x.shape[1:], dtype="uint8")
        scaled = scaled_input(inputs, x.shape[1:])
        views = views_of(scaled, shape, flip, shift)
        out = keras.layers.Average()([trunk(v) for v in views]) if len(views) > 1 else trunk(scaled)
        start = time.perf_counter()
        pred = np.argmax(keras.Model(inputs, out).predict(x, batch_size=1024, verbose=0), axis=1)
        print(f"  {name:<38} {len(views):>2} views  accuracy {np.mean(pred == y):.4f}  "
              f"({len(y) / (time.perf_counter() - start):,.0f} images/s)")


def _as_keras(path: Path) -> Path:
    """Keras picks the format by extension; the cache file has none, so link it under one."""
    import tempfile

    link = Path(tempfile.mkdtemp()) / "model.keras"
    link.symlink_to(path.resolve())
    return link


if __name__ == "__main__":
    from imgclf.core.errors import UserError

    try:
        main()
    except UserError as err:            # a name that is no experiment or revision
        raise SystemExit(f"error: {err}") from None
