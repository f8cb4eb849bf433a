"""The near-duplicate audit's recall, measured on the pipeline's own variants.

The augment stage knows every (variant, source) pair, so the audit can be scored against
perfect ground truth on every run: draw sources, make their variants with the configured
augmenters exactly as the augment stage would (same seed, same (seed, id, k) derivation), search
them against the whole dataset, and count how many are linked back to their own source. Variants
identical to their source are skipped (SHA-256 already groups those), so the figure is about the
copies that need the near-duplicate search.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from imgclf.core.hashing import stable_unit_interval
from imgclf.data.augmenters import build_augmenter, make_variant
from imgclf.data.manifest import ImageSet
from imgclf.data.near_duplicates import AuditConfig, Pairs, near_duplicates

MAX_VARIANTS_PER_SOURCE = 64


def probe_variants(data: ImageSet, specs: list[dict], seed: int, pairs: int) -> tuple[np.ndarray, np.ndarray]:
    """(variant images, source row per variant): at least `pairs` variants that differ from their
    source, of sources drawn by a stable hash among the training pool (official train or pool);
    when there are fewer sources, variants k = 1, 2, ... of each until there are enough."""
    m = data.manifest
    pool = np.flatnonzero(m["official_split"].isin(["train", "pool"]).to_numpy())
    if pairs == 0 or not len(pool) or not specs:
        return data.images[:0], np.empty(0, np.int64)
    ids = m["id"].to_numpy()
    order = pool[np.argsort([stable_unit_interval("audit", seed, ids[i]) for i in pool], kind="stable")]
    sources = order[:pairs]
    augmenter = build_augmenter(specs)
    images, rows = [], []
    for k in range(1, MAX_VARIANTS_PER_SOURCE + 1):
        for i in sources:
            variant = make_variant(augmenter, data.images[i], seed, ids[i], k)
            if not np.array_equal(variant, data.images[i]):
                images.append(variant)
                rows.append(i)
                if len(images) == pairs:
                    return np.stack(images), np.asarray(rows, np.int64)
    if not images:
        return data.images[:0], np.empty(0, np.int64)
    return np.stack(images), np.asarray(rows, np.int64)


def own_variant_recall(probe: Pairs, sources: np.ndarray) -> float | None:
    """Share of probe variants the audit linked to their own source (None without variants)."""
    if not len(sources):
        return None
    found = np.zeros(len(sources), bool)
    hit = probe.b == sources[probe.a]
    found[probe.a[hit]] = True
    return round(float(found.mean()), 4)


@dataclass(frozen=True)
class Audit:
    pairs: Pairs                 # confirmed near-duplicate pairs of the set's rows
    recall: float | None         # on the pipeline's own variants (None: none were made)
    probes: int                  # variants searched to measure it
    seconds: float


NO_AUDIT = Audit(Pairs(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32)), None, 0, 0.0)


def audit(data: ImageSet, config: AuditConfig, specs: list[dict], seed: int, recall_pairs: int) -> Audit:
    """The near-duplicate search over the whole set, with `recall_pairs` of the augment stage's own
    variants searched alongside (never added to the index) to measure its recall."""
    start = time.perf_counter()
    variants, sources = probe_variants(data, specs, seed, recall_pairs)
    pairs, probe = near_duplicates(data.images, config, queries=variants)
    return Audit(pairs, own_variant_recall(probe, sources), len(sources), time.perf_counter() - start)
