"""imgclf.core.revisions and imgclf.review.agreement (used by research/vote_across_experiments.py and research/tta_views.py): which
experiment is which, and what a vote of them scores."""

import numpy as np
import pytest

from imgclf.core.revisions import RevisionError, resolve, split_hash
from imgclf.review import agreement as vote

REFS = "\n".join([
    f"{'a' * 40} refs/exps/09/2b918f/cnn-w32-e10",
    f"{'b' * 40} refs/exps/27/99a8b0/cnn-w48-e6",
    f"{'c' * 40} refs/exps/exec/EXEC_HEAD",
])


def test_an_experiment_name_resolves_to_its_commit():
    assert resolve("cnn-w48-e6", REFS) == "b" * 40


def test_a_name_that_is_only_a_suffix_of_another_does_not_match():
    with pytest.raises(RevisionError, match="'w48-e6' is neither an experiment"):
        resolve("w48-e6", REFS)


def test_a_name_used_on_two_commits_is_refused_with_both_commits():
    refs = REFS + f"\n{'d' * 40} refs/exps/fc/f10e66/cnn-w48-e6"
    with pytest.raises(RevisionError, match="ambiguous.*" + "b" * 40 + ".*" + "d" * 40):
        resolve("cnn-w48-e6", refs)


def test_split_hash_is_read_from_the_split_stage_and_its_absence_named():
    lock = {"stages": {"split": {"outs": [{"path": "metrics/previews/x.png", "md5": "1"},
                                          {"path": "data/split", "md5": "abc.dir"}]}}}
    assert split_hash(lock, "dvc.lock") == "abc.dir"
    with pytest.raises(RevisionError, match="dvc.lock of x: no split stage"):
        split_hash({"stages": {}}, "dvc.lock of x")


def test_votes_average_probabilities_and_score_every_combination():
    y = np.array([0, 1, 1])
    # a gets the first two right and misses the third narrowly; b misses the first and gets the
    # last two right confidently; their mean gets all three right.
    a = np.array([[0.9, 0.1], [0.2, 0.8], [0.55, 0.45]])
    b = np.array([[0.4, 0.6], [0.3, 0.7], [0.1, 0.9]])
    rows = dict(vote.votes({"a": a, "b": b}, y))
    assert rows[("a",)] == pytest.approx(2 / 3)
    assert rows[("b",)] == pytest.approx(2 / 3)
    assert rows[("a", "b")] == 1.0
    assert vote.shared_errors({"a": a, "b": b}, y) == [("a", "b", 0, 2)]


def test_shared_errors_count_images_both_models_miss():
    y = np.array([0, 0, 0, 1])
    a = np.array([[0, 1], [0, 1], [1, 0], [1, 0]], dtype=float)  # wrong on 0, 1, 3
    b = np.array([[0, 1], [1, 0], [1, 0], [1, 0]], dtype=float)  # wrong on 0, 3
    assert vote.shared_errors({"a": a, "b": b}, y) == [("a", "b", 2, 3)]
