"""Faults: a full disk, a read-only cache, a hanging mirror, and kill -9 in the middle of a stage.

Each case asserts the message a user sees and that nothing was lost or left half-written."""

import contextlib
import hashlib
import http.server
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from imgclf.core.atomic import save_npy, write_json
from imgclf.data.sources import fetch_all
from imgclf.features.feature_store import FeatureStore, StoreError
from tests.conftest import BIN, CUT_BACKBONE, make_pipeline_repo, pipeline_env, run, up_to_date, write_idx_dataset


@contextlib.contextmanager
def tmpfs(path: Path, options: str):
    """A tmpfs at path (a full disk, a read-only one). Needs root: CI and this machine run as root."""
    path.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture
def tiny_fs(tmp_path):
    with tmpfs(tmp_path / "small", "size=256k") as mnt:
        yield mnt


def test_disk_full_names_the_file_and_keeps_the_previous_output(tiny_fs):
    dest = tiny_fs / "features.npy"
    save_npy(dest, np.zeros(1000, np.float32))
    before = dest.read_bytes()
    with pytest.raises(OSError, match=rf"could not write {dest}: .*(No space left on device|disk full)"):
        save_npy(dest, np.zeros(1_000_000, np.float32))
    with pytest.raises(OSError, match=rf"could not write {tiny_fs / 'evaluate.json'}: No space left on device"):
        write_json(tiny_fs / "evaluate.json", {"pad": "x" * 1_000_000})
    assert dest.read_bytes() == before
    assert sorted(p.name for p in tiny_fs.iterdir()) == ["features.npy"]


def test_read_only_cache_directory_is_a_clear_error(tmp_path):
    with tmpfs(tmp_path / "ro", "ro,size=64k") as mnt:
        with pytest.raises(StoreError, match=rf"cannot open the feature store {mnt}/features.sqlite"):
            FeatureStore(mnt / "features.sqlite")


def test_a_hanging_mirror_times_out_and_the_next_source_is_used(idx_dir, tmp_path):
    src, sums = idx_dir
    release = threading.Event()

    class Hang(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            release.wait(10)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hang)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        name = next(iter(sums))
        start = time.monotonic()
        report = fetch_all({name: sums[name]}, [f"http://127.0.0.1:{server.server_address[1]}", str(src)],
                           tmp_path / "raw", timeout=1, retries=0)
        assert time.monotonic() - start < 8
        assert report.files == {name: str(src)}
        assert "timed out after 1 s" in report.failures[0]
    finally:
        release.set()
        server.shutdown()
        server.server_close()


# ---- kill -9 in the middle of a stage, then `dvc repro` -------------------------------------

def _dvc(repo, *args, check=True):
    return run([BIN / "dvc", *args], repo, check=check)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# The pipeline up to the last stage these tests kill: evaluate would only add a stage process.
LAST = "train"


def _outputs(repo: Path) -> dict:
    return {
        "augmented": _digest(repo / "data/augmented/images.npy"),
        "manifest": _digest(repo / "data/augmented/manifest.csv"),
        "features": _digest(repo / "data/features/features.npy"),
        "model": _digest(repo / "models/model.keras"),
        "train": (repo / "metrics/train.json").read_text(),
    }


def _stage_pid(stage: str, repo: Path) -> int | None:
    """The pid of `python -m stages.<stage>` running in repo (never another project's stage)."""
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().split(b"\0")
                cwd = (proc / "cwd").resolve()
            except OSError:
                continue
            if b"-m" in cmd and f"stages.{stage}".encode() in cmd and cwd == repo.resolve():
                return int(proc.name)
    return None


@pytest.fixture(scope="module")
def fault_repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    checksums = write_idx_dataset(root / "mirror", n_train=900, n_test=200, seed=5)

    def edit(params):
        params["download"].update(sources=[str(root / "mirror")], files=checksums)
        params["split"]["audit_recall_pairs"] = 50      # the audit is not what these tests kill
        params["augment"]["multiplier"] = 4
        params["bottleneck"].update(batch_size=32, **CUT_BACKBONE)   # these tests compare bytes
        # no early stopping: training lasts long enough to be killed in the middle
        params["train"]["head"].update(epochs=12, patience=12, hidden_units=[64], batch_size=64)

    repo = make_pipeline_repo(root / "repo", edit)
    _dvc(repo, "repro", LAST)
    return repo, _outputs(repo)


def _vectors_stored(repo: Path) -> int:
    import sqlite3
    try:
        with sqlite3.connect(repo / ".cache/bottlenecks/features.sqlite", timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]
    except sqlite3.Error:
        return 0


def _epochs_logged(repo: Path) -> int:
    log = repo / "metrics/train/plots/metrics/train/loss.tsv"
    return max(0, len(log.read_text().splitlines()) - 1) if log.exists() else 0


# When each stage is demonstrably mid-work: the kill must land inside the work, not after it.
MID_WORK = {
    # augment writes into a temp file renamed at the end: while it exists, the stage is mid-write.
    "augment": lambda repo, alive: alive > 1 and any((repo / "data/augmented").glob(".images.npy.*.tmp.npy")),
    "bottleneck": lambda repo, alive: _vectors_stored(repo) >= 256,
    "train": lambda repo, alive: _epochs_logged(repo) >= 2,
}


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["augment", "bottleneck", "train"])
def test_kill_9_mid_stage_then_repro_gives_the_uninterrupted_outputs(fault_repo, stage):
    repo, reference = fault_repo
    if stage == "bottleneck":
        shutil.rmtree(repo / ".cache")  # a cold cache, so the stage has real work to be killed in
    proc = subprocess.Popen([str(BIN / "dvc"), "repro", "-f", "-s", stage], cwd=repo, env=pipeline_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pid, started = None, time.monotonic()
    while pid is None and time.monotonic() - started < 60:
        pid = _stage_pid(stage, repo)
        time.sleep(0.05)
    assert pid, f"stage {stage} never started"
    alive_since = time.monotonic()
    while not MID_WORK[stage](repo, time.monotonic() - alive_since):
        assert proc.poll() is None, f"{stage} finished before it could be killed"
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode != 0, f"{stage} finished before it was killed; raise the data size"
    assert f"failed to reproduce '{stage}'" in err
    # Right after the kill: an output under its final name is complete (the uninterrupted run's
    # bytes) or absent (DVC removed it before running the stage); never a truncated file.
    files = {"augmented": "data/augmented/images.npy", "manifest": "data/augmented/manifest.csv",
             "features": "data/features/features.npy", "model": "models/model.keras"}
    for key, rel in files.items():
        if (repo / rel).exists():
            assert _digest(repo / rel) == reference[key], f"{rel} is half-written after the kill"
    assert _dvc(repo, "repro", LAST).returncode == 0
    assert _outputs(repo) == reference
    assert up_to_date(_dvc(repo, "status", LAST).stdout)
    # (A kill during the write itself, with the temp file growing, is tested in test_atomic.py.)
