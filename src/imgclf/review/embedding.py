"""The projector view: the test set's bottleneck features in 2-D (PCA, then t-SNE), coloured by
class, with the classifier's errors marked.

Why: a confusion matrix says *that* shirts and T-shirts are confused; the map shows whether they
overlap in the frozen backbone's feature space (no head can separate them) or only the head
fails. Why a sample and one thread: t-SNE is quadratic-ish and its Barnes-Hut gradient sums in
OpenMP threads, whose order changes the last bits; a fixed sample on one thread gives the same
picture, byte for byte, on every re-run of the same commit.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from imgclf.core.atomic import load_npy, save_npy

POINTS = 2000           # test images drawn (all of them when fewer)
PCA_DIMS = 50


def sample_rows(n: int, points: int = POINTS, seed: int = 0) -> np.ndarray:
    """Sorted row indices of a fixed random sample of at most `points` of n rows."""
    if n <= points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, points, replace=False))


def project(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """(n, 2) t-SNE coordinates of PCA-reduced features (n >= 3)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    x = np.asarray(features, np.float64).reshape(len(features), -1)
    if len(x) < 3:
        raise ValueError(f"an embedding view needs at least 3 images, got {len(x)}")
    with threadpool_limits(limits=1):
        dims = min(PCA_DIMS, x.shape[1], len(x))
        reduced = PCA(n_components=dims, svd_solver="full").fit_transform(x)
        perplexity = float(min(30.0, (len(x) - 1) / 3))
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                    max_iter=1000).fit_transform(reduced)


def render(xy: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, names: list[str], title: str) -> bytes:
    """PNG bytes: one colour per true class, errors drawn as black crosses on top."""
    from imgclf.review.plotting import png_bytes, pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 7), dpi=100)
    colours = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    for c, name in enumerate(names):
        pick = y_true == c
        ax.scatter(xy[pick, 0], xy[pick, 1], s=6, color=colours(c % colours.N), label=name, alpha=0.8,
                   linewidths=0)
    wrong = y_true != y_pred
    ax.scatter(xy[wrong, 0], xy[wrong, 1], s=14, marker="x", color="black", linewidths=0.7,
               label=f"misclassified ({int(wrong.sum())})")
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, markerscale=2, frameon=False)
    fig.tight_layout()
    return png_bytes(fig)


def cached_projection(features: np.ndarray, cache_dir: Path | None) -> np.ndarray:
    """project(features), kept in cache_dir under the hash of the features and of the method:
    the coordinates depend on the features alone, not on the model, so every head trained on the
    same features (each experiment on a head parameter) reuses them instead of running t-SNE again."""
    import sklearn

    if cache_dir is None:
        return project(features)
    features = np.ascontiguousarray(features)
    key = hashlib.sha256(f"{features.dtype.str}{features.shape}pca{PCA_DIMS}tsne0 sklearn {sklearn.__version__}".encode()
                         + features.tobytes()).hexdigest()[:32]
    path = Path(cache_dir) / f"{key}.npy"
    if path.is_file():
        return load_npy(path)
    xy = project(features)
    save_npy(path, xy)
    return xy


def test_view(features, test, names: list[str], space: str, cache_dir: Path | None = None) -> bytes | None:
    """The view of a fixed sample of the test set (`test`: its SplitPredictions) in the space the
    model reads: the frozen backbone's features for a head, the pixels for a CNN (the bottleneck
    stage computes no features for a CNN). None when fewer than 3 test images."""
    rows = np.flatnonzero(test.mask)
    pick = sample_rows(len(rows))
    if len(pick) < 3:
        return None
    xy = cached_projection(np.asarray(features[rows[pick]]), cache_dir)
    title = f"Test images in {space} (t-SNE of {len(pick):,} of {len(rows):,})"
    return render(xy, test.y_true[pick], test.y_pred[pick], names, title)
