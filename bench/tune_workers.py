"""Trials per hour with one and with two tuners on this machine: one PostgreSQL study, one git
remote and one DVC remote over SSH, each tuner in its own clone, as on a team's machines.

    python bench/tune_workers.py [--trials 4] [--work /tmp/tune-workers] [--doc docs/tuning/workers.md]

Run it after `dvc repro` in this checkout: the clones share its DVC cache (symlinks), so a trial
costs what it costs on a machine that has pulled main: the head's training and evaluation, and
the push of its outputs. The DVC remote is seeded with main's outputs first (timed apart), as a
team's remote holds them. The search space varies dropout only (params.yaml's head otherwise),
so every trial does the same work and the two runs compare; each run has its own sampler seed, so
no trial's parameters repeat another's (DVC's run-cache would restore it instead of training). Needs Debian's PostgreSQL server
binaries (`apt-get install postgresql`) and KERAS_HOME reaching the MobileNet weights.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))           # tests/ holds the loopback servers the tests start too
BIN = Path(sys.executable).parent
SPACE = {"description": "dropout only: every trial does the same work",
         "objective": {"metrics": "metrics/evaluate.json", "key": "val.accuracy", "direction": "maximize"},
         "holdout": {"metrics": "metrics/evaluate.json", "key": "test.accuracy"},
         "fixed": {"train": {"model": "head"}},
         "params": {"train.head.dropout": {"low": 0.1, "high": 0.6}}}


def venv_env() -> dict:
    """The environment of a user's shell with the venv active."""
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


def sh(args, cwd: Path, **kw) -> str:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=venv_env(), capture_output=True, text=True, **kw)
    if proc.returncode:
        raise SystemExit(f"{' '.join(map(str, args))} failed in {cwd}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def machine(origin: Path, into: Path, remote: str, keyfile: Path) -> Path:
    """A clone as a team member's machine has it, sharing this checkout's DVC cache."""
    sh(["git", "clone", "-q", origin, into], into.parent)
    dvc = BIN / "dvc"
    sh([dvc, "cache", "dir", "--local", REPO / ".dvc" / "cache"], into)
    sh([dvc, "config", "--local", "cache.type", "symlink"], into)
    sh([dvc, "remote", "add", "--local", "-d", "team", remote], into)
    sh([dvc, "remote", "modify", "--local", "team", "keyfile", keyfile], into)
    return into


def workers_run(n_workers: int, trials_each: int, origin: Path, work: Path, ssh, storage: str) -> dict:
    """n_workers tuners started together on a new study of n_workers * trials_each trials."""
    import optuna

    study, target = f"workers-{n_workers}", n_workers * trials_each
    space = work / "space.yaml"
    procs = []
    start = time.time()
    for i in range(n_workers):
        clone = machine(origin, work / f"{study}-{i}", ssh.url("dvc-store"), ssh.keyfile)
        log = open(work / f"{study}-{i}.log", "w")
        procs.append((subprocess.Popen(
            [BIN / "imgclf", "tune", "--space", space, "--trials", str(target), "--study", study, "--storage", storage,
             "--push", "origin", "--out", work / "reports", "--seed", str(n_workers)], cwd=clone, stdout=log, stderr=subprocess.STDOUT,
            env=venv_env()), log))
    for proc, log in procs:
        if proc.wait():
            raise SystemExit(f"a tuner of {study} exited {proc.returncode}; see {log.name}")
        log.close()
    wall = time.time() - start
    done = [t for t in optuna.load_study(study_name=study, storage=storage).get_trials()
            if t.state == optuna.trial.TrialState.COMPLETE]
    restored = [t.number for t in done if not any(s.startswith("train ") for s in t.user_attrs["stages_run"])]
    if restored:
        raise SystemExit(f"{study}: trials {restored} were restored from DVC's run-cache, not run; the bench "
                         "times trials that train")
    span = max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)
    row = {"workers": n_workers, "trials": len(done), "wall_seconds": round(wall, 1),
           "span_seconds": round(span.total_seconds(), 1),
           "trials_per_hour": round(len(done) / span.total_seconds() * 3600, 1),
           "trial_seconds": sorted(t.user_attrs["seconds"] for t in done),
           "push_seconds": sorted(t.user_attrs.get("push_seconds") for t in done)}
    print(json.dumps(row), flush=True)
    return row


def document(rows: list[dict], seed_push: float, record: dict, trials: int) -> str:
    one, two = rows
    lines = ["# Trials per hour: one tuner or two on one machine", "",
             f"Written by `python bench/tune_workers.py --trials {trials}` on a 2-core CPU with {record['cpu']}, "
             f"commit {record['commit'][:7]}{'+dirty' * record['commit'].endswith('+dirty')}. Each tuner in its own clone, one PostgreSQL study, every trial pushed "
             "to one git remote and one DVC remote over SSH (loopback). The trials vary dropout only, so they do "
             "the same work. Trials per hour count finished trials from the first trial's start to the last "
             "one's end.", "",
             "| tuners | finished trials | trials per hour | seconds per trial (run, median) | push per trial (s, median) | wall (s) |",
             "|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        run_s = r["trial_seconds"][len(r["trial_seconds"]) // 2]
        push_s = r["push_seconds"][len(r["push_seconds"]) // 2]
        lines.append(f"| {r['workers']} | {r['trials']} | {r['trials_per_hour']} | {run_s} | {push_s} | {r['wall_seconds']} |")
    lines += ["", f"**Two tuners on one machine: {two['trials_per_hour'] / one['trials_per_hour']:.2f}x the trials "
              "per hour of one.** Seeding the DVC remote with main's outputs (once per team, not per trial) took "
              f"{seed_push:.0f} s.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4, help="finished trials per tuner")
    parser.add_argument("--work", type=Path, help="where clones and servers go (default: a temporary folder)")
    parser.add_argument("--doc", type=Path, default=Path("docs/tuning/workers.md"))
    args = parser.parse_args()
    from imgclf.core.atomic import write_text
    from imgclf.core.provenance import announce, ran_with
    from tests.postgres_server import serve as postgres
    from tests.sftp_server import serve as sftp

    record = announce(ran_with(args, {"params.yaml": "this checkout's head, dropout searched"}))
    work = args.work or Path(tempfile.mkdtemp(prefix="tune-workers-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "space.yaml").write_text(yaml.safe_dump(SPACE))
    origin = work / "origin.git"
    sh(["git", "clone", "-q", "--bare", REPO, origin], work)
    with postgres() as server, sftp(work) as ssh:
        storage = f"{server}/studies"
        seed = machine(origin, work / "seed", ssh.url("dvc-store"), ssh.keyfile)
        start = time.perf_counter()
        sh([BIN / "dvc", "push", "-q"], seed)
        seed_push = time.perf_counter() - start
        print(f"seeded the DVC remote with main's outputs in {seed_push:.0f} s", flush=True)
        rows = [workers_run(n, args.trials, origin, work, ssh, storage) for n in (1, 2)]
    out = REPO / "bench" / "out" / "tune_workers.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"ran_with": record, "seed_push_seconds": round(seed_push, 1), "runs": rows}, indent=2,
                              default=str))
    doc = document(rows, seed_push, record, args.trials)
    write_text(args.doc, doc)
    print(doc)


if __name__ == "__main__":
    main()
