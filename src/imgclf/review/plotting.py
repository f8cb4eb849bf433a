"""Matplotlib figures as PNG bytes, rendered offline (no display, no browser): for CI machines
and DVC stages alike. The PNG carries no software/version stamp, so the same figure gives the
same bytes on every re-run."""

from __future__ import annotations

import io


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png_bytes(fig) -> bytes:
    """The figure as PNG bytes; the figure is closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    pyplot().close(fig)
    return buf.getvalue()
