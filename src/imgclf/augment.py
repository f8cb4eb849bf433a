"""Offline augmentation with imgaug: each train source becomes `multiplier` images.

Variant 0 is the original. Variant k >= 1 of image s is made by reseeding the whole augmenter
from a hash of (seed, s, k) right before augmenting that one image, so a variant depends only
on (seed, s, k) and the augmenter list: not on the multiplier, the batch or the order. Raising
the multiplier from 2 to 4 keeps the existing variants byte-identical, which is what lets the
bottleneck cache serve them.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
from imgclf.errors import ConfigError
from imgclf.progress import progress

from imgclf.hashing import image_sha256, stable_seed
from imgclf.manifest import ImageSet


def _tuples(value: Any) -> Any:
    """YAML has no tuples; imgaug reads a tuple as a range (a list would mean 'choose one')."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value


def build_augmenter(specs: list[dict]):
    import imgaug.augmenters as iaa

    children = []
    for spec in specs:
        cls = getattr(iaa, spec["name"], None)
        if not (isinstance(cls, type) and issubclass(cls, iaa.Augmenter)):
            raise ConfigError(f"unknown imgaug augmenter {spec['name']!r}")
        children.append(cls(**_tuples(spec.get("args", {}))))
    return iaa.Sequential(children)


def make_variant(augmenter, image: np.ndarray, seed: int, image_id: str, k: int) -> np.ndarray:
    augmenter.seed_(stable_seed("augment", seed, image_id, k))
    out = augmenter.augment_image(image)
    if out.shape != image.shape or out.dtype != image.dtype:
        raise ConfigError(f"augmenters changed image {image_id} from {image.shape} {image.dtype} to "
                         f"{out.shape} {out.dtype}; use size-preserving augmenters")
    return out


def augment_set(data: ImageSet, multiplier: int, seed: int, specs: list[dict], *,
                show_progress: bool = True) -> tuple[ImageSet, dict]:
    """Train rows x multiplier (original + variants), val and test rows once; excluded dropped.

    Returns the new set and a summary for metrics.
    """
    start = time.perf_counter()
    augmenter = build_augmenter(specs)
    m = data.manifest
    keep = m["split"].isin(["train", "val", "test"]).to_numpy()
    is_train = (m["split"] == "train").to_numpy()
    train_idx = np.flatnonzero(is_train)
    n_variants = len(train_idx) * (multiplier - 1)
    base_idx = np.flatnonzero(keep)

    images = np.empty((len(base_idx) + n_variants, *data.images.shape[1:]), dtype=data.images.dtype)
    images[:len(base_idx)] = data.images[base_idx]
    rows = m.iloc[base_idx].assign(parent_id=lambda f: f["id"], variant=0)

    extra_rows = []
    pos = len(base_idx)
    ids = m["id"].to_numpy()
    with progress(total=n_variants, desc="augment", unit="img", disable=not show_progress or n_variants == 0) as bar:
        for k in range(1, multiplier):
            for i in train_idx:
                images[pos] = make_variant(augmenter, data.images[i], seed, ids[i], k)
                pos += 1
                bar.update(1)
            extra_rows.append(m.iloc[train_idx].assign(parent_id=lambda f: f["id"], variant=k))
    variants = pd.concat(extra_rows, ignore_index=True) if extra_rows else rows.iloc[:0]
    if len(variants):
        variants["id"] = variants["parent_id"] + "#v" + variants["variant"].astype(str)
        variants["sha256"] = [image_sha256(img) for img in images[len(base_idx):]]
    manifest = pd.concat([rows, variants], ignore_index=True)
    summary = {
        "train_sources": int(len(train_idx)),
        "train_images": int(len(train_idx) * multiplier),
        "variants_made": int(n_variants),
        "variants_identical_to_original": int((variants["sha256"].to_numpy() ==
                                              m["sha256"].to_numpy()[np.tile(train_idx, multiplier - 1)]).sum())
        if len(variants) else 0,
        "excluded_images_dropped": int((~keep).sum()),
        "seconds": round(time.perf_counter() - start, 2),
    }
    return ImageSet(images, manifest), summary
