"""Import TensorFlow and Keras without their start-up chatter.

Why a file-descriptor redirect: TensorFlow's C++ core logs "oneDNN custom operations are on" and
absl's "All log messages before absl::InitializeLog()" straight to fd 2 while it loads, before
TF_CPP_MIN_LOG_LEVEL is consulted, so neither that variable nor Python's logging can hide them.
Only the import is silenced; every later warning and error still reaches the user.
"""

from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def native_stderr_silenced():
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_keras():
    """keras, with TensorFlow loaded quietly (a no-op after the first call)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" not in sys.modules:
        with native_stderr_silenced():
            import keras  # noqa: F401
            import tensorflow  # noqa: F401
    import keras

    return keras
