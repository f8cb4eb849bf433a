"""Bottleneck features through the content-addressed cache: compute only what is missing.

Images are keyed by the SHA-256 of their pixels (never by file name or row number, which
silently serve old vectors when files are regenerated under the same names).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from imgclf.core.hashing import image_sha256
from imgclf.core.npy_rows import chunk_rows, row_chunks
from imgclf.core.progress import progress
from imgclf.features.feature_store import FeatureStore


@dataclass
class BottleneckReport:
    namespace: str
    images: int
    unique_images: int
    hits: int
    misses: int
    corrupt: int
    seconds_computing: float
    seconds_reading: float
    seconds_total: float

    def line(self) -> str:
        rate = self.misses / self.seconds_computing if self.seconds_computing else 0.0
        return (f"bottleneck: {self.images} images ({self.unique_images} unique), {self.hits} cache hits, "
                f"{self.misses} misses, {self.corrupt} corrupt entries recomputed; computed in "
                f"{self.seconds_computing:.1f} s ({rate:.0f} images/s), read in {self.seconds_reading:.1f} s, "
                f"total {self.seconds_total:.1f} s; namespace {self.namespace}")

    def as_metrics(self) -> dict:
        d = asdict(self)
        return {k: round(v, 2) if isinstance(v, float) else v for k, v in d.items()}


class _RowBuffer:
    """Vectors gathered for their rows and written a few thousand at a time: one indexed write per
    vector costs more in NumPy calls than the write itself when `out` is a file."""

    def __init__(self, out, size: int = 4096):
        self.out, self.size = out, size
        self.rows: list[int] = []
        self.vectors: list[np.ndarray] = []

    def add(self, rows: list[int], vector: np.ndarray) -> None:
        self.rows.extend(rows)
        self.vectors.extend([vector] * len(rows))
        if len(self.rows) >= self.size:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.out[np.asarray(self.rows)] = np.stack(self.vectors)
            self.rows, self.vectors = [], []


def compute_features(images, extractor, store: FeatureStore, *, out=None,
                     show_progress: bool = True) -> tuple[np.ndarray, BottleneckReport]:
    """Features aligned with `images` (an array or NpyRows); vectors missing from the store are
    computed and stored. `out` takes the rows (a RowWriter streams them to disk, so memory does
    not grow with the number of images); by default a new array."""
    start = time.perf_counter()
    rows_of: dict[str, list[int]] = {}
    for first, chunk in row_chunks(images, chunk_rows(int(np.prod(images.shape[1:])) * images.dtype.itemsize)):
        for i, img in enumerate(chunk, first):
            rows_of.setdefault(image_sha256(img), []).append(i)
    store.register(extractor.namespace, extractor.dim, extractor.spec)
    features = np.empty((len(images), extractor.dim), dtype=np.float32) if out is None else out

    t = time.perf_counter()
    found: set[str] = set()
    corrupt: list[str] = []
    pending = _RowBuffer(features)
    for key, vec in store.iter_vectors(extractor.namespace, rows_of):
        if vec is None:
            corrupt.append(key)
        else:
            pending.add(rows_of[key], vec)
            found.add(key)
    pending.flush()
    if corrupt:
        store.delete(extractor.namespace, corrupt)
    seconds_reading = time.perf_counter() - t

    missing = [k for k in rows_of if k not in found]
    t = time.perf_counter()
    bs = extractor.batch_size
    with progress(total=len(missing), desc="bottleneck", unit="img", disable=not show_progress or not missing) as bar:
        for b in range(0, len(missing), bs):
            batch_keys = missing[b:b + bs]
            batch = np.asarray(images[np.array([rows_of[k][0] for k in batch_keys])])
            out_vectors = extractor(batch)
            store.put_many(extractor.namespace, zip(batch_keys, out_vectors))
            for k, vec in zip(batch_keys, out_vectors):
                pending.add(rows_of[k], vec)
            pending.flush()
            bar.update(len(batch_keys))
    seconds_computing = time.perf_counter() - t

    report = BottleneckReport(
        namespace=extractor.namespace, images=len(images), unique_images=len(rows_of),
        hits=len(found), misses=len(missing), corrupt=len(corrupt),
        seconds_computing=seconds_computing, seconds_reading=seconds_reading,
        seconds_total=time.perf_counter() - start)
    return features, report
