"""What a benchmark or analysis ran with, stored beside its figures.

A number in docs/ is only worth re-checking if a reader can tell which code, which settings and
which kind of CPU produced it (bfloat16 and the feature bits depend on the CPU: imgclf.core.cpu). Every
script under bench/ and research/ prints this record first and writes it into its JSON output.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from imgclf.core.cpu import cpu_kind


def git_commit(cwd: Path | None = None) -> str:
    """HEAD's hash, with "+dirty" when tracked files differ from it (the figures then belong to no commit)."""
    def git(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *argv], cwd=cwd, capture_output=True, text=True)

    head = git("rev-parse", "HEAD")
    if head.returncode:
        return "unknown (not a git checkout)"
    dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    return head.stdout.strip() + ("+dirty" if dirty else "")


def ran_with(args: argparse.Namespace | dict, params: dict | None = None) -> dict:
    """The record: script, commit, CPU kind, command-line arguments and the params sections used.

    `params` holds only the sections the script reads (e.g. {"split": p.split.model_dump()}), so a
    change elsewhere in params.yaml does not look like a change of the benchmark's settings.
    """
    return {"script": Path(sys.argv[0]).as_posix(), "commit": git_commit(), "cpu": cpu_kind(),
            "args": dict(vars(args) if isinstance(args, argparse.Namespace) else args),
            "params": params or {}}


def announce(record: dict) -> dict:
    """Print the record on one line (so a pasted log carries it too) and return it."""
    args = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in record["args"].items())
    sections = ", ".join(record["params"]) or "none"
    commit = record["commit"]
    short = commit[:12] + ("+dirty" if commit.endswith("+dirty") else "")
    print(f"{record['script']} at {short} on {record['cpu']}; args: {args or 'none'}; "
          f"params.yaml sections: {sections}", flush=True)
    return record
