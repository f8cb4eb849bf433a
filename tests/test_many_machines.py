"""Many machines, one study: tuners in separate clones (standing for machines) on one real
PostgreSQL study, pushing every trial to one git remote and one DVC remote over SSH; one machine
dies mid-trial; a reviewer's clone applies the best trial without computing anything.

The pipeline is test_tune.py's one-stage stand-in, so what is tested is the tuners' and DVC's
behaviour, not training."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import yaml

from tests.conftest import BIN, run
from tests.test_tune import finish, gone, stand_in_project, tune

GRACE = 8          # seconds without a heartbeat before a trial is taken as dead (the default is 90)


def _clone(origin: Path, into: Path, remote_url: str, keyfile: Path) -> Path:
    run(["git", "clone", "-q", str(origin), str(into)], into.parent)
    run([BIN / "dvc", "remote", "add", "--local", "-d", "team", remote_url], into)
    run([BIN / "dvc", "remote", "modify", "--local", "team", "keyfile", str(keyfile)], into)
    return into


def _wait_for(path: Path, proc, within: float = 120) -> None:
    deadline = time.time() + within
    while not path.exists():
        assert time.time() < deadline and proc.poll() is None, proc.communicate()[0]
        time.sleep(0.2)


def _finished_by(out: str) -> set[int]:
    return {int(m) for m in re.findall(r"^trial (\d+): val\.accuracy", out, re.M)}


def test_two_machines_finish_one_study_and_a_third_applies_the_best(postgres_url, tmp_path):
    import optuna

    from tests.sftp_server import serve

    project = stand_in_project(tmp_path)
    origin = tmp_path / "origin.git"                          # the team's git server
    run(["git", "init", "-q", "--bare", str(origin)], tmp_path)
    run(["git", "push", "-q", str(origin), "HEAD:refs/heads/main"], project)
    run(["git", "symbolic-ref", "HEAD", "refs/heads/main"], origin)
    storage, study, n = f"{postgres_url}/studies", "machines", 3
    with serve(tmp_path) as ssh:
        url = ssh.url("dvc-store")
        a, b, reviewer = (_clone(origin, tmp_path / name, url, ssh.keyfile) for name in ("a", "b", "reviewer"))
        args = ("--trials", str(n), "--storage", storage, "--study", study, "--push", "origin", "--grace", str(GRACE))
        # Machine b's trials hang (a 10-minute sleep); machine a's take 3 s more than usual, so b
        # surely starts one before a could finish the study alone.
        (tmp_path / "a-sleep").write_text("3")
        (tmp_path / "b-sleep").write_text("600")
        proc_a = tune(a, *args, env={"SLEEP_FILE": str(tmp_path / "a-sleep"), "STARTED_FILE": str(tmp_path / "a-started")})
        proc_b = tune(b, *args, env={"SLEEP_FILE": str(tmp_path / "b-sleep"), "STARTED_FILE": str(tmp_path / "b-started")})
        _wait_for(tmp_path / "b-started", proc_b)
        stage_pid = int((tmp_path / "b-started").read_text())
        killed_at = time.time()
        proc_b.kill()                                               # kill -9 machine b's tuner
        out_b = finish(proc_b)
        assert gone(stage_pid, within=30), "machine b's trial kept running without its tuner"
        out_a = finish(proc_a, timeout=600)
        assert proc_a.returncode == 0, out_a

        trials = optuna.load_study(study_name=study, storage=storage).get_trials()
        by_state = {s: [t for t in trials if t.state.name == s] for s in ("COMPLETE", "FAIL", "RUNNING", "WAITING")}
        complete, failed = by_state["COMPLETE"], by_state["FAIL"]
        assert len(complete) == n and not by_state["RUNNING"] and not by_state["WAITING"], trials
        # b's trial: failed by the heartbeat, its parameters re-run by a, started after b was gone.
        assert len(failed) == 1 and failed[0].number not in _finished_by(out_b)
        killed = failed[0]
        rerun = [t for t in complete if t.system_attrs.get("failed_trial") == killed.number]
        assert len(rerun) == 1 and rerun[0].params == killed.params
        assert f"trial {rerun[0].number} (re-run of {killed.number})" in out_a
        assert rerun[0].datetime_start.timestamp() > killed_at
        assert _finished_by(out_a) == {t.number for t in complete}
        assert "pw-for-tests" not in out_a + out_b
        print(f"\nmachine a finished trials {sorted(_finished_by(out_a))}, machine b {sorted(_finished_by(out_b))}; "
              f"b's trial {killed.number} killed {rerun[0].datetime_start.timestamp() - killed_at:.1f} s before "
              f"its re-run {rerun[0].number} started on a (grace {GRACE} s); machine a's log:\n{out_a}")

        # Every finished trial is on the team's remotes, and nothing of the killed one.
        refs = run(["git", "ls-remote", str(origin), "refs/exps/*"], tmp_path).stdout.split()
        assert {r.rsplit("/", 1)[-1] for r in refs[1::2]} == {f"{study}-{t.number}" for t in complete}
        assert any((ssh.root / "dvc-store" / "files").rglob("*")), "no trial output reached the DVC remote"

        # The reviewer's clone: the best trial by name from the study, its commit from git, its
        # outputs from the DVC remote; nothing left to compute.
        best = run([BIN / "imgclf", "tune", "--space", "space.yaml", "--storage", storage, "--study", study,
                    "--report", "--out", "report"], reviewer).stdout
        name = re.search(r"restore it with: dvc exp apply (\S+)", best).group(1)
        assert name == f"{study}-{max(complete, key=lambda t: t.value).number}"
        run([BIN / "dvc", "exp", "pull", "origin", name], reviewer)
        run([BIN / "dvc", "exp", "apply", name], reviewer)
        out = run([BIN / "dvc", "repro"], reviewer).stdout
        assert "Running stage" not in out, out
        assert "Data and pipelines are up to date" in run([BIN / "dvc", "status"], reviewer).stdout
        shown = run([BIN / "dvc", "params", "diff", "--md"], reviewer).stdout
        assert "train.head.dropout" in shown
        head = yaml.safe_load((reviewer / "params.yaml").read_text())["train"]["head"]
        assert json.loads((reviewer / "model.txt").read_text()) == head       # the trial's output, not main's
