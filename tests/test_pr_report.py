"""`imgclf pr-report`, the report the GitHub workflow posts, on a two-commit DVC repo."""

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

BIN = Path(sys.executable).parent
NAMES = ["cat", "dog", "fox"]


def _git(repo, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                   capture_output=True)


def _report(repo, base, out="pr-report"):
    return subprocess.run([sys.executable, "-m", "imgclf.review.pr_report", base, "--out", out], cwd=repo,
                          env=dict(os.environ, DVC=str(BIN / "dvc")), capture_output=True, text=True, timeout=180)


def _commit_run(repo, seed, acc, predicted):
    actual = ["cat", "cat", "dog", "dog", "fox", "fox"]
    (repo / "params.yaml").write_text(f"train:\n  seed: {seed}\n")
    (repo / "metrics" / "evaluate.json").write_text(json.dumps({"test": {"accuracy": acc}}))
    pd.DataFrame({"actual": actual, "predicted": predicted}).to_csv(repo / "metrics/plots/confusion_test.csv",
                                                                    index=False)
    f1 = [0.5 + 0.1 * seed, 0.9, 0.7]
    pd.DataFrame({"class": NAMES, "precision": f1, "recall": f1, "f1": f1, "support": [2, 2, 2]}).to_csv(
        repo / "metrics/plots/per_class_test.csv", index=False)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", f"seed {seed}")


def _repo(tmp_path):
    repo = tmp_path / "r"
    (repo / "metrics" / "plots").mkdir(parents=True)
    _git(repo, "init", "-q")
    subprocess.run([str(BIN / "dvc"), "init", "-q"], cwd=repo, check=True)
    (repo / "dvc.yaml").write_text("stages:\n  evaluate:\n    cmd: 'true'\n    params: [train.seed]\n"
                                   "    metrics:\n      - metrics/evaluate.json:\n          cache: false\n")
    return repo


def test_report_shows_metric_param_and_plot_changes_as_images(tmp_path):
    repo = _repo(tmp_path)
    _commit_run(repo, 1, 0.81, ["cat", "dog", "dog", "dog", "fox", "cat"])
    _commit_run(repo, 2, 0.86, ["cat", "cat", "dog", "dog", "fox", "cat"])
    res = _report(repo, "HEAD~1")
    assert res.returncode == 0, res.stderr
    report = (repo / "pr-report" / "report.md").read_text()
    assert "## Pipeline metrics against `HEAD~1`" in report
    row = next(line for line in report.splitlines() if "test.accuracy" in line)
    assert "0.81" in row and "0.86" in row and "0.05" in row
    param = next(line for line in report.splitlines() if "train.seed" in line)
    assert "| 1 " in param and "| 2 " in param
    for png in ("confusion_test.png", "per_class_f1_test.png"):
        assert f"]({png})" in report
        image = cv2.imread(str(repo / "pr-report" / png))
        assert image is not None and image.shape[0] > 200 and image.shape[1] > 300, png
        assert image.std() > 10, f"{png} is blank"      # something was drawn on it


def test_confusion_matrix_counts_actual_rows_predicted_columns():
    from imgclf.review.pr_report import confusion_matrix

    csv = b"actual,predicted\ncat,cat\ncat,dog\ndog,dog\nfox,cat\n"
    assert confusion_matrix(csv, NAMES).tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]


def test_unchanged_plots_draw_nothing_and_say_so(tmp_path):
    repo = _repo(tmp_path)
    _commit_run(repo, 1, 0.81, ["cat", "dog", "dog", "dog", "fox", "cat"])
    res = _report(repo, "HEAD")
    assert res.returncode == 0, res.stderr
    report = (repo / "pr-report" / "report.md").read_text()
    assert "_no parameter changes_" in report and "_no plot changes_" in report
    assert not list((repo / "pr-report").glob("*.png"))


def test_an_unknown_base_revision_is_a_clear_error(tmp_path):
    repo = _repo(tmp_path)
    _commit_run(repo, 1, 0.81, ["cat"] * 6)
    res = _report(repo, "no-such-branch")
    assert res.returncode == 2
    assert "no-such-branch" in res.stderr


def test_a_report_on_the_real_pipeline_outputs_renders_every_changed_plot(tmp_path):
    """The renderers on realistic sizes: ten classes, a base matrix unlike the head's."""
    from imgclf.review.pr_report import render_confusion, render_per_class_f1

    names = [f"class {i}" for i in range(10)]
    rng = np.random.default_rng(0)
    head = rng.integers(0, 50, (10, 10)) + np.diag(np.full(10, 900))
    base = head + rng.integers(-5, 6, (10, 10))
    png = render_confusion(base, head, names)
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape[1] > 2 * image.shape[0]          # three panels side by side
    table = pd.DataFrame({"class": names, "f1": np.linspace(0.8, 0.99, 10)})
    assert cv2.imdecode(np.frombuffer(render_per_class_f1(table.assign(f1=table.f1 - 0.01), table), np.uint8),
                        cv2.IMREAD_COLOR) is not None


def test_the_report_says_whether_the_change_is_real_and_shows_changed_images(tmp_path):
    """Per-image predictions (id column) on both sides: the significance table, the verdict and
    a preview of the broken and fixed images, read from data/augmented by id."""
    from imgclf.data.manifest import save_set
    from tests.conftest import image_set

    repo = _repo(tmp_path)
    ids = [f"test-{i}" for i in range(6)]
    actual = ["cat", "cat", "dog", "dog", "fox", "fox"]

    def commit(seed, predicted):
        _commit_run(repo, seed, 0.5, predicted)
        frame = pd.DataFrame({"id": ids, "actual": actual, "predicted": predicted, "confidence": 0.9})
        frame.to_csv(repo / "metrics/plots/confusion_test.csv", index=False)
        _git(repo, "add", "-A")
        _git(repo, "commit", "-qm", f"ids {seed}")

    commit(1, ["cat", "dog", "dog", "fox", "fox", "cat"])
    commit(2, ["cat", "cat", "dog", "fox", "cat", "fox"])      # fixes 2, breaks 1
    rng = np.random.default_rng(0)
    save_set(repo / "data" / "augmented", image_set(rng.integers(0, 255, (6, 28, 28), dtype=np.uint8),
                                                   [0, 0, 1, 1, 2, 2], ["test"] * 6, ids=ids))
    res = _report(repo, "HEAD~2")            # each commit() is a commit without ids, then one with them
    assert res.returncode == 0, res.stderr
    report = (repo / "pr-report" / "report.md").read_text()
    assert "## Is the change real? (test set, paired)" in report
    assert "| fixed (wrong -> right) | 2 |" in report and "| broken (right -> wrong) | 1 |" in report
    assert "within noise" in report
    image = cv2.imread(str(repo / "pr-report" / "changed_test_images.png"))
    assert image is not None and image.std() > 10
    # Without per-image ids on the base side, the report says why instead of failing.
    res = _report(repo, "HEAD~3", out="old")
    assert res.returncode == 0 and "_not compared: HEAD~3" in (repo / "old" / "report.md").read_text()
