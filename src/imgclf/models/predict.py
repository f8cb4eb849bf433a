"""Classify image files with the exported model: top classes with probabilities.

    imgclf predict IMAGE... [--model models/classifier.keras] [--top 3]

Images of any size and colour are converted exactly as the split stage converts a folder's
images (grey if the training data was grey, resized to its size the same way). An unreadable file is reported by name;
the others are still classified, and the exit code is 2 if any file failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from imgclf.core import paths
from imgclf.data.image_folder import EXTENSIONS, BadImage, decode


def load_image(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """The model's raw input for one file, converted exactly as the split stage converted the
    training images (the same `image_folder.decode`: same grey/RGB decode, same interpolation
    for smaller and larger sources), so serving never sees differently resampled pixels."""
    if not path.is_file():
        raise BadImage(f"{path}: no such file")
    if path.suffix.lower() not in EXTENSIONS:
        raise BadImage(f"{path}: unsupported extension {path.suffix!r} (expected one of {sorted(EXTENSIONS)})")
    if len(shape) not in (2, 3) or shape[0] != shape[1]:
        raise ValueError(f"the model's input shape {shape} is not a square grey or RGB image")
    return decode(path, shape[0], "grey" if len(shape) == 2 else "rgb")


def load_classifier(model_path: Path):
    from imgclf.core.quiet_keras import import_keras

    keras = import_keras()
    info_path = model_path.with_suffix(".json")
    info = json.loads(info_path.read_text())
    return keras.models.load_model(model_path, safe_mode=True, compile=False), info


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    parser = argparse.ArgumentParser(prog="imgclf-predict", description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+", type=Path)
    parser.add_argument("--model", type=Path, default=paths.EXPORTED)
    parser.add_argument("--top", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args(argv)
    if args.top < 1:
        print(f"error: --top {args.top}: expected 1 or more classes to print", file=sys.stderr)
        return 2
    if not args.model.is_file() or not args.model.with_suffix(".json").is_file():
        print(f"error: {args.model} (and its .json) not found; run `dvc repro` first", file=sys.stderr)
        return 2
    model, info = load_classifier(args.model)
    names, shape = info["class_names"], tuple(info["input_shape"])
    ok_paths, batch, failed = [], [], 0
    for path in args.images:
        try:
            batch.append(load_image(path, shape))
            ok_paths.append(path)
        except BadImage as err:
            print(f"error: {err}", file=sys.stderr)
            failed += 1
    if batch:
        probs = model.predict(np.stack(batch), batch_size=args.batch_size, verbose=0)
        for path, p in zip(ok_paths, probs):
            top = np.argsort(-p, kind="stable")[: args.top]
            print(f"{path}: " + ", ".join(f"{names[i]} {p[i]:.3f}" for i in top))
    if failed:
        print(f"{failed} of {len(args.images)} file(s) could not be read", file=sys.stderr)
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
