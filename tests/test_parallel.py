"""ordered_map: results in task order whatever the worker count, and no worker outlives a killed parent."""

import os
import signal
import subprocess
import sys
import textwrap
import time

from imgclf.core.parallel import ordered_map


def _square_after(x: int, delay: float) -> tuple[int, int]:
    time.sleep(delay)
    return x, x * x


def test_results_come_in_task_order_on_two_workers():
    # later tasks finish first (shorter sleeps): the order must still be the tasks'
    tasks = [(i, 0.02 * (8 - i)) for i in range(8)]
    assert list(ordered_map(_square_after, tasks, workers=2)) == [(i, i * i) for i in range(8)]
    assert list(ordered_map(_square_after, tasks, workers=1)) == [(i, i * i) for i in range(8)]


PARENT = textwrap.dedent("""
    import os, sys, time
    from imgclf.core.parallel import ordered_map

    def report_and_wait(i, path):
        with open(path, "a") as f:
            f.write(f"{os.getpid()}\\n")
        time.sleep(120)
        return i

    if __name__ == "__main__":
        for _ in ordered_map(report_and_wait, [(i, sys.argv[1]) for i in range(4)], workers=2):
            pass
""")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_workers_exit_when_the_parent_is_killed(tmp_path):
    """kill -9 of a stage must not leave its workers behind: an orphan holds the stage's stdout and
    stderr open, and `dvc repro`'s caller then waits for ever (CI hung on it)."""
    script, pids_file = tmp_path / "parent.py", tmp_path / "pids"
    script.write_text(PARENT)
    parent = subprocess.Popen([sys.executable, str(script), str(pids_file)], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not pids_file.exists() or len(pids_file.read_text().split()) < 2):
        time.sleep(0.1)
    workers = [int(p) for p in pids_file.read_text().split()]
    assert len(workers) == 2 and all(_alive(p) for p in workers)
    os.kill(parent.pid, signal.SIGKILL)
    # the pipes reach EOF only when every process holding them (the workers too) has exited
    out, err = parent.communicate(timeout=20)
    assert parent.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.1)
    assert not any(_alive(p) for p in workers), f"orphaned workers still running: {workers}"
