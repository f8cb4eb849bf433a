"""Folders unlike Fashion-MNIST, built in memory, for the benchmarks: what users bring.

- fashion28: the real Fashion-MNIST as the split stage made it (data/split; run `dvc repro split`).
- fashion96: a sample of it upscaled to 96 px and tinted a random colour per image (RGB photos
  of a smooth kind, larger than the audit's working size).
- digits48: scikit-learn's 8x8 digits scaled to 48 px by pixel repetition (tiny, blocky, high
  contrast, half of each image flat black).
- photos64: scikit-learn's two sample photographs cut into 64 px tiles, whole and from 128 px
  tiles shrunk to 64 (real colour photographs: texture, sky, out-of-focus background).
"""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd

from imgclf.core.hashing import image_sha256
from imgclf.data.manifest import ImageSet

KINDS = ("fashion28", "fashion96", "digits48", "photos64")


def _set(images: np.ndarray, labels, official="pool") -> ImageSet:
    ids = [f"img-{i:05d}" for i in range(len(images))]
    return ImageSet(images, pd.DataFrame({
        "id": ids, "source_id": ids, "label": np.asarray(labels, np.int64),
        "class_name": [str(c) for c in labels], "official_split": official,
        "sha256": [image_sha256(x) for x in images]}))


def fashion28() -> ImageSet:
    from imgclf.data.manifest import load_set

    data = load_set("data/split")
    return ImageSet(np.asarray(data.images), data.manifest)


def fashion96(base: ImageSet, n: int = 6000, seed: int = 0) -> ImageSet:
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(base.images), n, replace=False))
    tints = rng.uniform(0.4, 1.0, (n, 3)).astype(np.float32)
    out = np.empty((n, 96, 96, 3), np.uint8)
    for j, i in enumerate(rows):
        g = cv2.resize(base.images[i], (96, 96), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        out[j] = np.clip(g[..., None] * tints[j] + 20, 0, 255).astype(np.uint8)
    m = base.manifest.iloc[rows]
    return _set(out, m["label"].to_numpy(), m["official_split"].to_numpy())


def digits48() -> ImageSet:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.repeat(np.repeat((d.images * 255 / 16).round().astype(np.uint8), 6, 1), 6, 2)
    return _set(np.ascontiguousarray(images), d.target)


def photos64() -> ImageSet:
    from sklearn.datasets import load_sample_images

    tiles, labels = [], []
    for k, photo in enumerate(load_sample_images().images):
        for crop in (64, 128):
            for y in range(0, photo.shape[0] - crop + 1, crop):
                for x in range(0, photo.shape[1] - crop + 1, crop):
                    tile = np.ascontiguousarray(photo[y:y + crop, x:x + crop])
                    tiles.append(cv2.resize(tile, (64, 64), interpolation=cv2.INTER_AREA) if crop != 64 else tile)
                    labels.append(k)
    return _set(np.stack(tiles), labels)


def build(kind: str, fashion: ImageSet | None = None) -> ImageSet:
    if kind == "fashion28":
        return fashion if fashion is not None else fashion28()
    if kind == "fashion96":
        return fashion96(fashion if fashion is not None else fashion28())
    return {"digits48": digits48, "photos64": photos64}[kind]()
