"""Fashion-MNIST as an ImageSet: the four IDX files into images, labels and official splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from imgclf.data.idx import read_idx
from imgclf.data.manifest import DataError, ImageSet

CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def load(raw_dir: Path | str, train_limit: int | None = None, test_limit: int | None = None) -> ImageSet:
    """Official train then test; `id` and `source_id` are '<official split>-<index>'.

    Every Fashion-MNIST image is its own source photo; identical pixels are grouped later by
    the split stage, from content.
    """
    raw_dir = Path(raw_dir)
    images, frames = [], []
    for official, (img_name, lbl_name) in FILES.items():
        imgs, lbls = read_idx(raw_dir / img_name), read_idx(raw_dir / lbl_name)
        if imgs.ndim != 3 or lbls.ndim != 1 or len(imgs) != len(lbls):
            raise DataError(f"{raw_dir}: {img_name} has shape {imgs.shape} but {lbl_name} has "
                            f"shape {lbls.shape}; expected (N,H,W) images and N labels")
        if lbls.size and lbls.max() >= len(CLASS_NAMES):
            raise DataError(f"{raw_dir / lbl_name}: label {int(lbls.max())} is outside 0..9")
        limit = train_limit if official == "train" else test_limit
        if limit is not None:
            imgs, lbls = imgs[:limit], lbls[:limit]
        ids = [f"{official}-{i:05d}" for i in range(len(imgs))]
        images.append(imgs.astype(np.uint8, copy=False))
        frames.append(pd.DataFrame({
            "id": ids, "source_id": ids, "label": lbls.astype(np.int64),
            "class_name": [CLASS_NAMES[i] for i in lbls], "official_split": official}))
    return ImageSet(np.concatenate(images), pd.concat(frames, ignore_index=True))
