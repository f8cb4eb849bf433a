"""tqdm with a pace that suits both a terminal and a CI log (where every redraw is a new line)."""

import sys

from tqdm import tqdm


def progress(**kwargs) -> tqdm:
    if not sys.stderr.isatty():
        kwargs.setdefault("mininterval", 10.0)
    return tqdm(**kwargs)
