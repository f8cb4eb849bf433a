"""The test suite's mutation score per core module, from the results `mutmut run` left in mutants/.

    make mutation                      # mutmut run over pyproject's [tool.mutmut] modules, then this
    python bench/mutation_score.py [--mutants mutants] [--out docs/mutation.md]
    make mutation MUTANTS="$(python bench/mutation_score.py --sample 50)"   # a random 50 per module

A full run is hours on 2 cores (3,929 mutants); --sample N prints N not-yet-checked mutants per
module, drawn at random with --seed, for `mutmut run` to check: each module's score is then
estimated from an unbiased sample instead of from the cheapest mutants, which mutmut runs first.

A mutant is a small change to one function (a flipped comparison, a changed constant, a dropped
argument); the fast tests "kill" it when one of them fails. A timed-out mutant counts as killed
(the change made a test hang, which a reviewer would notice). A survivor is either a gap in the
tests or an equivalent change (same behaviour, e.g. a renamed keyword that is never read): those
are listed under a one-line reason in bench/mutants_equivalent.yaml, and the score with them
discounted is the second figure. Writes the table and every unexplained survivor to --out, and
the counts beside it (docs/mutation.json); --before names an earlier run's counts (by default
bench/baselines/mutation-b83abf8.json: the first run, on b83abf8's tests) for a column of what the tests
caught then.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

import yaml

KILLED = {"killed", "timeout"}


def not_killed(status: str) -> bool:
    """Checked and not killed (a survivor, or no test reached it): only these can be explained as
    equivalent; a listed mutant the run never reached is not checked (a partial run once scored 142 %)."""
    return status not in KILLED | {"not checked"}


# mutmut 3.8.1's exit codes (mutmut.stats.status_by_exit_code, pinned in requirements-mutation.txt),
# spelled out so this report and its test need no mutmut install.
STATUS_BY_EXIT_CODE = {None: "not checked", 0: "survived", 1: "killed", 3: "killed", 5: "no tests",
                       33: "no tests", 34: "skipped", 35: "suspicious", 36: "timeout", 37: "caught by type check",
                       24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout", -9: "segfault", -11: "segfault"}


def load_results(mutants: Path) -> dict[str, str]:
    """mutant name -> status, read from the .meta files mutmut writes beside each mutated module."""
    results = {}
    for meta in sorted(mutants.rglob("*.py.meta")):
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            results[name] = STATUS_BY_EXIT_CODE.get(code, "suspicious")
    if not results:
        raise SystemExit(f"error: no mutmut results under {mutants}/ (run `make mutation` first)")
    return results


def module_of(mutant: str) -> str:
    """imgclf.data.split.x_by_source__mutmut_3 -> split; methods are module.xǁClassǁmethod__mutmut_N."""
    return re.match(r"imgclf\.(?:\w+\.)?(\w+)\.x[_ǁ]", mutant).group(1)


def sample(results: dict[str, str], per_module: int, seed: int) -> list[str]:
    """Up to per_module not-yet-checked mutants of each module, at random (the same draw for a seed)."""
    import random

    rng = random.Random(seed)
    picked = []
    for module in sorted({module_of(m) for m in results}):
        todo = sorted(m for m, s in results.items() if s == "not checked" and module_of(m) == module)
        picked += sorted(rng.sample(todo, min(per_module, len(todo))))
    return picked


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % interval of a proportion k / n (Wilson's: sane at 0, n and small n), for a score
    measured on a sample of a module's mutants."""
    if n == 0:
        return 0.0, 1.0
    p, z2 = k / n, z * z
    centre, half = (p + z2 / (2 * n)) / (1 + z2 / n), z * ((p * (1 - p) + z2 / (4 * n)) / n) ** 0.5 / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def score_table(results: dict[str, str], equivalent: dict[str, str]) -> list[dict]:
    rows = []
    for module in sorted({module_of(m) for m in results}):
        mine = {m: s for m, s in results.items() if module_of(m) == module}
        counts = Counter(mine.values())
        killed = sum(counts[s] for s in KILLED)
        explained = sum(1 for m, s in mine.items() if not_killed(s) and m in equivalent)
        checked = len(mine) - counts["not checked"]
        rows.append({"module": module, "mutants": len(mine), "not_checked": counts["not checked"], "killed": killed,
                     "survived": counts["survived"], "no_tests": counts["no tests"],
                     "other": checked - killed - counts["survived"] - counts["no tests"],
                     "equivalent": explained,
                     "score": killed / max(1, checked),
                     "score_without_equivalent": killed / max(1, checked - explained),
                     "interval_without_equivalent": wilson(killed, checked - explained)})
    return rows


def before_scores(before: dict | None) -> tuple[str, dict[str, str]]:
    """(column heading, module -> killed / checked then) of an earlier run's JSON: the same table
    over the tests as they were, so a reader sees what the new tests changed."""
    if not before:
        return "", {}
    rows = before["modules"]
    scores = {r["module"]: (f"{r['killed'] / (r['mutants'] - r['not_checked']):.1%}"
                            if r["not_checked"] < r["mutants"] else "not run") for r in rows}
    killed, checked = sum(r["killed"] for r in rows), sum(r["mutants"] - r["not_checked"] for r in rows)
    scores["**all**"] = f"{killed / max(1, checked):.1%}"
    return f"score before ({before['ran_with']['commit'][:7]})", scores


def render(rows: list[dict], results: dict[str, str], equivalent: dict[str, str], ran_with: dict,
           before: dict | None = None) -> str:
    total = {k: sum(r[k] for r in rows) for k in ("mutants", "not_checked", "killed", "survived", "no_tests", "other", "equivalent")}
    checked = total["mutants"] - total["not_checked"]
    before_heading, before_score = before_scores(before)
    lines = ["# Mutation score of the fast tests", "",
             f"Regenerated by `make mutation` (`bench/mutation_score.py`) at {ran_with['commit'][:12]} "
             f"on {ran_with['cpu']}. A mutant counts as killed when a test of `make test-fast` fails "
             "or hangs on it; \"no tests\" means no fast test calls the mutated function in-process "
             "(it may still be run by a slow or subprocess test, which mutmut cannot attribute); \"not checked\": the run "
             "was stopped before mutmut reached it. Scores are killed / checked, and killed / (checked - equivalent); "
             "where a module was only partly checked (a `--sample`), the last column is the 95 % interval of "
             "its score without equivalents." + (f" The {before_heading} column is killed / checked of that "
                                                 "earlier run, without equivalents discounted." if before else ""), "",
             "| module | mutants | not checked | killed | survived | no tests | other | equivalent (explained) | "
             + (f"{before_heading} | " if before else "") + "score | score without equivalents | 95 % interval |",
             "|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if before else "")]
    for r in rows + [dict(module="**all**", **total, score=total["killed"] / max(1, checked),
                          score_without_equivalent=total["killed"] / max(1, checked - total["equivalent"]),
                          interval_without_equivalent=wilson(total["killed"], checked - total["equivalent"]))]:
        low, high = r["interval_without_equivalent"]
        interval = "all checked" if not r["not_checked"] else f"{low:.0%}-{high:.0%}"
        lines.append(f"| {r['module']} | {r['mutants']:,} | {r['not_checked']:,} | {r['killed']:,} | {r['survived']:,} | {r['no_tests']:,} | "
                     f"{r['other']:,} | {r['equivalent']:,} | "
                     + (f"{before_score.get(r['module'], 'no such module')} | " if before else "")
                     + (f"{r['score']:.1%} | {r['score_without_equivalent']:.1%} | {interval} |"
                     if r["not_checked"] < r["mutants"] else "not run | not run | |"))
    explained = sorted(m for m, s in results.items() if not_killed(s) and m in equivalent)
    open_ = sorted(m for m, s in results.items() if not_killed(s) and m not in equivalent)
    lines += ["", f"## Survivors judged equivalent ({len(explained)})", "",
              "Reasons from `bench/mutants_equivalent.yaml`; `mutmut show NAME` prints the change.", ""]
    lines += [f"- `{m}`: {equivalent[m]}" for m in explained] or ["none"]
    lines += ["", f"## Survivors not yet killed or explained ({len(open_)})", ""]
    lines += [f"- `{m}` ({results[m]})" for m in open_] or ["none"]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mutants", type=Path, default=Path("mutants"))
    ap.add_argument("--equivalent", type=Path, default=Path("bench/mutants_equivalent.yaml"))
    ap.add_argument("--out", type=Path, default=Path("docs/mutation.md"))
    ap.add_argument("--json", type=Path, help="the counts (default: --out with .json)")
    ap.add_argument("--before", type=Path, default=Path("bench/baselines/mutation-b83abf8.json"),
                    help="an earlier run's --json, for a 'score before' column (skipped if missing)")
    ap.add_argument("--sample", type=int, metavar="N",
                    help="print N unchecked mutants per module, at random, for `mutmut run`; write nothing")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.sample is not None:
        print(" ".join(sample(load_results(args.mutants), args.sample, args.seed)))
        return

    from imgclf.core.atomic import write_json, write_text
    from imgclf.core.provenance import announce, ran_with

    record = announce(ran_with({k: str(v) for k, v in vars(args).items()}))
    results = load_results(args.mutants)
    groups = yaml.safe_load(args.equivalent.read_text()) if args.equivalent.exists() else []
    equivalent = {name: g["reason"] for g in groups or [] for name in g["mutants"]}
    unknown = sorted(set(equivalent) - set(results))
    if unknown:
        print(f"note: {len(unknown)} mutants in {args.equivalent} no longer exist (code changed): {unknown[:5]}")
    rows = score_table(results, equivalent)
    before = json.loads(args.before.read_text()) if args.before.is_file() else None
    write_text(args.out, render(rows, results, equivalent, record, before))
    write_json(args.json or args.out.with_suffix(".json"), {"ran_with": record, "modules": rows})
    total_killed = sum(r["killed"] for r in rows)
    checked = len(results) - sum(r["not_checked"] for r in rows)
    print(f"{len(results):,} mutants, {checked:,} checked, {total_killed:,} killed ({total_killed / max(1, checked):.1%}); "
          + ", ".join(f"{r['module']} {r['score']:.0%}" for r in rows) + f"; wrote {args.out}")


if __name__ == "__main__":
    main()
