"""Thin DVC stage entry points: `python -m stages.<name>` (run as modules so that a stage named
like a library, e.g. bottleneck, never shadows it on sys.path).

A stage imports the library of the checkout it belongs to, not the one `pip install -e .` points
at: `dvc exp run --temp` and queued experiments run in a copy under .dvc/tmp/exps, and with the
editable install alone the copy's stages would run the workspace's src/imgclf as it is *now*,
edits made after the experiment started included.
"""

import sys
from pathlib import Path

_SRC = str(Path(__file__).resolve().parents[1] / "src")
if _SRC not in sys.path[:1]:
    sys.path.insert(0, _SRC)
