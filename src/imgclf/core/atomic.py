"""Atomic writes: an interrupted stage leaves the previous file or none, never a truncated one.

Each writer writes to a temporary file in the destination's directory (same file system, so the
rename is atomic), fsyncs it, then renames it over the destination.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from imgclf.core.errors import UserError


@contextlib.contextmanager
def atomic_path(dest: Path | str, suffix: str = "") -> Iterator[Path]:
    """Yield a temp path next to dest; rename it to dest only if the block succeeds."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    # A writer killed with SIGKILL cannot clean up; its leftovers go now, before they pile up.
    for stale in dest.parent.glob(f".{glob.escape(dest.name)}.*.tmp{suffix}"):
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=f".tmp{suffix}", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, dest)
    except OSError as err:
        # Name the destination, not the temp file: that is the path the user knows.
        # numpy reports a short write without an errno; that is a full disk in practice.
        reason = err.strerror or f"{err} (short write: is the disk full?)"
        raise WriteError(err.errno, f"could not write {dest}: {reason}") from None
    finally:
        tmp_path.unlink(missing_ok=True)


class WriteError(UserError, OSError):
    """An output could not be written (full disk, no permission): the user's to fix."""


def write_bytes(dest: Path | str, data: bytes) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)


def write_text(dest: Path | str, text: str) -> None:
    write_bytes(dest, text.encode())


def write_json(dest: Path | str, obj: Any) -> None:
    write_text(dest, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_npy(dest: Path | str, array: np.ndarray) -> None:
    with atomic_path(dest, suffix=".npy") as tmp:
        np.save(tmp, array, allow_pickle=False)


class DiskSpaceError(UserError, OSError):
    """An output would not fit on its disk: refused before the work, not found out half-way."""


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000


def require_space(dest: Path | str, nbytes: int, what: str, copies: int = 2) -> None:
    """Refuse to start when `what` (nbytes, written to dest) would not fit on dest's disk.

    copies=2: under `dvc repro` the output is followed by DVC's copy of it in .dvc/cache, on the
    same disk by default; a run that fills the disk during that copy fails as late as one that
    fills it while writing.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(dest.parent).free
    need = nbytes * copies
    if need > free:
        copy = ", and DVC's cache copy" if copies > 1 else ""
        raise DiskSpaceError(28, f"{dest}: {what} need about {_size(need)} ({_size(nbytes)} written{copy}), "
                                 f"but the disk holding {dest.parent} has {_size(free)} free; free space (`dvc gc` drops cache entries no "
                                 f"commit uses) or make less data")


class MissingInput(UserError, FileNotFoundError):
    """A stage's input is not there: the stage that writes it has not run (outside `dvc repro`)."""


def missing(path: Path | str) -> MissingInput:
    return MissingInput(2, f"{path}: not found; run the stages before this one first (`dvc repro` does)")


def load_npy(path: Path | str, mmap: bool = False) -> np.ndarray:
    """Never unpickles: a .npy from a dataset or a cache is data, not code."""
    try:
        return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except FileNotFoundError:
        raise missing(path) from None


def write_csv(dest: Path | str, frame) -> None:
    with atomic_path(dest, suffix=".csv") as tmp:
        frame.to_csv(tmp, index=False)
