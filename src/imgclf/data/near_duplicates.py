"""Near-duplicates: copies of one photo that SHA-256 misses (mirrored, shifted, re-exposed,
re-encoded, rescaled, thumbnails, and two of these combined), found in sub-quadratic time and
confirmed in pixel space.

Why several candidate searches: no single global descriptor survives a 4-px shift with zero or edge
fill on a 28-px image (the fill cuts a seventh of the garment off), and Fashion-MNIST is dense
with look-alikes, so such copies rank far down any nearest-neighbour list. Measured numbers are
in docs/near_duplicates.md (bench/near_duplicate_recall.py). So:

1. Exact overlap: a copy shifted by (dy, dx), |d| <= max_shift, and/or mirrored shares a window
   of the original's exact pixels: the original's centre crop (margin max_shift) equals the
   copy's crop at offset d. Each image gets one key for its centre crop and 2 x (2s+1)^2 probe
   keys (mirrors x offsets); a sort-and-search join finds every pair whose windows are identical
   in O(n log n) per probe. Keys are exact integer projections (float64 sums of uint8 x 20-bit
   weights stay below 2**53, so BLAS order cannot change them). This catches the pipeline's own
   variants and copies saved losslessly by an editor, at the images' own size, where a whole-pixel
   shift is still whole; a match is a confirmed pair (identical non-flat windows).
2. Window neighbours (shifted and lossy at once): the same probes, but as area-averaged,
   standardised 6 x 6 descriptors of each window, searched (nearest only) among the images'
   centre crops through a faiss inverted file. A shifted copy's window at its own offset holds
   the original's unfilled pixels, so JPEG, exposure or rescaling on top moves the descriptor
   only a little. Each hit names its alignment, so it is checked at that one alignment first.
   The work grows as n^1.5 (2 (2s+1)^2 searches per image), so it runs up to WINDOW_MAX images.
3. Descriptor neighbours: for lossy copies each image's k nearest neighbours by a descriptor
   that ignores mirroring, brightness and contrast and tolerates small shifts: the
   mirror-symmetrised, Gaussian-windowed low-frequency |FFT| around the image's intensity
   centre. faiss searches it exactly (IndexFlatL2) up to EXACT_MAX images and with an inverted
   file (IndexIVFFlat) above.
4. Thumbnails: rows with no detail finer than some r x r image (a copy saved small and loaded
   back) are undone to that r x r image and looked up among the sharp images shrunk to r x r;
   confirmed when the candidate's own thumbnail matches (`thumbnail_pairs`).

Confirmation: the RMS difference of the two images (grey, lightly blurred, means removed, one
predicted from the other by the least-squares gain clipped to [0.8, 1.25] and clipped to [0, 255]
as an exposure change clips a copy, the better way round) over their overlapping window,
minimised over both mirror orientations and all shifts up to max_shift. A threshold in grey
levels keeps only pairs that really look the same.
"""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from imgclf.core.errors import ConfigError
from imgclf.core.npy_rows import chunk_rows, npy_row_writer
from imgclf.core.parallel import default_workers

EXACT_MAX = 200_000        # above this many images the descriptor search uses an inverted file
WINDOW_MAX = 200_000       # above this many images the window search (n^1.5 work) is left out
KEY_SIZE = 64              # exact-overlap keys at native size up to this, larger images downscaled
VERIFY_SIZE = 32           # images larger than this are compared at this size
_QUICK_CHUNK = 256          # pairs compared at every alignment at once (aligned_rms's quick pass): arrays of a few MB stay in cache
_VERIFY_CHUNK = 1024        # pairs compared one alignment at a time (aligned_rms's full pass)
_BLUR_CHUNK = 4096          # images blurred per step before they go to the scratch file
_WINDOW_CHUNK = 1024        # pairs compared at their one alignment per step (window_rms)
_KEY_WEIGHTS_SEED = 20251124
_TRIM = 2                  # px of each compared window left out: blur there mixes in the fill
_GAIN = (0.8, 1.25)


@dataclass
class Pairs:
    a: np.ndarray          # row indices (into the image array), a < b
    b: np.ndarray
    rms: np.ndarray        # aligned RMS pixel difference (grey levels); nan until verified

    def __len__(self) -> int:
        return len(self.a)

    def take(self, mask) -> "Pairs":
        return Pairs(self.a[mask], self.b[mask], self.rms[mask])


def grey(*arrays: np.ndarray, size: int | None = None) -> np.ndarray:
    """uint8 grey images of all `arrays` in one array, area-downscaled to `size` when larger.

    Written row by row into one preallocated array: the audit keeps these small grey copies, never a
    second copy of the full-size (e.g. 96 px RGB) images, whose memory would grow with the folder."""
    side = arrays[0].shape[1]
    out_side = side if size is None or side <= size else size
    out = np.empty((sum(len(a) for a in arrays), out_side, out_side), np.uint8)
    i = 0
    for images in arrays:
        for img in images:
            g = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
            out[i] = cv2.resize(g, (out_side, out_side), interpolation=cv2.INTER_AREA) if side > out_side else g
            i += 1
    return out


def _blurred(images: np.ndarray, sigma: float) -> np.ndarray:
    """float32 Gaussian-blurred copies, written into one preallocated array (not a list, then a stack)."""
    out = np.empty(images.shape, np.float32)
    for i, img in enumerate(images):
        out[i] = cv2.GaussianBlur(img.astype(np.float32), (0, 0), sigma)
    return out


# -- 1. exact overlap ------------------------------------------------------------------------

def _window_sums(images: np.ndarray, u: np.ndarray, v: np.ndarray, s: int) -> np.ndarray:
    """sum_{r,q} I[s+dy+r, s+dx+q] u[r] v[q] for every offset: (n, 2s+1, 2s+1), by two matmuls
    (the weights are separable, so rows are projected once for all dx, then columns for all dy)."""
    size = images.shape[1]
    c = len(u)
    vm = np.zeros((size, 2 * s + 1))
    um = np.zeros((2 * s + 1, size))
    for o in range(2 * s + 1):
        vm[o:o + c, o] = v
        um[o, o:o + c] = u
    return um @ (images @ vm)


def native_overlap_keys(*arrays, max_shift: int) -> tuple[np.ndarray, np.ndarray]:
    """overlap_keys of the grey versions of `arrays` (rows concatenated) at their own size, a
    chunk of about 64 MiB of pixels at a time: a copy shifted by whole pixels at the size it was
    made is found exactly, which a downscaled key (a fractional shift there) cannot promise."""
    side = arrays[0].shape[1]
    chunk = max(1, min(2048, chunk_rows(side * side * 8)))
    centres, probes = [], []
    for images in arrays:
        for start in range(0, len(images), chunk):
            c, p = overlap_keys(grey(images[start:start + chunk]), max_shift, chunk=chunk)
            centres.append(c)
            probes.append(p)
    return np.concatenate(centres), np.concatenate(probes)


def overlap_keys(images: np.ndarray, max_shift: int, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """(centre key per image, probe keys (n, 2 * (2s+1)**2)) of uint8 grey square images.

    Key of a window: two projections with random integer weights, exact in float64 (every sum is
    an integer below 2**53 up to 1024-px images), mixed into 64 bits. Flat windows (blank) get
    key 0 and never match.
    """
    n, size = images.shape[:2]
    s = max_shift
    c = size - 2 * s
    if c < 4:
        raise ConfigError(f"images of {size} px are too small for shifts of up to {s} px")
    rng = np.random.default_rng(_KEY_WEIGHTS_SEED)
    u1, v1, u2, v2 = rng.integers(1, 1 << 10, size=(4, c)).astype(np.float64)
    ones = np.ones(c)
    probes = np.empty((n, 2 * (2 * s + 1) ** 2), np.uint64)
    for start in range(0, n, chunk):
        views = []
        for src in (images[start:start + chunk], images[start:start + chunk, :, ::-1]):
            x = src.astype(np.float64)
            k1 = _window_sums(x, u1, v1, s).astype(np.uint64)
            k2 = _window_sums(x, u2, v2, s).astype(np.uint64)
            total = _window_sums(x, ones, ones, s)
            squares = _window_sums(x * x, ones, ones, s)
            key = k1 * np.uint64(0x9E3779B97F4A7C15) ^ k2 | np.uint64(1)
            key[squares * (c * c) == total * total] = 0      # flat window: variance exactly 0
            views.append(key.reshape(len(x), -1))
        probes[start:start + chunk] = np.concatenate(views, axis=1)
    centre = probes[:, (2 * s + 1) * s + s]                  # unmirrored, dy = dx = 0
    return centre, probes


def overlap_pairs(centre: np.ndarray, probes: np.ndarray, chunk: int = 1 << 16) -> tuple[np.ndarray, np.ndarray]:
    """(probe row, centre row) for every probe key equal to a centre key, self-matches dropped;
    probes may have more rows than centre (queries searched but not indexed)."""
    order = np.argsort(centre, kind="stable")
    sorted_keys = centre[order]
    # A bitmap of the keys' top 24 bits rules out almost every probe before the binary search.
    occupied = np.zeros(1 << 24, bool)
    occupied[centre[centre != 0] >> np.uint64(40)] = True
    found_a, found_b = [], []
    for start in range(0, len(probes), chunk):
        block = probes[start:start + chunk]
        rows, cols = np.nonzero(occupied[block >> np.uint64(40)] & (block != 0))
        keys = block[rows, cols]
        lo = np.searchsorted(sorted_keys, keys, "left")
        hi = np.searchsorted(sorted_keys, keys, "right")
        hit = hi > lo
        rows, lo, hi = rows[hit], lo[hit], hi[hit]
        counts = hi - lo
        first = np.repeat(lo, counts)
        within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        found_a.append(np.repeat(rows + start, counts))
        found_b.append(order[first + within])
    a = np.concatenate(found_a).astype(np.int64) if found_a else np.empty(0, np.int64)
    b = np.concatenate(found_b).astype(np.int64) if found_b else np.empty(0, np.int64)
    return a[a != b], b[a != b]


# -- 3. descriptor neighbours ----------------------------------------------------------------

def copy_descriptors(images: np.ndarray, chunk: int = 8192, **kwargs) -> np.ndarray:
    """`_copy_descriptors` in chunks of at most `chunk` images and about 64 MiB of pixels (bounded
    memory for large images too, which an NpyRows reads from disk a chunk at a time)."""
    chunk = min(chunk, chunk_rows(int(np.prod(images.shape[1:], dtype=np.int64)) * images.dtype.itemsize))
    parts = [_copy_descriptors(images[i:i + chunk], **kwargs) for i in range(0, len(images), chunk)]
    return np.concatenate(parts) if parts else np.empty((0, 41), np.float32)


def _copy_descriptors(images: np.ndarray, size: int = 32, crop: int = 28, window_sigma: float = 4.5,
                      centre_sigma: float = 7.0, freq: tuple[int, int] = (7, 6)) -> np.ndarray:
    """Descriptor that a mirror, a brightness/contrast change or a small shift barely moves.

    The image is re-centred on its intensity mass (a Gaussian-weighted mean-shift, so a strip
    cut off at the frame edge hardly moves the centre), windowed by a Gaussian so the frame edge
    and fill do not count, and described by the log-magnitude of its low frequencies (a magnitude
    spectrum ignores shifts), summed with its mirror (|F(v, u)| + |F(-v, u)| is the same for an
    image and its mirror image), then standardised (brightness and contrast drop out).
    """
    n = len(images)
    g = np.empty((n, size, size), np.float32)
    for i, img in enumerate(images):
        img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
        interp = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_LINEAR
        g[i] = cv2.GaussianBlur(cv2.resize(img, (size, size), interpolation=interp).astype(np.float32), (0, 0), 1.0)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    border = np.concatenate([g[:, 0], g[:, -1], g[:, :, 0], g[:, :, -1]], 1)
    background = np.median(border, 1)
    mass = np.abs(g - background[:, None, None])
    cy = np.full(n, (size - 1) / 2, np.float32)
    cx = cy.copy()
    for _ in range(4):
        weight = mass * np.exp(-((yy - cy[:, None, None]) ** 2 + (xx - cx[:, None, None]) ** 2)
                               / (2 * centre_sigma ** 2))
        total = weight.sum((1, 2)) + 1e-6
        cy, cx = (weight * yy).sum((1, 2)) / total, (weight * xx).sum((1, 2)) / total
    yc, xc = np.mgrid[0:crop, 0:crop].astype(np.float32) - (crop - 1) / 2
    window = np.exp(-(yc ** 2 + xc ** 2) / (2 * window_sigma ** 2))
    centred = np.empty((n, crop, crop), np.float32)
    for i in range(n):
        m = np.float32([[1, 0, (crop - 1) / 2 - cx[i]], [0, 1, (crop - 1) / 2 - cy[i]]])
        centred[i] = cv2.warpAffine(g[i] - background[i], m, (crop, crop), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    centred -= (centred * window).sum((1, 2), keepdims=True) / window.sum()
    spectrum = np.abs(np.fft.rfft2(centred * window))
    symmetric = spectrum + spectrum[:, (-np.arange(crop)) % crop, :]
    desc = np.log1p(symmetric[:, :freq[0], :freq[1]].reshape(n, -1)[:, 1:])   # DC dropped
    desc -= desc.mean(1, keepdims=True)
    desc /= desc.std(1, keepdims=True) + 1e-6
    return np.ascontiguousarray(desc, dtype=np.float32)


def inverted_file(desc: np.ndarray, lists_per_root: float, train_per_list: int, nprobe: int):
    """faiss IndexIVFFlat over desc with lists_per_root * sqrt(n) lists (at least 40 rows each, as
    faiss wants), trained on a fixed sample, searching nprobe lists."""
    import faiss

    dim = desc.shape[1]
    lists = max(1, min(int(lists_per_root * np.sqrt(len(desc))), len(desc) // 40))
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(dim), dim, lists)
    sample = np.random.default_rng(0).choice(len(desc), min(len(desc), train_per_list * lists), replace=False)
    index.train(desc[np.sort(sample)])
    index.add(desc)
    index.nprobe = min(nprobe, lists)
    return index


def neighbour_index(desc: np.ndarray, exact_max: int | None = None, nprobe: int = 8):
    """faiss index over the descriptors: exact up to exact_max (default EXACT_MAX) rows, an
    inverted file above."""
    import faiss

    exact_max = EXACT_MAX if exact_max is None else exact_max
    if len(desc) > exact_max:
        return inverted_file(desc, lists_per_root=4, train_per_list=100, nprobe=nprobe)
    index = faiss.IndexFlatL2(desc.shape[1])
    index.add(desc)
    return index


def neighbour_pairs(desc: np.ndarray, k: int, max_distance: float, exact_max: int | None = None,
                    queries: np.ndarray | None = None, chunk: int = 1 << 16) -> tuple[np.ndarray, np.ndarray]:
    """(query row, index row) for each row's k nearest neighbours within max_distance (squared L2
    between standardised descriptors), self-matches dropped. Query rows are desc's rows, then
    `queries`' rows numbered from len(desc) on; only desc is indexed."""
    both = desc if queries is None or not len(queries) else np.concatenate([desc, queries])
    if len(desc) < 2 or k == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    index = neighbour_index(desc, exact_max)
    k1 = min(k + 1, len(desc))
    found_a, found_b = [], []
    for start in range(0, len(both), chunk):
        dist, idx = index.search(both[start:start + chunk], k1)
        rows = np.repeat(np.arange(start, start + len(idx)), k1)
        keep = (idx.ravel() >= 0) & (dist.ravel() <= max_distance) & (idx.ravel() != rows)
        found_a.append(rows[keep])
        found_b.append(idx.ravel()[keep])
    return np.concatenate(found_a).astype(np.int64), np.concatenate(found_b).astype(np.int64)


# -- 2. window neighbours (shifted and lossy) -------------------------------------------------

WINDOW_GRID = 6            # window descriptors are WINDOW_GRID x WINDOW_GRID area averages
_WINDOW_BLUR = 1.0
_WINDOW_MIN_STD = 1.0      # grey levels: flatter windows (blank) describe nothing and never match


def _area_matrix(length: int, cells: int) -> np.ndarray:
    """(cells, length) weights averaging each of `cells` equal spans of `length` pixels (fractional
    overlaps weighted), so resampling a window is a matrix product."""
    edges = np.linspace(0, length, cells + 1)
    m = np.zeros((cells, length))
    for i in range(cells):
        for j in range(length):
            m[i, j] = max(0.0, min(edges[i + 1], j + 1) - max(edges[i], j))
    return m / m.sum(1, keepdims=True)


def window_descriptors(images: np.ndarray, max_shift: int, offsets: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(descriptors, valid) of the centre crop (margin max_shift) of uint8 grey square images, at
    every offset |dy|, |dx| <= max_shift in both mirror orientations when `offsets` (shape (n,
    2 (2s+1)^2, G*G)), else of the centre crop only ((n, 1, G*G)).

    Why: a copy shifted by d, |d| <= s, holds the original's centre crop, unfilled, at offset d;
    lossy changes (JPEG, exposure, rescaling) move an area-averaged, standardised 6 x 6 of it
    only a little, while look-alike garments differ in it. Computed as two matrix products per
    batch (separable area weights), like the exact-overlap keys.
    """
    n, size = images.shape[:2]
    s = max_shift
    c = size - 2 * s
    shifts = range(-s, s + 1) if offsets else [0]
    area = _area_matrix(c, WINDOW_GRID)
    rows = np.zeros((len(shifts) * WINDOW_GRID, size))
    for k, d in enumerate(shifts):
        rows[k * WINDOW_GRID:(k + 1) * WINDOW_GRID, s + d:s + d + c] = area
    views = [images, images[:, :, ::-1]] if offsets else [images]
    out = []
    for view in views:
        x = np.stack([cv2.GaussianBlur(v.astype(np.float32), (0, 0), _WINDOW_BLUR) for v in view])
        # rows @ x @ rows.T for every image, as two large products over the whole batch: a stacked
        # matmul makes one small product per image, at a fraction of the machine's rate.
        left = (rows @ x.transpose(1, 0, 2).reshape(size, -1)).reshape(-1, n, size).transpose(1, 0, 2)
        grid = (left.reshape(-1, size) @ rows.T).reshape(n, len(rows), len(rows))   # (n, K*G, K*G)
        k = len(shifts)
        grid = grid.reshape(n, k, WINDOW_GRID, k, WINDOW_GRID).transpose(0, 1, 3, 2, 4)
        out.append(grid.reshape(n, k * k, WINDOW_GRID * WINDOW_GRID))
    desc = np.concatenate(out, axis=1)
    desc -= desc.mean(-1, keepdims=True)
    std = desc.std(-1, keepdims=True)
    valid = std[..., 0] >= _WINDOW_MIN_STD
    desc /= np.maximum(std, 1e-6)
    return desc.astype(np.float32), valid


def window_pairs(images: np.ndarray, n: int, max_shift: int, max_distance: float, chunk: int = 2048,
                 nprobe: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(probe row, image row, probe) for rows whose windows match an image's centre crop: every
    window (offset and mirror: the probe number) of every row is searched, nearest only, among the
    first n rows' centre crops through an inverted file; one (row, image) pair per best probe."""
    # The centre crops' descriptors a chunk at a time, like the probes below: all at once, their
    # float64 products grow with the number of images.
    parts = [window_descriptors(images[i:min(i + chunk, n)], max_shift, offsets=False) for i in range(0, n, chunk)]
    centre = np.concatenate([d for d, _ in parts])
    valid = np.concatenate([v for _, v in parts])
    base_rows = np.flatnonzero(valid[:, 0])
    empty = np.empty(0, np.int64)
    if len(base_rows) < 2:
        return empty, empty, empty
    base = np.ascontiguousarray(centre[base_rows, 0])
    index = inverted_file(base, lists_per_root=2, train_per_list=64, nprobe=nprobe)
    found = []
    for start in range(0, len(images), chunk):
        desc, ok = window_descriptors(images[start:start + chunk], max_shift)
        rows, probes = np.nonzero(ok)
        dist, idx = index.search(np.ascontiguousarray(desc[rows, probes]), 1)
        hit = (idx[:, 0] >= 0) & (dist[:, 0] <= max_distance)
        a, b = rows[hit] + start, base_rows[idx[hit, 0]]
        keep = a != b
        found.append((a[keep], b[keep], probes[hit][keep], dist[hit, 0][keep]))
    a, b, probe, dist = (np.concatenate(parts) for parts in zip(*found))
    order = np.lexsort((dist, b, a))                       # best probe first within each pair
    a, b, probe = a[order], b[order], probe[order]
    first = np.ones(len(a), bool)
    first[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    return a[first].astype(np.int64), b[first].astype(np.int64), probe[first].astype(np.int64)


def window_rms(images: np.ndarray, a: np.ndarray, b: np.ndarray, probe: np.ndarray, max_shift: int) -> np.ndarray:
    """Gain-matched RMS between row a's window at its matched probe (offset, mirror) and row b's
    centre crop: one alignment per pair, so millions of candidates cost seconds."""
    s = max_shift
    size = images.shape[1]
    c = size - 2 * s
    side = 2 * s + 1
    out = np.empty(len(a), np.float32)
    with _blurred_rows(images) as blurred:
        def check(task: tuple[int, np.ndarray]) -> None:
            p, r = task
            mirrored, k = divmod(p, side * side)
            dy, dx = divmod(k, side)
            src = blurred[a[r]]
            src = src[:, :, ::-1] if mirrored else src
            xs = src[:, dy:dy + c, dx:dx + c].reshape(len(r), -1)
            ys = blurred[b[r]][:, s:s + c, s:s + c].reshape(len(r), -1)
            out[r] = gain_matched_rms(xs, ys)
        # The pairs grouped by probe with one stable sort (each group in row order), then tens of MB
        # of windows per task, not GBs.
        order = np.argsort(probe, kind="stable")
        groups = np.split(order, np.flatnonzero(np.diff(probe[order])) + 1) if len(order) else []
        _each_in_threads(check, ((int(probe[rows[0]]), rows[i:i + _WINDOW_CHUNK]) for rows in groups
                                 for i in range(0, len(rows), _WINDOW_CHUNK)))
    return out


@contextmanager
def _blurred_rows(images: np.ndarray):
    """The images blurred into float32 (4x the grey keys), in a scratch file mapped read-only:
    held in the stage's memory, 100,000 images at 64 px took 1.7 GB; mapped, they are page cache
    the kernel can reclaim. Mapped, not read row by row: the pairs gather millions of scattered
    rows, one read call each from a file, but plain memory loads from a mapping."""
    with tempfile.TemporaryDirectory(prefix="imgclf-blur-") as scratch:
        path = Path(scratch) / "blurred.npy"
        with npy_row_writer(path, images.shape, np.float32) as writer:
            for start in range(0, len(images), _BLUR_CHUNK):
                writer[start:start + _BLUR_CHUNK] = _blurred(images[start:start + _BLUR_CHUNK], 0.8)
        blurred = np.load(path, mmap_mode="r")
        try:
            yield blurred
        finally:
            del blurred


# -- 4. thumbnails ---------------------------------------------------------------------------

THUMB_FRACTIONS = (0.15, 0.5)  # thumbnails saved at 15-50 % of the image's size, loaded back at full size
_THUMB_SIZES = 24               # every whole size up to this many, else this many geometric steps
_THUMB_GATE = 6.0               # grey levels: this close to a thumbnail of itself, an image holds no finer detail
_THUMB_NEIGHBOURS = 8          # candidates per thumbnail-like row and mirror orientation


def thumbnail_sizes(side: int) -> list[int]:
    lo, hi = max(2, int(np.floor(THUMB_FRACTIONS[0] * side))), max(2, int(np.ceil(THUMB_FRACTIONS[1] * side)))
    sizes = range(lo, hi + 1) if hi - lo < _THUMB_SIZES else np.round(np.geomspace(lo, hi, _THUMB_SIZES))
    return sorted({int(r) for r in sizes if r < side})


def _resize_matrix(side: int, r: int, up: bool) -> np.ndarray:
    """The matrix of a separable resize (area down to r, or linear up from r, to side): the
    resize of an identity, so it is OpenCV's own arithmetic."""
    if up:
        return cv2.resize(np.eye(r, dtype=np.float32), (r, side), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(np.eye(side, dtype=np.float32), (side, r), interpolation=cv2.INTER_AREA)


def thumbnail_matrix(side: int, r: int) -> np.ndarray:
    """M with M x M^T = x saved at r x r (area) and loaded back at side x side (linear), the way
    a thumbnail copy reaches the pipeline."""
    return _resize_matrix(side, r, up=True) @ _resize_matrix(side, r, up=False)


def _fit_errors(images: np.ndarray, sizes: list[int], chunk: int = 4096) -> np.ndarray:
    """(rows, sizes) RMS between each image and the best r x r image loaded back at full size
    (least squares through the upscaling's pseudo-inverse)."""
    side = images.shape[1]
    errors = np.empty((len(images), len(sizes)), np.float32)
    for j, r in enumerate(sizes):
        up = _resize_matrix(side, r, up=True)
        project = up @ np.linalg.pinv(up)
        for start in range(0, len(images), chunk):
            x = images[start:start + chunk].astype(np.float32)
            errors[start:start + chunk, j] = np.sqrt(((project @ x @ project.T - x) ** 2).mean((1, 2)))
    return errors


def thumbnail_like(images: np.ndarray) -> np.ndarray:
    """Rows that an r x r image, loaded back, explains to within _THUMB_GATE grey levels for some
    thumbnail size r. A photo or a garment has finer detail than that; a thumbnail copy does not."""
    images = grey(images) if images.ndim == 4 else images
    return (_fit_errors(images, thumbnail_sizes(images.shape[1])) <= _THUMB_GATE).any(1)


def _standardised(x: np.ndarray) -> np.ndarray:
    d = x.reshape(len(x), -1).astype(np.float32)
    d = d - d.mean(1, keepdims=True)
    return np.ascontiguousarray(d / (d.std(1, keepdims=True) + 1e-3))


def thumbnail_pairs(keyed: np.ndarray, small: np.ndarray, n: int, max_rms: float,
                    chunk: int = 2048) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thumbnail row, original row, RMS) for rows that are thumbnail copies of one of the first
    n rows. The other searches compare at full detail, where a thumbnail differs from its
    original by more than any threshold that keeps look-alikes apart.

    Only thumbnail-like rows (gated on `small`, cheaply) are searched, so sharp look-alikes never
    meet this test. Each is undone to the r x r image it was most likely saved as (its best-fitting
    size, through the upscaling's pseudo-inverse) and searched among every sharp image shrunk to
    r x r (area, as it was saved), both mirror orientations; a candidate is confirmed when its own
    thumbnail, at the row's best-fitting size or one either side, matches the row to within
    max_rms (gain-matched), on `keyed`."""
    import faiss

    empty = np.empty(0, np.int64)
    rows = np.flatnonzero(thumbnail_like(small))
    if not len(rows) or n < 2:
        return empty, empty, np.empty(0, np.float32)
    side = keyed.shape[1]
    sizes = thumbnail_sizes(side)
    like = np.zeros(len(keyed), bool)
    like[rows] = True
    originals = np.flatnonzero(~like[:n])      # a thumbnail's original has the detail it lost
    if not len(originals):
        return empty, empty, np.empty(0, np.float32)
    best_at = _fit_errors(keyed[rows], sizes).argmin(1)
    best = np.asarray(sizes)[best_at]
    size_of = np.zeros(len(keyed), np.int64)
    size_of[rows] = best_at
    k = min(_THUMB_NEIGHBOURS, len(originals))
    a, b = [], []
    for r in np.unique(best):
        queries = rows[best == r]
        up_inverse = np.linalg.pinv(_resize_matrix(side, r, up=True))
        saved = up_inverse @ keyed[queries].astype(np.float32) @ up_inverse.T
        down = _resize_matrix(side, r, up=False)
        index = faiss.IndexFlatL2(int(r * r))
        for start in range(0, len(originals), chunk):
            index.add(_standardised(down @ keyed[originals[start:start + chunk]].astype(np.float32) @ down.T))
        for view in (saved, saved[:, :, ::-1]):
            _, idx = index.search(_standardised(view), k)
            a.append(np.repeat(queries, k))
            b.append(originals[idx.ravel()])
    code = np.unique(np.concatenate(a).astype(np.int64) << np.int64(32) | np.concatenate(b).astype(np.int64))
    a, b = code >> np.int64(32), code & np.int64(0xFFFFFFFF)
    # Confirmed at the row's best-fitting size and its two neighbours (the size it was saved at,
    # rounded to the working size): a look-alike does not match at any of them.
    matrices = [thumbnail_matrix(side, r) for r in sizes]
    rms = np.full(len(a), np.inf, np.float32)
    for j, m in enumerate(matrices):
        near = np.flatnonzero(np.abs(size_of[a] - j) <= 1)
        for start in range(0, len(near), chunk):
            part = near[start:start + chunk]
            y = keyed[a[part]].astype(np.float32)
            y, y_mirrored = y.reshape(len(y), -1), y[:, :, ::-1].reshape(len(y), -1)
            x = keyed[b[part]].astype(np.float32)
            thumb = np.clip(m @ x @ m.T, 0, 255).reshape(len(x), -1)
            rms[part] = np.minimum(rms[part], np.minimum(gain_matched_rms(thumb, y), gain_matched_rms(thumb, y_mirrored)))
    ok = rms <= max_rms
    return a[ok], b[ok], rms[ok]


# -- confirmation ----------------------------------------------------------------------------

def _each_in_threads(fn, tasks) -> None:
    """fn(task) for every task, on all cores. Why threads: the pair checks are NumPy gathers and
    element-wise passes over arrays of a few MB, which run without the GIL, so threads share the
    work with no copies of the images; each task writes its own rows of the output, so the result
    does not depend on the number of threads."""
    workers = default_workers()
    if workers <= 1:
        for task in tasks:
            fn(task)
        return
    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(fn, tasks):   # re-raises the first error
            pass


def _best_rms(x: np.ndarray, y: np.ndarray, max_shift: int, trim: int) -> np.ndarray:
    """min over mirror and shifts of the gain-matched RMS over the (trimmed) overlap."""
    h, w = x.shape[1:]
    best = np.full(len(x), np.inf, np.float32)
    for yy in (y, y[:, :, ::-1]):
        for dy in range(-max_shift, max_shift + 1):
            for dx in range(-max_shift, max_shift + 1):
                y0, y1 = max(dy, 0) + trim, h + min(dy, 0) - trim
                x0, x1 = max(dx, 0) + trim, w + min(dx, 0) - trim
                xs = x[:, y0:y1, x0:x1].reshape(len(x), -1)
                ys = yy[:, y0 - dy:y1 - dy, x0 - dx:x1 - dx].reshape(len(x), -1)
                best = np.minimum(best, gain_matched_rms(xs, ys))
    return best


def gain_matched_rms(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """xs, ys: (..., pixels), broadcast against each other (one image against many alignments).

    RMS of the difference after matching brightness and contrast (means removed, least-squares
    gain clipped to _GAIN), each image predicted from the other, the prediction clipped to
    [0, 255] as an exposure change clips a copy: a darkened copy's shadows sit at 0 where a linear
    fit would go below it (and a brightened one's highlights at 255)."""
    mx, my = xs.mean(-1, keepdims=True), ys.mean(-1, keepdims=True)
    xc, yc = xs - mx, ys - my
    cross = (xc * yc).sum(-1)
    best = None
    for target, mean_t, source in ((xs, mx, yc), (ys, my, xc)):
        gain = np.clip(cross / ((source * source).sum(-1) + 1e-6), *_GAIN)[..., None]
        # In place: one array of the pairs' size at a time, not five (the audit's largest cost).
        error = gain * source
        error += mean_t
        np.clip(error, 0.0, 255.0, out=error)
        error -= target
        error *= error
        rms = np.sqrt(error.mean(-1))
        best = rms if best is None else np.minimum(best, rms)
    return best


def _quick_rms(x: np.ndarray, y: np.ndarray, max_shift: int, box: int) -> np.ndarray:
    """_best_rms on every second pixel of x's central box only (inside every overlap, so no fill),
    all alignments in one vectorised gather."""
    n, h, w = x.shape
    r0, c0 = (h - box) // 2, (w - box) // 2
    rows, cols = np.mgrid[r0:r0 + box:2, c0:c0 + box:2]
    shifts = np.arange(-max_shift, max_shift + 1)
    dys, dxs = np.meshgrid(shifts, shifts, indexing="ij")
    src_r = rows.ravel()[None, :] - dys.reshape(-1, 1)
    src_c = cols.ravel()[None, :] - dxs.reshape(-1, 1)
    plain = src_r * w + src_c
    mirrored = src_r * w + (w - 1 - src_c)
    gather = np.concatenate([plain, mirrored])                          # (alignments, pixels)
    xs = x.reshape(n, -1)[:, (rows * w + cols).ravel()][:, None, :]     # broadcast over the alignments
    ys = y.reshape(n, -1)[:, gather]
    return gain_matched_rms(xs, ys).min(1)


def aligned_rms(images: np.ndarray, a: np.ndarray, b: np.ndarray, max_shift: int = 4,
                reject_above: float | None = None) -> np.ndarray:
    """min over mirror and shifts |dy|,|dx| <= max_shift of the gain-matched RMS difference.

    `images` are grey (uint8 from `grey`, or float32); they are blurred into float32 here, so the
    caller need not hold a float32 copy of its own beside the blurred one. Both are blurred a little (JPEG blocks,
    resampling); the 2-px band at the window edge, where blur mixes in the fill, is left out;
    means are removed per window, and each image is predicted from the other by the least-squares
    gain clipped to [0.8, 1.25] (two +-10 % contrast changes, so a flat image cannot match
    everything), the prediction clipped to [0, 255]; the better direction counts.
    With reject_above, a pair is first compared on every second pixel of the central window
    only (an eighth of the cost, and never touched by fill); pairs already above reject_above
    there keep that value and are not compared in full.
    """
    out = np.empty(len(a), np.float32)
    blurred = _blurred(images, 0.8)
    size = images.shape[1]
    box = size - 2 * max_shift - 2 * _TRIM
    todo = np.arange(len(a))
    if reject_above is not None and box >= 8:
        def quick(start: int) -> None:
            part = slice(start, start + _QUICK_CHUNK)
            out[part] = _quick_rms(blurred[a[part]], blurred[b[part]], max_shift, box)
        _each_in_threads(quick, range(0, len(a), _QUICK_CHUNK))
        todo = np.flatnonzero(out <= reject_above)

    def full(start: int) -> None:
        part = todo[start:start + _VERIFY_CHUNK]
        out[part] = _best_rms(blurred[a[part]], blurred[b[part]], max_shift, _TRIM)
    _each_in_threads(full, range(0, len(todo), _VERIFY_CHUNK))
    return out


@dataclass(frozen=True)
class AuditConfig:
    max_shift: int = 4                    # px, in both axes, at the images' own size
    neighbours: int = 6                   # descriptor neighbours per image
    max_rms: float = 5.25                 # grey levels, after alignment and gain matching
    max_descriptor_distance: float = 10.0  # squared L2 of standardised descriptors
    max_window_distance: float = 6.0       # squared L2 of standardised 6x6 window descriptors


def _scaled_shift(max_shift: int, size: int, to: int) -> int:
    return int(np.ceil(max_shift * min(1.0, to / size)))


def near_duplicates(images: np.ndarray, config: AuditConfig,
                    queries: np.ndarray | None = None) -> tuple[Pairs, Pairs]:
    """Confirmed near-duplicate pairs among `images` (a < b), and, if `queries` are given, the
    confirmed (query row, image row) pairs. Queries never change the first result: they are
    searched against the images' index but never added to it (the audit's recall is measured
    with them without disturbing the audit itself).
    """
    queries = images[:0] if queries is None else queries
    n, size = len(images), images.shape[1]
    centre, probes = native_overlap_keys(images, queries, max_shift=config.max_shift)
    ea, eb = overlap_pairs(centre[:n], probes)         # probe rows: images then queries
    del centre, probes
    keyed = grey(images, queries, size=KEY_SIZE)       # rows: images, then queries
    key_shift = _scaled_shift(config.max_shift, size, KEY_SIZE)
    if n <= WINDOW_MAX:
        wa, wb, wp = window_pairs(keyed, n, key_shift, config.max_window_distance)
        close = window_rms(keyed, wa, wb, wp, key_shift) <= 1.5 * config.max_rms
        wa, wb = wa[close], wb[close]
    else:
        wa = wb = np.empty(0, np.int64)
    desc = np.concatenate([copy_descriptors(images), copy_descriptors(queries)])
    na, nb = neighbour_pairs(desc[:n], config.neighbours, config.max_descriptor_distance, queries=desc[n:])
    # Exact-overlap pairs share a whole window of identical, non-flat pixels at some mirror and
    # shift: confirmed by construction (RMS 0 at that alignment), so never re-measured at a
    # smaller size, where a shift of a pixel or two becomes a fraction and an edge a blur.
    exact = _pair_codes(ea, eb, n)
    small = grey(images, queries, size=VERIFY_SIZE)     # uint8: aligned_rms blurs into float32 itself
    # Thumbnail copies, confirmed by their own test (a pair also found below keeps one entry).
    ta, tb, trms = thumbnail_pairs(keyed, small, n, config.max_rms)
    del keyed                          # 4 KB per image at 64 px: not held through the verification below
    thumbs, first = np.unique(_raw_codes(ta, tb, n), return_index=True)
    trms = trms[first]
    a, b = np.concatenate([na, wa]), np.concatenate([nb, wb])
    candidates = np.setdiff1d(_pair_codes(a, b, n), np.concatenate([exact, thumbs]))
    ca, cb = candidates >> np.int64(32), candidates & np.int64(0xFFFFFFFF)   # query rows: >= n
    shift = _scaled_shift(config.max_shift, size, VERIFY_SIZE)
    rms = aligned_rms(small, ca, cb, shift, reject_above=1.5 * config.max_rms)
    keep = rms <= config.max_rms
    new = ~np.isin(thumbs, exact)
    codes = np.concatenate([exact, candidates[keep], thumbs[new]])
    rms = np.concatenate([np.zeros(len(exact), np.float32), rms[keep], trms[new]])
    order = np.argsort(codes, kind="stable")
    codes, rms = codes[order], rms[order]
    pa, pb = codes >> np.int64(32), codes & np.int64(0xFFFFFFFF)
    is_query = pa >= n
    found = Pairs(pa[~is_query], pb[~is_query], rms[~is_query])
    probe = Pairs(pa[is_query] - n, pb[is_query], rms[is_query])
    return found, probe


def _raw_codes(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """Each pair as an int64 code (first << 32 | second): an image pair as (smaller, larger) row,
    a query pair as (query row + n, image row), so the two kinds never collide."""
    a, b = a.astype(np.int64), b.astype(np.int64)
    is_query = a >= n
    lo = np.where(is_query, a, np.minimum(a, b))
    hi = np.where(is_query, b, np.maximum(a, b))
    return lo << np.int64(32) | hi


def _pair_codes(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """The distinct pairs' codes, self-pairs dropped."""
    return np.unique(_raw_codes(a[a != b], b[a != b], n))
