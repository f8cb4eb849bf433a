"""The pipeline repo that this folder's end-to-end files share (test_pipeline_e2e,
test_pipeline_runcache, test_pipeline_models): a small synthetic IDX dataset, a random-init
backbone (no network, no weights file), and one `dvc repro` of it, committed.

Why built once and copied: each file walks a repo through a user's steps from that same first
run. Built once per test session, by whichever pytest-xdist worker asks first (the others wait
for it), then copied per file, the three files can run on different workers, and no one file's
chain of pipeline runs sets a floor under the suite on a slow CPU (docs/hardware.md); a copy
costs a fraction of a second, the run itself a minute of stage processes."""

from __future__ import annotations

import fcntl
import shutil
from pathlib import Path

import pytest

from tests.conftest import BIN, make_pipeline_repo, write_idx_dataset
from tests.pipeline.helpers import FIRST_REPRO, run_step


def built_once(root: Path, name: str, build) -> Path:
    """root/name as build(root/name) left it, built by the first process to ask. A build that
    failed fails every later ask with its error, instead of building again."""
    done, failed = root / f"{name}.done", root / f"{name}.failed"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)               # released when the file closes
        if not done.exists() and not failed.exists():
            try:
                build(root / name)
            except BaseException as e:
                failed.write_text(f"{type(e).__name__}: {e}")
                raise
            done.touch()
    if failed.exists():
        pytest.fail(f"the shared {name} could not be built (by an earlier test): {failed.read_text()[-3000:]}")
    return root / name


def _build(where: Path) -> None:
    where.mkdir()
    checksums = write_idx_dataset(where / "mirror", n_train=500, n_test=150, seed=11)

    def edit(params):
        params["download"].update(sources=[str(where / "nowhere"), str(where / "mirror")], files=checksums)
        params["split"]["audit_recall_pairs"] = 100  # recall probes are queries only: the split is the same
        params["augment"]["multiplier"] = 2  # the multiplier test raises it to 3
        params["bottleneck"]["batch_size"] = 64
        params["train"]["head"].update(epochs=40, patience=4, hidden_units=[64])

    repo = make_pipeline_repo(where / "repo", edit)
    (where / FIRST_REPRO).write_text(run_step([BIN / "dvc", "repro"], repo).stdout)
    run_step(["git", "add", "-A"], repo)
    run_step(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "run"], repo)


@pytest.fixture(scope="module")
def repo(tmp_path_factory, worker_id) -> Path:
    """A copy of the committed first run for one test file, which may change it at will. The copy
    keeps the DVC cache, the run-cache, the feature store and the run log (all inside the repo);
    the source mirror it names stays where it was built."""
    shared = tmp_path_factory.getbasetemp()
    if worker_id != "master":              # each worker has its own basetemp inside the session's
        shared = shared.parent
    built = built_once(shared, "pipeline-repo", _build)
    mine = tmp_path_factory.mktemp("pipeline")
    shutil.copytree(built / "repo", mine / "repo", symlinks=True)
    shutil.copy(built / FIRST_REPRO, mine / FIRST_REPRO)
    return mine / "repo"
