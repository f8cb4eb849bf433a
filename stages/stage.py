"""What every stage entry point shares: load validated params, turn expected failures into one
clear message and exit code 2 instead of a traceback, and log the run's machine figures (wall
time, peak RSS, and whatever the stage returns) to the run log, not to the tracked metrics."""

from __future__ import annotations

import os
import resource
import sys
import time
from typing import Callable

from imgclf.config.params import Checks, load_params
from imgclf.core import quiet_keras, run_log
from imgclf.core.errors import UserError


def run(name: str, stage: Callable, params_path: str = "params.yaml", keras: bool = False,
        checks: Checks | None = None) -> None:
    """Validate params.yaml before any work, run the stage, print a user's error as one message
    (any other exception is a bug: its traceback stays). keras=True loads TensorFlow quietly;
    checks: what the stage's own work needs checked beyond the schema (its augmenters, its backbone)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    start = time.perf_counter()
    try:
        params = load_params(params_path, checks)
        if keras:
            quiet_keras.import_keras()
        figures = stage(params) or {}
    except UserError as err:
        if os.environ.get("IMGCLF_TRACEBACK"):
            raise
        print(f"error: {name}: {err}", file=sys.stderr)
        sys.exit(2)
    seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    # Not RUSAGE_CHILDREN: a child forked from a large process (git, for one) reports its parent's size.
    # A stage with worker processes returns their peak itself (worker_peak_rss_mib).
    worker_mib = figures.get("worker_peak_rss_mib")
    run_log.record(name, {"seconds": round(seconds, 1), "peak_rss_mib": round(peak_mib), **figures})
    print(f"{name}: done in {seconds:.1f} s, peak RSS {peak_mib:.0f} MiB"
          + (f" (largest worker process {worker_mib} MiB)" if worker_mib else ""))
