"""Naming a DVC experiment the way a user does (`dvc exp show` names) or any git revision, and
reading a file as it was committed there: for the tools that compare revisions after the fact."""

from __future__ import annotations

import subprocess

from imgclf.core.errors import UserError


class RevisionError(UserError, ValueError):
    """A name that is no experiment or revision, or a commit without the file asked for."""


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
        raise RevisionError(f"experiment name {name!r} is ambiguous: commits {sorted(hits)}; pass one of them")
    if hits:
        return hits.pop()
    done = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}"],
                          capture_output=True, text=True)
    if done.returncode:
        raise RevisionError(f"{name!r} is neither an experiment (dvc exp show) nor a git revision")
    return done.stdout.strip()


def split_hash(lock: dict, where: str) -> str:
    """The md5 of data/split recorded in a dvc.lock: the test images every model is scored on."""
    for out in (lock.get("stages", {}).get("split", {}) or {}).get("outs", []):
        if out.get("path") == "data/split":
            return out["md5"]
    raise RevisionError(f"{where}: no split stage with an output data/split; run the pipeline there first")


def read_at(rev: str, path: str) -> bytes | None:
    """The committed bytes of a git-tracked file at rev (None when it did not exist there):
    metrics and plot data of another commit or experiment, which DVC never caches."""
    shown = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True)
    return shown.stdout if shown.returncode == 0 else None
