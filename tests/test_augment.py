"""Multiplier semantics and variant stability."""

import numpy as np
import pytest

from imgclf.core.hashing import image_sha256
from imgclf.data.augment import Recipe, augment_set
from imgclf.data.split import assign_splits
from tests.conftest import image_set, synthetic_images

AUGMENTERS = [{"name": "Fliplr", "args": {"p": 0.5}},
              {"name": "Affine", "args": {"translate_px": {"x": [-3, 3], "y": [-3, 3]}}}]


@pytest.fixture(scope="module")
def split_set():
    x, y = synthetic_images(120, 0)
    official = ["train"] * 100 + ["test"] * 20
    return assign_splits(image_set(x, y, official), val_fraction=0.2, seed=0)


def _by_id(data):
    return {i: img for i, img in zip(data.manifest["id"], data.images)}


def test_multiplier_counts_and_only_train_is_augmented(split_set):
    out, summary = augment_set(split_set, Recipe(3, 0, AUGMENTERS), show_progress=False)
    m, src = out.manifest, split_set.manifest
    n_train = (src.split == "train").sum()
    assert (m.split == "train").sum() == 3 * n_train == summary["train_images"]
    assert (m.split == "val").sum() == (src.split == "val").sum()
    assert (m.split == "test").sum() == (src.split == "test").sum()
    assert set(m.loc[m.split != "train", "variant"]) == {0}
    assert (m[m.split == "train"].groupby("parent_id").variant.apply(sorted).map(tuple) == (0, 1, 2)).all()
    # Variant 0 is the original, byte for byte; variants are actually augmented.
    originals = _by_id(split_set)
    for row, img in zip(m.itertuples(), out.images):
        if row.variant == 0:
            np.testing.assert_array_equal(img, originals[row.parent_id])
    assert summary["variants_identical_to_original"] < summary["variants_made"] / 2
    assert list(m.sha256) == [image_sha256(i) for i in out.images]


def test_variants_the_augmenters_left_unchanged_are_counted_exactly(split_set):
    """A coin that did not flip leaves a variant equal to its source: metrics/augment.json counts
    them, so a reviewer sees how many of the images augment.multiplier adds are new."""
    out, summary = augment_set(split_set, Recipe(3, 0, [{"name": "Fliplr", "args": {"p": 0.5}}]), show_progress=False)
    m, originals = out.manifest, _by_id(split_set)
    made = (m.variant > 0).to_numpy()
    same = [np.array_equal(img, originals[p]) for img, p in zip(out.images[made], m.parent_id[made])]
    assert summary["variants_made"] == len(same) and 0 < sum(same) < len(same)
    assert summary["variants_identical_to_original"] == sum(same)


def test_raising_multiplier_keeps_existing_variants_byte_identical(split_set):
    two, _ = augment_set(split_set, Recipe(2, 5, AUGMENTERS), show_progress=False)
    four, _ = augment_set(split_set, Recipe(4, 5, AUGMENTERS), show_progress=False)
    a, b = _by_id(two), _by_id(four)
    assert set(a) <= set(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_variant_does_not_depend_on_order_or_other_images(split_set):
    full, _ = augment_set(split_set, Recipe(2, 5, AUGMENTERS), show_progress=False)
    reversed_set = split_set.subset(np.arange(len(split_set.images))[::-1])
    some = reversed_set.subset(np.arange(len(split_set.images)) % 3 == 0)
    part, _ = augment_set(some, Recipe(2, 5, AUGMENTERS), show_progress=False)
    a, b = _by_id(full), _by_id(part)
    assert len(b) > 10
    for key in b:
        np.testing.assert_array_equal(a[key], b[key])


def test_seed_changes_variants(split_set):
    a, _ = augment_set(split_set, Recipe(2, 1, AUGMENTERS), show_progress=False)
    b, _ = augment_set(split_set, Recipe(2, 2, AUGMENTERS), show_progress=False)
    assert not np.array_equal(a.images, b.images)


def test_multiplier_one_is_the_split_without_excluded(split_set):
    out, summary = augment_set(split_set, Recipe(1, 0, AUGMENTERS), show_progress=False)
    assert summary["variants_made"] == 0
    assert len(out.images) == split_set.manifest.split.isin(["train", "val", "test"]).sum()


def test_train_copies_of_test_images_are_excluded_and_never_reach_training():
    """A train image identical to a test image (a copy across the official splits) is `excluded`
    by the split, dropped by augment (no variants either), so the train stage's rows
    (split == "train") never hold its pixels."""
    x, y = synthetic_images(60, 4)
    x[3], y[3] = x[55], y[55]                    # train image 3 is a copy of test image 55
    x[7], y[7] = x[58], y[58]
    data = assign_splits(image_set(x, y, ["train"] * 50 + ["test"] * 10), val_fraction=0.2, seed=0)
    assert data.manifest.set_index("id").loc[["img-0003", "img-0007"], "split"].tolist() == ["excluded"] * 2
    out, summary = augment_set(data, Recipe(3, 0, AUGMENTERS), show_progress=False)
    assert summary["excluded_images_dropped"] == 2
    parents = set(out.manifest["parent_id"])
    assert "img-0003" not in parents and "img-0007" not in parents
    trained = out.images[(out.manifest["split"] == "train").to_numpy()]
    for copy in (x[55], x[58]):
        assert not (trained == copy).all(axis=(1, 2)).any()
    assert (out.manifest["split"] == "test").sum() == 10


def test_two_processes_write_the_same_bytes_as_one_and_report_their_memory(split_set, tmp_path):
    """Variants depend only on (seed, source, k), so spreading them over processes (small tasks, so
    both really work) must give the one-process file byte for byte, and the same manifest."""
    from imgclf.core.npy_rows import npy_row_writer
    from imgclf.data.augment import augment_into, output_rows

    files, manifests = [], []
    for workers in (1, 2):
        dest = tmp_path / f"w{workers}.npy"
        shape = (output_rows(split_set.manifest, 3), *split_set.images.shape[1:])
        with npy_row_writer(dest, shape, split_set.images.dtype) as out:
            manifest, summary = augment_into(split_set, out, Recipe(3, 5, AUGMENTERS), workers=workers, task_rows=7,
                                             show_progress=False)
        # A worker's peak memory is reported only when workers ran (a real process: tens of MiB at least).
        assert ("worker_peak_rss_mib" in summary) == (workers > 1) and summary.get("worker_peak_rss_mib", 50) >= 50
        files.append(dest.read_bytes())
        manifests.append(manifest)
    assert files[0] == files[1]
    assert manifests[0].equals(manifests[1])
    in_memory, _ = augment_set(split_set, Recipe(3, 5, AUGMENTERS), show_progress=False)
    np.testing.assert_array_equal(np.load(tmp_path / "w2.npy"), in_memory.images)


def test_a_variant_is_seeded_by_seed_id_and_k_and_nothing_else():
    """Identical pixels under two ids get different variants, a source's k-th variants differ from
    each other, and each equals the augmenter seeded with stable_seed("augment", seed, id, k)."""
    from imgclf.core.hashing import stable_seed
    from imgclf.data.augment import make_variants
    from imgclf.data.augmenters import build_augmenter

    x, _ = synthetic_images(1, 3)
    same = np.repeat(x, 2, axis=0)                                  # one image under two ids
    v1, hashes, _ = make_variants(AUGMENTERS, 42, 1, ["a", "b"], same)
    assert hashes[0] != hashes[1] and not np.array_equal(v1[0], v1[1])
    v2, _, _ = make_variants(AUGMENTERS, 42, 2, ["a", "b"], same)
    assert not np.array_equal(v1[0], v2[0])
    expected = build_augmenter(AUGMENTERS)
    expected.seed_(stable_seed("augment", 42, "a", 2))
    np.testing.assert_array_equal(v2[0], expected.augment_image(x[0]))
    mirror, _, _ = make_variants([{"name": "Fliplr", "args": {"p": 1.0}}], 42, 1, ["a"], x)   # new specs, new augmenter
    np.testing.assert_array_equal(mirror[0], x[0][:, ::-1])


def test_an_output_of_the_wrong_size_is_refused_before_writing(split_set):
    from imgclf.data.augment import augment_into, output_rows

    rows = output_rows(split_set.manifest, 2)
    out = np.zeros((rows - 1, *split_set.images.shape[1:]), np.uint8)
    with pytest.raises(ValueError) as err:
        augment_into(split_set, out, Recipe(2, 0, AUGMENTERS), show_progress=False)
    assert str(err.value) == f"augment: output has {rows - 1} rows, expected {rows}"
    assert not out.any()


def test_a_task_reports_its_process_peak_memory_in_whole_mib():
    import resource

    from imgclf.data.augment import make_variants

    x, _ = synthetic_images(2, 1)
    _, _, rss = make_variants(AUGMENTERS, 0, 1, ["a", "b"], x)
    assert type(rss) is int and rss == resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def test_the_stage_default_shows_progress_and_quiet_means_quiet(split_set, capsys):
    """augment_into's default is what the stage uses: a tqdm bar named after the stage."""
    from imgclf.data.augment import augment_into, output_rows

    out = np.zeros((output_rows(split_set.manifest, 2), *split_set.images.shape[1:]), np.uint8)
    augment_into(split_set, out, Recipe(2, 0, AUGMENTERS))
    err = capsys.readouterr().err
    assert "augment: 100%" in err and "img/s]" in err
    augment_into(split_set, out, Recipe(2, 0, AUGMENTERS), show_progress=False)
    assert capsys.readouterr().err == ""
    one = np.zeros((output_rows(split_set.manifest, 1), *split_set.images.shape[1:]), np.uint8)
    augment_into(split_set, one, Recipe(1, 0, AUGMENTERS))                 # no variants to make: no empty bar
    assert capsys.readouterr().err == ""
    augment_set(split_set, Recipe(2, 0, AUGMENTERS))                         # the in-memory form: the same default
    assert "augment: 100%" in capsys.readouterr().err
    augment_set(split_set, Recipe(2, 0, AUGMENTERS), show_progress=False)
    assert capsys.readouterr().err == ""


def test_the_summary_and_ids_a_reviewer_reads(split_set):
    """augment.json's keys, variant ids "<source>#v<k>", and a multiplier of 1 that makes nothing."""
    import time

    one, summary1 = augment_set(split_set, Recipe(1, 0, AUGMENTERS), show_progress=False)
    start = time.perf_counter()
    two, summary2 = augment_set(split_set, Recipe(2, 0, AUGMENTERS), show_progress=False)
    wall = time.perf_counter() - start
    assert 0 <= summary2["seconds"] <= wall + 0.005 and summary2["seconds"] == round(summary2["seconds"], 2)
    assert isinstance(summary2["seconds"], float)                        # to 0.01 s, not whole seconds
    n_train = int((split_set.manifest.split == "train").sum())
    assert set(summary2) == {"train_sources", "train_images", "variants_made", "variants_identical_to_original",
                             "excluded_images_dropped", "seconds"}
    assert (summary1["train_sources"], summary1["variants_made"], summary1["variants_identical_to_original"]) == (n_train, 0, 0)
    assert summary2["variants_made"] == n_train and summary2["train_images"] == 2 * n_train
    variants = two.manifest[two.manifest.variant == 1]
    assert (variants["id"] == variants["parent_id"] + "#v1").all()
    assert list(two.manifest.index) == list(range(len(two.manifest)))     # one clean row numbering


def test_mirror_makes_variant_1_the_exact_mirror_and_leaves_the_others_alone(split_set):
    """augment.mirror: variant 1 of every source is its left-right mirror (not a coin flip), the
    random variants 2.. are byte-identical to those made without it, and val/test stay untouched."""
    from imgclf.data.augment import augment_set

    plain, _ = augment_set(split_set, Recipe(3, 5, AUGMENTERS), show_progress=False)
    mirrored, summary = augment_set(split_set, Recipe(3, 5, AUGMENTERS, mirror=True), show_progress=False)
    m = mirrored.manifest
    assert m[["id", "split", "variant"]].equals(plain.manifest[["id", "split", "variant"]])
    by_id = dict(zip(m["id"], range(len(m))))
    ones = m[m["variant"] == 1]
    assert len(ones) == summary["train_sources"] > 0
    for row, parent in zip(ones.index, ones["parent_id"]):
        np.testing.assert_array_equal(mirrored.images[row], mirrored.images[by_id[parent]][:, ::-1])
    others = (m["variant"] != 1).to_numpy()
    np.testing.assert_array_equal(mirrored.images[others], plain.images[others])
    assert (m.loc[m["variant"] == 1, "sha256"] != plain.manifest.loc[m["variant"] == 1, "sha256"]).any()
    # A symmetric source's mirror is itself: counted as such, like any other unchanged variant.
    symmetric = ((mirrored.images[ones.index] == plain.images[[by_id[p] for p in ones["parent_id"]]])
                 .reshape(len(ones), -1).all(1).sum())
    assert summary["variants_identical_to_original"] >= symmetric


@pytest.mark.parametrize("name", ["Flipper", "meta"])      # no such attribute; an attribute that is no augmenter
def test_the_library_refuses_a_name_that_is_no_imgaug_augmenter(name):
    """Callers that skip the params check (bench scripts, a notebook) get the same clear error."""
    from imgclf.core.errors import ConfigError
    from imgclf.data.augmenters import build_augmenter

    with pytest.raises(ConfigError, match=f"unknown augmenter '{name}'"):
        build_augmenter([{"name": "Fliplr", "args": {"p": 0.5}}, {"name": name, "args": {}}])


def test_an_augmenter_that_changes_only_the_size_is_refused_naming_the_image():
    """The dtype kept, the shape changed: the variant would not fit the images array."""
    from imgclf.core.errors import ConfigError
    from imgclf.data.augmenters import build_augmenter, make_variant

    resize = build_augmenter([{"name": "Resize", "args": {"size": 20}}])
    with pytest.raises(ConfigError, match=r"augmenters changed image a from \(28, 28\) uint8 to \(20, 20\) uint8; "
                                          r"use size-preserving augmenters"):
        make_variant(resize, np.zeros((28, 28), np.uint8), 0, "a", 1)
