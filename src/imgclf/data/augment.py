"""Offline augmentation with imgaug: each train source becomes `multiplier` images.

Variant 0 is the original. Variant k >= 1 of image s is made by reseeding the whole augmenter
from a hash of (seed, s, k) right before augmenting that one image, so a variant depends only
on (seed, s, k) and the augmenter list: not on the multiplier, the batch or the order. Raising
the multiplier from 2 to 4 keeps the existing variants byte-identical, which is what lets the
bottleneck cache serve them.

With `mirror`, variant 1 is the exact left-right mirror image instead of a random one: the one
variant that helps a head on frozen features (it can then average an image's prediction with its
mirror's; docs/results.md), and a random Fliplr would mirror only half the sources.
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from imgclf.core.hashing import image_sha256
from imgclf.core.npy_rows import chunk_rows
from imgclf.core.parallel import ordered_map
from imgclf.core.progress import progress
from imgclf.data.augmenters import build_augmenter, make_variant
from imgclf.data.manifest import ImageSet

_worker_augmenter: dict[str, Any] = {}


@dataclass(frozen=True)
class Recipe:
    """What the augmented set depends on (augment.*): each train source becomes `multiplier`
    images; variant k of source s depends only on (seed, s, k) and `augmenters` (imgaug specs);
    with `mirror`, variant 1 is the exact mirror image."""
    multiplier: int
    seed: int
    augmenters: list[dict]
    mirror: bool = False


def make_variants(specs: list[dict], seed: int, k: int, ids: list[str],
                  images: np.ndarray, mirror: bool = False) -> tuple[np.ndarray, list[str], int]:
    """Variant k of each image, their content hashes and this process's peak RSS (MiB): one task
    of a worker process (its augmenter is built once per process and reused)."""
    if mirror and k == 1:
        out = np.ascontiguousarray(images[:, :, ::-1])         # width is axis 2 of (N, H, W[, C])
        return out, [image_sha256(img) for img in out], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    key = repr(specs)
    if key not in _worker_augmenter:
        _worker_augmenter.clear()
        _worker_augmenter[key] = build_augmenter(specs)
    augmenter = _worker_augmenter[key]
    out = np.empty_like(images)
    for j, (image_id, image) in enumerate(zip(ids, images)):
        out[j] = make_variant(augmenter, image, seed, image_id, k)
    return out, [image_sha256(img) for img in out], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def output_rows(manifest: pd.DataFrame, multiplier: int) -> int:
    """Rows augment writes: train, val and test once, plus multiplier - 1 variants of each train row."""
    split = manifest["split"]
    return int(split.isin(["train", "val", "test"]).sum() + (split == "train").sum() * (multiplier - 1))


def augment_into(data: ImageSet, out, recipe: Recipe, *, workers: int = 1, task_rows: int | None = None,
                 show_progress: bool = True) -> tuple[pd.DataFrame, dict]:
    """Train rows x multiplier (original + variants), val and test rows once, excluded dropped,
    written into `out` (an array or a RowWriter of output_rows rows) a chunk at a time.

    Variants are made by `workers` processes over chunks of `task_rows` sources (default: about
    8 MB of images) and written in order; as a
    variant depends only on (seed, source, k), the output is the same bytes for any `workers`.
    Returns the manifest and a summary for metrics (seconds and worker_peak_rss_mib are the machine's).
    """
    start = time.perf_counter()
    multiplier, seed, specs, mirror = recipe.multiplier, recipe.seed, recipe.augmenters, recipe.mirror
    build_augmenter(specs)                     # a bad augmenter fails here, before any work
    m = data.manifest
    keep = m["split"].isin(["train", "val", "test"]).to_numpy()
    is_train = (m["split"] == "train").to_numpy()
    train_idx = np.flatnonzero(is_train)
    n_variants = len(train_idx) * (multiplier - 1)
    base_idx = np.flatnonzero(keep)
    if len(out) != len(base_idx) + n_variants:
        raise ValueError(f"augment: output has {len(out)} rows, expected {len(base_idx) + n_variants}")

    per_task = task_rows or chunk_rows(int(np.prod(data.images.shape[1:])) * data.images.dtype.itemsize, 8 << 20)
    for b in range(0, len(base_idx), per_task):
        originals = base_idx[b:b + per_task]
        out[b:b + len(originals)] = np.asarray(data.images[originals])
    rows = m.iloc[base_idx].assign(parent_id=lambda f: f["id"], variant=0)

    ids = m["id"].to_numpy()
    tasks = ((specs, seed, k, ids[idx].tolist(), np.asarray(data.images[idx]), mirror)
             for k in range(1, multiplier) for idx in np.array_split(train_idx, max(1, -(-len(train_idx) // per_task))))
    hashes: list[str] = []
    pos, worker_peak = len(base_idx), 0
    with progress(total=n_variants, desc="augment", unit="img", disable=not show_progress or n_variants == 0) as bar:
        if n_variants:
            for variants, sha, peak_mib in ordered_map(make_variants, tasks, workers):
                worker_peak = max(worker_peak, peak_mib)
                out[pos:pos + len(variants)] = variants
                hashes.extend(sha)
                pos += len(variants)
                bar.update(len(variants))
    extra_rows = [m.iloc[train_idx].assign(parent_id=lambda f: f["id"], variant=k) for k in range(1, multiplier)]
    variants = pd.concat(extra_rows, ignore_index=True) if extra_rows else rows.iloc[:0]
    if len(variants):
        variants["id"] = variants["parent_id"] + "#v" + variants["variant"].astype(str)
        variants["sha256"] = hashes
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
    if workers > 1 and n_variants:
        summary["worker_peak_rss_mib"] = worker_peak
    return manifest, summary


def augment_set(data: ImageSet, recipe: Recipe, *, workers: int = 1, show_progress: bool = True) -> tuple[ImageSet, dict]:
    """augment_into an array in memory: for small sets and tests."""
    images = np.empty((output_rows(data.manifest, recipe.multiplier), *data.images.shape[1:]), dtype=data.images.dtype)
    manifest, summary = augment_into(data, images, recipe, workers=workers, show_progress=show_progress)
    return ImageSet(images, manifest), summary
