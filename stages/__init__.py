"""Thin DVC stage entry points: `python -m stages.<name>` (run as modules so that a stage named
like a library, e.g. bottleneck, never shadows it on sys.path)."""
