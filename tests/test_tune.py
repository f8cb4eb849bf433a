"""The Optuna tuner: a checked search space, trials as DVC experiments, resume after Ctrl-C and
kill -9, and two tuners on one SQLite study.

The pipeline here is a one-stage stand-in (a formula of the head's params, no TensorFlow) so the
tuner's own behaviour is tested in seconds; the real pipeline's grid runs in test_tune_grid.py.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from imgclf.config.search_space import SearchSpaceError, load_space
from tests.conftest import BIN, REPO, pipeline_env, run

SPACE = {
    "description": "stand-in",
    "objective": {"metrics": "metrics/evaluate.json", "key": "val.accuracy", "direction": "maximize"},
    "holdout": {"metrics": "metrics/evaluate.json", "key": "test.accuracy"},
    "fixed": {"train": {"model": "head"}},
    "params": {"train.head.dropout": {"low": 0.1, "high": 0.6},
               "train.head.learning_rate": {"low": 0.0001, "high": 0.01, "log": True},
               "train.head.hidden_units": {"choices": [[64], [128, 32]]}},
}

# val accuracy peaks at dropout 0.3, learning rate 1e-3; SLEEP_FILE makes a trial slow enough to
# be interrupted; a dropout above FAIL_ABOVE makes the stage fail.
STAGE = textwrap.dedent("""
    import json, math, os, time
    from pathlib import Path
    import yaml
    from imgclf.core.run_log import record
    h = yaml.safe_load(open("params.yaml"))["train"]["head"]
    delay = Path(os.environ.get("SLEEP_FILE", "/nonexistent"))
    if delay.exists():
        Path(os.environ["STARTED_FILE"]).write_text(str(os.getpid()))
        time.sleep(float(delay.read_text()))
    if h["dropout"] > float(os.environ.get("FAIL_ABOVE", "9")):
        raise SystemExit("dropout too high for this stand-in")
    val = 0.9 - (h["dropout"] - 0.3) ** 2 - 0.01 * (math.log10(h["learning_rate"]) + 3) ** 2
    Path("metrics").mkdir(exist_ok=True)
    json.dump({"val": {"accuracy": val}, "test": {"accuracy": val - 0.01}}, open("metrics/evaluate.json", "w"))
    Path("model.txt").write_text(json.dumps(h, sort_keys=True))      # a cached output, as a model is
    record("evaluate", {"seconds": 0.1, "hits": 5, "misses": 1})
""")


@pytest.fixture
def project(tmp_path) -> Path:
    return stand_in_project(tmp_path)


def stand_in_project(tmp_path: Path) -> Path:
    """A git + DVC repo whose one stage is the stand-in above, run once and committed."""
    repo = tmp_path / "proj"
    repo.mkdir()
    (repo / "params.yaml").write_text((REPO / "params.yaml").read_text())
    (repo / "stage.py").write_text(STAGE)
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"evaluate": {
        "cmd": f"{sys.executable} stage.py", "deps": ["stage.py"], "params": ["train.head"], "outs": ["model.txt"],
        "metrics": [{"metrics/evaluate.json": {"cache": False}}]}}}))
    (repo / "space.yaml").write_text(yaml.safe_dump(SPACE))
    (repo / ".gitignore").write_text(".tune/\n.runs/\n")
    run(["git", "init", "-q"], repo)
    run([BIN / "dvc", "init", "-q"], repo)
    run([BIN / "dvc", "config", "core.analytics", "false"], repo)
    run([BIN / "dvc", "repro", "-q"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"], repo)
    return repo


def _sigint_as_in_a_terminal() -> None:
    """A process started in the background by a shell without job control (`make test &`, some CI
    runners) inherits SIGINT ignored, and Python then never turns Ctrl-C into KeyboardInterrupt:
    give the tuner the terminal's default, which is what a user's Ctrl-C meets."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def tune(project: Path, *args, env: dict | None = None, **popen) -> subprocess.Popen:
    popen.setdefault("preexec_fn", _sigint_as_in_a_terminal)
    return subprocess.Popen([sys.executable, "-m", "imgclf.experiments.tune", "--space", "space.yaml", "--out", "report", *args],
                            cwd=project, env={**pipeline_env(), **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **popen)


def finish(proc: subprocess.Popen, timeout: float = 300) -> str:
    out, _ = proc.communicate(timeout=timeout)
    return out


def trials(project: Path, study: str = "space") -> list[dict]:
    """(number, state, params, failed_trial) straight from the study's SQLite file."""
    db = sqlite3.connect(project / ".tune" / f"{study}.sqlite3")
    rows = db.execute("SELECT trial_id, number, state FROM trials ORDER BY number").fetchall()
    out = []
    for trial_id, number, state in rows:
        params = dict(db.execute("SELECT param_name, param_value FROM trial_params WHERE trial_id=?", (trial_id,)))
        system = dict(db.execute("SELECT key, value_json FROM trial_system_attributes WHERE trial_id=?", (trial_id,)))
        out.append({"number": number, "state": state, "params": params,
                    "retry_of": json.loads(system["failed_trial"]) if "failed_trial" in system else None})
    return out


def gone(pid: int, within: float) -> bool:
    deadline = time.time() + within
    while Path(f"/proc/{pid}").exists() and time.time() < deadline:
        time.sleep(0.2)
    return not Path(f"/proc/{pid}").exists()


def experiments(project: Path) -> dict[str, dict]:
    shown = json.loads(run([BIN / "dvc", "exp", "show", "--json"], project).stdout)
    out = {}
    for baseline in shown:
        for exp in baseline.get("experiments") or []:
            rev = exp["revs"][0]
            out[rev["name"]] = rev["data"]["metrics"]["metrics/evaluate.json"]["data"]["val"]["accuracy"]
    return out


# --- the search space -------------------------------------------------------------------------


def _space_error(tmp_path, change) -> str:
    space = json.loads(json.dumps(SPACE))
    change(space)
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    with pytest.raises(SearchSpaceError) as err:
        load_space(path, REPO / "params.yaml")
    return str(err.value)


def test_the_committed_head_space_is_valid():
    space = load_space(REPO / "search" / "head.yaml", REPO / "params.yaml")
    assert space.objective.key == "val.accuracy" and space.holdout.key == "test.accuracy"
    assert {"train.head.hidden_units", "train.head.dropout", "train.head.input_dropout",
            "train.head.learning_rate", "train.head.batch_size"} == set(space.params)


@pytest.mark.parametrize("change, expected", [
    (lambda s: s["params"].update({"train.head.dropuot": {"low": 0.1, "high": 0.2}}),
     "train.head.dropuot"),
    (lambda s: s["params"]["train.head.dropout"].update({"low": 0.5, "high": 0.2}),
     "low must be below high, got low 0.5 and high 0.2"),
    (lambda s: s["params"]["train.head.learning_rate"].update({"low": 0.0}), "a log range needs low > 0"),
    (lambda s: s["params"]["train.head.dropout"].update({"high": 1.5}), "train.head.dropout = 1.5"),
    (lambda s: s["params"]["train.head.dropout"].update({"lwo": 0.1}), "lwo: unknown key"),
    (lambda s: s["params"].update({"train.head.batch_size": {"choices": [128]}}), "at least 2 items"),
    (lambda s: s.update({"fixed": {"train": {"head": {"dropout": 0.2}}}}), "both fixed and searched"),
    (lambda s: s.update({"objective": {"key": "val.accuracy", "direction": "up"}}), "objective.direction"),
])
def test_a_bad_space_is_refused_naming_the_key(tmp_path, change, expected):
    assert expected in _space_error(tmp_path, change)


def test_the_sampler_draws_the_same_sequence_for_one_seed_and_another_for_another():
    import optuna

    from imgclf.experiments.tune import trial_seeded_tpe

    def draws(seed):
        study = optuna.create_study(sampler=trial_seeded_tpe(seed), direction="maximize")
        out = []
        for _ in range(12):                       # past TPE's 10 random start-up trials
            t = study.ask()
            x = t.suggest_float("x", 0, 1)
            study.tell(t, -(x - 0.3) ** 2)
            out.append(x)
        return out

    assert draws(0) == draws(0)
    assert draws(0) != draws(1)


# --- trials as DVC experiments -----------------------------------------------------------------


@pytest.mark.slow
def test_each_trial_is_a_named_experiment_and_the_best_is_reported(project):
    out = finish(tune(project, "--trials", "2"))
    assert "tune: 2 of 2 trials finished (2 now)" in out, out
    exps = experiments(project)
    assert set(exps) == {"space-0", "space-1"}
    rows = trials(project)
    best = max(exps.values())
    best_name = next(n for n, v in exps.items() if v == best)
    assert f"restore it with: dvc exp apply {best_name}" in out
    assert f"test.accuracy {round(best - 0.01, 4)}" in out          # the holdout, for the best only
    assert "feature store 5 hits, 1 misses" in out                    # per-trial figures from the run log
    table = (project / "report" / "space.csv").read_text()
    assert table.count("\n") == 3 and "complete" in table
    assert (project / "report" / "space.png").read_bytes()[:4] == b"\x89PNG"
    report = (project / "report" / "space.md").read_text()
    assert "(storage: SQLite `.tune/space.sqlite3`)" in report and str(project) not in report
    # Started again with the target met, it runs nothing.
    again = finish(tune(project, "--trials", "2"))
    assert "2 of 2 trials finished (0 now)" in again
    assert len(trials(project)) == len(rows) == 2


@pytest.mark.slow
def test_trials_that_fail_are_reported_and_repeated_failure_stops_the_study(project):
    proc = tune(project, "--trials", "5", env={"FAIL_ABOVE": "0.0"})        # every trial fails
    out = finish(proc)
    assert proc.returncode == 1
    assert "dvc exp run exited" in out and "dropout too high for this stand-in" in out   # the log's tail
    assert "3 trials failed in a row; stopping" in out
    rows = trials(project)
    assert [t["state"] for t in rows] == ["FAIL"] * 3 and all(t["retry_of"] is None for t in rows)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["kill -9", "ctrl-c"])
def test_an_interrupted_tuner_resumes_without_losing_or_double_counting(project, tmp_path, how):
    finish(tune(project, "--trials", "1"))                              # trial 0 finished
    sleep, started = tmp_path / "sleep", tmp_path / "started"
    # Ctrl-C must stop the running trial, not wait for it: that trial would sleep 10 minutes, longer
    # than the 240 s the tuner is given to exit. kill -9 must stop it too, through the run's tie to
    # its tuner (imgclf.experiments.tied_run): left orphaned, it would sleep a minute.
    sleep.write_text("600" if how == "ctrl-c" else "60")
    env = {"SLEEP_FILE": str(sleep), "STARTED_FILE": str(started)}
    proc = tune(project, "--trials", "2", env=env, start_new_session=(how == "kill -9"))
    deadline = time.time() + 120
    while not started.exists():
        assert time.time() < deadline and proc.poll() is None, proc.communicate()[0]
        time.sleep(0.5)
    stage_pid = int(started.read_text())
    if how == "kill -9":
        proc.kill()                                   # the tuner only: its dvc run must stop by itself
    else:
        proc.send_signal(signal.SIGINT)               # what Ctrl-C sends
    out = finish(proc, timeout=240)
    assert gone(stage_pid, within=30), "the trial's run outlived its tuner"
    cut = [t for t in trials(project) if t["state"] not in ("COMPLETE", "WAITING")]
    assert len(cut) == 1 and cut[0]["number"] == 1
    if how == "ctrl-c":
        assert proc.returncode == 130 and "interrupted" in out
        assert cut[0]["state"] == "FAIL"              # Optuna marks it; the tuner queued a re-run:
        assert [t["retry_of"] for t in trials(project) if t["state"] == "WAITING"] == [1]
    else:
        assert cut[0]["state"] == "RUNNING"           # nobody could mark it
    sleep.unlink()
    out = finish(tune(project, "--trials", "2"))                      # the cut trial, run again
    assert "2 of 2 trials finished" in out, out
    if how == "kill -9":
        assert "trials [1] were cut off" in out
        assert not Path(f"/proc/{stage_pid}").exists()        # the orphaned run was stopped
    rows = trials(project)
    complete = [t for t in rows if t["state"] == "COMPLETE"]
    assert len(complete) == 2 and [t["number"] for t in rows if t["state"] == "FAIL"] == [1]
    rerun = [t for t in rows if t["retry_of"] == 1]
    assert len(rerun) == 1 and rerun[0]["state"] == "COMPLETE" and rerun[0]["params"] == cut[0]["params"]
    # dvc exp show lists the finished trials only: no killed run stuck as "running" (treeverse/dvc#8450)
    assert set(experiments(project)) == {f"space-{t['number']}" for t in complete}


@pytest.mark.slow
def test_two_tuners_share_one_sqlite_study(project):
    a, b = tune(project, "--trials", "4"), tune(project, "--trials", "4")
    out_a, out_b = finish(a, timeout=600), finish(b, timeout=600)
    assert a.returncode == 0 and b.returncode == 0, out_a + out_b
    rows = trials(project)
    complete = [t for t in rows if t["state"] == "COMPLETE"]
    assert len(complete) == 4               # between them, not each: no trial past the target
    assert len({t["number"] for t in rows}) == len(rows)
    ran_a = {int(line.split()[1].rstrip(":")) for line in out_a.splitlines() if line.startswith("trial ") and "val.accuracy" in line}
    ran_b = {int(line.split()[1].rstrip(":")) for line in out_b.splitlines() if line.startswith("trial ") and "val.accuracy" in line}
    assert ran_a and ran_b and not ran_a & ran_b          # both worked, no trial twice
    assert len({json.dumps(t["params"], sort_keys=True) for t in complete}) == len(complete)
    assert set(experiments(project)) == {f"space-{t['number']}" for t in complete}


def _open_after(barrier, urls: list[str], queue) -> None:
    from imgclf.experiments.tune import open_study
    for url in urls:
        barrier.wait()
        try:
            queue.put(open_study("space", url, "maximize", seed=0).study_name)
        except Exception as err:            # the parent asserts on what each process met
            queue.put(f"{type(err).__name__}: {err}")


def test_tuners_started_at_once_on_a_new_sqlite_file_all_open_the_study(tmp_path):
    """Two tuners started together both created Optuna's schema and one died on `UNIQUE constraint
    failed: alembic_version` (seen in CI); started together, every one must open the study."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    n, rounds = 4, 4                    # the race is timing-dependent: several fresh files
    barrier, queue = ctx.Barrier(n), ctx.Queue()
    urls = [f"sqlite:///{tmp_path / f'round{r}' / '.tune' / 'space.sqlite3'}" for r in range(rounds)]
    procs = [ctx.Process(target=_open_after, args=(barrier, urls, queue)) for _ in range(n)]
    for p in procs:
        p.start()
    got = [queue.get(timeout=120) for _ in range(n * rounds)]
    for p in procs:
        p.join(timeout=60)
    assert got == ["space"] * (n * rounds)


def test_a_database_nobody_answers_at_is_one_line_with_the_password_masked(tmp_path):
    """A real PostgreSQL driver connecting to a closed loopback port: one line naming the URL without
    its password and what to check, exit code 2, no traceback."""
    import socket

    with socket.socket() as s:                      # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://tuner:s3cret@127.0.0.1:{port}/studies"
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    res = subprocess.run([str(BIN / "imgclf"), "tune", "--space", str(REPO / "search" / "head.yaml"), "--trials", "1",
                          "--storage", url], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().splitlines() == [
        f"error: --storage postgresql://tuner:***@127.0.0.1:{port}/studies: cannot open: nothing answers at that "
        "host and port; is PostgreSQL running there and listening on TCP (listen_addresses, the firewall)?"]
    assert "s3cret" not in res.stdout + res.stderr


@pytest.mark.parametrize("driver_says, advice", [
    ('connection failed: FATAL:  password authentication failed for user "tuner"', "refused this user and password"),
    ('connection failed: FATAL:  database "studies" does not exist', "no such database"),
    ("Failed to import DB access module for the specified storage URL.", "pip install -r requirements.txt"),
    ("something new", "cannot open: something new"),
])
def test_what_the_driver_says_becomes_what_to_do(driver_says, advice):
    from imgclf.experiments.tune import storage_problem

    assert advice in storage_problem(RuntimeError(driver_says + "\n(background on this error)"))
    assert "\n" not in storage_problem(RuntimeError(driver_says + "\n(background on this error)"))


# --- a real PostgreSQL (tests/postgres_server.py; .ci/run installs the server) ----------------


def _tune_error(tmp_path, url: str) -> list[str]:
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    res = subprocess.run([str(BIN / "imgclf"), "tune", "--space", str(REPO / "search" / "head.yaml"), "--trials", "1",
                          "--storage", url], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    return res.stderr.strip().splitlines()


def test_a_wrong_password_or_a_missing_database_is_one_line_naming_it(postgres_url, tmp_path):
    from tests.postgres_server import PASSWORD

    wrong = postgres_url.replace(PASSWORD, "not-the-password") + "/studies"
    shown = postgres_url.replace(PASSWORD, "***")
    assert _tune_error(tmp_path, wrong) == [
        f"error: --storage {shown}/studies: cannot open: the server refused this user and password; check both "
        "(a password with @ : / needs URL-encoding, e.g. %40)"]
    assert _tune_error(tmp_path, postgres_url + "/no_such_db") == [
        f"error: --storage {shown}/no_such_db: cannot open: the server runs but has no such database (or role); "
        "create it first, e.g. `createdb -h HOST -U USER DB`"]


def test_two_tuners_share_one_postgresql_study(project, postgres_url):
    """The study of several machines: two tuners on one PostgreSQL database finish the study between
    them, each trial run by one of them only, every trial a DVC experiment."""
    import optuna

    url = f"{postgres_url}/studies"
    a, b = (tune(project, "--trials", "4", "--storage", url, "--study", "pg") for _ in range(2))
    out_a, out_b = finish(a, timeout=600), finish(b, timeout=600)
    assert a.returncode == 0 and b.returncode == 0, out_a + out_b
    assert "pw-for-tests" not in out_a + out_b                       # the password never printed
    study = optuna.load_study(study_name="pg", storage=url)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 4               # between them, not each: no trial past the target
    ran = [{int(line.split()[1].rstrip(":")) for line in out.splitlines()
            if line.startswith("trial ") and "val.accuracy" in line} for out in (out_a, out_b)]
    assert ran[0] and ran[1] and not ran[0] & ran[1]                 # both worked, no trial twice
    assert ran[0] | ran[1] == {t.number for t in complete}
    assert set(experiments(project)) == {f"pg-{t.number}" for t in complete}


def test_push_to_a_remote_that_is_not_there_is_refused_before_any_trial(project):
    def refused(*args) -> list[str]:
        res = subprocess.run([str(BIN / "imgclf"), "tune", "--space", "space.yaml", "--trials", "1", *args],
                             cwd=project, capture_output=True, text=True, timeout=120, env=pipeline_env())
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
        return res.stderr.strip().splitlines()

    assert refused("--push", "team") == [
        "error: --push team: no such git remote here; `git remote -v` lists them (add one with `git remote add team URL`)"]
    run(["git", "remote", "add", "team", str(project)], project)
    assert refused("--push", "team") == [
        "error: --push team: no default DVC remote for the trials' outputs; set one with `dvc remote add -d NAME URL`"]
    assert refused("--grace", "2") == ["error: --grace 2: must be at least 4 seconds (the heartbeat is a quarter of it)"]
    assert not (project / ".tune").exists() or not list((project / ".tune").rglob("*.log"))     # no trial ran


def test_the_report_of_a_study_without_trials_says_so(project):
    """A colleague asking for the report before any tuner finished a trial (or with a new --study)."""
    res = subprocess.run([str(BIN / "imgclf"), "tune", "--space", "space.yaml", "--trials", "3", "--report", "--out",
                          "report"], cwd=project, capture_output=True, text=True, timeout=120, env=pipeline_env())
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    assert "0 of 3 trials finished" in res.stdout
    assert "(no trials yet)" in (project / "report" / "space.md").read_text()


def test_the_password_can_stay_out_of_the_url(postgres_url, tmp_path):
    """The README's recipe: `--storage postgresql://tuner@host/db` with the password in PGPASSWORD,
    so it shows in no process list or shell history."""
    from tests.postgres_server import PASSWORD

    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    url = postgres_url.replace(f":{PASSWORD}@", "@") + "/studies"
    res = subprocess.run([str(BIN / "imgclf"), "tune", "--space", str(REPO / "search" / "head.yaml"), "--trials", "1",
                          "--storage", url, "--study", "no-password-in-url", "--report", "--out", "report"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120, env={**pipeline_env(), "PGPASSWORD": PASSWORD})
    assert res.returncode == 0, res.stderr
    assert f"study 'no-password-in-url' in {url}: 0 of 1 trials finished" in res.stdout
