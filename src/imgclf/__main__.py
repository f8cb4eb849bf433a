"""The `imgclf` command: one name for every tool of the project, each a module's own `main`.

    imgclf compare main my-exp        # is a change real? (also: python -m imgclf compare ...)
    imgclf --help                     # every command, one line each
"""

from __future__ import annotations

import importlib
import sys

# command -> (module, what it is for); the module's main(argv) does the work and returns the exit code.
COMMANDS = {
    "check": ("imgclf.experiments.preflight", "check params.yaml as every stage would, before any work"),
    "preset": ("imgclf.experiments.run_preset", "run a named recipe of presets/ as a DVC experiment"),
    "tune": ("imgclf.experiments.tune", "Optuna search over DVC experiments (search/*.yaml)"),
    "compare": ("imgclf.review.compare", "two revisions' test predictions, image by image: real or noise?"),
    "pr-report": ("imgclf.review.pr_report", "the pull-request report against a base revision"),
    "results-table": ("imgclf.review.results_table", "regenerate docs/results.md's table from dvc exp show"),
    "runs": ("imgclf.core.run_log", "wall times, peak RSS and cache hits of the last stage runs"),
    "cache": ("imgclf.features.cache", "show or prune the bottleneck feature store"),
    "predict": ("imgclf.models.predict", "classify image files with the exported model"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {what}" for name, (_, what) in COMMANDS.items()]
    return "usage: imgclf COMMAND [ARGS...]   (imgclf COMMAND --help for its options)\n\ncommands:\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: imgclf: no command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    return importlib.import_module(COMMANDS[name][0]).main(rest) or 0


if __name__ == "__main__":
    sys.exit(main())
