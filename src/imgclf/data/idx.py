"""Reader for the IDX format of (Fashion-)MNIST, gzip-compressed or not.

The header is validated against the file size so that a truncated or foreign file fails with
its name and what was wrong, instead of producing a silently short array.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from imgclf.core.errors import UserError

# IDX type codes (third byte of the magic number).
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class IdxError(UserError, ValueError):
    pass


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    if len(data) < 4:
        raise IdxError(f"{name}: {len(data)} bytes is too short for an IDX header")
    zero, type_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or type_code not in _DTYPES or ndim == 0:
        raise IdxError(f"{name}: not an IDX file (magic bytes {data[:4].hex()})")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IdxError(f"{name}: header promises {ndim} dimensions but the file ends first")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_DTYPES[type_code])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise IdxError(f"{name}: header says shape {shape} ({expected} bytes) but the file has "
                       f"{len(data)} bytes (truncated or corrupt)")
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: Path | str) -> np.ndarray:
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise IdxError(f"{path}: corrupt gzip: {err}") from None
    return parse_idx(raw, str(path))


def encode_idx(array: np.ndarray) -> bytes:
    """The inverse of parse_idx, for tests and small fixture datasets."""
    codes = {np.dtype(v).newbyteorder(">") if np.dtype(v).itemsize > 1 else np.dtype(v): k
             for k, v in _DTYPES.items()}
    dt = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    code = codes[dt]
    header = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(dt).tobytes()
