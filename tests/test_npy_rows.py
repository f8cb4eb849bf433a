"""Row-wise .npy reading and writing (imgclf.core.npy_rows): the same values as numpy's own load and
save, for every way a stage indexes, and a process that streams a file holds one chunk of it."""

import subprocess
import sys

import numpy as np
import pytest

from imgclf.core.npy_rows import NpyRows, chunk_rows, npy_row_writer
from tests.conftest import REPO


@pytest.fixture
def saved(tmp_path):
    a = np.random.default_rng(0).random((101, 3, 4)).astype(np.float32)
    np.save(tmp_path / "a.npy", a)
    return tmp_path / "a.npy", a


def test_every_index_form_reads_what_numpy_loads(saved):
    path, a = saved
    rows = NpyRows(path)
    assert (len(rows), rows.shape, rows.dtype) == (101, a.shape, a.dtype)
    np.testing.assert_array_equal(rows[7], a[7])
    np.testing.assert_array_equal(rows[-1], a[-1])
    np.testing.assert_array_equal(rows[10:20], a[10:20])
    np.testing.assert_array_equal(rows[::7], a[::7])
    shuffled = np.random.default_rng(1).permutation(101)[:40]
    np.testing.assert_array_equal(rows[shuffled], a[shuffled])             # unsorted, as a batch of a shuffle
    np.testing.assert_array_equal(rows[[3, 3, 4]], a[[3, 3, 4]])           # repeated rows
    mask = np.arange(101) % 3 == 0
    np.testing.assert_array_equal(rows[mask], a[mask])
    np.testing.assert_array_equal(np.concatenate(list(rows.chunks(mask, rows=4))), a[mask])
    assert rows[np.array([], int)].shape == (0, 3, 4)
    with pytest.raises(IndexError):
        rows[np.array([5, 101])]
    with pytest.raises(IndexError):
        rows[101]


def test_a_truncated_file_is_an_error_naming_it(saved):
    path, _ = saved
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(OSError, match="a.npy: truncated"):
        NpyRows(path)[100]


def test_rows_written_in_any_order_read_back_with_numpy(tmp_path):
    a = np.random.default_rng(2).integers(0, 255, (50, 6), dtype=np.uint8)
    dest = tmp_path / "out.npy"
    order = np.random.default_rng(3).permutation(50)
    with npy_row_writer(dest, a.shape, a.dtype) as out:
        for batch in np.array_split(order, 7):
            out[batch] = a[batch]
        assert not dest.exists()                                            # not before the block ends
    np.testing.assert_array_equal(np.load(dest), a)


def test_a_writer_that_fails_leaves_the_previous_file_and_no_temp_file(tmp_path):
    dest = tmp_path / "out.npy"
    np.save(dest, np.arange(3))
    with pytest.raises(RuntimeError):
        with npy_row_writer(dest, (10, 2), np.float32) as out:
            out[0:5] = np.ones((5, 2))
            raise RuntimeError("killed half-way")
    np.testing.assert_array_equal(np.load(dest), np.arange(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.npy"]


def test_chunk_rows_keeps_a_chunk_near_the_budget():
    assert chunk_rows(9216, 64 << 20) == 7281 and chunk_rows(10**9, 1024) == 1


STREAM = """
import resource, sys, numpy as np
from imgclf.core.npy_rows import NpyRows
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rows = NpyRows(sys.argv[1])
total = sum(float(c.sum()) for c in rows.chunks(rows=2048))
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


def test_streaming_a_file_holds_one_chunk_not_the_file(tmp_path):
    """A memory map touched end to end peaks at the file's size; reading by chunks must not."""
    path = tmp_path / "big.npy"
    with npy_row_writer(path, (32768, 2048), np.float32) as out:          # 256 MiB
        for b in range(0, 32768, 4096):
            out[b:b + 4096] = np.full((4096, 2048), b, np.float32)
    grew_mib = int(subprocess.run([sys.executable, "-c", STREAM, str(path)], capture_output=True, text=True,
                                  check=True, cwd=REPO).stdout)
    assert grew_mib < 64, f"streaming 256 MiB grew the peak RSS by {grew_mib} MiB"


@pytest.mark.parametrize("rows, keep", [(1000, 999), (100000, 5), (12, 12), (7, 0)])
def test_keep_first_shrinks_a_file_sized_for_more_rows(tmp_path, rows, keep):
    """The split stage sizes its image file for every candidate file and keeps the decoded ones:
    numpy must read the shrunk file as exactly those rows (header rewritten, data where it was)."""
    dest = tmp_path / "images.npy"
    a = np.random.default_rng(keep).integers(0, 255, (keep, 3, 2), dtype=np.uint8)
    with npy_row_writer(dest, (rows, 3, 2), np.uint8) as out:
        out[:keep] = a
        out.keep_first(keep)
        with NpyRows(out.path) as back:                                      # readable before the rename
            assert back.shape == (keep, 3, 2)
        with pytest.raises(ValueError, match=f"cannot keep {keep + 1} of {keep} rows"):
            out.keep_first(keep + 1)
    np.testing.assert_array_equal(np.load(dest), a)
    assert dest.stat().st_size == NpyRows(dest).offset + keep * 6 and NpyRows(dest).offset % 64 == 0
