"""The label audit (stage labels): out-of-sample scores by group, cleanlab's finder, injected flips."""

import numpy as np
import pandas as pd
import pytest

from imgclf.core.errors import ConfigError
from imgclf.data.label_audit import (
    find_suspects,
    flip_check,
    flip_labels,
    fold_of,
    out_of_sample_probs,
    reduce,
    usable_folds,
)
from imgclf.review.compare import compare, report_lines

NAMES = [f"class{c}" for c in range(6)]


def _clusters(n_per_class=80, dim=32, seed=0):
    """Six well-separated classes, every image in a group with its near-copy (a mirror, say)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 10, (len(NAMES), dim))
    y = np.repeat(np.arange(len(NAMES)), n_per_class)
    x = centres[y] + rng.normal(0, 1, (len(y), dim))
    groups = np.arange(len(y)) // 2          # rows 2k and 2k+1: one group, same class
    x[1::2] = x[::2] + rng.normal(0, 0.05, x[::2].shape)
    return x.astype(np.float32), y, groups


def test_a_group_sits_in_one_fold_and_every_fold_holds_every_class():
    _, y, groups = _clusters()
    fold = fold_of(y, groups, 5, seed=1)
    assert (pd.Series(fold).groupby(groups).nunique() == 1).all()
    for k in range(5):
        assert set(y[fold == k]) == set(range(len(NAMES)))
    np.testing.assert_array_equal(fold, fold_of(y, groups, 5, seed=1))          # seeded


def test_wrong_labels_are_found_and_right_ones_left_alone():
    x, y, groups = _clusters()
    given = y.copy()
    wrong = np.arange(0, len(y), 40)                 # 12 images, one of each group, moved to the next class
    given[wrong] = (y[wrong] + 1) % len(NAMES)
    probs = out_of_sample_probs(reduce(x, 6, seed=0), given, fold_of(given, groups, 5, seed=0), len(NAMES))
    found = find_suspects(given, probs)
    assert set(found.rows.tolist()) == set(wrong.tolist())
    np.testing.assert_array_equal(found.suggested[wrong], y[wrong])           # the true class is suggested
    assert found.quality[wrong].max() < np.delete(found.quality, wrong).min()  # ranked as the least plausible
    assert 0.01 < found.noise_rate < 0.1                                       # 12 of 480 = 2.5 %


def test_injected_flips_are_counted_against_the_suspects_they_add():
    x, y, groups = _clusters(seed=2)
    z, fold = reduce(x, 6, seed=0), fold_of(y, groups, 5, seed=0)
    clean = find_suspects(y, out_of_sample_probs(z, y, fold, len(NAMES)))
    check = flip_check(z, y, fold, len(NAMES), np.arange(len(y)), clean, 0.05, seed=3)
    assert check.flipped == 24
    assert check.precision == 1.0 and check.recall == round(check.found / 24, 4) >= 0.6, check
    assert check.as_metrics()["suspects_added"] == check.found


def test_flips_move_a_seeded_share_to_another_class():
    y = np.repeat(np.arange(10), 100)
    out, flipped = flip_labels(y, np.arange(0, 1000, 2), 0.1, 10, seed=7)
    assert len(flipped) == 50 and (flipped % 2 == 0).all()
    assert (out[flipped] != y[flipped]).all() and (np.delete(out, flipped) == np.delete(y, flipped)).all()
    again, same = flip_labels(y, np.arange(0, 1000, 2), 0.1, 10, seed=7)
    np.testing.assert_array_equal(again, out)
    assert not np.array_equal(flip_labels(y, np.arange(0, 1000, 2), 0.1, 10, seed=8)[1], flipped)


def test_a_class_too_small_for_the_folds_gets_fewer_or_a_message_naming_it():
    y = np.array([0] * 10 + [1] * 3)
    groups = np.arange(13)
    assert usable_folds(y, groups, 5, ["coat", "bag"]) == 3
    groups[10:] = 99                                  # the three bags: one photo and its copies
    with pytest.raises(ConfigError, match=r"class 'bag' has 1 image group.*at least 2 per class"):
        usable_folds(y, groups, 5, ["coat", "bag"])


def test_compare_says_how_many_changed_images_are_label_suspects():
    ids = [f"t{i}" for i in range(6)]
    base = pd.DataFrame({"id": ids, "actual": ["a"] * 6, "predicted": ["a", "a", "a", "b", "b", "a"]}).set_index("id")
    head = pd.DataFrame({"id": ids, "actual": ["a"] * 6, "predicted": ["b", "b", "a", "a", "b", "a"],
                         "label_suspect": [1, 0, 0, 1, 1, 0]}).set_index("id")
    c = compare(base, head, resamples=99)
    assert (c.broken, c.broken_suspects, c.fixed, c.fixed_suspects) == (2, 1, 1, 1)
    lines = "\n".join(report_lines(c))
    assert "broken (right -> wrong)   2 (1 of them label suspects)" in lines
    old = compare(base, base.assign(predicted=head["predicted"]), resamples=99)   # runs from before the audit
    assert old.broken_suspects is None and "suspects" not in "\n".join(report_lines(old))


def test_features_on_disk_reduce_as_in_memory(tmp_path):
    """The stage reads the vectors a chunk at a time: the projection is the one of the array."""
    from imgclf.core.npy_rows import NpyRows, Selection

    x, _, _ = _clusters()
    np.save(tmp_path / "f.npy", x)
    rows = np.arange(0, len(x), 3)
    on_disk = reduce(Selection(NpyRows(tmp_path / "f.npy"), rows), 6, seed=4)
    np.testing.assert_allclose(on_disk, reduce(x[rows], 6, seed=4), rtol=1e-5, atol=1e-5)
    assert on_disk.shape == (len(rows), 6) and on_disk.dtype == np.float32
