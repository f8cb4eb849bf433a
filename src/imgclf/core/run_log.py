"""Run figures that belong to the machine, not to the change: wall times, peak memory, feature
cache hits and misses. They are appended to a git-ignored log instead of the tracked metrics, so
`dvc metrics diff` and `dvc.lock` show only what a change did to quality and data, and a re-run
of the same commit leaves `git status` clean.

    imgclf runs [--last 12] [--stage bottleneck]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from imgclf.core.paths import project_root
from imgclf.core.cpu import cpu_kind

LOG = Path(".runs") / "log.jsonl"
# Set by a caller that runs the pipeline for a purpose (imgclf.experiments.tune: the trial's experiment name),
# so its stage runs can be picked out of a log that concurrent runs append to.
TAG = "IMGCLF_RUN_TAG"


def log_path(cwd: Path | None = None) -> Path:
    """Under the real project, also from a `dvc exp run --temp/--queue` copy in .dvc/tmp/exps."""
    return project_root(cwd) / LOG


def record(stage: str, figures: dict) -> None:
    """Append one line (a single write of a short line: concurrent queue workers do not interleave)."""
    entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "stage": stage, "cwd": os.getcwd(),
             "cpu": cpu_kind(), **({"tag": os.environ[TAG]} if os.environ.get(TAG) else {}),
             **figures}
    path = log_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(entry) + "\n")


def read(path: Path | None = None) -> list[dict]:
    path = path or log_path()
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imgclf runs", description="Print the last stage runs: wall time, peak RSS, cache hits.")
    parser.add_argument("--last", type=int, default=12)
    parser.add_argument("--stage")
    args = parser.parse_args(argv)
    runs = [r for r in read() if args.stage in (None, r["stage"])][-args.last:]
    if not runs:
        print(f"no runs logged yet in {log_path()}")
        return 0
    for r in runs:
        extra = ", ".join(f"{k} {v}" for k, v in r.items() if k not in ("time", "stage", "cwd", "cpu", "tag"))
        tag = f"  ({r['tag']})" if r.get("tag") else ""
        print(f"{r['time']}  {r['stage']:<10} {extra}  [{r['cpu']}]{tag}")
    return 0


if __name__ == "__main__":
    main()
