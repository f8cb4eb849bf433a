"""Work spread over processes with results in order and a bounded queue.

Why processes: imgaug and hashing are Python/NumPy code that holds the GIL. Why in order and
bounded: the output must not depend on how many workers ran (results are written in task order),
and only a few tasks' inputs and outputs may be alive at once, so memory does not grow with the data.
"""

from __future__ import annotations

import collections
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterable, Iterator

WORKERS_ENV = "IMGCLF_WORKERS"


def default_workers() -> int:
    """All cores this process may use; IMGCLF_WORKERS overrides (1 = no extra processes). Not a
    DVC param: the outputs do not depend on it, so changing it must not re-run a stage."""
    value = os.environ.get(WORKERS_ENV)
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"{WORKERS_ENV}={value!r}: expected a whole number of processes >= 1")
        return int(value)
    return len(os.sched_getaffinity(0))


def _exit_with_parent(parent_pid: int, poll_s: float = 0.2) -> None:
    """Worker initializer: end this worker soon after the parent dies.

    Why: a killed stage (kill -9, the OOM killer, a hard Ctrl-C of `dvc repro`) cannot shut its pool
    down, and a spawned worker waiting for its next task would live on as an orphan, using memory
    and holding the stage's stdout/stderr open, so that whatever reads them (DVC's caller, a CI
    log) waits for ever. The parent's pid is passed in, not read here, so a parent that died before
    this ran is noticed too."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def ordered_map(fn: Callable, tasks: Iterable[tuple], workers: int, in_flight: int | None = None) -> Iterator:
    """fn(*task) for every task, yielded in task order; at most `in_flight` tasks submitted ahead."""
    if workers <= 1:
        for task in tasks:
            yield fn(*task)
        return
    in_flight = in_flight or 2 * workers
    # spawn, not fork: a forked child inherits the parent's threads' locks (TensorFlow, BLAS) half-held.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_exit_with_parent, initargs=(os.getpid(),)) as pool:
        pending: collections.deque = collections.deque()
        for task in tasks:
            pending.append(pool.submit(fn, *task))
            if len(pending) >= in_flight:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
