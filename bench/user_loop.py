"""A user's loop, timed: what each step of everyday work costs on a fresh clone of this commit.

    python bench/user_loop.py [--rev OLD --rev HEAD] [--work /tmp/user-loop] [--doc docs/user_loop.md]

In a fresh clone of each --rev (its own empty feature store, DVC cache and run log; default HEAD),
one after another:
1. cold `dvc repro` on the real Fashion-MNIST (per stage from the clone's run log);
2. a head experiment: `dvc exp run -S train.head.dropout=...` (0.05 above the committed value;
   bottleneck's vectors reused);
3. back to the committed value as an experiment: DVC's run-cache restores train and evaluate
   from step 1, nothing is computed;
4. a comment-only edit of the augment stage's module (data/augment.py), then `dvc repro`.
Several revs run one after another on this machine, so their tables compare (same CPU, same
load). Writes the tables to --doc and bench/out/user_loop.json, with the commits and the CPU kind.
KERAS_HOME must reach the MobileNet weights (offline machines).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def dvc(project: Path, *args: str) -> tuple[float, str]:
    """(wall seconds, output) of one dvc command in the clone, with the clone's own code."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    start = time.perf_counter()
    proc = subprocess.run([str(Path(sys.executable).parent / "dvc"), *args], cwd=project, env=env,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"dvc {' '.join(args)} failed in {project}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return round(seconds, 1), proc.stdout


def step(project: Path, name: str, *args: str) -> dict:
    """One dvc command; the stages that ran are the clone's run-log entries it added."""
    import yaml

    from imgclf.core.run_log import LOG, read

    stages = list(yaml.safe_load((project / "dvc.yaml").read_text())["stages"])   # the rev's own stages

    since = len(read(project / LOG))
    wall, out = dvc(project, *args)
    ran = {r["stage"]: r["seconds"] for r in read(project / LOG)[since:]}
    restored = [s for s in stages if f"Stage '{s}' is cached" in out]
    unchanged = [s for s in stages if f"Stage '{s}' didn't change" in out]
    row = {"step": name, "command": "dvc " + " ".join(args), "wall_seconds": wall, "stages_run": ran,
           "restored_from_run_cache": restored, "unchanged": unchanged}
    print(json.dumps(row), flush=True)
    return row


def loop(rev: str, work: Path) -> tuple[str, list[dict]]:
    """(full commit, rows) of the four steps in a fresh clone of rev."""
    import yaml

    project = work / rev.replace("/", "_")
    subprocess.run(["git", "clone", "-q", str(REPO), str(project)], check=True)
    subprocess.run(["git", "checkout", "-q", rev], cwd=project, check=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, check=True, capture_output=True,
                            text=True).stdout.strip()
    dropout = yaml.safe_load((project / "params.yaml").read_text())["train"]["head"]["dropout"]
    rows = [step(project, "cold pipeline", "repro"),
            step(project, "head experiment", "exp", "run", "-n", "loop-dropout", "-S",
                 f"train.head.dropout={round(dropout + 0.05, 2)}"),
            step(project, "back to the committed value (an earlier run)", "exp", "run", "-n", "loop-back", "-S",
                 f"train.head.dropout={dropout}")]
    subprocess.run(["git", "checkout", "-q", "--", "."], cwd=project, check=True)   # the workspace as committed
    dvc(project, "checkout", "-q")
    module = project / "src" / "imgclf" / "data" / "augment.py"
    module.write_text(module.read_text() + "# a comment-only edit\n")
    rows.append(step(project, "comment-only edit of data/augment.py", "repro"))
    return commit, rows


def table(runs: dict[str, list[dict]], record: dict) -> str:
    revs = list(runs)
    lines = [f"# A user's loop, timed\n\nWritten by `python bench/user_loop.py{''.join(f' --rev {r[:7]}' for r in revs)}` "
             f"on a 2-core CPU with {record['cpu']}, each commit in a fresh clone (empty feature store, DVC cache "
             "and run log), one after another. Stage seconds come from the clone's run log (each stage process, "
             "TensorFlow's import included); the wall time is the whole dvc command's.\n"]
    if len(revs) > 1:
        lines += ["| step | " + " | ".join(f"{r[:7]} wall (s)" for r in revs) + f" | {revs[0][:7]} / {revs[-1][:7]} |",
                  "|---|" + "---:|" * (len(revs) + 1)]
        for i, first in enumerate(runs[revs[0]]):
            walls = [runs[r][i]["wall_seconds"] for r in revs]
            lines.append(f"| {first['step']} | " + " | ".join(str(w) for w in walls) + f" | {walls[0] / walls[-1]:.1f}x |")
        lines.append("")
    for rev, rows in runs.items():
        lines += [f"## {rev[:7]}\n", "| step | command | wall (s) | stages run (s) | restored from the run-cache | unchanged, skipped |",
                  "|---|---|---:|---|---|---|"]
        for r in rows:
            ran = ", ".join(f"{s} {sec:.1f}" for s, sec in r["stages_run"].items()) or "none"
            lines.append(f"| {r['step']} | `{r['command']}` | {r['wall_seconds']} | {ran} | "
                         f"{', '.join(r['restored_from_run_cache']) or 'none'} | {', '.join(r['unchanged']) or 'none'} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", action="append", help="a commit to time; repeat to compare (default: HEAD)")
    parser.add_argument("--work", type=Path, help="where the clones go (default: a temporary folder, removed after)")
    parser.add_argument("--doc", type=Path, default=Path("docs/user_loop.md"))
    args = parser.parse_args()
    from imgclf.core.atomic import write_text
    from imgclf.core.provenance import announce, ran_with

    record = announce(ran_with(args, {"params.yaml": "each commit's, as committed"}))
    work = args.work or Path(tempfile.mkdtemp(prefix="user-loop-"))
    runs = {}
    try:
        for rev in args.rev or ["HEAD"]:
            commit, rows = loop(rev, work)
            runs[commit] = rows
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    out = REPO / "bench" / "out" / "user_loop.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"ran_with": record, "runs": runs}, indent=2, default=str))
    write_text(args.doc, table(runs, record))
    print(table(runs, record))


if __name__ == "__main__":
    main()
