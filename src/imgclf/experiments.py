"""Naming a DVC experiment the way a user does (`dvc exp show` names), for the bench scripts that
read an experiment's cached outputs after the fact."""

from __future__ import annotations

import subprocess


def experiment_refs() -> str:
    """`git for-each-ref` lines "<commit> refs/exps/.../<name>" of this clone's experiments."""
    return subprocess.run(["git", "for-each-ref", "--format=%(objectname) %(refname)", "refs/exps"],
                          capture_output=True, text=True, check=True).stdout


def resolve(name: str, refs: str | None = None) -> str:
    """Commit of an experiment name or, failing that, of a git revision (HEAD, a sha, a branch).
    A name reused on two base commits is refused rather than guessed."""
    refs = experiment_refs() if refs is None else refs
    hits = set()
    for line in refs.splitlines():
        commit, _, ref = line.partition(" ")
        if ref.startswith("refs/exps/") and ref.endswith("/" + name):
            hits.add(commit)
    if len(hits) > 1:
        raise SystemExit(f"experiment name {name!r} is ambiguous: commits {sorted(hits)}; pass one of them")
    if hits:
        return hits.pop()
    done = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}"],
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{name!r} is neither an experiment (dvc exp show) nor a git revision")
    return done.stdout.strip()
