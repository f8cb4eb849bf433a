"""Rows of a large .npy file, read and written a batch at a time without mapping the file.

Why not `np.load(mmap_mode="r")`: every page of a memory map that a process has touched counts in
its resident set until the map is closed, so a stage that streams once over a 4 GB feature file
still peaks at 4 GB. These classes use pread/pwrite on a plain file descriptor: a process holds
only the batch it asked for, whatever the size of the file (the page cache still speeds up the
second read, without counting against the process).
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
from pathlib import Path
from typing import Iterator

import numpy as np

from imgclf.core.atomic import atomic_path, missing

CHUNK_BYTES = 64 << 20        # a chunk of rows is read or computed in about 64 MiB


def row_chunks(array, rows: int) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, rows) of an array or NpyRows, `rows` at a time."""
    for start in range(0, len(array), rows):
        yield start, np.asarray(array[start:start + rows])


def chunk_rows(row_bytes: int, budget: int = CHUNK_BYTES) -> int:
    """Rows per chunk so one chunk stays near `budget` bytes (at least one row)."""
    return max(1, budget // max(1, row_bytes))


def _runs(index: np.ndarray) -> Iterator[tuple[int, int, int]]:
    """(position in index, first row, length) of each run of consecutive rows in a sorted index."""
    if not len(index):
        return
    breaks = np.flatnonzero(np.diff(index) != 1) + 1
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks, [len(index)]])
    for s, e in zip(starts.tolist(), ends.tolist()):
        yield s, int(index[s]), e - s


class NpyRows:
    """Read-only rows of a C-ordered .npy file: `rows[i]`, `rows[a:b]`, `rows[int_array]`,
    `rows[bool_mask]`, like an array, each call one or a few preads."""

    def __init__(self, path: Path | str):
        self.path, self._fd = Path(path), -1
        try:
            with open(self.path, "rb") as f:
                version = np.lib.format.read_magic(f)
                read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                               (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                if read_header is None:
                    raise ValueError(f"{self.path}: .npy format version {version} is not supported")
                shape, fortran, dtype = read_header(f)
                self.offset = f.tell()
        except FileNotFoundError:
            raise missing(self.path) from None
        if fortran or dtype.hasobject:
            raise ValueError(f"{self.path}: expected a C-ordered array of plain numbers, got {dtype} "
                             f"(fortran order: {fortran})")
        self.shape, self.dtype = tuple(shape), dtype
        self.row_shape = self.shape[1:]
        self.row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * dtype.itemsize
        self._fd = os.open(self.path, os.O_RDONLY)

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "NpyRows":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        self.close()

    def _read(self, first: int, count: int) -> bytes:
        want = count * self.row_bytes
        data = os.pread(self._fd, want, self.offset + first * self.row_bytes)
        if len(data) != want:
            raise OSError(f"{self.path}: truncated: rows {first}..{first + count} are not all there")
        return data

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            i = int(key) + (len(self) if key < 0 else 0)
            if not 0 <= i < len(self):
                raise IndexError(f"row {key} of {len(self)}")
            return np.frombuffer(self._read(i, 1), self.dtype).reshape(self.row_shape)
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step != 1:
                return self[np.arange(start, stop, step)]
            count = max(0, stop - start)
            return np.frombuffer(self._read(start, count), self.dtype).reshape(count, *self.row_shape).copy()
        index = np.asarray(key)
        if index.dtype == bool:
            if index.shape != (len(self),):
                raise IndexError(f"boolean mask of shape {index.shape} for {len(self)} rows")
            index = np.flatnonzero(index)
        index = index.astype(np.int64).ravel()
        if len(index) and (index.min() < 0 or index.max() >= len(self)):
            raise IndexError(f"rows {index.min()}..{index.max()} out of {len(self)}")
        order = np.argsort(index, kind="stable")
        ordered = index[order]
        out = np.empty((len(index), *self.row_shape), self.dtype)
        sorted_out = out if np.array_equal(order, np.arange(len(index))) else np.empty_like(out)
        for pos, first, count in _runs(ordered):
            sorted_out[pos:pos + count] = np.frombuffer(self._read(first, count), self.dtype).reshape(
                count, *self.row_shape)
        if sorted_out is not out:
            out[order] = sorted_out
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """np.asarray(rows) reads every row: explicit, as for a memory map."""
        return self[:] if dtype is None else self[:].astype(dtype)

    def __iter__(self) -> Iterator[np.ndarray]:
        for chunk in self.chunks():
            yield from chunk

    def chunks(self, index: np.ndarray | None = None, rows: int | None = None) -> Iterator[np.ndarray]:
        """The rows of `index` (default: all) in order, a chunk of about CHUNK_BYTES at a time."""
        index = np.arange(len(self)) if index is None else np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        step = rows or chunk_rows(self.row_bytes)
        for b in range(0, len(index), step):
            yield self[index[b:b + step]]


class Selection:
    """Rows `index` of an NpyRows, read only when asked for: a training or test set whose
    features need not fit in memory. Indexes like an array of those rows."""

    def __init__(self, rows: NpyRows, index):
        index = np.asarray(index)
        self.rows = rows
        self.index = np.flatnonzero(index) if index.dtype == bool else index.astype(np.int64)
        self.shape = (len(self.index), *rows.shape[1:])
        self.dtype = rows.dtype

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key) -> np.ndarray:
        return self.rows[self.index[key]]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self.rows[self.index]
        return out if dtype is None else out.astype(dtype)

    def chunks(self, rows: int | None = None) -> Iterator[np.ndarray]:
        return self.rows.chunks(self.index, rows)


class RowWriter:
    """`writer[rows] = values` for rows in any order; each run of consecutive rows is one pwrite."""

    def __init__(self, fd: int, offset: int, shape: tuple[int, ...], dtype: np.dtype, path: Path | None = None):
        self._fd, self.offset, self.shape, self.dtype, self.path = fd, offset, shape, dtype, path
        self.row_shape = shape[1:]
        self.row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __setitem__(self, key, values) -> None:
        if isinstance(key, slice):
            start, stop, step = key.indices(self.shape[0])
            index = np.arange(start, stop, step)
        else:
            index = np.atleast_1d(np.asarray(key, dtype=np.int64))
        values = np.asarray(values, dtype=self.dtype)
        values = np.broadcast_to(values, (len(index), *self.row_shape))
        if len(index) and (index.min() < 0 or index.max() >= self.shape[0]):
            raise IndexError(f"rows {index.min()}..{index.max()} out of {self.shape[0]}")
        order = np.argsort(index, kind="stable")
        ordered, values = index[order], values[order]
        for pos, first, count in _runs(ordered):
            os.pwrite(self._fd, np.ascontiguousarray(values[pos:pos + count]).tobytes(),
                      self.offset + first * self.row_bytes)

    def keep_first(self, rows: int) -> None:
        """Shrink the file to its first `rows` rows (a file sized for every candidate, some of which
        were skipped). The header is rewritten in place, padded with spaces to its old length, so
        the rows already written stay where they are."""
        if not 0 <= rows <= self.shape[0]:
            raise ValueError(f"cannot keep {rows} of {self.shape[0]} rows")
        header = _header((rows, *self.row_shape), self.dtype)      # never longer: fewer rows, no more digits
        header = (header[:8] + struct.pack("<H", self.offset - 10)
                  + header[10:-1].ljust(self.offset - 11) + b"\n")     # padded to the old length
        os.pwrite(self._fd, header, 0)
        os.ftruncate(self._fd, self.offset + rows * self.row_bytes)
        self.shape = (rows, *self.row_shape)


def _header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape})
    return buf.getvalue()


@contextlib.contextmanager
def npy_row_writer(dest: Path | str, shape: tuple[int, ...], dtype) -> Iterator[RowWriter]:
    """A .npy file of known shape filled row by row, under a temporary name that becomes `dest`
    only when the block ends without error: a killed stage leaves the previous file or none,
    never a half-filled one that looks complete."""
    shape, dtype = tuple(int(n) for n in shape), np.dtype(dtype)
    with atomic_path(dest, suffix=".npy") as tmp:
        with open(tmp, "wb") as f:
            offset = f.write(_header(shape, dtype))
            f.truncate(offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize)
        fd = os.open(tmp, os.O_WRONLY)
        try:
            yield RowWriter(fd, offset, shape, dtype, tmp)
        finally:
            os.close(fd)


def available_memory() -> int:
    """Bytes the kernel can hand out without swapping (MemAvailable), or all of RAM where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def in_memory_if_it_fits(selections: list[Selection], share: float = 0.5) -> list:
    """The selections read into arrays when together they take at most `share` of the available
    memory (an epoch then costs no reads), else as they are: streamed a batch at a time. Training
    gives the same result either way."""
    total = sum(len(s) * int(np.prod(s.shape[1:])) * s.dtype.itemsize for s in selections)
    return [np.asarray(s) for s in selections] if total <= share * available_memory() else selections
