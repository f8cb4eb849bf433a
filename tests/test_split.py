"""Split by source group: no source and no identical image on two sides; stable under growth."""

import numpy as np
import pandas as pd
import pytest

from imgclf.data.manifest import SPLITS
from imgclf.data.split import SplitIntegrityError, assign_splits, check_integrity, label_conflicts, split_summary
from tests.conftest import image_set, synthetic_images


def _dataset(n_train=600, n_test=100, seed=0):
    tr_x, tr_y = synthetic_images(n_train, seed)
    te_x, te_y = synthetic_images(n_test, seed + 1)
    images = np.concatenate([tr_x, te_x])
    labels = np.concatenate([tr_y, te_y])
    official = ["train"] * n_train + ["test"] * n_test
    ids = [f"train-{i:05d}" for i in range(n_train)] + [f"test-{i:05d}" for i in range(n_test)]
    return images, labels, official, ids


def test_official_test_stays_test_and_val_share_is_near_fraction():
    images, labels, official, ids = _dataset(n_train=3000)
    result = assign_splits(image_set(images, labels, official, ids), val_fraction=0.2, seed=1)
    m = result.manifest
    assert (m.loc[m.official_split == "test", "split"] == "test").all()
    share = (m.split == "val").sum() / (m.official_split == "train").sum()
    assert 0.17 < share < 0.23
    # Stratified in expectation: every class gets val images.
    assert set(m.loc[m.split == "val", "label"]) == set(range(10))


def test_identical_images_and_shared_sources_never_straddle_splits():
    images, labels, official, ids = _dataset()
    sources = list(ids)
    # 30 exact copies inside train, 5 train copies of test images, and 40 images sharing 10 sources.
    for i in range(30):
        images[300 + i] = images[i]
    for i in range(5):
        images[500 + i] = images[600 + i]
    for i in range(40):
        sources[100 + i] = f"photo-{i % 10}"
    result = assign_splits(image_set(images, labels, official, ids, sources), val_fraction=0.5, seed=3)
    m = result.manifest
    used = m[m.split.isin(SPLITS)]
    assert (used.groupby("sha256").split.nunique() == 1).all()
    assert (used.groupby("source_id").split.nunique() == 1).all()
    assert (m.loc[500:504, "split"] == "excluded").all()
    for i in range(30):
        assert m.loc[300 + i, "split"] == m.loc[i, "split"] and m.loc[300 + i, "group_id"] == m.loc[i, "group_id"]
    stats, leakage = split_summary(m)
    assert leakage["sources_in_more_than_one_split"] == 0
    assert leakage["identical_images_across_splits"] == 0
    assert leakage["excluded_train_images_grouped_with_test"] == 5
    assert stats["excluded_images"] == 5


def test_adding_images_never_moves_existing_ones():
    images, labels, official, ids = _dataset(n_train=1000)
    small = assign_splits(image_set(images[:500], labels[:500], official[:500], ids[:500]), 0.3, 7).manifest
    big = assign_splits(image_set(images, labels, official, ids), 0.3, 7).manifest
    merged = small.merge(big, on="id", suffixes=("_small", "_big"))
    assert len(merged) == 500
    assert (merged.split_small == merged.split_big).all()


def test_seed_changes_the_assignment():
    images, labels, official, ids = _dataset()
    a = assign_splits(image_set(images, labels, official, ids), 0.3, 1).manifest
    b = assign_splits(image_set(images, labels, official, ids), 0.3, 2).manifest
    assert (a.split != b.split).any()


def test_integrity_check_names_offending_images():
    images, labels, official, ids = _dataset(n_train=50, n_test=10)
    m = assign_splits(image_set(images, labels, official, ids), 0.3, 1).manifest
    train_row = m.index[m.split == "train"][0]
    m.loc[train_row, "sha256"] = m.loc[m.index[m.split == "test"][0], "sha256"]
    with pytest.raises(SplitIntegrityError, match=rf"identical image .*{m.loc[train_row, 'id']} in train"):
        check_integrity(m)


def test_integrity_check_refuses_a_source_straddling_splits():
    images, labels, official, ids = _dataset(n_train=50, n_test=10)
    m = assign_splits(image_set(images, labels, official, ids), 0.3, 1).manifest
    train_row, val_row = m.index[m.split == "train"][0], m.index[m.split == "val"][0]
    m.loc[val_row, "source_id"] = m.loc[train_row, "source_id"]          # an augmented copy in val
    with pytest.raises(SplitIntegrityError, match=rf"source {m.loc[train_row, 'source_id']}: .* in train, .* in val|"
                                                  rf"source {m.loc[train_row, 'source_id']}: .* in val, .* in train"):
        check_integrity(m)


def test_integrity_check_refuses_linked_near_duplicates_on_two_sides():
    images, labels, official, ids = _dataset(n_train=50, n_test=10)
    m = assign_splits(image_set(images, labels, official, ids), 0.3, 1).manifest
    a, b = m.index[m.split == "train"][0], m.index[m.split == "test"][0]
    check_integrity(m, (np.array([a]), np.array([a])))                  # a link within one split is fine
    with pytest.raises(SplitIntegrityError, match=rf"near-duplicates {m.id[a]} in train and {m.id[b]} in test"):
        check_integrity(m, (np.array([a]), np.array([b])))
    # excluded rows are outside every split: a link to one is not a straddle
    m.loc[b, "split"] = "excluded"
    check_integrity(m, (np.array([a]), np.array([b])))


def test_split_metrics_on_a_hand_made_manifest():
    """split.json and leakage.json on known counts: per-class val shares, groups, excluded, duplicates,
    a source on both sides (what the audit exists to catch), and an empty manifest."""
    from imgclf.core.hashing import image_sha256
    from tests.conftest import image_set, synthetic_images

    x, _ = synthetic_images(10, 4)
    x[9] = x[8]                                                      # one duplicate image
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    m = image_set(x, labels, ["train"] * 8 + ["test"] * 2).manifest.copy()
    m["sha256"] = [image_sha256(img) for img in x]
    m["split"] = ["train", "train", "train", "val", "train", "val", "train", "test", "excluded", "test"]
    m["group_id"] = [0, 0, 1, 2, 3, 4, 5, 6, 7, 7]
    m.loc[3, "source_id"] = m.loc[0, "source_id"]                    # one source in train and in val
    stats, leakage = split_summary(m)
    assert stats == {"train_images": 5, "val_images": 2, "test_images": 2, "excluded_images": 1, "groups": 8,
                     "largest_group": 2, "val_share_min_class": 0.25, "val_share_max_class": 0.3333}
    assert leakage["duplicate_images_total"] == 1 and leakage["excluded_train_images_grouped_with_test"] == 1
    assert leakage["sources_in_more_than_one_split"] == 1 and leakage["identical_images_across_splits"] == 0
    stats, leakage = split_summary(m.iloc[:0])
    assert stats == {"train_images": 0, "val_images": 0, "test_images": 0, "excluded_images": 0, "groups": 0,
                     "largest_group": 0, "val_share_min_class": 0.0, "val_share_max_class": 0.0}


def test_leakage_metrics_count_identical_images_across_two_splits_and_list_label_conflicts():
    """Every leakage.json key by name on a manifest with each kind of trouble once: the same pixels in
    val and test, a source whose two rows carry different classes, and 22 such groups to show the
    list stops at 20 while the count does not."""
    rows = []
    for g in range(22):                        # groups 0..21: one source, two rows, two classes each
        rows += [dict(id=f"s{g}-a", source_id=f"s{g}", sha256=f"{g:064x}", label=0, class_name="shirt"),
                 dict(id=f"s{g}-b", source_id=f"s{g}", sha256=f"{g + 100:064x}", label=1, class_name="coat")]
    rows += [dict(id="v", source_id="v", sha256="f" * 64, label=2, class_name="bag"),
             dict(id="t", source_id="t", sha256="f" * 64, label=2, class_name="bag")]
    m = pd.DataFrame(rows)
    m["split"] = ["train"] * 44 + ["val", "test"]
    m["group_id"] = list(np.repeat(np.arange(22), 2)) + [22, 23]
    stats, leakage = split_summary(m)
    listed = "; ".join(f"s{g}-a (shirt), s{g}-b (coat)" for g in range(20))
    assert leakage == {"sources_in_more_than_one_split": 0, "identical_images_across_splits": 1,
                       "excluded_train_images_grouped_with_test": 0, "duplicate_images_total": 1,
                       "groups_with_conflicting_labels": 22, "groups_with_conflicting_labels_list": listed}
    assert stats["val_images"] == 1 and stats["largest_group"] == 2
    m.loc[[0, 1, 3], "split"] = "val"           # shirt 1 of 22 in val (0.04545...), coat 2 of 22
    stats, _ = split_summary(m)
    assert stats["val_share_min_class"] == 0.0455 and stats["val_share_max_class"] == 1.0
    count, first = label_conflicts(m, limit=2)
    assert count == 22 and first == [["s0-a (shirt)", "s0-b (coat)"], ["s1-a (shirt)", "s1-b (coat)"]]


def test_an_unknown_official_split_is_named():
    from imgclf.data.manifest import DataError

    x, y = synthetic_images(4, 0)
    with pytest.raises(DataError, match=r"unknown official_split values \['holdout'\]"):
        assign_splits(image_set(x, y, ["train", "test", "holdout", "train"]), val_fraction=0.25, seed=0)


def test_the_refusal_lists_every_broken_guarantee_on_its_own_line():
    m = pd.DataFrame({"id": ["a", "b", "c", "d"], "split": ["train", "val", "train", "test"],
                      "source_id": ["s1", "s1", "s2", "s3"], "sha256": ["h1", "h2", "h3", "h4"]})
    with pytest.raises(SplitIntegrityError) as err:
        check_integrity(m, (np.array([2]), np.array([3])))
    assert str(err.value) == ("split refused, a guarantee is broken:\n"
                              "  near-duplicates c in train and d in test\n"
                              "  source s1: a in train, b in val")
