"""Near-duplicates: shifted and re-exposed copies are found, grouped, kept on one side."""

import cv2
import numpy as np
import pytest

from imgclf.manifest import SPLITS
from imgclf.near_duplicates import aligned_rms, candidate_pairs, near_duplicates, spectral_hash
from imgclf.split import assign_splits, near_duplicate_counts
from tests.conftest import image_set


def garments(n: int, seed: int) -> np.ndarray:
    """Distinct smooth 'garments' on a black border, like Fashion-MNIST."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, 28, 28), np.uint8)
    for img in out:
        blob = cv2.GaussianBlur(rng.uniform(0, 255, (20, 20)).astype(np.float32), (0, 0), 2.0)
        blob = (blob - blob.min()) / (np.ptp(blob) + 1e-6) * 200 + 30
        img[4:24, 4:24] = blob.astype(np.uint8)
    return out


def shifted(img, dy, dx):
    return np.roll(img, (dy, dx), axis=(0, 1))


def brighter(img, delta):
    return np.clip(img.astype(int) + delta, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def injected():
    base = garments(200, 1)
    copies = {  # copy row -> original row
        200: 3, 201: 10, 202: 25, 203: 40, 204: 170,
    }
    extra = [shifted(base[3], 0, 1), shifted(base[10], 1, 0), brighter(base[25], 5),
             brighter(shifted(base[40], -1, 0), -5), base[170].copy()]
    return np.concatenate([base, np.stack(extra)]), copies


def test_shift_and_brightness_copies_are_found_and_unrelated_are_not(injected):
    images, copies = injected
    rows = np.arange(len(images))
    pairs = near_duplicates(images, spectral_hash(images), rows, None, max_bits=4, max_rms=6.0)
    found = {(int(a), int(b)) for a, b in zip(pairs.a, pairs.b)}
    assert {(orig, copy) for copy, orig in copies.items()} == found
    assert (pairs.rms <= 6.0).all()


def test_unrelated_similar_pair_is_not_confirmed():
    a, b = garments(2, 7)
    images = np.stack([a, b])
    assert aligned_rms(images, np.array([0]), np.array([1]))[0] > 20


def test_cross_set_search_matches_within_set_search(injected):
    images, _ = injected
    h = spectral_hash(images)
    within = candidate_pairs(h, np.arange(len(images)), None, 6)
    left, right = np.arange(0, 120), np.arange(120, len(images))
    cross = candidate_pairs(h, left, right, 6)
    expected = {(a, b) for a, b in zip(within.a, within.b) if a < 120 <= b}
    assert {(int(a), int(b)) for a, b in zip(cross.a, cross.b)} == expected


def test_group_mode_keeps_near_duplicates_on_one_side(injected):
    images, copies = injected
    n = len(images)
    official = ["train"] * 150 + ["test"] * 50 + ["train"] * 5   # row 204 copies test image 170
    labels = np.arange(n) % 10
    rows = np.arange(n)
    pairs = near_duplicates(images, spectral_hash(images), rows, None, 4, 6.0)
    for seed in range(5):  # with val_fraction 0.5 a straddle would be likely without grouping
        report = assign_splits(image_set(images, labels, official), 0.5, seed).manifest
        grouped = assign_splits(image_set(images, labels, official), 0.5, seed, (pairs.a, pairs.b)).manifest
        split = grouped["split"].to_numpy()
        for copy, orig in copies.items():
            assert split[copy] == split[orig] or split[copy] == "excluded"
        counts = near_duplicate_counts(grouped, pairs.a, pairs.b)
        assert counts["near_duplicate_pairs_train_val"] == counts["near_duplicate_pairs_test_train"] == 0
        assert split[204] == "excluded" and split[170] == "test"
        # Report mode only counts: the four inexact pairs are all counted somewhere (the exact
        # copy of test image 170 is excluded in both modes, as identical content always groups).
        assert sum(near_duplicate_counts(report, pairs.a, pairs.b).values()) == 4
        assert report["split"][204] == "excluded"
