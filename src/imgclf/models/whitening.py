"""Start the CNN's first convolution as a patch-whitening filter bank (airbench's first layer).

A randomly initialised first layer spends the first epochs finding what PCA of the 3x3 patches
gives for free: edges and blobs, each direction of pixel variation at its own scale. Here the
first filters of conv0_0 are the eigenvectors of the training patches' covariance divided by the
square root of their eigenvalues, each with both signs (a ReLU follows, so one sign alone would
keep half of each direction). The filters stay trainable; the low-variance ones have large
weights, so Adam's steps (of a fixed size per weight) barely move them: they behave almost like
airbench's frozen whitening layer without a layer or parameter more.
"""

from __future__ import annotations

import numpy as np

# Regularises the smallest eigenvalues, relative to the mean patch variance (airbench's 5e-4 on
# unit-variance inputs): noise directions are amplified, not blown up.
RELATIVE_EPS = 5e-4


def sample_patches(images: np.ndarray, n: int, size: int, seed: int) -> np.ndarray:
    """n patches of size x size pixels at random positions of random images, as (n, size*size*C)
    in [0, 1], with the zero border the layer's "same" padding gives; memory is bounded by n,
    whatever the image size."""
    x = images if images.ndim == 4 else images[..., None]
    count, height, width, _ = x.shape
    rng = np.random.default_rng(seed)
    rows, ys, xs = rng.integers(0, count, n), rng.integers(0, height, n), rng.integers(0, width, n)
    half = size // 2
    pixels = []
    for dy in range(-half, size - half):          # the kernel's (row, column, channel) order
        for dx in range(-half, size - half):
            yy, xx = ys + dy, xs + dx
            inside = ((yy >= 0) & (yy < height) & (xx >= 0) & (xx < width))[:, None]
            values = x[rows, np.clip(yy, 0, height - 1), np.clip(xx, 0, width - 1)]
            pixels.append(np.where(inside, values, 0).astype(np.float64) / 255.0)
    return np.stack(pixels, axis=1).reshape(n, -1)


def whitening_filters(patches: np.ndarray) -> np.ndarray:
    """(2 * d, d) filters, d = patch length: the whitening directions by falling variance, each
    followed by its negative."""
    covariance = np.cov(patches, rowvar=False)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    order = np.argsort(eigenvalues)[::-1]
    eps = RELATIVE_EPS * max(float(np.trace(covariance)) / len(covariance), 1e-12)
    whiten = eigenvectors[:, order].T / np.sqrt(np.clip(eigenvalues[order], 0, None) + eps)[:, None]
    return np.stack([whiten, -whiten], axis=1).reshape(-1, whiten.shape[1])


def whiten_first_conv(conv, images: np.ndarray, seed: int, patches: int = 100_000) -> int:
    """Overwrites the first filters of `conv` (kernel (k, k, C, F), no bias) with the whitening
    filters of `images` (uint8, (N, H, W) or (N, H, W, C)); the others keep their random init.
    Returns how many filters were set: 2 * k * k * C, or F if fewer."""
    kernel = np.array(conv.kernel.numpy())
    size, _, channels, n_filters = kernel.shape
    filters = whitening_filters(sample_patches(images, patches, size, seed))
    used = min(len(filters), n_filters)
    kernel[..., :used] = filters[:used].T.reshape(size, size, channels, used)
    conv.kernel.assign(kernel.astype(np.float32))
    return used
