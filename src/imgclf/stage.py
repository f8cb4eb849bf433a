"""What every stage entry point shares: load validated params, turn expected failures into one
clear message and exit code 2 instead of a traceback, and log the run's machine figures (wall
time, peak RSS, and whatever the stage returns) to the run log, not to the tracked metrics."""

from __future__ import annotations

import functools
import os
import resource
import sys
import time
from typing import Callable

from imgclf import runlog
from imgclf.params import ParamsError, load_params

EXPECTED_ERRORS: tuple[type[BaseException], ...] = (ParamsError, ValueError, RuntimeError, OSError)


def run(name: str, stage: Callable, params_path: str = "params.yaml") -> None:
    """Validate params.yaml before any work, run the stage, print errors as one message."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    start = time.perf_counter()
    try:
        params = load_params(params_path)
        figures = stage(params) or {}
    except EXPECTED_ERRORS as err:
        if os.environ.get("IMGCLF_TRACEBACK"):
            raise
        print(f"error: {name}: {err}", file=sys.stderr)
        sys.exit(2)
    seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    runlog.record(name, {"seconds": round(seconds, 1), "peak_rss_mib": round(peak_mib), **figures})
    print(f"{name}: done in {seconds:.1f} s, peak RSS {peak_mib:.0f} MiB")
