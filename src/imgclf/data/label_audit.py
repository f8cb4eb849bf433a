"""Which labels are wrong: confident learning (cleanlab) on out-of-sample class probabilities.

A model that saw an image's own label in training predicts that label back, right or wrong, so
each image is scored by a model fitted without it: K folds by group, an image's mirror and its
near-copies in the same fold (the split's groups), classes stratified. The model is a
multinomial logistic regression on the cached features reduced by PCA: seconds per fold, where
the head costs a minute, and a flipped label is a point far from its class, which a linear
model on these features places as well.

How good the finder is gets measured on every run, the way the split stage measures its audit:
flip a seeded sample of train labels in a copy, run the same finder (folds, model, cleanlab) on
the copy, and count the flips among the suspects the flips added.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from imgclf.core.errors import ConfigError
from imgclf.core.npy_rows import Selection


@dataclass(frozen=True)
class Suspects:
    """The finder's verdict on rows 0..n-1: `rows` flagged, most suspicious first."""
    rows: np.ndarray               # flagged row numbers, ranked
    suggested: np.ndarray          # (n,) the most probable class out of sample
    quality: np.ndarray            # (n,) cleanlab's label quality score: low = suspicious
    noise_rate: float              # 1 - trace of cleanlab's estimated joint of given and true labels
    few_example_classes: list[int]  # classes cleanlab had too few examples of to flag every issue


def usable_folds(y: np.ndarray, groups: np.ndarray, wanted: int, class_names: list[str]) -> int:
    """min(wanted, the fewest groups any class has): every class must sit in every fold's
    training part. Raises ConfigError naming the class when that is fewer than 2."""
    per_class = {int(c): len(np.unique(groups[y == c])) for c in np.unique(y)}
    fewest = min(per_class, key=per_class.get)
    folds = min(wanted, per_class[fewest])
    if folds < 2:
        raise ConfigError(f"class '{class_names[fewest]}' has {per_class[fewest]} image group(s); the label "
                          f"audit scores each image with a model that never saw it, which needs at least 2 "
                          f"per class (labels.folds: {wanted})")
    return folds


PCA_FIT_ROWS = 20_000            # a seeded sample fits the projection; every row is projected


def reduce(x, components: int, seed: int) -> np.ndarray:
    """x (an array, or a Selection of rows on disk) projected on its first principal components,
    whitened, a chunk at a time: memory grows with components per image, not with the features.
    Unsupervised, so fitting it on train and val together leaks no label."""
    from sklearn.decomposition import PCA

    n = len(x)
    sample = np.sort(np.random.default_rng([seed, 0x504341]).choice(n, min(n, PCA_FIT_ROWS), replace=False))
    pca = PCA(min(components, len(sample), int(np.prod(x.shape[1:]))), whiten=True, random_state=seed)
    pca.fit(np.asarray(x[sample], np.float32))
    chunks = x.chunks() if isinstance(x, Selection) else (x[i:i + 8192] for i in range(0, n, 8192))
    return np.concatenate([pca.transform(np.asarray(c, np.float32)).astype(np.float32) for c in chunks])


def out_of_sample_probs(z: np.ndarray, y: np.ndarray, fold: np.ndarray, n_classes: int) -> np.ndarray:
    """(n, n_classes) probabilities of the reduced features z, each row's from the model fitted
    on the other folds (fold_of: its group never among them)."""
    from sklearn.linear_model import LogisticRegression

    probs = np.zeros((len(y), n_classes))
    for k in range(int(fold.max()) + 1):
        model = LogisticRegression(max_iter=300, tol=1e-3).fit(z[fold != k], y[fold != k])
        probs[np.ix_(fold == k, model.classes_)] = model.predict_proba(z[fold == k])
    return probs


def fold_of(y: np.ndarray, groups: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Each row's fold: a group in one fold only, classes spread over the folds in proportion."""
    from sklearn.model_selection import StratifiedGroupKFold

    out = np.empty(len(y), np.int64)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (_, rows) in enumerate(splitter.split(np.zeros(len(y)), y, groups)):
        out[rows] = k
    return out


def find_suspects(y: np.ndarray, probs: np.ndarray) -> Suspects:
    """cleanlab's label-issue finder: confident learning estimates how many labels are wrong, and
    the images given the least probability for their own label are those (filter_by
    low_self_confidence), ranked by that score. Of cleanlab's filters it found the most injected
    flips at the highest precision on Fashion-MNIST (bench/label_audit_models.py, docs/results.md)."""
    from cleanlab.count import estimate_joint
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = find_label_issues(y, probs, filter_by="low_self_confidence", return_indices_ranked_by="self_confidence",
                                 n_jobs=1)
        joint = estimate_joint(y, probs)
    # cleanlab warns, per class, when a class has too few examples for its thresholds: named, not hidden.
    few = sorted({int(m.group(1)) for w in caught if (m := _FEW.search(str(w.message)))})
    return Suspects(rows=np.asarray(rows, np.int64), suggested=probs.argmax(1),
                    quality=get_label_quality_scores(y, probs), noise_rate=float(1 - np.trace(joint)),
                    few_example_classes=few)


_FEW = re.compile(r"label issues in class: (\d+), it has too few examples")


def flip_labels(y: np.ndarray, candidates: np.ndarray, fraction: float, n_classes: int,
                seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(labels with a seeded `fraction` of the candidate rows moved to another class, uniformly
    among the others; the flipped rows)."""
    rng = np.random.default_rng([seed, 0x464C4950])
    flipped = np.sort(rng.choice(candidates, size=int(round(fraction * len(candidates))), replace=False))
    out = y.copy()
    out[flipped] = (y[flipped] + rng.integers(1, n_classes, len(flipped))) % n_classes
    return out, flipped


@dataclass(frozen=True)
class FlipCheck:
    flipped: int
    found: int                     # flipped rows among the suspects
    added: int                     # suspects of the flipped copy that the clean labels did not have
    precision: float | None        # found / added
    recall: float | None           # found / flipped

    def as_metrics(self) -> dict:
        return {"flipped": self.flipped, "found": self.found, "suspects_added": self.added,
                "precision": self.precision, "recall": self.recall}


def flip_check(z, y, fold, n_classes: int, train_rows: np.ndarray, clean: Suspects, fraction: float,
               seed: int) -> FlipCheck:
    """The finder's precision and recall on label flips injected into train rows, with the folds
    of the clean run (so what changes between the two runs is the flips alone). A suspect of the
    clean labels (a label already wrong, or an image the model cannot place) is not counted
    against the finder: precision is over the suspects the flips added."""
    noisy, flipped = flip_labels(y, train_rows, fraction, n_classes, seed)
    if not len(flipped):
        return FlipCheck(0, 0, 0, None, None)
    found_rows = find_suspects(noisy, out_of_sample_probs(z, noisy, fold, n_classes)).rows
    found = np.isin(flipped, found_rows)
    added = np.union1d(np.setdiff1d(found_rows, clean.rows), flipped[found])
    return FlipCheck(len(flipped), int(found.sum()), len(added),
                     round(int(found.sum()) / len(added), 4) if len(added) else None,
                     round(float(found.mean()), 4))


SUSPECT_COLUMNS = ["rank", "id", "split", "given", "suggested", "quality"]


def suspect_table(ids, split, y, found: Suspects, names) -> pd.DataFrame:
    """Every suspect, most suspect first: what a reviewer opens to fix labels."""
    names = np.asarray(names)
    r = found.rows
    return pd.DataFrame({"rank": np.arange(1, len(r) + 1), "id": np.asarray(ids)[r], "split": np.asarray(split)[r],
                         "given": names[y[r]], "suggested": names[found.suggested[r]],
                         "quality": np.round(found.quality[r], 4)}, columns=SUSPECT_COLUMNS)
