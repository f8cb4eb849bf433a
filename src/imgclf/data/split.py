"""Assign images to train / val / test by source group, before any augmentation.

A group is every image connected by a shared source id or identical pixels, so neither the
augmented copies of one photo nor two copies of one image can sit on both sides. The official
test set stays `test`; training images that share a group with a test image are marked
`excluded` (kept in the manifest, counted, never trained on). Other groups go to val when a
hash of (seed, group id) falls below val_fraction: adding images never moves existing ones, and
the split is stratified by class in expectation (the per-class val share is reported).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from imgclf.core.hashing import image_sha256, stable_unit_interval
from imgclf.data.manifest import SPLITS, DataError, ImageSet


class SplitIntegrityError(RuntimeError):
    """A guarantee of the split is broken; nothing is written."""


class LabelConflictError(DataError):
    """Images that must be one group (same name stem, same CSV group, identical pixels) carry
    different labels: the data is wrong, and no split can keep both the group and the labels."""


def label_conflicts(manifest: pd.DataFrame, limit: int = 20) -> tuple[int, list[list[str]]]:
    """(how many groups by name/CSV and identical content carry several labels, the first `limit`
    of them as 'id (class)' strings); near-duplicate links are not considered (a detection may be
    wrong)."""
    component = _groups(manifest)
    labels = manifest.groupby(component)["label"].nunique()
    bad = labels[labels > 1].index
    out = []
    for c in bad[:limit]:
        rows = manifest[component == c]
        out.append([f"{i} ({k})" for i, k in zip(rows["id"], rows["class_name"])])
    return len(bad), out


def _groups(manifest: pd.DataFrame, links: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Connected components over 'same source_id', 'same sha256' and extra (near-duplicate)
    edges; row -> component."""
    n = len(manifest)
    rows, cols = ([links[0]], [links[1]]) if links is not None else ([], [])
    for column in ("source_id", "sha256"):
        first = manifest.groupby(column, sort=False).ngroup().to_numpy()
        anchor = pd.Series(np.arange(n)).groupby(first).transform("min").to_numpy()
        rows.append(np.arange(n))
        cols.append(anchor)
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def assign_splits(data: ImageSet, val_fraction: float, seed: int,
                  links: tuple[np.ndarray, np.ndarray] | None = None, test_fraction: float = 0.0,
                  fail_on_label_conflict: bool = False) -> ImageSet:
    """Split by group. `official_split` per row is test / val / train (respected, as in a
    pre-split folder or Fashion-MNIST's test set) or pool (assigned by hash). Within a group the
    strongest official split wins (test > val > train); members of weaker splits are `excluded`.
    Groups of official train go to val by hash unless the dataset has its own val split; pool
    groups go to test (test_fraction), val (val_fraction) or train by the same hash.

    links: extra row pairs that must share a group (near-duplicates in `group` mode).
    fail_on_label_conflict: refuse groups (name, CSV, identical pixels) with several labels.
    """
    m = data.manifest.copy()
    m["sha256"] = [image_sha256(img) for img in data.images]
    if fail_on_label_conflict and (conflicts := label_conflicts(m))[0]:
        count, conflicts = conflicts
        raise LabelConflictError(
            f"{count} groups of one photo (same name stem, CSV group or "
            f"identical pixels) carry different labels; fix the labels or the names, or set split.near_duplicates: "
            f"report to list them in metrics/leakage.json instead:\n  " + "\n  ".join(", ".join(g) for g in conflicts))
    component = _groups(m, links)
    # A group's id is its smallest source id: stable under adding unrelated images.
    m["group_id"] = m.groupby(component)["source_id"].transform("min")
    rank = m["official_split"].map({"test": 3, "val": 2, "train": 1, "pool": 0})
    if rank.isna().any():
        raise DataError(f"unknown official_split values {sorted(set(m.loc[rank.isna(), 'official_split']))}")
    group_rank = rank.groupby(m["group_id"]).transform("max")
    groups = m["group_id"].unique()
    u = pd.Series({g: stable_unit_interval("split", seed, g) for g in groups})
    unit = m["group_id"].map(u).to_numpy()
    has_own_val = bool((m["official_split"] == "val").any())
    by_hash_pool = np.where(unit < test_fraction, "test", np.where(unit < test_fraction + val_fraction, "val", "train"))
    by_hash_train = np.where(unit < val_fraction, "val", "train")
    official_kept = np.where(rank == group_rank, m["official_split"], "excluded")
    m["split"] = np.select(
        [group_rank >= 2, group_rank == 1, group_rank == 0],
        [official_kept, "train" if has_own_val else by_hash_train, by_hash_pool])
    columns = ["id", "source_id", "group_id", "label", "class_name", "official_split", "split", "sha256"]
    result = ImageSet(data.images, m[columns + [c for c in m.columns if c not in columns]])
    check_integrity(result.manifest, links)
    return result


def check_integrity(manifest: pd.DataFrame, links: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """Refuse a split where a source, an identical image or a linked pair straddles splits."""
    used = manifest[manifest["split"].isin(SPLITS)]
    problems = []
    if links is not None and len(links[0]):
        split = manifest["split"].to_numpy()
        a, b = links
        bad = (split[a] != split[b]) & np.isin(split[a], SPLITS) & np.isin(split[b], SPLITS)
        ids = manifest["id"].to_numpy()
        for i, j in list(zip(a[bad], b[bad]))[:10]:
            problems.append(f"near-duplicates {ids[i]} in {split[i]} and {ids[j]} in {split[j]}")
    for column, what in (("source_id", "source"), ("sha256", "identical image")):
        spread = used.groupby(column)["split"].nunique()
        for key in spread[spread > 1].index[:10]:
            rows = used[used[column] == key]
            problems.append(f"{what} {key}: " + ", ".join(f"{i} in {s}" for i, s in zip(rows["id"], rows["split"])))
        if (spread > 1).sum() > 10:
            problems.append(f"... and {(spread > 1).sum() - 10} more {what}s")
    if problems:
        raise SplitIntegrityError("split refused, a guarantee is broken:\n  " + "\n  ".join(problems))


def near_duplicate_counts(manifest: pd.DataFrame, a: np.ndarray, b: np.ndarray) -> dict:
    """Confirmed near-duplicate pairs by the splits of their two images."""
    split = manifest["split"].to_numpy()
    pair = np.array([f"{min(x, y)}_{max(x, y)}" for x, y in zip(split[a], split[b])], dtype=object)
    counts = {}
    for x, y in (("train", "val"), ("test", "train"), ("test", "val")):
        counts[f"near_duplicate_pairs_{x}_{y}"] = int((pair == f"{x}_{y}").sum())
    for x in SPLITS:
        counts[f"near_duplicate_pairs_within_{x}"] = int((pair == f"{x}_{x}").sum())
    return counts


def split_summary(manifest: pd.DataFrame) -> tuple[dict, dict]:
    """(split metrics, leakage metrics), flat and rounded for `dvc metrics diff`."""
    counts = manifest["split"].value_counts()
    pool = manifest[manifest["split"].isin(["train", "val"])]
    val_share = pool.groupby("class_name")["split"].apply(lambda s: (s == "val").mean())
    stats = {f"{s}_images": int(counts.get(s, 0)) for s in (*SPLITS, "excluded")}
    stats.update({
        "groups": int(manifest["group_id"].nunique()),
        "largest_group": int(manifest["group_id"].value_counts().max()) if len(manifest) else 0,
        "val_share_min_class": round(float(val_share.min()), 4) if len(val_share) else 0.0,
        "val_share_max_class": round(float(val_share.max()), 4) if len(val_share) else 0.0,
    })
    used = manifest[manifest["split"].isin(SPLITS)]
    conflicts, listed = label_conflicts(manifest)
    dup = manifest.duplicated("sha256", keep="first")
    leakage = {
        "sources_in_more_than_one_split": int((used.groupby("source_id")["split"].nunique() > 1).sum()),
        "identical_images_across_splits": int((used.groupby("sha256")["split"].nunique() > 1).sum()),
        "excluded_train_images_grouped_with_test": int(counts.get("excluded", 0)),
        "duplicate_images_total": int(dup.sum()),
        "groups_with_conflicting_labels": conflicts,
        # the first 20 as one string: metrics stay flat for `dvc metrics diff`
        "groups_with_conflicting_labels_list": "; ".join(", ".join(g) for g in listed),
    }
    return stats, leakage


def require_train_and_val(stats: dict, n: int) -> None:
    if stats["train_images"] == 0 or stats["val_images"] == 0:
        raise DataError(f"{n} images form only {stats['groups']} groups of copies (by name, identical pixels and "
                        f"near-duplicates), which leaves {stats['train_images']} train and {stats['val_images']} val "
                        f"images; a split needs more distinct photos (or split.near_duplicates: report to keep "
                        f"near-duplicates apart at the risk of a leak)")


def near_duplicate_report(manifest: pd.DataFrame, a: np.ndarray, b: np.ndarray, mode: str) -> tuple[dict, np.ndarray]:
    """(leakage metrics of the confirmed pairs (a[i], b[i]) after the split, which pairs lie within
    the official test set): counts by split, pairs whose labels disagree (the first 20 listed)."""
    official, labels, sha = (manifest[c].to_numpy() for c in ("official_split", "label", "sha256"))
    in_test = (official[a] == "test") & (official[b] == "test") & (sha[a] != sha[b])
    conflicting = labels[a] != labels[b]
    ids = manifest["id"].to_numpy()
    report = near_duplicate_counts(manifest, a, b)
    report.update({
        "near_duplicate_mode": mode,
        "near_duplicate_pairs": len(a),
        "near_duplicate_pairs_within_official_test": int(in_test.sum()),
        "near_duplicate_pairs_conflicting_labels": int(conflicting.sum()),
        # the first 20 as one string each: metrics stay flat for `dvc metrics diff`
        "near_duplicate_pairs_conflicting_labels_list": "; ".join(
            f"{ids[i]} ~ {ids[j]}" for i, j in zip(a[conflicting][:20], b[conflicting][:20])),
    })
    return report, in_test
