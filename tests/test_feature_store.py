"""The store under stress: two writers at once, a writer killed mid-run, prune, a bad directory."""

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from imgclf.features.bottleneck import compute_features
from imgclf.features.feature_store import FeatureStore, StoreError
from tests.conftest import REPO, synthetic_images

# A child process that fills the store from synthetic images (seed, count given on argv).
WRITER = textwrap.dedent("""
    import sys
    from imgclf.features.backbones import FeatureExtractor, FeatureRecipe
    from imgclf.features.bottleneck import compute_features
    from imgclf.features.feature_store import FeatureStore
    from tests.conftest import synthetic_images
    store_path, seed, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    images, _ = synthetic_images(n, seed)
    ex = FeatureExtractor(FeatureRecipe("MobileNet", {"alpha": 0.25}, None, 32, "linear"), batch_size=16)
    with FeatureStore(store_path) as store:
        feats, report = compute_features(images, ex, store, show_progress=False)
    print("hits", report.hits, "misses", report.misses, flush=True)
""")


def _writer(store_path, seed, n):
    env = dict(os.environ, PYTHONPATH=str(REPO / "src") + os.pathsep + str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.Popen([sys.executable, "-c", WRITER, str(store_path), str(seed), str(n)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _integrity(path):
    with sqlite3.connect(path) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def test_two_concurrent_writers_equal_a_serial_run(tmp_path, tiny_extractor):
    shared = tmp_path / "shared.sqlite"
    # Same seed: both writers compute the same 300 images at the same time.
    procs = [_writer(shared, 4, 300), _writer(shared, 4, 300)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    images, _ = synthetic_images(300, 4)
    with FeatureStore(tmp_path / "serial.sqlite") as serial:
        expected, _ = compute_features(images, tiny_extractor, serial, show_progress=False)
    with FeatureStore(shared) as store:
        got, report = compute_features(images, tiny_extractor, store, show_progress=False)
    assert report.misses == 0 and report.hits == 300
    np.testing.assert_array_equal(got, expected)
    assert _integrity(shared) == "ok"


def test_kill_9_mid_run_then_rerun_is_consistent(tmp_path, tiny_extractor):
    path = tmp_path / "store.sqlite"
    proc = _writer(path, 9, 3000)
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until some batches are committed
        time.sleep(0.5)
        assert proc.poll() is None, f"the writer exited ({proc.returncode}) before it was killed: {proc.communicate()[1][-2000:]}"
        if path.exists():
            try:
                with sqlite3.connect(path, timeout=5) as conn:
                    if conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0] >= 64:
                        break
            except sqlite3.OperationalError:
                pass
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert _integrity(path) == "ok"
    images, _ = synthetic_images(3000, 9)
    with FeatureStore(path) as store:
        got, report = compute_features(images, tiny_extractor, store, show_progress=False)
    assert 0 < report.hits < 3000 and report.hits + report.misses == 3000
    fresh, _ = compute_features(images, tiny_extractor, FeatureStore(tmp_path / "fresh.sqlite"), show_progress=False)
    np.testing.assert_array_equal(got, fresh)


def test_prune_drops_other_namespaces_and_unused_entries(tmp_path, tiny_extractor):
    from imgclf.features.backbones import FeatureExtractor, FeatureRecipe

    other = FeatureExtractor(FeatureRecipe("MobileNet", {"alpha": 0.25}, None, 40, "linear"), batch_size=16)
    images, _ = synthetic_images(30, 5)
    with FeatureStore(tmp_path / "s.sqlite") as store:
        compute_features(images, tiny_extractor, store, show_progress=False)
        compute_features(images, other, store, show_progress=False)
        from imgclf.core.hashing import image_sha256
        keep = {image_sha256(img) for img in images[:10]}
        removed = store.prune({tiny_extractor.namespace}, {tiny_extractor.namespace: keep})
        assert removed == {"namespaces": 1, "vectors": 30 + 20}
        (row,) = store.summary()
        assert row["namespace"] == tiny_extractor.namespace and row["vectors"] == 10
        _, report = compute_features(images, tiny_extractor, store, show_progress=False)
        assert (report.hits, report.misses) == (10, 20)


def test_cache_path_that_is_a_file_is_a_clear_error(tmp_path):
    blocker = tmp_path / "cache"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot open the feature store .*cache/features.sqlite"):
        FeatureStore(blocker / "features.sqlite")


def test_cache_cli_show_and_prune(tmp_path):
    """`imgclf cache show|prune` on a project whose params name a random-init backbone."""
    import pandas as pd
    import yaml

    from imgclf.core.hashing import image_sha256
    from imgclf.features.backbones import FeatureExtractor, FeatureRecipe

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["bottleneck"].update(weights=None, image_size=32, batch_size=16, layer=None, grid=1)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    current = FeatureExtractor(FeatureRecipe("MobileNet", {"alpha": 0.25}, None, 32, "linear"), batch_size=16)
    old = FeatureExtractor(FeatureRecipe("MobileNet", {"alpha": 0.25}, None, 40, "linear"), batch_size=16)
    images, _ = synthetic_images(20, 8)
    store_file = tmp_path / ".cache" / "bottlenecks" / "features.sqlite"
    with FeatureStore(store_file) as store:
        compute_features(images, current, store, show_progress=False)
        compute_features(images, old, store, show_progress=False)
    manifest = tmp_path / "data" / "augmented" / "manifest.csv"
    manifest.parent.mkdir(parents=True)
    pd.DataFrame({"sha256": [image_sha256(i) for i in images[:5]]}).to_csv(manifest, index=False)

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    cli = [sys.executable, "-m", "imgclf.features.cache"]
    shown = subprocess.run(cli + ["show"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "2 namespace(s), 40 vectors" in shown.stdout
    assert f"{current.namespace}        20 vectors x 256-d" in shown.stdout and "(current params)" in shown.stdout
    dry = subprocess.run(cli + ["prune", "--dry-run"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert "would drop 1 namespace(s) with 20 vectors" in dry.stdout
    pruned = subprocess.run(cli + ["prune"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert pruned.returncode == 0, pruned.stderr[-2000:]
    assert "pruned 1 namespace(s) and 35 vectors" in pruned.stdout
    assert "1 namespace(s), 5 vectors" in pruned.stdout


def _filled_store(path, namespaces=("a", "b", "c"), n=4):
    store = FeatureStore(path)
    for i, ns in enumerate(namespaces):
        store.register(ns, 2 + i, {"ns": ns})             # ids 1, 2, 3 and dims 2, 3, 4: never confused
        store.put_many(ns, [(f"{k:064x}", np.full(2 + i, k, np.float32)) for k in range(n)])
    return store


def _counts(store):
    return {row["namespace"]: row["vectors"] for row in store.summary()}


def test_delete_removes_only_the_named_entries_of_one_namespace(tmp_path):
    with _filled_store(tmp_path / "s.sqlite") as store:
        assert store.delete("b", [f"{1:064x}", f"{3:064x}", f"{9:064x}"]) == 2        # 9 was never stored
        assert _counts(store) == {"a": 4, "b": 2, "c": 4}
        kept = dict(store.iter_vectors("b", [f"{k:064x}" for k in range(4)]))
        assert sorted(kept) == [f"{0:064x}", f"{2:064x}"] and kept[f"{2:064x}"].tolist() == [2, 2, 2]


def test_prune_counts_everything_it_drops(tmp_path):
    keep_b = {f"{0:064x}"}
    with _filled_store(tmp_path / "s.sqlite", ("a", "b", "c", "d")) as store:
        removed = store.prune({"b", "c"}, {"b": keep_b, "c": {f"{1:064x}", f"{2:064x}"}})
        assert removed == {"namespaces": 2, "vectors": 4 + 4 + 3 + 2}
        assert _counts(store) == {"b": 1, "c": 2}
        assert store.prune(None, None) == {"namespaces": 0, "vectors": 0}   # nothing asked, nothing dropped
        assert store.prune({"b", "c"}) == {"namespaces": 0, "vectors": 0} and _counts(store) == {"b": 1, "c": 2}


def test_a_failed_prune_leaves_the_store_as_it_was(tmp_path):
    with _filled_store(tmp_path / "s.sqlite") as store:
        with pytest.raises(ValueError):
            store.prune({"c"}, {"c": {"not hex"}})                  # fails after a and b were deleted
        assert _counts(store) == {"a": 4, "b": 4, "c": 4}
        assert store.prune({"c"}) == {"namespaces": 2, "vectors": 8}   # and the store still works


def test_summary_reports_each_namespace_dim_spec_count_and_bytes_in_creation_order(tmp_path):
    with _filled_store(tmp_path / "s.sqlite", ("b", "a"), n=3) as store:
        store.register("empty", 7, {"layer": "x", "grid": 2})
        rows = store.summary()
        assert [(r["namespace"], r["dim"], r["spec"], r["vectors"], r["bytes"]) for r in rows] == [
            ("b", 2, {"ns": "b"}, 3, 3 * 2 * 4),          # float32: 4 bytes per value
            ("a", 3, {"ns": "a"}, 3, 3 * 3 * 4),
            ("empty", 7, {"grid": 2, "layer": "x"}, 0, 0),  # a namespace without vectors is listed, 0 bytes
        ]
        assert rows[0]["created"] <= rows[1]["created"] <= rows[2]["created"]
        assert (store.dim("b"), store.dim("a"), store.dim("empty")) == (2, 3, 7)
        with pytest.raises(StoreError, match="unknown namespace nope"):
            store.dim("nope")


def test_a_store_of_another_format_is_refused_naming_its_format(tmp_path):
    """An old or foreign file is named with what it is, refused before anything is read, and
    left as it was (the refusal's transaction is rolled back, not left open)."""
    old = tmp_path / "old.sqlite"
    FeatureStore(old).close()
    with sqlite3.connect(old) as conn:
        conn.execute("PRAGMA user_version=1")
    foreign = tmp_path / "foreign.sqlite"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE notes (text TEXT)")                   # tables, but no format at all
    for path, what in ((old, "1"), (foreign, "unknown")):
        with pytest.raises(StoreError) as err:
            FeatureStore(path)
        assert str(err.value) == (f"{path} has store format {what}, this code reads format 2; move it away "
                                  "(its vectors will be recomputed)")
    with sqlite3.connect(old) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1


def test_vectors_are_stored_as_float32_whatever_the_caller_passes(tmp_path):
    with FeatureStore(tmp_path / "s.sqlite") as store:
        store.register("a", 3, {})
        store.put_many("a", [(f"{1:064x}", np.array([0.5, 1.5, 2.5]))])       # float64 in
        (key, vec), = store.iter_vectors("a", [f"{1:064x}"])
        assert vec.dtype == np.float32 and vec.tolist() == [0.5, 1.5, 2.5]
        assert store.summary()[0]["bytes"] == 3 * 4


def test_a_failed_write_is_a_store_error_and_leaves_the_store_usable(tmp_path):
    """SQLite refusing the insert (a full disk, here a trigger) rolls the batch back and says which
    store failed; the next write goes through."""
    path = tmp_path / "s.sqlite"
    with FeatureStore(path) as store:
        store.register("a", 2, {})
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TRIGGER full BEFORE INSERT ON vectors BEGIN SELECT RAISE(ABORT, 'disk is full'); END")
        with pytest.raises(StoreError, match=f"cannot write to the feature store {path}: disk is full"):
            store.put_many("a", [(f"{1:064x}", np.ones(2, np.float32))])
        assert not store.conn.in_transaction
        with sqlite3.connect(path) as conn:
            conn.execute("DROP TRIGGER full")
        store.put_many("a", [(f"{2:064x}", np.ones(2, np.float32))])
        assert _counts(store) == {"a": 1}


def test_a_reader_never_blocks_the_writer(tmp_path):
    """Two queued experiments share the store: one reading its vectors must not stall the other's
    writes (SQLite's write-ahead log; with a rollback journal this write times out as locked)."""
    path = tmp_path / "s.sqlite"
    with FeatureStore(path, timeout_s=1.0) as store:
        store.register("a", 2, {})
        reader = sqlite3.connect(path, isolation_level=None)
        reader.execute("BEGIN")
        assert reader.execute("SELECT COUNT(*) FROM vectors").fetchone()[0] == 0     # a read transaction, open
        store.put_many("a", [(f"{1:064x}", np.ones(2, np.float32))])
        assert reader.execute("SELECT COUNT(*) FROM vectors").fetchone()[0] == 0     # its snapshot holds
        reader.execute("COMMIT")
        reader.close()
        assert _counts(store) == {"a": 1}
