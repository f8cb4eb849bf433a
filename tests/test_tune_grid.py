"""The README's grid recipe on the real pipeline (tiny synthetic data): `dvc exp run --queue` with
comma-separated values, `dvc queue start -j 2`, then `dvc exp show` lists every trial with metrics,
and both workers read and write the project's one feature store."""

import json
import time

import pytest

from imgclf import runlog
from tests.conftest import BIN, CUT_BACKBONE, make_pipeline_repo, run, write_idx_dataset

pytestmark = pytest.mark.slow      # runs the whole DVC pipeline

TRAIN, TEST, MULTIPLIER = 300, 100, 2


def test_a_queued_grid_runs_on_two_workers_sharing_the_feature_store(tmp_path):
    checksums = write_idx_dataset(tmp_path / "mirror", n_train=TRAIN, n_test=TEST, seed=5)

    def edit(params):
        params["download"].update(sources=[str(tmp_path / "mirror")], files=checksums)
        params["split"]["audit_recall_pairs"] = 50
        params["augment"]["multiplier"] = MULTIPLIER
        params["augment"]["mirror"] = False           # random variants: a new augment seed makes new ones
        params["bottleneck"].update(batch_size=64, **CUT_BACKBONE)   # this test counts cache hits
        params["train"]["head"].update(epochs=5, patience=2, hidden_units=[32])

    repo = make_pipeline_repo(tmp_path / "repo", edit)
    dvc = str(BIN / "dvc")
    run([dvc, "repro", "-q"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "baseline"], repo)
    baseline_runs = len(runlog.read(repo / runlog.LOG))
    sources = json.loads((repo / "metrics" / "augment.json").read_text())

    # New augment seeds make new variants (the bottleneck re-runs); dropout changes only the head.
    # Queued in this order, (0.2, 1) and (0.2, 2) run at once and both write to the store; the trial
    # at dropout 0.4 starts when one of them is done and finds seed 1's split, augment and
    # bottleneck in the run-cache (three trials: the fourth of the full grid would show no more).
    run([dvc, "exp", "run", "--queue", "-S", "train.head.dropout=0.2", "-S", "augment.seed=1,2"], repo)
    run([dvc, "exp", "run", "--queue", "-S", "train.head.dropout=0.4", "-S", "augment.seed=1"], repo)
    run([dvc, "queue", "start", "-j", "2"], repo)
    deadline = time.time() + 900
    while True:
        status = run([dvc, "queue", "status"], repo).stdout
        if not any(word in status for word in (" Queued", " Running")):
            break
        assert time.time() < deadline, status
        time.sleep(3)
    run([dvc, "queue", "stop"], repo, check=False)
    assert "Failed" not in status, run([dvc, "queue", "logs", status.split()[4]], repo, check=False).stdout

    shown = json.loads(run([dvc, "exp", "show", "--json"], repo).stdout)
    trials = [e["revs"][0]["data"] for base in shown for e in base.get("experiments") or []]
    grid = {(t["params"]["params.yaml"]["data"]["augment"]["seed"],
             t["params"]["params.yaml"]["data"]["train"]["head"]["dropout"]) for t in trials}
    assert grid == {(1, 0.2), (2, 0.2), (1, 0.4)}
    for t in trials:
        assert 0 < t["metrics"]["metrics/evaluate.json"]["data"]["val"]["accuracy"] <= 1

    runs = runlog.read(repo / runlog.LOG)[baseline_runs:]
    assert all(".dvc/tmp/exps" in r["cwd"] for r in runs)              # the workers' copies...
    bottlenecks = [r for r in runs if r["stage"] == "bottleneck"]       # ...wrote to the project's log
    assert 2 <= len(bottlenecks) <= 3 and len([r for r in runs if r["stage"] == "train"]) == 3
    split = json.loads((repo / "metrics" / "split.json").read_text())
    base = json.loads((repo / "metrics" / "bottleneck.json").read_text())
    originals = split["train_images"] + split["val_images"] + split["test_images"]
    repeats = base["images"] - base["unique_images"]            # identical pixels: one vector each
    for r in bottlenecks:
        # Every original's vector came from the store the baseline filled in the project; only a
        # trial's new variants were computed.
        assert r["hits"] >= originals - repeats and r["misses"] <= sources["train_sources"] * (MULTIPLIER - 1), r
