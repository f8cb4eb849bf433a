"""Near-duplicates: copies made the way users make them are found, grouped and kept on one side;
unrelated images are not; the recall measured on the pipeline's own variants can fail."""

import cv2
import numpy as np
import pytest

from imgclf.data.audit import own_variant_recall, probe_variants
from imgclf.data.near_duplicates import (
    AuditConfig,
    aligned_rms,
    copy_descriptors,
    near_duplicates,
    neighbour_index,
    neighbour_pairs,
    overlap_keys,
    overlap_pairs,
    window_descriptors,
    window_pairs,
    window_rms,
)
from imgclf.data.split import LabelConflictError, assign_splits, near_duplicate_counts
from tests.conftest import image_set

DEFAULT_AUGMENTERS = [{"name": "Fliplr", "args": {"p": 0.5}},
                      {"name": "Affine", "args": {"translate_px": {"x": [-3, 3], "y": [-3, 3]},
                                                  "mode": "constant", "cval": 0}}]


def garments(n: int, seed: int) -> np.ndarray:
    """Distinct smooth 'garments' filling most of a black 28-px frame, like Fashion-MNIST."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, 28, 28), np.uint8)
    for img in out:
        blob = cv2.GaussianBlur(rng.uniform(0, 255, (24, 24)).astype(np.float32), (0, 0), 2.0)
        blob = (blob - blob.min()) / (np.ptp(blob) + 1e-6) * 200 + 30
        img[2:26, 2:26] = blob.astype(np.uint8)
    return out


def shift(img, dy, dx, fill):
    border = {"zero": cv2.BORDER_CONSTANT, "edge": cv2.BORDER_REPLICATE, "wrap": cv2.BORDER_WRAP}[fill]
    return cv2.warpAffine(img, np.float32([[1, 0, dx], [0, 1, dy]]), img.shape[::-1], borderMode=border)


def exposure(img, gain, offset):
    return np.clip(gain * (img.astype(np.float32) - 127.5) + 127.5 + offset, 0, 255).round().astype(np.uint8)


def jpeg(img, quality):
    return cv2.imdecode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_UNCHANGED)


def from_larger(img, factor):
    """A copy saved at a larger size, brought back to the dataset's size as the loader does."""
    big = cv2.resize(img, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
    return cv2.resize(big, img.shape[::-1], interpolation=cv2.INTER_AREA)


COPIES = {  # kind -> how a copy of an original is made (each kind and pairs of kinds)
    "mirror": lambda x: x[:, ::-1],
    "shift_zero": lambda x: shift(x, 4, -3, "zero"),
    "shift_edge": lambda x: shift(x, -2, 4, "edge"),
    "shift_wrap": lambda x: shift(x, 3, 3, "wrap"),
    "exposure": lambda x: exposure(x, 1.1, -20),
    "jpeg70": lambda x: jpeg(x, 70),
    "from_larger": lambda x: from_larger(x, 3),
    "mirror+shift_zero": lambda x: shift(x[:, ::-1], -4, -4, "zero"),
    "shift_edge+exposure": lambda x: exposure(shift(x, 2, -2, "edge"), 0.9, 15),
    "exposure+jpeg80": lambda x: jpeg(exposure(x, 0.92, 10), 80),
    "mirror+from_larger": lambda x: from_larger(x[:, ::-1], 2),
    "shift_zero+jpeg70": lambda x: jpeg(shift(x, -3, 4, "zero"), 70),
    "shift_wrap+exposure": lambda x: exposure(shift(x, 4, 2, "wrap"), 1.08, 12),
    "shift_edge+from_larger": lambda x: from_larger(shift(x, 1, -4, "edge"), 3),
}


@pytest.fixture(scope="module")
def injected():
    base = garments(300, 1)
    originals = {kind: 7 * k + 3 for k, kind in enumerate(COPIES)}
    copies = np.stack([np.ascontiguousarray(COPIES[kind](base[o])) for kind, o in originals.items()])
    copy_rows = {kind: 300 + k for k, kind in enumerate(COPIES)}
    return np.concatenate([base, copies]), originals, copy_rows


def test_every_kind_of_copy_is_found_and_nothing_else(injected):
    images, originals, copy_rows = injected
    pairs, _ = near_duplicates(images, AuditConfig())
    found = {(int(a), int(b)) for a, b in zip(pairs.a, pairs.b)}
    expected = {(originals[kind], copy_rows[kind]) for kind in COPIES}
    assert found == expected, f"missed {expected - found}, unrelated {found - expected}"
    assert (pairs.rms <= AuditConfig().max_rms).all()


def test_a_copy_shifted_further_than_max_shift_is_not_confirmed(injected):
    images, _, _ = injected
    far = shift(images[5], 7, 0, "zero")
    pairs, _ = near_duplicates(np.concatenate([images[:300], far[None]]), AuditConfig(max_shift=4))
    assert 300 not in set(pairs.b.tolist())
    pairs, _ = near_duplicates(np.concatenate([images[:300], far[None]]), AuditConfig(max_shift=8))
    assert (5, 300) in set(zip(pairs.a.tolist(), pairs.b.tolist()))


def test_exact_overlap_join_finds_shifted_and_mirrored_windows_only():
    base = garments(50, 3)
    images = np.concatenate([base, shift(base[10], -3, 2, "zero")[None], base[20:21, :, ::-1]])
    centre, probes = overlap_keys(images, 4)
    a, b = overlap_pairs(centre, probes)
    assert {tuple(sorted(p)) for p in zip(a.tolist(), b.tolist())} == {(10, 50), (20, 51)}
    blank = np.zeros((3, 28, 28), np.uint8)
    centre, probes = overlap_keys(blank, 4)
    assert (centre == 0).all() and (probes == 0).all()      # flat windows never match each other


def _probe(dy: int, dx: int, s: int = 4) -> int:
    """window_descriptors' probe number of the unmirrored window at offset (dy, dx)."""
    return (dy + s) * (2 * s + 1) + (dx + s)


def test_window_search_pairs_each_copy_from_both_sides_once_at_its_offset():
    """The window search's candidates, before any confirmation: (probe row, image row, probe) for
    each row whose window at some offset is nearest to another image's centre crop, one per pair,
    at the best offset; unrelated garments and a blank image are never candidates, however the
    rows are cut into chunks."""
    base = garments(8, 9)
    # rows 8 and 9: 0 shifted by (2, -1) and (-1, 3); row 10: an exact copy of 3; row 11: blank
    images = np.concatenate([base, np.stack([shift(base[0], 2, -1, "zero"), shift(base[0], -1, 3, "zero"),
                                             base[3].copy(), np.zeros((28, 28), np.uint8)])])
    expected = {(8, 0, _probe(2, -1)), (0, 8, _probe(-2, 1)), (9, 0, _probe(-1, 3)), (0, 9, _probe(1, -3)),
                (8, 9, _probe(3, -4)), (9, 8, _probe(-3, 4)),
                (10, 3, _probe(0, 0))}    # (3, 10) too ties with 3 itself, and the nearest one is kept
    for chunk in (2048, 3):
        a, b, probe = window_pairs(images, len(images), 4, AuditConfig().max_window_distance, chunk=chunk)
        assert a.dtype == b.dtype == probe.dtype == np.int64
        assert set(zip(a.tolist(), b.tolist(), probe.tolist())) == expected and len(a) == len(expected), chunk
    # The distance bound is inclusive: an exact copy's centre is at distance 0.
    a, b, probe = window_pairs(images, len(images), 4, 0.0)
    assert list(zip(a.tolist(), b.tolist(), probe.tolist())) == [(10, 3, _probe(0, 0))]


def test_a_mirrored_shifted_copy_is_found_and_confirmed_at_its_mirrored_window():
    """Probes 81.. are the mirrored windows: compared at the matched one, the copy's pixels are its
    original's (an RMS of almost 0); at the same offset unmirrored they differ as much as two
    unrelated garments do (about 40 grey levels)."""
    img = garments(2, 9)
    images = np.stack([img[0], shift(img[0][:, ::-1], 2, -1, "zero"), img[1]])
    a, b, probe = window_pairs(images, 3, 4, AuditConfig().max_window_distance)
    assert list(zip(a.tolist(), b.tolist())) == [(0, 1), (1, 0)] and (probe >= 81).all()
    assert (window_rms(images, a, b, probe, 4) < 0.05).all()
    assert (window_rms(images, a, b, probe - 81, 4) > 30).all()                 # the same offsets, unmirrored


def test_no_images_have_no_descriptors_of_the_same_kind():
    """An empty query set (the audit without recall probes) adds rows of the dtype faiss takes."""
    desc = copy_descriptors(np.empty((0, 28, 28), np.uint8))
    assert (desc.shape, desc.dtype) == ((0, 41), np.float32)
    assert copy_descriptors(garments(3, 1)).dtype == np.float32


def test_window_search_needs_two_images_with_texture():
    images = garments(1, 9)
    pair = np.stack([images[0], shift(images[0], 2, -1, "zero")])
    a, b, probe = window_pairs(pair, 2, 4, AuditConfig().max_window_distance)
    assert list(zip(a.tolist(), b.tolist(), probe.tolist())) == [(0, 1, _probe(-2, 1)), (1, 0, _probe(2, -1))]
    for rows in (np.stack([images[0], np.zeros((28, 28), np.uint8)]), images):   # one textured image
        found = window_pairs(rows, len(rows), 4, AuditConfig().max_window_distance)
        assert [(x.dtype, len(x)) for x in found] == [(np.int64, 0)] * 3


def test_queries_do_not_change_the_audit(injected):
    images, _, _ = injected
    alone, _ = near_duplicates(images, AuditConfig())
    with_queries, probe = near_duplicates(images, AuditConfig(), queries=images[:40, :, ::-1])
    assert np.array_equal(alone.a, with_queries.a) and np.array_equal(alone.b, with_queries.b)
    assert {(int(q), int(i)) for q, i in zip(probe.a, probe.b)} >= {(k, k) for k in range(40)}


def test_inverted_file_search_matches_the_exhaustive_search():
    base = garments(3000, 5)
    copies = np.stack([jpeg(exposure(img, 1.05, 5), 75) for img in base[:1000]])
    desc = copy_descriptors(np.concatenate([base, copies]))
    exact = neighbour_pairs(desc, 6, AuditConfig().max_descriptor_distance)
    approx = neighbour_pairs(desc, 6, AuditConfig().max_descriptor_distance, exact_max=0)
    exact_set = set(zip(*map(np.ndarray.tolist, exact)))
    approx_set = set(zip(*map(np.ndarray.tolist, approx)))
    assert len(exact_set & approx_set) / len(exact_set) >= 0.8        # neighbour lists overall
    true = {(3000 + i, i) for i in range(1000)}                          # copy -> its original
    assert len(true & approx_set) >= 0.99 * len(true & exact_set) > 500


def test_recall_on_own_variants_is_measured_and_can_fail():
    base = garments(400, 9)
    data = image_set(base, np.arange(400) % 10, ["train"] * 400)
    variants, sources = probe_variants(data, DEFAULT_AUGMENTERS, 42, 500)
    assert len(variants) == 500 and len(set(sources.tolist())) > 390   # k = 2 fills up to 500
    assert not any(np.array_equal(v, base[s]) for v, s in zip(variants, sources))
    _, probe = near_duplicates(base, AuditConfig(), queries=variants)
    assert own_variant_recall(probe, sources) == 1.0
    # An augmenter that no audit should call a copy: the measure says so.
    inverted, sources = probe_variants(data, [{"name": "Invert", "args": {"p": 1.0}}], 42, 200)
    _, probe = near_duplicates(base, AuditConfig(), queries=inverted)
    assert own_variant_recall(probe, sources) < 0.05
    assert probe_variants(data, [], 42, 100)[0].shape[0] == 0
    assert own_variant_recall(probe, np.empty(0, np.int64)) is None


def test_group_mode_keeps_near_duplicates_on_one_side(injected):
    images, originals, copy_rows = injected
    n = len(images)
    official = ["train"] * 250 + ["test"] * 50 + ["train"] * len(COPIES)
    # the copy of original 73 (in test) sits in train: it must be excluded, never trained on
    labels = np.arange(n) % 10
    for kind, row in copy_rows.items():
        labels[row] = labels[originals[kind]]
    pairs, _ = near_duplicates(images, AuditConfig())
    for seed in range(4):   # with val_fraction 0.5 a straddle would be likely without grouping
        report = assign_splits(image_set(images, labels, official), 0.5, seed).manifest
        grouped = assign_splits(image_set(images, labels, official), 0.5, seed, (pairs.a, pairs.b)).manifest
        split = grouped["split"].to_numpy()
        for kind, row in copy_rows.items():
            assert split[row] == split[originals[kind]] or split[row] == "excluded"
        counts = near_duplicate_counts(grouped, pairs.a, pairs.b)
        assert counts["near_duplicate_pairs_train_val"] == counts["near_duplicate_pairs_test_train"] == 0
        test_original = [k for k, o in originals.items() if o >= 250]
        for kind in test_original:
            assert split[copy_rows[kind]] == "excluded" and split[originals[kind]] == "test"
        assert sum(near_duplicate_counts(report, pairs.a, pairs.b).values()) == len(COPIES)


def test_label_conflicts_fail_in_group_mode_naming_the_files():
    images = garments(40, 4)
    ids = [f"img-{i}" for i in range(40)]
    sources = list(ids)
    sources[7] = sources[3]                      # one photo by name, but labelled twice
    labels = np.zeros(40, int)
    labels[7] = 1
    data = image_set(images, labels, ["pool"] * 40, ids=ids, source_ids=sources)
    with pytest.raises(LabelConflictError, match=r"img-3 \(c0\), img-7 \(c1\)"):
        assign_splits(data, 0.2, 0, test_fraction=0.2, fail_on_label_conflict=True)
    out = assign_splits(data, 0.2, 0, test_fraction=0.2)         # report mode: split, and listed
    assert out.manifest.loc[3, "split"] == out.manifest.loc[7, "split"]


def test_shifted_and_lossy_copies_are_found_without_the_descriptor_search(injected):
    """The window search on its own (descriptor neighbours off, and exact keys cannot match a
    lossy copy) links every shifted-then-re-encoded/re-exposed/rescaled copy to its original."""
    images, originals, copy_rows = injected
    pairs, _ = near_duplicates(images, AuditConfig(neighbours=0))
    found = {(int(a), int(b)) for a, b in zip(pairs.a, pairs.b)}
    for kind in ("shift_zero+jpeg70", "shift_wrap+exposure", "shift_edge+from_larger", "shift_edge+exposure"):
        assert (originals[kind], copy_rows[kind]) in found, kind


def test_window_descriptors_of_a_shifted_copy_match_at_its_offset():
    img = garments(1, 5)[0]
    copy = shift(img, 2, -3, "zero")
    desc, valid = window_descriptors(np.stack([img, copy]), 4)
    centre = desc[0, 40]                                      # unmirrored, dy = dx = 0
    side = 9
    at_offset = desc[1, (2 + 4) * side + (-3 + 4)]            # the copy's window at (dy, dx) = (2, -3)
    elsewhere = np.linalg.norm(desc[1] - centre, axis=1)
    assert valid.all()
    # Equal up to the blur's reach past the frame edge (reflected there, filled in the copy).
    assert np.linalg.norm(at_offset - centre) < 0.1 * np.sort(elsewhere)[1]


def test_a_darkened_copy_whose_shadows_clip_at_zero_is_confirmed():
    """Exposure changes clip: 10 % darker and 25 levels down puts a garment's dark folds at 0,
    where a linear fit would go below; the confirmation predicts with the same clipping."""
    rng = np.random.default_rng(7)
    garment = cv2.GaussianBlur(rng.uniform(0, 255, (24, 24)).astype(np.float32), (0, 0), 1.5)
    garment = ((garment - garment.min()) / np.ptp(garment)) ** 2 * 255      # many dark folds
    img = np.zeros((28, 28), np.uint8)
    img[2:26, 2:26] = garment.astype(np.uint8)
    dark = exposure(img, 0.9, -25)
    assert (dark[2:26, 2:26] == 0).mean() > 0.02                # shadows really clipped
    images = np.concatenate([garments(60, 3), img[None], dark[None]])
    pairs, _ = near_duplicates(images, AuditConfig())
    assert (60, 61) in set(zip(pairs.a.tolist(), pairs.b.tolist()))


def test_the_confirmation_fit_clips_as_an_exposure_change_clips():
    from imgclf.data.near_duplicates import gain_matched_rms

    x = np.linspace(0, 255, 400, dtype=np.float32)[None]
    darker = np.clip(0.85 * (x - 127.5) + 127.5 - 30, 0, 255)      # a plain linear fit leaves 1.6
    assert (darker == 0).mean() > 0.04                             # the darkest 5 % clipped at 0
    assert gain_matched_rms(x, darker)[0] < 0.75
    assert gain_matched_rms(darker, x)[0] < 0.75                   # whichever is the copy
    unrelated = np.random.default_rng(0).permutation(x[0])[None]
    assert gain_matched_rms(x, unrelated)[0] > 30


def test_one_image_against_many_alignments_scores_each_pair_as_alone():
    """The quick pass compares one window with 162 alignments of the other image by broadcasting:
    each alignment's RMS is the one of that pair compared on its own, bit for bit."""
    from imgclf.data.near_duplicates import gain_matched_rms

    rng = np.random.default_rng(3)
    xs = rng.uniform(0, 255, (5, 1, 64)).astype(np.float32)
    ys = np.clip(0.9 * xs + rng.normal(0, 20, (5, 7, 64)), 0, 255).astype(np.float32)
    together = gain_matched_rms(xs, ys)
    assert together.shape == (5, 7)
    alone = np.array([[gain_matched_rms(xs[i], ys[i, j][None])[0] for j in range(7)] for i in range(5)])
    np.testing.assert_array_equal(together, alone)


@pytest.mark.slow
def test_the_audit_keeps_less_per_image_than_the_images_themselves():
    """A user's folder of 96 px RGB photos: what the audit allocates beyond its input grows by
    less than the size of one such image per image (each pass works in fixed-size chunks; only
    small grey copies are kept whole). Measured as the slope between 3,000 and 6,000 images, so
    the chunks' fixed cost cancels: 15 KB per image here, 91 KB before the chunking."""
    import tracemalloc

    rng = np.random.default_rng(0)
    peaks = {}
    for n in (3000, 6000):
        images = rng.integers(0, 256, (n, 96, 96, 3), dtype=np.uint8)
        tracemalloc.start()
        near_duplicates(images, AuditConfig())
        peaks[n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    per_image = (peaks[6000] - peaks[3000]) / 3000
    assert per_image < 0.8 * images[0].nbytes, f"{per_image / 1024:.1f} KB per image"


def test_grey_converts_colour_and_averages_areas_when_it_shrinks():
    """The audit compares small grey copies: RGB by luma weights, a 9 px image to 3 px by the mean of
    each 3x3 block (area resampling; a bilinear resize at a third would sample single pixels)."""
    from imgclf.data.near_duplicates import grey

    rgb = np.zeros((2, 9, 9, 3), np.uint8)
    rgb[0] = (200, 100, 50)                       # luma 0.299 R + 0.587 G + 0.114 B = 124.2
    rgb[1, 0, 0] = 255                            # one white pixel in the top-left block
    more = np.full((1, 9, 9, 3), 255, np.uint8)
    out = grey(rgb, more, size=3)
    assert out.dtype == np.uint8 and out.shape == (3, 3, 3)
    assert (out[0] == 124).all()
    expected = np.zeros((3, 3), np.uint8)
    expected[0, 0] = 28                           # 255 / 9
    np.testing.assert_array_equal(out[1], expected)
    assert (out[2] == 255).all()
    small = np.arange(2 * 9 * 9, dtype=np.uint8).reshape(2, 9, 9)
    for size in (None, 9, 12):                    # never enlarged: grey images come back as they are
        np.testing.assert_array_equal(grey(small, size=size), small)


def test_blurred_keeps_flat_images_flat_and_spreads_a_point_symmetrically():
    from imgclf.data.near_duplicates import _blurred

    images = np.zeros((2, 11, 11), np.uint8)
    images[0] = 100
    images[1, 5, 5] = 255
    out = _blurred(images, 0.8)
    assert out.dtype == np.float32 and out.shape == images.shape
    np.testing.assert_allclose(out[0], 100, atol=1e-3)
    point = out[1]
    assert point.sum() == pytest.approx(255, abs=0.01)             # a blur moves intensity, keeps its total
    assert np.unravel_index(point.argmax(), point.shape) == (5, 5)
    np.testing.assert_allclose(point, point.T, atol=1e-5)
    np.testing.assert_allclose(point, point[::-1, ::-1], atol=1e-5)
    assert 50 < point[5, 5] < 80 and point[5, 7] > 0.5               # sigma 0.8: about a quarter stays, some reaches 2 px


def test_a_copy_descriptor_is_pinned():
    """Every audit decision is a distance between these 41 numbers: a change to the descriptor (its
    blur, window, frequencies) must be deliberate, with its recall measured again
    (bench/near_duplicate_recall.py) before this pin is updated."""
    img = np.zeros((28, 28), np.uint8)
    img[6:22, 8:20] = 180                     # a bright body
    img[6:10, 4:24] = 120                     # sleeves
    img[12:16, 10:14] = 40                    # a dark pocket
    desc = copy_descriptors(img[None])[0]
    np.testing.assert_allclose(desc[:8], [1.3376, 1.3356, 1.1790, 0.6353, 0.1592, 0.6202, 1.2896, 1.1877], atol=2e-3)
    assert abs(float(desc.mean())) < 1e-5 and abs(float(desc.std()) - 1) < 1e-3     # standardised


def test_above_exact_max_the_neighbour_search_is_an_inverted_file():
    """Exhaustive search is quadratic: above exact_max rows the audit must switch to faiss's
    inverted file (sqrt(n)-many lists, at least 40 rows each)."""
    import faiss

    desc = np.random.default_rng(0).standard_normal((200, 41)).astype(np.float32)
    assert isinstance(neighbour_index(desc), faiss.IndexFlatL2)
    ivf = neighbour_index(desc, exact_max=199)
    assert isinstance(ivf, faiss.IndexIVFFlat) and (ivf.ntotal, ivf.nlist) == (200, 5)
    assert isinstance(neighbour_index(desc, exact_max=200), faiss.IndexFlatL2)


def test_the_quick_rejection_gives_the_pairs_it_lets_through_the_full_comparisons_value():
    """aligned_rms(reject_above=...) is the split's shortcut: a pair under the bound on a quick look
    gets exactly the full comparison's value; an unrelated pair keeps a value above the bound."""
    base = garments(6, 3)
    images = np.concatenate([base, np.stack([shift(img, 1, -2, "zero") for img in base[:3]])])
    a, b = np.array([6, 7, 8, 0, 1, 2]), np.array([0, 1, 2, 3, 4, 5])   # three copies, three unrelated pairs
    full = aligned_rms(images, a, b)
    quick = aligned_rms(images, a, b, reject_above=10.0)
    assert (full[:3] < 0.1).all() and (full[3:] > 20).all(), full
    np.testing.assert_array_equal(quick[:3], full[:3])
    assert (quick[3:] > 10).all(), quick


def test_the_pair_checks_give_the_same_values_on_any_number_of_cores(injected, monkeypatch):
    """The confirmations run in threads a chunk at a time; chunks of a few pairs make many tasks
    racing for the output, which must still hold each pair's own value, bit for bit."""
    import imgclf.data.near_duplicates as nd

    images, originals, copy_rows = injected
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, len(images), 500), rng.integers(0, len(images), 500)
    a[:len(COPIES)], b[:len(COPIES)] = list(copy_rows.values()), list(originals.values())
    probe = rng.integers(0, 2 * 9 * 9, 500)
    for name in ("_QUICK_CHUNK", "_VERIFY_CHUNK", "_WINDOW_CHUNK"):
        monkeypatch.setattr(nd, name, 7)
    runs = []
    for workers in ("1", "3"):
        monkeypatch.setenv("IMGCLF_WORKERS", workers)
        runs.append((aligned_rms(images, a, b, reject_above=8.0), window_rms(images, a, b, probe, 4),
                     near_duplicates(images, AuditConfig())[0]))
    (quick1, window1, pairs1), (quick3, window3, pairs3) = runs
    assert (quick1[:len(COPIES)] <= AuditConfig().max_rms).all()
    np.testing.assert_array_equal(quick3, quick1)
    np.testing.assert_array_equal(window3, window1)
    for field in ("a", "b", "rms"):
        np.testing.assert_array_equal(getattr(pairs3, field), getattr(pairs1, field))


def _digits48(n: int) -> np.ndarray:
    """scikit-learn's 8x8 digits at 48 px by pixel repetition: blocky, high contrast, mostly black."""
    from sklearn.datasets import load_digits

    d = (load_digits().images[:n] * 255 / 16).round().astype(np.uint8)
    return np.ascontiguousarray(np.repeat(np.repeat(d, 6, 1), 6, 2))


def test_shifted_copies_of_blocky_images_are_found_at_their_own_size():
    """A 1-3 px shift of a 48 px image is a fraction of a pixel at the audit's 32 px check, where
    an edge of a blocky digit turns into a different blur: 19 % were found. Exact windows at the
    images' own size find every one, confirmed by construction (RMS 0)."""
    from imgclf.data.near_duplicates import AuditConfig, near_duplicates

    images = _digits48(300)
    rng = np.random.default_rng(0)
    copies = []
    for x in images[:60]:
        dy, dx = (int(v) for v in rng.integers(-3, 4, 2))
        moved = cv2.warpAffine(x, np.float32([[1, 0, dx], [0, 1, dy]]), (48, 48), borderMode=cv2.BORDER_CONSTANT)
        copies.append(moved[:, ::-1] if rng.random() < 0.5 else moved)
    pairs, probe = near_duplicates(images, AuditConfig(), queries=np.stack(copies))
    linked = {(int(a), int(b)) for a, b in zip(probe.a, probe.b)}
    assert all((i, i) in linked for i in range(60))
    own = probe.take(probe.a == probe.b)
    assert (own.rms == 0).all()


@pytest.mark.parametrize("kind", ["digits48", "photo tiles"])
def test_thumbnail_copies_are_found_and_sharp_look_alikes_are_not_paired_by_them(kind):
    """A copy saved at 20-40 % of the size and loaded back differs from its original by more
    than the confirmation threshold at full detail; the thumbnail test finds it (the original,
    shrunk to the copy's size and loaded back, matches), and only blurred rows take that test."""
    from imgclf.data.near_duplicates import AuditConfig, near_duplicates, thumbnail_like

    if kind == "digits48":
        images = _digits48(300)
    else:
        from sklearn.datasets import load_sample_images

        photo = load_sample_images().images[1]
        images = np.stack([np.ascontiguousarray(photo[y:y + 48, x:x + 48])
                           for y in range(0, photo.shape[0] - 47, 48) for x in range(0, photo.shape[1] - 47, 48)])
    rng = np.random.default_rng(1)
    thumbs, sources = [], rng.choice(len(images), 60, replace=False)
    for i in sources:
        s = int(round(rng.uniform(0.2, 0.4) * 48))
        small = cv2.resize(images[i], (s, s), interpolation=cv2.INTER_AREA)
        thumbs.append(cv2.resize(small, (48, 48), interpolation=cv2.INTER_LINEAR))
    thumbs = np.stack(thumbs)
    assert thumbnail_like(thumbs).all() and not thumbnail_like(_digits48(300)).any()
    without, _ = near_duplicates(images, AuditConfig())
    pairs, probe = near_duplicates(images, AuditConfig(), queries=thumbs)
    found = {(int(a), int(b)) for a, b in zip(probe.a, probe.b)}
    assert sum((j, int(i)) in found for j, i in enumerate(sources)) >= 0.95 * len(sources)
    assert len(pairs) == len(without)            # queries never change the audit of the images
