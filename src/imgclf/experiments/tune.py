"""Hyper-parameter search with Optuna's TPE, every trial a named DVC experiment.

    imgclf tune --space search/head.yaml --trials 30
    imgclf tune --space search/head.yaml --trials 30 --storage postgresql://user@host/db --push origin
    imgclf tune --space search/head.yaml --report      # tables and plot only, no trial

Why DVC experiments: a trial is then an ordinary experiment (`dvc exp show` lists its params,
metrics and plots, `dvc exp apply <name>` restores its model), so "which trial made this model"
always has an answer; and unchanged stages come from DVC's run-cache and the feature store, so a
head trial pays for training and evaluation only.

Why a database: the study (Optuna's trials and their states) lives in SQLite under `.tune/` by
default, nothing to start; `--storage` takes any Optuna storage URL, so tuners on several
machines (or several here) work one study, and `--push` sends each finished trial to the team's
git and DVC remotes, where any clone can apply it. The target is a number of *finished* trials:
the tuners stop at exactly that many between them; started again after Ctrl-C or `kill -9`, a
tuner counts what is finished, fails the trial that was cut off and re-runs its parameters. The
objective is the space's objective metric (validation accuracy); the holdout (test) metric is
read for the best trial only.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from imgclf.config.search_space import SearchSpace, decode, load_space
from imgclf.core import run_log
from imgclf.core.atomic import write_bytes, write_text
from imgclf.core.errors import UserError
from imgclf.core.paths import project_root
from imgclf.core.revisions import read_at, resolve
from imgclf.core.run_log import read
from imgclf.experiments.preflight import EVERY_CHECK
from imgclf.experiments.run_preset import set_args

TUNE_DIR = Path(".tune")
REPORT_DIR = Path("docs/tuning")
# A trial's process writes a heartbeat to the study every HEARTBEAT seconds (at most; a quarter of
# the grace when that is shorter); a RUNNING trial whose heartbeat is older than the grace (--grace,
# GRACE by default) is taken as dead (its machine or process is gone) and re-run.
HEARTBEAT, GRACE = 20, 90
PUSH_ATTEMPTS = 3
MAX_RETRIES = 2
MAX_FAILURES_IN_A_ROW = 3


class TuneError(UserError, RuntimeError):
    pass


class TrialFailed(Exception):
    """The pipeline failed for these params; the study goes on with other params."""


def _optuna():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)      # the tuner prints its own lines
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def trial_seeded_tpe(seed: int):
    """TPE whose random draws for trial n depend on (seed, n) only.

    Several tuners on one study with one seed would otherwise draw the same start-up trials; and a
    single tuner started twice on a fresh study proposes the same sequence (deterministic).
    """
    optuna = _optuna()

    class TrialSeededTPE(optuna.samplers.BaseSampler):
        """A TPE sampler made anew for each trial with that trial's seed: TPE keeps nothing
        between trials but its random state (the history is read from the study), and Optuna
        offers no public way to reseed a sampler with a given seed (`reseed_rng` draws one)."""

        def __init__(self):
            self.tpe = optuna.samplers.TPESampler(seed=seed, constant_liar=True)

        def before_trial(self, study, trial):
            self.tpe = optuna.samplers.TPESampler(seed=(seed * 1_000_003 + trial.number) % 2**32,
                                                  constant_liar=True)
            self.tpe.before_trial(study, trial)

        def infer_relative_search_space(self, study, trial):
            return self.tpe.infer_relative_search_space(study, trial)

        def sample_relative(self, study, trial, search_space):
            return self.tpe.sample_relative(study, trial, search_space)

        def sample_independent(self, study, trial, param_name, param_distribution):
            return self.tpe.sample_independent(study, trial, param_name, param_distribution)

        def after_trial(self, study, trial, state, values):
            self.tpe.after_trial(study, trial, state, values)

        def reseed_rng(self):
            self.tpe.reseed_rng()

    return TrialSeededTPE()


def default_storage(study: str, root: Path) -> str:
    return f"sqlite:///{(root / TUNE_DIR / f'{study}.sqlite3').resolve()}"


def open_study(name: str, storage_url: str, direction: str, seed: int, grace: int = GRACE):
    optuna = _optuna()
    with _creation_lock(storage_url):
        storage = _open_storage(storage_url, grace)
        study = optuna.create_study(study_name=name, storage=storage, sampler=trial_seeded_tpe(seed),
                                    direction=direction, load_if_exists=True)
    if study.direction.name.lower() != direction:
        raise TuneError(f"study {name!r} in {_redact(storage_url)} was created to {study.direction.name.lower()}, "
                        f"the space says {direction}; use another --study")
    return study


@contextlib.contextmanager
def _creation_lock(storage_url: str):
    """Two tuners started at once on a new SQLite file both create Optuna's schema, and the second
    fails on `UNIQUE constraint failed: alembic_version` (CI caught it). For the default SQLite
    storage a lock file beside the database makes the first tuner create it while the other waits;
    other databases get the retry in `_open_storage`."""
    if not storage_url.startswith("sqlite:///"):
        yield
        return
    db = Path(storage_url.removeprefix("sqlite:///"))
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def heartbeat_for(grace: int) -> int:
    return max(1, min(HEARTBEAT, grace // 4))


def _open_storage(storage_url: str, grace: int = GRACE, attempts: int = 5):
    optuna = _optuna()
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES)
    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(storage_url, heartbeat_interval=heartbeat_for(grace), grace_period=grace,
                                              heartbeat_stale_trial_callback=retry,
                                              engine_kwargs=_engine_kwargs(storage_url))
        except Exception as err:  # SQLAlchemy raises many kinds; all but the schema race mean "cannot use this URL"
            if _creating_schema_too(err) and attempt + 1 < attempts:
                time.sleep(0.5 * (attempt + 1))     # another tuner is creating the schema: it exists next time
                continue
            raise TuneError(f"--storage {_redact(storage_url)}: {storage_problem(err)}") from None


# (text in the driver's error, what it means and what to do), first match wins.
_STORAGE_PROBLEMS = [
    ("password authentication failed", "the server refused this user and password; check both (a password "
                                       "with @ : / needs URL-encoding, e.g. %40)"),
    ("does not exist", "the server runs but has no such database (or role); create it first, e.g. "
                       "`createdb -h HOST -U USER DB`"),
    ("connection refused", "nothing answers at that host and port; is PostgreSQL running there and "
                           "listening on TCP (listen_addresses, the firewall)?"),
    ("could not translate host name", "the host name does not resolve; check the host part of the URL"),
    ("timeout expired", "the server did not answer in time; check the host, the port and the network"),
    ("failed to import db access module", "the database driver is not installed; `pip install -r "
                                          "requirements.txt` installs psycopg for postgresql:// URLs"),
]


def storage_problem(err: Exception) -> str:
    """One line for a storage that cannot be opened: what is wrong and what to do, not a traceback."""
    text = str(err).lower()
    for needle, advice in _STORAGE_PROBLEMS:
        if needle in text:
            return f"cannot open: {advice}"
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return f"cannot open: {first}"


def _creating_schema_too(err: Exception) -> bool:
    """Two tuners started together on a new database both create Optuna's tables: the loser meets
    alembic's version table half made (SQLite) or PostgreSQL's catalog already holding the table's
    type (a unique violation on pg_type)."""
    text = str(err)
    return "alembic_version" in text or ("duplicate key value violates unique constraint" in text and "pg_" in text) \
        or "already exists" in text


def _engine_kwargs(url: str) -> dict:
    # Two tuners on one SQLite file: wait for the other's write lock instead of failing at once.
    return {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}


# ---------------------------------------------------------------------------------------------
# One trial = one `dvc exp run --temp -n <study>-<number>`


# Which trials of this machine are cut off, told by locks instead of process ids: the kernel
# releases a lock when the last process holding it is gone, so a recycled pid can never pass for
# the dead tuner. The tuner holds its trial's tuner lock alone; the run lock is handed to the
# trial's run (imgclf.experiments.tied_run), which stops itself when its tuner dies, so the lock
# says whether that run is still alive or still stopping.
# Trials of other machines are left to Optuna's heartbeat (the grace without one).


def _locked(path: Path) -> int:
    """An open descriptor of path with an exclusive flock on it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _held(path: str | None) -> bool:
    """Whether some live process holds path's lock (a missing file: nobody does)."""
    if not path:
        return False
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)               # and with it the lock, if this call took it


def _stop_run(owner: dict, wait_s: float = 15) -> None:
    """Stop an orphaned `dvc exp run` of a dead tuner and its stages (they share its process group).
    Signalled only while the run lock shows the run alive, so the group id is still the run's."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not _held(owner.get("run_lock")):
            return
        try:
            os.killpg(owner["pgid"], sig)
        except (ProcessLookupError, KeyError):
            return
        deadline = time.time() + wait_s
        while time.time() < deadline and _held(owner.get("run_lock")):
            time.sleep(0.2)


def forget_dead_temp_run(root: Path, name: str) -> bool:
    """Remove DVC's record and copy of a `dvc exp run --temp` whose process was killed.

    DVC cleans these up only when the run ends normally; a killed one stays listed as "running"
    in `dvc exp show` for ever (treeverse/dvc#8450). The record is `.dvc/tmp/exps/run/<rev>/<rev>.run`
    (JSON naming the experiment and its temp copy); only an unfinished one (no result_ref) whose
    copy lies under .dvc/tmp/exps is removed.
    """
    exps = root / ".dvc" / "tmp" / "exps"
    removed = False
    for info in exps.glob("run/*/*.run"):
        try:
            record = json.loads(info.read_text())
        except (OSError, ValueError):
            continue
        if record.get("name") != name or record.get("result_ref"):
            continue
        copy = Path(record.get("root_dir") or "")
        if copy.is_dir() and exps.resolve() in copy.resolve().parents:
            shutil.rmtree(copy, ignore_errors=True)
        shutil.rmtree(info.parent, ignore_errors=True)
        removed = True
    return removed


def reap_dead_trials(study, root: Path) -> list[int]:
    """Fail and re-queue RUNNING trials whose tuner on this machine is gone (killed, crashed),
    after stopping their orphaned runs; other machines' trials are the heartbeat's."""
    optuna = _optuna()
    reaped = []
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES)
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        owner = t.user_attrs.get("owner")
        if not owner or owner.get("host") != socket.gethostname() or _held(owner.get("tuner_lock")):
            continue
        _stop_run(owner)
        forget_dead_temp_run(root, t.user_attrs.get("experiment", "\0"))
        try:
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)
        except (ValueError, optuna.exceptions.UpdateFinishedTrialError):
            continue        # another tuner got there first
        retry(study, next(f for f in study.get_trials(deepcopy=False) if f.number == t.number))
        reaped.append(t.number)
    return reaped


def read_metric(commit: str, metrics: str, key: str, where: str) -> float:

    shown = read_at(commit, metrics)
    if shown is None:
        raise TrialFailed(f"{where}: no {metrics} in its commit {commit[:7]}")
    node: Any = json.loads(shown)
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise TrialFailed(f"{where}: {metrics} has no {key}")
        node = node[part]
    return float(node)


def stage_figures(tag: str) -> dict:
    """Wall time per stage that ran, and the feature store's hits/misses, from the run log."""

    out: dict = {"stages_run": [], "hits": 0, "misses": 0}
    for r in read():
        if r.get("tag") == tag:
            out["stages_run"].append(f"{r['stage']} {r['seconds']:.0f}s")
            out["hits"] += r.get("hits", 0)
            out["misses"] += r.get("misses", 0)
    return out


def suggest(trial, space: SearchSpace) -> dict[str, Any]:
    return decode(space, {key: dim.suggest(trial, key) for key, dim in space.params.items()})


def check_push_remote(remote: str, dvc: str) -> None:
    """Before any trial: `dvc exp push REMOTE` needs that git remote and a default DVC remote."""
    git = subprocess.run(["git", "remote", "get-url", remote], capture_output=True, text=True)
    if git.returncode:
        raise TuneError(f"--push {remote}: no such git remote here; `git remote -v` lists them "
                        f"(add one with `git remote add {remote} URL`)")
    default = subprocess.run([dvc, "remote", "default"], capture_output=True, text=True)
    if default.returncode or not default.stdout.strip():
        raise TuneError(f"--push {remote}: no default DVC remote for the trials' outputs; set one with "
                        "`dvc remote add -d NAME URL`")


def push_experiment(name: str, remote: str, dvc: str, log: Path) -> None:
    """The experiment's git ref to REMOTE, its outputs to the default DVC remote; a few attempts,
    since a remote shared by many tuners is the likeliest thing to hiccup."""
    for attempt in range(PUSH_ATTEMPTS):
        with open(log, "a") as out:
            pushed = subprocess.run([dvc, "exp", "push", remote, name], stdout=out, stderr=subprocess.STDOUT)
        if pushed.returncode == 0:
            return
        if attempt + 1 < PUSH_ATTEMPTS:
            time.sleep(2 ** attempt)
    raise TrialFailed(f"{name}: `dvc exp push {remote} {name}` failed {PUSH_ATTEMPTS} times (log {log}); the "
                      f"experiment is kept here, push it later with that command")


class Objective:
    def __init__(self, space: SearchSpace, study_name: str, log_dir: Path, dvc: str, push: str | None = None):
        self.space, self.study_name, self.log_dir, self.dvc, self.push = space, study_name, log_dir, dvc, push
        self.tuner_locks: list[int] = []     # held until this tuner exits: past Optuna's record of each trial's end

    def __call__(self, trial) -> float:
        try:
            return self._run(trial)
        except TrialFailed as err:
            print(err, file=sys.stderr, flush=True)
            raise

    def _run(self, trial) -> float:
        values = suggest(trial, self.space)
        name = f"{self.study_name}-{trial.number}"
        cmd = [self.dvc, "exp", "run", "--temp", "-n", name, *set_args({**self.space.fixed, **values})]
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        trial.set_user_attr("experiment", name)
        tuner_lock, run_lock = self.log_dir / "locks" / f"{name}.tuner", self.log_dir / "locks" / f"{name}.run"
        self.tuner_locks.append(_locked(tuner_lock))
        frozen = next(t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number)
        retried = _optuna().storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen)
        print(f"trial {trial.number}{f' (re-run of {retried})' if retried is not None else ''}: "
              f"{shlex.join(cmd[1:])}", flush=True)
        start = time.perf_counter()
        with open(log, "w") as out:
            run_fd = _locked(run_lock)
            run_end, tuner_end = os.pipe()      # the run reads end-of-file on run_end when this process is gone
            try:
                child = subprocess.Popen([sys.executable, "-m", "imgclf.experiments.tied_run", str(run_end), *cmd],
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                         env={**os.environ, run_log.TAG: name}, pass_fds=(run_fd, run_end))
            except BaseException:
                os.close(tuner_end)
                raise
            finally:
                os.close(run_fd)             # the run holds it now, for as long as it lives
                os.close(run_end)
            trial.set_user_attr("owner", {"host": socket.gethostname(), "pid": os.getpid(), "pgid": child.pid,
                                          "tuner_lock": str(tuner_lock.resolve()), "run_lock": str(run_lock.resolve())})
            try:
                code = child.wait()
            except BaseException:
                # Ctrl-C reaches only this process (the run has its own session): stop the run too.
                os.killpg(child.pid, signal.SIGINT)
                try:
                    child.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(child.pid, signal.SIGKILL)
                trial.set_user_attr("ended", "interrupted")
                forget_dead_temp_run(project_root(), name)
                raise
            finally:
                os.close(tuner_end)
        seconds = time.perf_counter() - start
        figures = {"seconds": round(seconds, 1), **stage_figures(name)}
        for k, v in figures.items():
            trial.set_user_attr(k, v)
        if code:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            raise TrialFailed(f"trial {trial.number} ({name}): dvc exp run exited {code}; log {log}:\n{tail}")

        commit = resolve(name)
        trial.set_user_attr("commit", commit)
        value = read_metric(commit, self.space.objective.metrics, self.space.objective.key, name)
        if self.push:
            pushing = time.perf_counter()
            push_experiment(name, self.push, self.dvc, log)
            trial.set_user_attr("pushed_to", self.push)
            trial.set_user_attr("push_seconds", round(time.perf_counter() - pushing, 1))
        print(f"trial {trial.number}: {self.space.objective.key} {value:.4f} in {seconds:.0f} s "
              f"(stages run: {', '.join(figures['stages_run']) or 'none'}; "
              f"feature store {figures['hits']} hits, {figures['misses']} misses)", flush=True)
        return value


# ---------------------------------------------------------------------------------------------
# Report: the trials table, the optimisation history, the best trial


def _shown(value):
    """Lists as JSON, floats to 4 significant digits: what a reader compares across trials."""
    if isinstance(value, list):
        return json.dumps(value)
    return float(f"{value:.4g}") if isinstance(value, float) else value


def trials_frame(study, space: SearchSpace):
    import pandas as pd

    rows = []
    for t in study.get_trials(deepcopy=False):
        values = decode(space, {k: v for k, v in t.params.items() if k in space.params})
        ua = t.user_attrs
        rows.append({"trial": t.number, "state": t.state.name.lower(), "experiment": ua.get("experiment", ""),
                     **{k: _shown(values.get(k)) for k in space.params},
                     space.objective.key: None if t.value is None else round(t.value, 4),
                     "seconds": ua.get("seconds"), "hits": ua.get("hits"), "misses": ua.get("misses"),
                     "stages_run": "; ".join(ua.get("stages_run", [])),
                     "re_run_of": t.system_attrs.get("failed_trial"), "ended": ua.get("ended", "")})
    return pd.DataFrame(rows)


def history_png(study) -> bytes | None:
    from imgclf.review.plotting import png_bytes, pyplot

    optuna = _optuna()
    if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        return None
    pyplot()
    ax = optuna.visualization.matplotlib.plot_optimization_history(study)
    ax.figure.set_size_inches(8, 4.5)
    ax.figure.tight_layout()
    return png_bytes(ax.figure)


def write_report(study, space: SearchSpace, space_path: Path, out_dir: Path, storage_url: str) -> dict | None:
    """docs/tuning/<study>.csv, .png and .md; returns the best trial's summary (None before one finishes)."""
    optuna = _optuna()
    frame = trials_frame(study, space)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = study.study_name
    write_text(out_dir / f"{name}.csv", frame.to_csv(index=False))
    png = history_png(study)
    if png:
        write_bytes(out_dir / f"{name}.png", png)
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    best = None
    if done:
        t = study.best_trial
        exp = t.user_attrs["experiment"]
        best = {"trial": t.number, "experiment": exp, "objective": round(t.value, 4),
                "params": decode(space, t.params)}
        if space.holdout:
            try:
                best["holdout"] = round(read_metric(t.user_attrs["commit"], space.holdout.metrics,
                                                    space.holdout.key, exp), 4)
            except TrialFailed as err:
                best["holdout_error"] = str(err)
    seconds = frame["seconds"].dropna() if len(frame) else frame      # a study without trials has no columns
    lines = [f"# Study `{name}`", "",
             f"Written by `imgclf tune --space {space_path.as_posix()}` (storage: "
             f"{_shown_storage(storage_url)}). {space.description}", "",
             f"{len(done)} finished trials of {len(frame)}; objective {space.objective.direction} "
             f"`{space.objective.key}` ({space.objective.metrics})."
             + (f" Wall time per trial: median {seconds.median():.0f} s, total {seconds.sum() / 60:.1f} min."
                if len(seconds) else ""), ""]
    if best:
        held = (f", {space.holdout.key} {best['holdout']}" if "holdout" in best else "")
        lines += [f"**Best:** trial {best['trial']} (`{best['experiment']}`): {space.objective.key} "
                  f"{best['objective']}{held}. Restore it with `dvc exp apply {best['experiment']}`.", ""]
    if png:
        lines += [f"![optimisation history]({name}.png)", ""]
    lines += [markdown_table(frame) if len(frame) else "(no trials yet)", ""]
    write_text(out_dir / f"{name}.md", "\n".join(lines))
    return best


def markdown_table(frame) -> str:
    def cell(v) -> str:
        return "" if v is None or (isinstance(v, float) and v != v) else str(v).replace("|", "\\|")

    head = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    return "\n".join([head, rule, *("| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False))])


def _shown_storage(url: str) -> str:
    """The storage as the report shows it: the default SQLite file relative to the project (a
    committed report names no machine's paths), other URLs without their password."""

    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        try:
            return f"SQLite `{path.resolve().relative_to(project_root().resolve()).as_posix()}`"
        except ValueError:
            return f"SQLite `{path.name}`"
    return _redact(url)


def _redact(url: str) -> str:
    """The URL with its password as ***: messages and reports end up in logs and CI output."""
    return re.sub(r"://([^:/@]+):[^@]+@", r"://\1:***@", url) if "://" in url else url


# ---------------------------------------------------------------------------------------------


def reached(study, target: int, poll: float) -> bool:
    """Whether the study has its target of finished trials; waits while the trials running elsewhere
    would reach it.

    Why wait rather than stop or go on: tuners that each stop at the target overshoot it (one is
    mid-trial when another ends), and one that stops while another's trial is being lost (its
    machine gone) leaves the study short. Waiting ends when those trials finish (stop) or one goes
    quiet for the grace: Optuna fails it, queues its parameters again, and this tuner runs them.
    """
    optuna = _optuna()
    told = False
    while True:
        optuna.storages.fail_stale_trials(study)
        states = [t.state for t in study.get_trials(deepcopy=False)]
        done, running = states.count(optuna.trial.TrialState.COMPLETE), states.count(optuna.trial.TrialState.RUNNING)
        if done >= target or done + running < target:
            return done >= target
        if not told:
            print(f"tune: {done} of {target} trials finished, {running} running elsewhere: waiting for them to "
                  "finish or go quiet", flush=True)
            told = True
        time.sleep(poll)


def run(space_path: Path, trials: int, study_name: str | None, storage_url: str | None, seed: int,
        report_only: bool, out_dir: Path, dvc: str = "dvc", push: str | None = None, grace: int = GRACE) -> int:

    optuna = _optuna()
    space = load_space(space_path, checks=EVERY_CHECK)
    name = study_name or space_path.stem
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise TuneError(f"--study {name!r}: use letters, digits, '.', '_' and '-' (it names DVC experiments)")
    root = project_root()
    url = storage_url or default_storage(name, root)
    if push and not report_only:
        check_push_remote(push, dvc)
    study = open_study(name, url, space.objective.direction, seed, grace)
    complete = (optuna.trial.TrialState.COMPLETE,)
    reaped = reap_dead_trials(study, root)
    if reaped:
        print(f"tune: trials {reaped} were cut off (their tuner is gone): marked failed, queued to re-run")
    before = len(study.get_trials(deepcopy=False, states=complete))
    print(f"tune: study {name!r} in {_redact(url)}: {before} of {trials} trials finished", flush=True)
    interrupted = False
    failures: list[bool] = []
    if not report_only and not reached(study, trials, heartbeat_for(grace)):
        objective = Objective(space, name, root / TUNE_DIR / name, dvc, push)

        def stop_on_repeated_failure_or_at_target(study, trial):
            failures.append(trial.state == optuna.trial.TrialState.FAIL)
            if failures[-MAX_FAILURES_IN_A_ROW:] == [True] * MAX_FAILURES_IN_A_ROW:
                print(f"tune: {MAX_FAILURES_IN_A_ROW} trials failed in a row; stopping (see the logs in "
                      f"{root / TUNE_DIR / name})", file=sys.stderr)
                study.stop()
            elif reached(study, trials, heartbeat_for(grace)):
                study.stop()

        try:
            study.optimize(objective, catch=(TrialFailed,), gc_after_trial=False,
                           callbacks=[stop_on_repeated_failure_or_at_target])
        except KeyboardInterrupt:
            interrupted = True
            retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES)
            for t in study.get_trials(deepcopy=True, states=(optuna.trial.TrialState.FAIL,)):
                if t.user_attrs.get("ended") == "interrupted" and t.user_attrs.get("owner", {}).get("pid") == os.getpid():
                    retry(study, t)
            print("\ntune: interrupted; the cut-off trial is marked failed and queued to re-run. "
                  "Run the same command to resume.", file=sys.stderr)
    best = write_report(study, space, space_path, out_dir, url)
    after = len(study.get_trials(deepcopy=False, states=complete))
    print(f"tune: {after} of {trials} trials finished ({after - before} now); report in {out_dir / name}.md")
    if best:
        held = f", {space.holdout.key} {best['holdout']}" if "holdout" in best else ""
        print(f"tune: best trial {best['trial']}: {space.objective.key} {best['objective']}{held}; "
              f"restore it with: dvc exp apply {best['experiment']}")
    gave_up = not report_only and failures[-MAX_FAILURES_IN_A_ROW:] == [True] * MAX_FAILURES_IN_A_ROW
    return 130 if interrupted else 1 if gave_up else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imgclf tune", description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", required=True, type=Path, help="search-space YAML (e.g. search/head.yaml)")
    parser.add_argument("--trials", type=int, default=30, help="finished trials the study should reach")
    parser.add_argument("--study", help="study name; names the experiments <study>-<n> (default: the space's file name)")
    parser.add_argument("--storage", help="Optuna storage URL (default: sqlite under .tune/)")
    parser.add_argument("--seed", type=int, default=0, help="the sampler's seed")
    parser.add_argument("--push", metavar="GIT_REMOTE",
                        help="push each finished trial: its git ref to GIT_REMOTE, its outputs to the default "
                             "DVC remote (`dvc exp push`), so other machines' clones can apply it")
    parser.add_argument("--grace", type=int, default=GRACE, metavar="SECONDS",
                        help=f"a running trial without a heartbeat for this long is taken as dead and its "
                             f"parameters re-run (default {GRACE})")
    parser.add_argument("--report", action="store_true", help="only write the report of the trials so far")
    parser.add_argument("--out", type=Path, default=REPORT_DIR, help="report folder (default docs/tuning)")
    args = parser.parse_args(argv)
    if args.trials < 1:
        print("error: --trials must be at least 1", file=sys.stderr)
        return 2
    if args.grace < 4:
        print(f"error: --grace {args.grace}: must be at least 4 seconds (the heartbeat is a quarter of it)",
              file=sys.stderr)
        return 2
    try:
        return run(args.space, args.trials, args.study, args.storage, args.seed, args.report, args.out,
                   dvc=os.environ.get("DVC", "dvc"), push=args.push, grace=args.grace)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
