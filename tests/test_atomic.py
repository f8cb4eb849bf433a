"""Atomic writes under kill -9: the kill lands while the temp file is being written (the test
waits for it to appear), and the destination still holds the previous complete file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from imgclf.core.atomic import load_npy, save_npy, write_json

WRITER = textwrap.dedent("""
    import sys, numpy as np
    from imgclf.core.atomic import save_npy
    save_npy(sys.argv[1], np.full((400, 1024, 1024), 7, np.uint8))   # 400 MiB: a write that takes a while
""")


def test_kill_9_during_a_write_leaves_the_previous_file_then_the_next_write_cleans_up(tmp_path):
    dest = tmp_path / "features.npy"
    previous = np.arange(1000, dtype=np.float32)
    save_npy(dest, previous)
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(dest)])
    deadline = time.time() + 60
    try:
        while not any(p.stat().st_size > 1 << 20 for p in tmp_path.glob(".features.npy.*.tmp.npy")):
            assert time.time() < deadline, "the writer never started writing"
            assert proc.poll() is None, "the write finished before the kill; make it larger"
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)                    # mid-write: the temp file is growing
    finally:
        proc.wait()
    leftovers = list(tmp_path.glob(".features.npy.*.tmp.npy"))
    assert leftovers                                          # the killed writer could not clean up...
    np.testing.assert_array_equal(load_npy(dest), previous)    # ...but the destination is untouched
    write_json(tmp_path / "other.json", {})                    # another file's write leaves them alone
    assert list(tmp_path.glob(".features.npy.*.tmp.npy")) == leftovers
    save_npy(dest, previous[:10])                              # the next write of this file removes them
    assert list(tmp_path.glob(".features.npy.*.tmp.npy")) == []
    np.testing.assert_array_equal(load_npy(dest), previous[:10])


def test_load_npy_never_unpickles_and_maps_only_when_asked(tmp_path):
    from imgclf.core.atomic import MissingInput, load_npy, save_npy

    save_npy(tmp_path / "a.npy", np.arange(6, dtype=np.int16).reshape(2, 3))
    plain, mapped = load_npy(tmp_path / "a.npy"), load_npy(tmp_path / "a.npy", mmap=True)
    assert type(plain) is np.ndarray and plain.flags.writeable
    assert isinstance(mapped, np.memmap) and mapped.mode == "r" and mapped.tolist() == plain.tolist()
    np.save(tmp_path / "obj.npy", np.array([{"code": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="allow_pickle"):
        load_npy(tmp_path / "obj.npy")
    with pytest.raises(MissingInput) as err:
        load_npy(tmp_path / "none.npy")
    assert str(err.value) == f"[Errno 2] {tmp_path / 'none.npy'}: not found; run the stages before this one first (`dvc repro` does)"


def test_write_json_is_indented_in_the_given_key_order_and_ends_with_a_newline(tmp_path):
    """Metrics files are read in diffs: two-space indent, keys as the stage wrote them (not sorted),
    one trailing newline, so git and `dvc metrics diff` show one changed number as one changed line."""
    dest = tmp_path / "metrics" / "m.json"
    dest.parent.mkdir()
    write_json(dest, {"zeta": 1, "alpha": [0.5, "x"]})
    assert dest.read_text() == '{\n  "zeta": 1,\n  "alpha": [\n    0.5,\n    "x"\n  ]\n}\n'
    assert [p.name for p in dest.parent.iterdir()] == ["m.json"]       # no temp file left beside it


def test_save_npy_refuses_objects_and_write_csv_writes_no_index_column(tmp_path):
    """Arrays the stages pass on are plain numbers: an object array would need pickle to load (and
    load_npy refuses pickles), so saving one fails at once and leaves nothing behind; a CSV holds
    the frame's columns only, not pandas' row numbers."""
    import pandas as pd

    from imgclf.core.atomic import save_npy, write_csv

    with pytest.raises(ValueError, match="allow_pickle"):
        save_npy(tmp_path / "obj.npy", np.array([{"code": 1}], dtype=object))
    assert list(tmp_path.iterdir()) == []
    write_csv(tmp_path / "m.csv", pd.DataFrame({"id": ["a", "b"], "label": [3, 1]}, index=[7, 9]))
    assert (tmp_path / "m.csv").read_text() == "id,label\na,3\nb,1\n"
