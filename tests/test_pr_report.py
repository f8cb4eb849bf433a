"""bench/pr_report.sh, the script the GitHub workflow posts, on a two-commit DVC repo."""

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

BIN = Path(sys.executable).parent


def _git(repo, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                   capture_output=True)


def test_report_shows_metric_and_param_changes(tmp_path):
    repo = tmp_path / "r"
    repo.mkdir()
    env = dict(os.environ, DVC=str(BIN / "dvc"))
    _git(repo, "init", "-q")
    subprocess.run([str(BIN / "dvc"), "init", "-q"], cwd=repo, check=True)
    (repo / "dvc.yaml").write_text("stages:\n  evaluate:\n    cmd: 'true'\n    params: [train.seed]\n"
                                   "    metrics:\n      - evaluate.json:\n          cache: false\n")
    for seed, acc in ((1, 0.81), (2, 0.86)):
        (repo / "params.yaml").write_text(f"train:\n  seed: {seed}\n")
        (repo / "evaluate.json").write_text(json.dumps({"test": {"accuracy": acc}}))
        _git(repo, "add", "-A")
        _git(repo, "commit", "-qm", f"seed {seed}")
    res = subprocess.run(["bash", str(REPO / "bench" / "pr_report.sh"), "HEAD~1"], cwd=repo, env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "## Pipeline metrics against `HEAD~1`" in out
    row = next(line for line in out.splitlines() if "test.accuracy" in line)
    assert "0.81" in row and "0.86" in row and "0.05" in row
    param = next(line for line in out.splitlines() if "train.seed" in line)
    assert "| 1 " in param and "| 2 " in param


def test_report_without_changes_says_so(tmp_path):
    repo = tmp_path / "r"
    repo.mkdir()
    _git(repo, "init", "-q")
    subprocess.run([str(BIN / "dvc"), "init", "-q"], cwd=repo, check=True)
    (repo / "params.yaml").write_text("a: 1\n")
    (repo / "dvc.yaml").write_text("stages:\n  s:\n    cmd: 'true'\n    params: [a]\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "one")
    res = subprocess.run(["bash", str(REPO / "bench" / "pr_report.sh"), "HEAD"], cwd=repo,
                         env=dict(os.environ, DVC=str(BIN / "dvc")), capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "_no parameter changes_" in res.stdout
