"""What the end-to-end files of this folder do to their repo: a user's commands, and the checks
more than one file makes."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import BIN, run

STAGES = ("download", "split", "augment", "bottleneck", "labels", "train", "evaluate")
FIRST_REPRO = "first-repro.out"        # beside each copy of the repo: what its first `dvc repro` printed


def run_step(args, cwd, check: bool = True):
    """A user's command in the repo; a pipeline run may take minutes."""
    return run(args, cwd, check=check, timeout=600)


def first_repro_output(repo: Path) -> str:
    return (repo.parent / FIRST_REPRO).read_text()


def json_of(path) -> dict:
    return json.loads(Path(path).read_text())


def back_to_the_committed_run(repo: Path) -> None:
    """The committed params and outputs, whatever the experiments before left in the workspace."""
    run_step(["git", "reset", "-q", "--hard"], repo)
    run_step([BIN / "dvc", "checkout", "-f"], repo)


def assert_two_different_voters(repo: Path) -> None:
    """models/model.keras averages two members that were trained apart (different weights)."""
    import keras
    import numpy as np

    model = keras.models.load_model(repo / "models" / "model.keras", safe_mode=True, compile=False)
    vote = model.get_layer("soft_vote")
    members = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    assert len(members) == 2 and len(vote.input) == 2
    w0, w1 = (np.concatenate([w.ravel() for w in m.get_weights()]) for m in members)
    assert w0.shape == w1.shape and not np.array_equal(w0, w1)
