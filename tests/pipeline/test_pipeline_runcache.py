"""Params B, which change every stage's and make the head an ensemble of two: computed once as an
experiment, then restored from the run-cache (A, B, A again computes nothing) and by a fresh clone
from a team's SSH remote. On a copy of the session's shared first run (conftest.py)."""

import pytest

from tests.conftest import BIN, computes_nothing, up_to_date
from tests.pipeline.helpers import STAGES, assert_two_different_voters, back_to_the_committed_run
from tests.pipeline.helpers import json_of as _json
from tests.pipeline.helpers import run_step as _run

pytestmark = pytest.mark.slow      # runs the whole DVC pipeline

# Params "B": every stage's params differ from the committed ones, and the head is an ensemble of
# two. The ensemble test computes it once; the run-cache and fresh-clone tests restore it.
PARAMS_B = ["-S", "download.timeout_s=61", "-S", "split.seed=7", "-S", "augment.seed=7", "-S", "train.seed=7",
            "-S", "train.ensemble=2"]


def test_exp_run_head_ensemble_votes_two_seeds(repo):
    single = _json(repo / "metrics" / "train.json")["parameters"]
    back_to_the_committed_run(repo)                # params B from the committed params
    out = _run([str(BIN / "dvc"), "exp", "run", *PARAMS_B], repo).stdout
    for stage in STAGES:
        assert f"Running stage '{stage}'" in out     # computed here; later tests restore it
    train = _json(repo / "metrics" / "train.json")
    assert (train["model"], train["ensemble"], train["parameters"]) == ("head", 2, 2 * single)
    assert_two_different_voters(repo)
    ev = _json(repo / "metrics" / "evaluate.json")
    assert ev["export"]["agreement_with_pipeline_test"] == 1.0     # measured: the export re-predicts


def test_every_stage_is_restored_from_the_run_cache(repo):
    """Params A, then B, then A again: the third run computes nothing, and its outputs are the first's.
    (B was computed by the ensemble test; restored here, it shows the run-cache keys B apart from A.)"""
    def outputs():
        files = [p for d in ("data", "models", "metrics") for p in sorted((repo / d).rglob("*")) if p.is_file()]
        return {p.relative_to(repo).as_posix(): p.read_bytes() for p in files}

    back_to_the_committed_run(repo)                # the ensemble test left params B in the workspace
    _run([str(BIN / "dvc"), "repro"], repo)
    first = outputs()
    b = PARAMS_B
    params = (repo / "params.yaml").read_text()
    _run([str(BIN / "dvc"), "exp", "run", *b], repo)
    (repo / "params.yaml").write_text(params)
    out = _run([str(BIN / "dvc"), "repro"], repo).stdout
    for stage in ("split", "augment", "bottleneck", "labels", "train", "evaluate"):
        assert f"Stage '{stage}' is cached - skipping run, checking out outputs" in out, out
    assert computes_nothing(out), out
    assert outputs() == first


def test_a_fresh_clone_restores_every_stage_from_an_ssh_remote(repo, tmp_path):
    """The team loop: whoever ran the pipeline pushes (`dvc push --run-cache`, `dvc exp push`); a
    fresh clone pulls and computes nothing, for the committed run and for a shared experiment;
    the exported model is fetched by its registry name (`dvc artifacts get`). Over SFTP, the remote
    a team shares (a local-directory remote is the same DVC code without the network)."""
    from tests.sftp_server import serve

    dvc = str(BIN / "dvc")
    back_to_the_committed_run(repo)
    exp = "shared"
    out = _run([dvc, "exp", "run", "-n", exp, *PARAMS_B], repo).stdout
    assert computes_nothing(out), out                         # in the run-cache already: no compute
    _run(["git", "reset", "-q", "--hard"], repo)
    _run([dvc, "checkout", "-f"], repo)
    origin = tmp_path / "origin.git"                          # the team's git server
    _run(["git", "init", "-q", "--bare", str(origin)], tmp_path)
    # A model-registry version (GTO's tag convention, which `dvc artifacts get` resolves).
    _run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "tag", "-a", "fashion-classifier@v1.0.0",
          "-m", "first release"], repo)
    _run(["git", "push", "-q", "--tags", str(origin), "HEAD:refs/heads/main"], repo)
    _run(["git", "symbolic-ref", "HEAD", "refs/heads/main"], origin)

    def configure(cwd, url, keyfile=None):
        _run([dvc, "remote", "add", "--local", "-f", "-d", "team", url], cwd)
        if keyfile:
            _run([dvc, "remote", "modify", "--local", "team", "keyfile", str(keyfile)], cwd)

    def round_trip(url, keyfile=None):
        configure(repo, url, keyfile)
        assert "pushed" in _run([dvc, "push", "--run-cache"], repo).stdout
        _run([dvc, "exp", "push", str(origin), exp], repo)
        clone = tmp_path / "clone"
        _run(["git", "clone", "-q", str(origin), str(clone)], tmp_path)
        configure(clone, url, keyfile)
        pulled = _run([dvc, "pull", "--run-cache"], clone)
        out = _run([dvc, "repro"], clone).stdout
        assert computes_nothing(out), pulled.stdout + out
        assert up_to_date(_run([dvc, "status"], clone).stdout)
        assert _run(["git", "status", "--porcelain"], clone).stdout == ""
        # A colleague's experiment: its metrics from git, its outputs from the remote.
        _run([dvc, "exp", "pull", str(origin), exp], clone)
        _run([dvc, "exp", "apply", exp], clone)
        _run([dvc, "pull"], clone)
        out = _run([dvc, "repro"], clone).stdout
        assert computes_nothing(out), out
        assert "split.seed" in _run([dvc, "params", "diff", "--md"], clone).stdout
        # The model registry: the exported classifier, fetched by name through the same remote.
        config = tmp_path / "team.conf"
        config.write_text(f"[core]\n    remote = team\n['remote \"team\"']\n    url = {url}\n"
                          + (f"    keyfile = {keyfile}\n" if keyfile else ""))
        fetched = tmp_path / "fetched.keras"
        _run([dvc, "artifacts", "get", str(origin), "fashion-classifier", "--rev", "v1.0.0", "-o", str(fetched),
              "--config", str(config)], tmp_path)
        assert fetched.read_bytes() == (repo / "models" / "classifier.keras").read_bytes()

    with serve(tmp_path) as server:
        round_trip(server.url("dvc-store"), server.keyfile)
        assert any((server.root / "dvc-store" / "files").rglob("*")), "nothing reached the SSH server"
        assert any((server.root / "dvc-store" / "runs").rglob("*")), "no run-cache on the SSH server"
