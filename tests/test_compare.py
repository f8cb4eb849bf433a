"""imgclf.review.compare: paired significance of a change in test accuracy, on known cases."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pandas as pd
import pytest

from imgclf.review.compare import CompareError, changed_images, compare, load_predictions, main, report_lines
from imgclf.review.evaluation import confusion_rows

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
    # The percentile bootstrap's bounds, the same for seed 0 every run (9,999 paired resamples).
    assert (round(c.ci_low, 4), round(c.ci_high, 4)) == (0.0152, 0.0209)
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
    assert (round(c.ci_low, 4), round(c.ci_high, 4)) == (-0.0007, 0.0011)     # percentile bootstrap, seed 0
    assert c.verdict().endswith("within noise") and c.verdict().startswith("+0.02 pt")


def test_as_many_fixed_as_broken_is_no_difference_with_an_interval_around_it():
    """Not "no change": the images that changed still spread the interval on both sides of 0."""
    base = predictions()
    c = compare(base, change(base, 10, 10))
    assert (c.fixed, c.broken, c.difference, c.p_value) == (10, 10, 0.0, 1.0)
    assert (round(c.ci_low, 4), round(c.ci_high, 4)) == (-0.0009, 0.0009)
    assert c.verdict() == "+0.00 pt, 95 % CI [-0.09, +0.09], McNemar p = 1.000: within noise"


def test_an_interval_that_excludes_zero_without_a_significant_test_is_called_borderline():
    """31 fixed, 17 broken (a real pair of commits of this project): McNemar's exact p is 0.059 while
    the percentile bootstrap interval just excludes 0; the verdict must not print both as "noise"."""
    base = predictions()
    c = compare(base, change(base, 31, 17))
    assert c.p_value == pytest.approx(0.0595, abs=1e-3)
    assert (round(c.ci_low, 4), round(c.ci_high, 4)) == (0.0001, 0.0028)      # BCa's would start at 0.00003
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
    assert list(broken.columns) == ["actual", "base_predicted", "head_predicted", "label_suspect"]   # the PR report reads these
    assert not broken["label_suspect"].any()        # neither revision carries the audit's flag
    text = "\n".join(report_lines(c))
    assert re.search(r"fixed \(wrong -> right\) +2\n", text) and "verdict:" in text


def test_different_test_sets_are_refused_naming_both():
    base = predictions(100, 10)
    head = base.rename(index={"test-00003": "test-99999"})
    with pytest.raises(CompareError, match=r"base and head were scored on different test sets: 1 image ids only "
                                           r"in base \(e.g. \['test-00003'\]\), 1 only in head"):
        compare(base, head)
    with pytest.raises(CompareError, match=r"1 image ids only in base \(e.g. \['test-00003'\]\), 0 only in head"):
        compare(base, base.drop(index="test-00003"))                # a head scored on fewer images
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


def _known_comparison(p_value: float = 0.0654):
    from imgclf.review.compare import Comparison

    per_class = pd.DataFrame({"class": ["coat", "shirt", "dress", "bag"], "images": [1000, 1000, 1000, 500],
                              "base_accuracy": [0.9, 0.8, 0.95, 0.99], "head_accuracy": [0.91, 0.795, 0.947, 0.99],
                              "fixed": [12, 3, 0, 0], "broken": [2, 8, 3, 0]})
    return Comparison("main (abc1234)", "my-exp (def5678)", 2500, 0.87, 0.8722, 0.0022, -0.0001, 0.0046,
                      p_value, 15, 13, per_class)


def test_the_printed_report_is_exactly_what_a_reviewer_reads():
    """Every line of `imgclf compare`, on known numbers: classes with no change are left out."""
    assert report_lines(_known_comparison()) == [
        "test images                2,500",
        "accuracy main (abc1234)    0.8700",
        "accuracy my-exp (def5678)  0.8722",
        "difference (head - base)   +0.22 pt, 95 % CI [-0.01, +0.46] (paired bootstrap)",
        "fixed (wrong -> right)     15",
        "broken (right -> wrong)    13",
        "McNemar exact p            0.065",
        "",
        "class          images     base     head  fixed  broken",
        "coat             1000   0.9000   0.9100     12       2",
        "shirt            1000   0.8000   0.7950      3       8",
        "dress            1000   0.9500   0.9470      0       3",
        "",
        "verdict: +0.22 pt, 95 % CI [-0.01, +0.46], McNemar p = 0.065: within noise"]
    assert report_lines(_known_comparison(0.0004))[6] == "McNemar exact p            < 0.001"


def test_the_pr_report_table_is_exactly_what_a_reviewer_reads():
    assert report_lines(_known_comparison(), markdown=True) == [
        "| | |", "|---|---|",
        "| test images | 2,500 |",
        "| accuracy main (abc1234) | 0.8700 |",
        "| accuracy my-exp (def5678) | 0.8722 |",
        "| difference (head - base) | +0.22 pt, 95 % CI [-0.01, +0.46] (paired bootstrap) |",
        "| fixed (wrong -> right) | 15 |",
        "| broken (right -> wrong) | 13 |",
        "| McNemar exact p | 0.065 |",
        "",
        "**+0.22 pt, 95 % CI [-0.01, +0.46], McNemar p = 0.065: within noise**",
        "",
        "| class | images | base accuracy | head accuracy | fixed | broken |",
        "|---|---|---|---|---|---|",
        "| coat | 1000 | 0.9000 | 0.9100 | 12 | 2 |",
        "| shirt | 1000 | 0.8000 | 0.7950 | 3 | 8 |",
        "| dress | 1000 | 0.9500 | 0.9470 | 0 | 3 |"]


def test_labels_name_the_revision_and_bad_files_are_named(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _git(tmp_path, "init", "-q")
    with pytest.raises(CompareError) as err:
        load_predictions("workspace")
    assert str(err.value) == "workspace: no metrics/plots/confusion_test.csv; run `dvc repro` first"
    plots = tmp_path / "metrics" / "plots"
    plots.mkdir(parents=True)
    pd.DataFrame({"actual": ["coat"]}).to_csv(plots / "confusion_test.csv", index=False)
    with pytest.raises(CompareError, match=r"^workspace: metrics/plots/confusion_test.csv has no per-image id, "
                                           r"predicted column\(s\)"):
        load_predictions("workspace")
    pd.DataFrame({"id": ["a", "b", "b"], "actual": ["coat"] * 3, "predicted": ["coat"] * 3}).to_csv(
        plots / "confusion_test.csv", index=False)
    with pytest.raises(CompareError) as err:
        load_predictions("workspace")
    assert str(err.value) == "workspace: metrics/plots/confusion_test.csv repeats image ids, e.g. b"
    predictions(50, 5).reset_index().to_csv(plots / "confusion_test.csv", index=False)
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-qm", "with ids")
    commit = _git(tmp_path, "rev-parse", "HEAD")
    assert load_predictions(commit[:10])[1] == commit[:7]           # a hash is its own label
    assert load_predictions("HEAD")[1] == f"HEAD ({commit[:7]})"    # a name gets the hash beside it
    assert main(["HEAD"]) == 0
    out = capsys.readouterr().out
    assert f"accuracy HEAD ({commit[:7]})   0.9000\n" in out and "accuracy workspace        0.9000\n" in out


def test_help_names_the_command_and_its_arguments(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: imgclf compare [-h] base [head]\n")
    assert "Is the change real? Two revisions' test predictions compared image by image." in text.split("positional arguments")[0]
    # whole lines: a substring check passes a mangled text around the right words
    assert re.search(r"^  base +git revision or DVC experiment name$", text, re.M), text
    assert re.search(r"^  head +another one \(default: the workspace\)$", text, re.M), text
    assert "McNemar" not in text                    # the description is the docstring's first paragraph only


def test_report_numbers_are_percentage_points_and_every_changed_class_is_listed():
    """Numbers where a 1 % slip shows (5.00 pt, not 0.22), p exactly at the "< 0.001" edge, and classes
    with a single fixed or a single broken image: each is a change a reviewer must see."""
    from imgclf.review.compare import Comparison

    per_class = pd.DataFrame({"class": ["coat", "bag", "dress"], "images": [10, 10, 10],
                              "base_accuracy": [0.8, 0.9, 1.0], "head_accuracy": [0.9, 0.8, 1.0],
                              "fixed": [1, 0, 0], "broken": [0, 1, 0]})
    c = Comparison("a", "b", 1000, 0.8, 0.85, 0.05, 0.03, 0.07, 0.001, 1, 1, per_class)
    lines = report_lines(c)
    assert lines[3].endswith("+5.00 pt, 95 % CI [+3.00, +7.00] (paired bootstrap)"), lines[3]
    assert lines[6].endswith("  0.001"), lines[6]
    assert [line.split()[0] for line in lines[9:-2]] == ["coat", "bag"], lines


def test_the_refusal_counts_every_missing_id_and_names_the_first_three():
    base = predictions(100, 10)
    fewer = base.drop(index=base.index[:5])
    first_three = "['test-00000', 'test-00001', 'test-00002']"
    with pytest.raises(CompareError) as err:
        compare(base, fewer)
    assert f"5 image ids only in base (e.g. {first_three}), 0 only in head (e.g. [])" in str(err.value)
    with pytest.raises(CompareError) as err:
        compare(fewer, base)
    assert f"0 image ids only in base (e.g. []), 5 only in head (e.g. {first_three})" in str(err.value)
