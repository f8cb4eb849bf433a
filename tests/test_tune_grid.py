"""The README's grid recipe on the real pipeline (tiny synthetic data): `dvc exp run --queue` with
comma-separated values, `dvc queue start -j 2`, then `dvc exp show` lists every trial with metrics,
and both workers read and write the project's one feature store."""

import json
import time

import pytest

from imgclf.core import run_log
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
    # The baseline needs only the feature store filled: train and evaluate first run in the trials.
    run([dvc, "repro", "-q", "bottleneck"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "baseline"], repo)
    baseline_runs = len(run_log.read(repo / run_log.LOG))
    sources = json.loads((repo / "metrics" / "augment.json").read_text())

    # New augment seeds make new variants, so each trial's bottleneck re-runs; queued as one grid
    # (comma-separated values), the two trials run at once and both read and write the store.
    run([dvc, "exp", "run", "--queue", "-S", "train.head.dropout=0.2", "-S", "augment.seed=1,2"], repo)
    run([dvc, "queue", "start", "-j", "2"], repo)
    # `dvc queue status` costs a second and a half of CPU, the trials' own CPU: ask it every 20 s, or
    # as soon as git holds both trials' experiment refs (a cheap look).
    deadline, asked = time.time() + 900, 0.0
    while True:
        refs = run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], repo).stdout.split()
        done = sum(len(r.split("/")) == 5 and len(r.split("/")[2]) == 2 for r in refs)   # refs/exps/ab/cdef.../name
        if done >= 2 or time.time() - asked >= 20:
            status, asked = run([dvc, "queue", "status"], repo).stdout, time.time()
            if not any(word in status for word in (" Queued", " Running")):
                break
        assert time.time() < deadline, status
        time.sleep(2)
    run([dvc, "queue", "stop"], repo, check=False)
    assert "Failed" not in status, run([dvc, "queue", "logs", status.split()[4]], repo, check=False).stdout

    shown = json.loads(run([dvc, "exp", "show", "--json"], repo).stdout)
    trials = [e["revs"][0]["data"] for base in shown for e in base.get("experiments") or []]
    grid = {(t["params"]["params.yaml"]["data"]["augment"]["seed"],
             t["params"]["params.yaml"]["data"]["train"]["head"]["dropout"]) for t in trials}
    assert grid == {(1, 0.2), (2, 0.2)}
    for t in trials:
        assert 0 < t["metrics"]["metrics/evaluate.json"]["data"]["val"]["accuracy"] <= 1

    runs = run_log.read(repo / run_log.LOG)[baseline_runs:]
    assert all(".dvc/tmp/exps" in r["cwd"] for r in runs)              # the workers' copies...
    bottlenecks = [r for r in runs if r["stage"] == "bottleneck"]       # ...wrote to the project's log
    assert len(bottlenecks) == 2 and len([r for r in runs if r["stage"] == "train"]) == 2
    split = json.loads((repo / "metrics" / "split.json").read_text())
    base = json.loads((repo / "metrics" / "bottleneck.json").read_text())
    originals = split["train_images"] + split["val_images"] + split["test_images"]
    repeats = base["images"] - base["unique_images"]            # identical pixels: one vector each
    for r in bottlenecks:
        # Every original's vector came from the store the baseline filled in the project; only a
        # trial's new variants were computed.
        assert r["hits"] >= originals - repeats and r["misses"] <= sources["train_sources"] * (MULTIPLIER - 1), r
