"""imgclf.compare: paired significance of a change in test accuracy, on known cases."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pandas as pd
import pytest

from imgclf.compare import CompareError, changed_images, compare, load_predictions, main, report_lines
from imgclf.evaluation import confusion_rows

CLASSES = ["coat", "shirt", "bag"]


def predictions(n: int = 10_000, wrong: int = 800, seed: int = 0) -> pd.DataFrame:
    """n test images, the first `wrong` of them misclassified."""
    rng = np.random.default_rng(seed)
    actual = rng.integers(0, len(CLASSES), n)
    predicted = actual.copy()
    predicted[:wrong] = (actual[:wrong] + 1) % len(CLASSES)
    return confusion_rows(actual, predicted, CLASSES, ids=[f"test-{i:05d}" for i in range(n)],
                          confidence=np.full(n, 0.9)).set_index("id")


def change(frame: pd.DataFrame, fix: int, brk: int) -> pd.DataFrame:
    """A head that fixes the first `fix` wrong images and breaks `brk` right ones."""
    out = frame.copy()
    wrong = np.flatnonzero(out["predicted"] != out["actual"])[:fix]
    right = np.flatnonzero(out["predicted"] == out["actual"])[:brk]
    out.iloc[wrong, out.columns.get_loc("predicted")] = out["actual"].iloc[wrong]
    names = np.asarray(CLASSES)
    shifted = [names[(CLASSES.index(a) + 2) % len(CLASSES)] for a in out["actual"].iloc[right]]
    out.iloc[right, out.columns.get_loc("predicted")] = shifted
    return out


def test_confusion_rows_carry_id_and_confidence_for_the_comparison():
    rows = confusion_rows(np.array([0, 2]), np.array([1, 2]), CLASSES, ids=["a", "b"], confidence=np.array([0.51234, 1.0]))
    assert rows.to_dict("list") == {"id": ["a", "b"], "actual": ["coat", "bag"], "predicted": ["shirt", "bag"],
                                    "confidence": [0.5123, 1.0]}
    assert list(confusion_rows(np.array([0]), np.array([0]), CLASSES).columns) == ["actual", "predicted"]


def test_identical_predictions_are_no_change():
    base = predictions()
    c = compare(base, base.copy())
    assert (c.difference, c.p_value, c.fixed, c.broken, c.ci_low, c.ci_high) == (0.0, 1.0, 0, 0, 0.0, 0.0)
    assert c.verdict().startswith("no change")


def test_fixing_200_and_breaking_20_is_significant():
    base = predictions()
    c = compare(base, change(base, 200, 20))
    assert (c.fixed, c.broken) == (200, 20)
    assert c.difference == pytest.approx(0.018)
    assert c.p_value < 0.001
    assert 0 < c.ci_low < 0.018 < c.ci_high < 0.03
    assert c.verdict() == "+1.80 pt, 95 % CI [{:+.2f}, {:+.2f}], McNemar p < 0.001: a real improvement".format(
        100 * c.ci_low, 100 * c.ci_high)
    assert int(c.per_class["fixed"].sum()) == 200 and int(c.per_class["broken"].sum()) == 20
    # and the reverse change is a regression
    assert compare(change(base, 200, 20), base).verdict().endswith("a real regression")


def test_fixing_12_and_breaking_10_is_within_noise():
    base = predictions()
    c = compare(base, change(base, 12, 10))
    assert (c.fixed, c.broken) == (12, 10)
    assert c.p_value == pytest.approx(0.8318, abs=1e-4)          # binomial(12 of 22, 0.5), two-sided
    assert c.ci_low < 0 < c.ci_high
    assert c.verdict().endswith("within noise") and c.verdict().startswith("+0.02 pt")


def test_an_interval_that_excludes_zero_without_a_significant_test_is_called_borderline():
    """31 fixed, 17 broken (a real pair of commits of this project): McNemar's exact p is 0.059 while
    the percentile bootstrap interval just excludes 0; the verdict must not print both as "noise"."""
    base = predictions()
    c = compare(base, change(base, 31, 17))
    assert c.p_value == pytest.approx(0.0595, abs=1e-3)
    assert c.ci_low > 0
    assert "borderline, within noise by McNemar's exact test" in c.verdict()


def test_per_class_counts_and_changed_images_on_a_hand_made_case():
    base = pd.DataFrame({"id": ["a", "b", "c", "d"], "actual": ["coat", "coat", "bag", "bag"],
                         "predicted": ["coat", "shirt", "bag", "coat"]}).set_index("id")
    head = pd.DataFrame({"id": ["d", "c", "b", "a"], "actual": ["bag", "bag", "coat", "coat"],     # another order
                         "predicted": ["bag", "shirt", "coat", "coat"]}).set_index("id")
    c = compare(base, head)
    assert (c.base_accuracy, c.head_accuracy, c.fixed, c.broken) == (0.5, 0.75, 2, 1)
    assert c.per_class.to_dict("records") == [
        {"class": "bag", "images": 2, "base_accuracy": 0.5, "head_accuracy": 0.5, "fixed": 1, "broken": 1},
        {"class": "coat", "images": 2, "base_accuracy": 0.5, "head_accuracy": 1.0, "fixed": 1, "broken": 0}]
    broken, fixed = changed_images(base, head)
    assert list(broken.index) == ["c"] and list(fixed.index) == ["b", "d"]
    text = "\n".join(report_lines(c))
    assert re.search(r"fixed \(wrong -> right\) +2\n", text) and "verdict:" in text


def test_different_test_sets_are_refused_naming_both():
    base = predictions(100, 10)
    head = base.rename(index={"test-00003": "test-99999"})
    with pytest.raises(CompareError, match=r"base and head were scored on different test sets: 1 image ids only "
                                           r"in base \(e.g. \['test-00003'\]\), 1 only in head"):
        compare(base, head)
    relabelled = base.copy()
    relabelled.iloc[0, relabelled.columns.get_loc("actual")] = "bag" if relabelled["actual"].iloc[0] != "bag" else "coat"
    with pytest.raises(CompareError, match="disagree on the true class of 1 images"):
        compare(base, relabelled)


def _git(cwd, *args):
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout.strip()


def test_revisions_without_predictions_are_named(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _git(tmp_path, "init", "-q")
    (tmp_path / "README").write_text("x")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-qm", "no pipeline run yet")
    with pytest.raises(CompareError, match=r"HEAD \(.{7}\): no metrics/plots/confusion_test.csv in that commit"):
        load_predictions("HEAD")
    plots = tmp_path / "metrics" / "plots"
    plots.mkdir(parents=True)
    pd.DataFrame({"actual": ["coat"], "predicted": ["bag"]}).to_csv(plots / "confusion_test.csv", index=False)
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-qm", "old evaluate: no ids")
    with pytest.raises(CompareError, match="has no per-image id column"):
        load_predictions("HEAD")
    assert main(["no-such-rev"]) == 2
    assert "'no-such-rev' is neither an experiment" in capsys.readouterr().err
    predictions(50, 5).reset_index().to_csv(plots / "confusion_test.csv", index=False)
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-qm", "with ids")
    change(predictions(50, 5), 3, 0).reset_index().to_csv(plots / "confusion_test.csv", index=False)
    assert main(["HEAD"]) == 0                                   # HEAD against the workspace
    out = capsys.readouterr().out
    assert re.search(r"fixed \(wrong -> right\) +3\n", out) and "verdict: +6.00 pt" in out and "within noise" in out
