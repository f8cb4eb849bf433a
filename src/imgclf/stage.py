"""What every stage entry point shares: load validated params, and turn expected failures into
one clear message and exit code 2 instead of a traceback."""

from __future__ import annotations

import functools
import os
import sys
import time
from typing import Callable

from imgclf.params import ParamsError, load_params

EXPECTED_ERRORS: tuple[type[BaseException], ...] = (ParamsError, ValueError, RuntimeError, OSError)


def run(name: str, stage: Callable, params_path: str = "params.yaml") -> None:
    """Validate params.yaml before any work, run the stage, print errors as one message."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    start = time.perf_counter()
    try:
        params = load_params(params_path)
        stage(params)
    except EXPECTED_ERRORS as err:
        if os.environ.get("IMGCLF_TRACEBACK"):
            raise
        print(f"error: {name}: {err}", file=sys.stderr)
        sys.exit(2)
    print(f"{name}: done in {time.perf_counter() - start:.1f} s")
