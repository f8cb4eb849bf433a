"""Run a trial's command and stop it, with everything it started, when its tuner is gone.

    python -m imgclf.experiments.tied_run FD COMMAND...

Why: once a tuner dies (kill -9, the machine's power), its trial stops sending heartbeats and a
tuner elsewhere re-runs the trial's parameters. An orphaned `dvc exp run` still working on them
would be the same trial twice at once, on a machine whose tuner will never read its result.

How: the tuner keeps the write end of a pipe whose read end is FD here. The kernel closes it
whichever way the tuner dies, and this process then reads end-of-file. It is the leader of the
process group the command and its stages run in (the tuner starts it in a new session), so one
signal to the group reaches them all: SIGTERM first, SIGKILL after STOP_WAIT seconds.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys

STOP_WAIT = 15


def _ignored(signum, frame) -> None:
    """A handler rather than SIG_IGN: the command must get the default back on exec, and an ignored
    signal would stay ignored in it."""


def run(fd: int, cmd: list[str]) -> int:
    # Ctrl-C and the group-wide SIGTERM are for the command; this process waits for it to end.
    signal.signal(signal.SIGINT, _ignored)
    signal.signal(signal.SIGTERM, _ignored)
    child = subprocess.Popen(cmd)
    tuner_alive = True
    while child.poll() is None:
        if tuner_alive and select.select([fd], [], [], 0.5)[0] and not os.read(fd, 1):
            tuner_alive = False
            print(f"tied_run: the tuner is gone; stopping {cmd[0]} (process group {os.getpgrp()})", flush=True)
            os.killpg(os.getpgrp(), signal.SIGTERM)
            try:
                child.wait(STOP_WAIT)
            except subprocess.TimeoutExpired:
                os.killpg(os.getpgrp(), signal.SIGKILL)         # this process included
    return child.returncode


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return run(int(argv[0]), argv[1:])


if __name__ == "__main__":
    sys.exit(main())
