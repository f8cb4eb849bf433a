"""Would a soft vote of models already trained beat the best of them? Accuracy of every
combination, and the errors each pair shares: errors that coincide are what no vote can fix."""

from __future__ import annotations

import itertools

import numpy as np


def votes(probs: dict[str, np.ndarray], y: np.ndarray) -> list[tuple[tuple[str, ...], float]]:
    """Test accuracy of each model alone and of every combination's soft vote (mean probabilities)."""
    rows = []
    for k in range(1, len(probs) + 1):
        for names in itertools.combinations(probs, k):
            mean = np.mean([probs[n] for n in names], axis=0)
            rows.append((names, float((mean.argmax(axis=1) == y).mean())))
    return rows


def shared_errors(probs: dict[str, np.ndarray], y: np.ndarray) -> list[tuple[str, str, int, int]]:
    """(a, b, test images both get wrong, test images either gets wrong) for each pair."""
    wrong = {n: p.argmax(axis=1) != y for n, p in probs.items()}
    return [(a, b, int((wrong[a] & wrong[b]).sum()), int((wrong[a] | wrong[b]).sum()))
            for a, b in itertools.combinations(probs, 2)]
