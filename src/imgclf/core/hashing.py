"""Content hashes and stable hash-based assignment.

Everything that must not go stale (split membership, augmentation seeds, cache keys) is derived
from content or from stable ids through these functions, never from file names or positions.
"""

from __future__ import annotations

import hashlib

import numpy as np


def image_sha256(image: np.ndarray) -> str:
    """SHA-256 of an image's pixels, its shape and dtype.

    Shape and dtype are part of the digest so that a 28x28 image and the same bytes read as
    14x56 (or as float) never share a key.
    """
    image = np.ascontiguousarray(image)
    h = hashlib.sha256()
    h.update(f"{image.dtype.str}{image.shape}".encode())
    h.update(image.tobytes())
    return h.hexdigest()


def stable_unit_interval(*parts: object) -> float:
    """Map (seed, id, ...) to [0, 1) deterministically, independent of process and platform.

    TF's retrain.py assigns files to splits by a hash of the name so that adding files never
    moves existing ones; this is the same idea, salted by a seed and keyed by a stable id.
    """
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def stable_seed(*parts: object) -> int:
    """A 32-bit seed derived only from its parts (imgaug seeds are int32)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def file_sha256(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
