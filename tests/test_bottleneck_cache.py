"""Cache keying: content hash within a namespace of everything that changes a vector."""

import sqlite3

import numpy as np
import pytest

from imgclf.core.cpu import simd_fingerprint
from imgclf.core.paths import project_root
from imgclf.features.backbones import FeatureExtractor, FeatureRecipe
from imgclf.features.bottleneck import BottleneckReport, compute_features
from imgclf.features.feature_store import FeatureStore
from tests.conftest import synthetic_images


@pytest.fixture
def store(tmp_path):
    with FeatureStore(tmp_path / "cache" / "features.sqlite") as s:
        yield s


def test_second_run_is_all_hits_and_identical(tiny_extractor, store):
    images, _ = synthetic_images(40, 0)
    first, r1 = compute_features(images, tiny_extractor, store, show_progress=False)
    second, r2 = compute_features(images, tiny_extractor, store, show_progress=False)
    assert (r1.hits, r1.misses) == (0, 40)
    assert (r2.hits, r2.misses) == (40, 0)
    assert first.shape == (40, tiny_extractor.dim) and first.dtype == np.float32
    np.testing.assert_array_equal(first, second)


def test_a_real_run_times_reading_and_computing_within_its_total(tiny_extractor, store):
    """The stage's summary line on a cold and on a warm run: each time measured, and the parts no
    longer than the whole."""
    images, _ = synthetic_images(12, 2)
    for _ in ("cold", "warm"):
        _, r = compute_features(images, tiny_extractor, store, show_progress=False)
        times = (r.seconds_reading, r.seconds_computing, r.seconds_total)
        assert all(isinstance(t, float) and t >= 0 for t in times), times
        assert r.seconds_reading + r.seconds_computing <= r.seconds_total
        assert f"read in {r.seconds_reading:.1f} s, total {r.seconds_total:.1f} s" in r.line()


def test_changed_image_is_a_miss_even_at_the_same_position(tiny_extractor, store):
    images, _ = synthetic_images(20, 0)
    old, _ = compute_features(images, tiny_extractor, store, show_progress=False)
    regenerated = images.copy()
    regenerated[7, 0, 0] ^= 0xFF  # same "file name" (row 7), one pixel changed
    feats, report = compute_features(regenerated, tiny_extractor, store, show_progress=False)
    assert (report.hits, report.misses) == (19, 1)
    # Row 7 is the backbone's vector of the new pixels, computed without the store, not the old one.
    np.testing.assert_array_equal(feats[7], tiny_extractor(regenerated[7:8])[0])
    assert not np.array_equal(feats[7], old[7])
    np.testing.assert_array_equal(np.delete(feats, 7, axis=0), np.delete(old, 7, axis=0))


def test_duplicate_images_are_computed_once(tiny_extractor, store):
    images, _ = synthetic_images(10, 0)
    images = np.concatenate([images, images[:4]])
    feats, report = compute_features(images, tiny_extractor, store, show_progress=False)
    assert (report.images, report.unique_images, report.misses) == (14, 10, 10)
    np.testing.assert_array_equal(feats[10:], feats[:4])


def test_vector_does_not_depend_on_batch_companions(tiny_extractor):
    images, _ = synthetic_images(20, 3)
    alone = tiny_extractor(images[5:6])[0]
    crowded = tiny_extractor(images[:16])[5]
    np.testing.assert_array_equal(alone, crowded)


def test_other_namespace_is_a_miss_and_switching_back_is_all_hits(tiny_extractor, store):
    images, _ = synthetic_images(12, 1)
    other = FeatureExtractor(FeatureRecipe("MobileNet", {"alpha": 0.25}, None, 48, "linear"), batch_size=16)
    assert other.namespace != tiny_extractor.namespace
    compute_features(images, tiny_extractor, store, show_progress=False)
    _, r_other = compute_features(images, other, store, show_progress=False)
    _, r_back = compute_features(images, tiny_extractor, store, show_progress=False)
    assert r_other.misses == 12 and r_back.hits == 12
    assert {s["namespace"] for s in store.summary()} == {tiny_extractor.namespace, other.namespace}


def test_namespace_covers_every_vector_changing_setting(tiny_extractor):
    base = tiny_extractor.spec
    variants = [
        FeatureExtractor(FeatureRecipe("MobileNet", {"alpha": 0.25}, None, 32, "area"), batch_size=16),
        FeatureExtractor(FeatureRecipe("MobileNet", {"alpha": 0.25}, None, 32, "linear"), batch_size=16, init_seed=1),
        FeatureExtractor(FeatureRecipe("MobileNet", {"alpha": 0.25}, None, 32, "linear", layer="conv_pw_5_relu"), batch_size=16),
        FeatureExtractor(FeatureRecipe("MobileNet", {"alpha": 0.25}, None, 32, "linear", layer="conv_pw_5_relu", grid=2),
                         batch_size=16),
    ]
    namespaces = {tiny_extractor.namespace} | {v.namespace for v in variants}
    assert len(namespaces) == 5
    assert variants[1].spec["weights_sha256"] != base["weights_sha256"]
    # Batch size is not part of it: padding makes vectors independent of it.
    same = FeatureExtractor(FeatureRecipe("MobileNet", {"alpha": 0.25}, None, 32, "linear"), batch_size=8)
    assert same.namespace == tiny_extractor.namespace


def test_a_cpu_with_other_vector_units_gets_its_own_namespace(tiny_extractor, monkeypatch, tmp_path):
    # oneDNN's kernels differ by instruction set and round differently: vectors of an AMX machine
    # restored from a shared cache would make this machine's outputs depend on the cache's history.
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_tile amx_bf16\n")
    monkeypatch.setattr("imgclf.features.backbones.simd_fingerprint", lambda: simd_fingerprint(cpuinfo))
    other = FeatureExtractor(FeatureRecipe("MobileNet", {"alpha": 0.25}, None, 32, "linear"), batch_size=16)
    assert "amx_bf16" in other.spec["cpu"]
    assert other.namespace != tiny_extractor.namespace


def test_corrupt_entry_is_reported_and_recomputed(tiny_extractor, store):
    images, _ = synthetic_images(6, 2)
    good, _ = compute_features(images, tiny_extractor, store, show_progress=False)
    with sqlite3.connect(store.path) as raw:
        raw.execute("UPDATE vectors SET vector = x'0011' WHERE rowid = (SELECT MIN(rowid) FROM vectors)")
    feats, report = compute_features(images, tiny_extractor, store, show_progress=False)
    assert (report.corrupt, report.misses, report.hits) == (1, 1, 5)
    np.testing.assert_array_equal(feats, good)


def test_project_root_escapes_dvc_temp_experiment_workspace(tmp_path):
    ws = tmp_path / "proj" / ".dvc" / "tmp" / "exps" / "tmpabc123"
    ws.mkdir(parents=True)
    assert project_root(ws) == (tmp_path / "proj").resolve()
    assert project_root(tmp_path / "proj") == (tmp_path / "proj").resolve()


def test_the_store_file_is_the_projects_also_from_a_queued_experiment(tmp_path, monkeypatch):
    """A queued trial runs in a copy under .dvc/tmp/exps: its vectors must land in the project's
    store (kept, shared by every worker), not in the copy's (deleted with it)."""
    from imgclf.features.feature_store import store_path

    project = (tmp_path / "proj").resolve()
    ws = project / ".dvc" / "tmp" / "exps" / "celery" / "tmpabc123"
    ws.mkdir(parents=True)
    for cwd in (project, ws):
        monkeypatch.chdir(cwd)
        assert store_path(".cache/bottlenecks") == project / ".cache" / "bottlenecks" / "features.sqlite"


def test_mid_layer_grid_features_keep_a_coarse_layout():
    """conv_pw_5 of MobileNet-0.25 at 32 px is a 4x4x64 map: grid 2 gives 2*2*64 = 256 values,
    each the mean of one quadrant, so the same image mirrored left-right yields other vectors."""
    ex = FeatureExtractor(FeatureRecipe("MobileNet", {"alpha": 0.25}, None, 32, "linear", layer="conv_pw_5_relu", grid=2),
                          batch_size=4)
    assert ex.dim == 2 * 2 * 64
    images, _ = synthetic_images(2, 0)
    a, b = ex(np.stack([images[0], images[0][:, ::-1]]))
    assert not np.allclose(a, b)


@pytest.mark.parametrize("kwargs, words", [
    ({"layer": "no_such_layer"}, ["bottleneck.layer", "'no_such_layer'", "conv_pw_5_relu"]),
    ({"layer": "conv_pw_5_relu", "grid": 3}, ["bottleneck.grid", "3", "4x4", "conv_pw_5_relu"]),
])
def test_bad_layer_or_grid_is_named(kwargs, words):
    with pytest.raises(ValueError) as err:
        FeatureExtractor(FeatureRecipe("MobileNet", {"alpha": 0.25}, None, 32, "linear", **kwargs), batch_size=4)
    for word in words:
        assert word in str(err.value)


def test_the_report_line_and_metrics_carry_every_count_and_round_times():
    """The one-line summary a user reads after the stage, and the figures it records: hits and misses
    are the cache's evidence, so each must be the field it says it is."""
    report = BottleneckReport(namespace="ns1", images=10, unique_images=8, hits=5, misses=3, corrupt=1,
                              seconds_computing=1.5, seconds_reading=0.25, seconds_total=2.3456)
    assert report.line() == ("bottleneck: 10 images (8 unique), 5 cache hits, 3 misses, 1 corrupt entries "
                             "recomputed; computed in 1.5 s (2 images/s), read in 0.2 s, total 2.3 s; namespace ns1")
    assert report.as_metrics() == {"namespace": "ns1", "images": 10, "unique_images": 8, "hits": 5, "misses": 3,
                                   "corrupt": 1, "seconds_computing": 1.5, "seconds_reading": 0.25,
                                   "seconds_total": 2.35}
    idle = BottleneckReport("ns1", 4, 4, 4, 0, 0, 0.0, 0.1, 0.1)        # all hits: no rate to divide by
    assert "computed in 0.0 s (0 images/s)" in idle.line()


def test_rows_go_into_the_callers_array_and_the_progress_bar_counts_images(tiny_extractor, store, capsys):
    """The stage streams rows into its output file through `out`; a user watching sees one bar
    named bottleneck that counts the images computed."""
    images, _ = synthetic_images(12, 4)
    out = np.zeros((12, tiny_extractor.dim), np.float32)
    features, report = compute_features(images, tiny_extractor, store, out=out)
    assert features is out and report.misses == 12
    np.testing.assert_array_equal(out, compute_features(images, tiny_extractor, store, show_progress=False)[0])
    err = capsys.readouterr().err
    assert "bottleneck: 100%" in err and "12/12" in err and "img/s" in err, err
