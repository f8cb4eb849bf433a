"""Classify image files with the exported model: top classes with probabilities.

    python -m imgclf.predict IMAGE... [--model models/classifier.keras] [--top 3]

Images of any size and colour are converted the way the training data looked (grey if it was
grey, resized to its size with area interpolation). An unreadable file is reported by name;
the others are still classified, and the exit code is 2 if any file failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np


class UnreadableImage(ValueError):
    pass


def load_image(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """Read with OpenCV (EXIF orientation honoured) and convert to the model's raw input shape."""
    if not path.is_file():
        raise UnreadableImage(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise UnreadableImage(f"{path}: empty file")
    grey = len(shape) == 2
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR)
    if img is None:
        raise UnreadableImage(f"{path}: not a readable image (OpenCV could not decode it)")
    if not grey:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    h, w = shape[:2]
    if img.shape[:2] != (h, w):
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    return img.astype(np.uint8)


def load_classifier(model_path: Path):
    import keras

    info_path = model_path.with_suffix(".json")
    info = json.loads(info_path.read_text())
    return keras.models.load_model(model_path, safe_mode=True), info


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    parser = argparse.ArgumentParser(prog="imgclf-predict", description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+", type=Path)
    parser.add_argument("--model", type=Path, default=Path("models/classifier.keras"))
    parser.add_argument("--top", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args(argv)
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
        except UnreadableImage as err:
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
