"""Regenerate the results table in docs/results.md from `dvc exp show --json` (never typed by hand).

    imgclf results-table [--doc docs/results.md] [--dvc dvc]

Rows: the committed baseline (HEAD) and every experiment of every commit
(`dvc exp show --all-commits`), each with the commit it ran on and the exact `dvc exp run -S ...`
arguments that differ from that commit's params. Experiment refs live only in the clone that ran
them (until `dvc exp push`), so rows already in the table whose experiment this clone does not
have are kept as they are, after the rows this clone can regenerate.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

from imgclf.config.schema import flatten
from imgclf.core.atomic import write_text

START, END = "<!-- results:start -->", "<!-- results:end -->"
ARCHIVE_START, ARCHIVE_END = "<!-- archive:start -->", "<!-- archive:end -->"


def _row(entry: dict) -> tuple[dict, dict]:
    data = entry.get("data") or {}
    params = flatten(((data.get("params") or {}).get("params.yaml") or {}).get("data") or {})
    metrics = {}
    for path, m in (data.get("metrics") or {}).items():
        metrics[path] = flatten(m.get("data") or {})
    return params, metrics


def _fmt(v) -> str:
    return "" if v is None else (f"{v:.4f}" if isinstance(v, float) and v < 1 else str(v))


def augmentation(params: dict) -> str:
    """Offline (the augment stage's multiplier) plus what the CNN adds in training and prediction."""
    multiplier = params.get("augment.multiplier")
    mirrored = params.get("augment.mirror") and multiplier and multiplier > 1
    parts = [f"offline x{multiplier}" + (" (mirror first)" if mirrored else "")]
    if params.get("train.model") != "cnn" and params.get("train.head.flip_tta"):
        parts.append("flip TTA")
    if params.get("train.model") == "cnn":
        flip = "alternating flip" if params.get("train.cnn.alternating_flip") else "flip"
        online = [flip if params.get("train.cnn.online_flip") else "",
                  f"shift ±{params['train.cnn.online_shift_px']} px" if params.get("train.cnn.online_shift_px") else ""]
        if any(online):
            parts.append("online " + " + ".join(o for o in online if o))
        if params.get("train.cnn.random_erasing"):
            parts.append(f"erasing p={params['train.cnn.random_erasing']}")
        tta = (["flip"] if params.get("train.cnn.flip_tta") else []) + \
            ([f"±{params['train.cnn.tta_shift_px']} px shifts"] if params.get("train.cnn.tta_shift_px") else [])
        if tta:
            parts.append(" + ".join(tta) + " TTA")
    return ", ".join(parts)


def table(entries: list[dict]) -> str:
    commits = [e for e in entries if e["rev"] != "workspace"]
    lines = ["| experiment | commit | model | parameters | `dvc exp run` arguments | augmentation | test accuracy | "
             "test macro-F1 | shirt F1 | train wall time (s) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for i, commit in enumerate(commits):
        base_params, _ = _row(commit)
        rows = [("baseline (HEAD)", commit)] if i == 0 else []
        for exp in commit.get("experiments") or []:
            # A queued or running experiment shows its baseline's metrics until it ends, a failed one
            # forever: only a finished run has numbers of its own.
            if (exp.get("executor") or {}).get("state") not in (None, "success"):
                continue
            for rev in exp.get("revs") or []:
                rows.append((rev.get("name") or rev["rev"][:7], rev))
        for name, entry in rows:
            params, metrics = _row(entry)
            ev, tr = metrics.get("metrics/evaluate.json", {}), metrics.get("metrics/train.json", {})
            if not ev:
                continue
            changed = [f"-S {k}={json.dumps(v, separators=(',', ':')) if isinstance(v, list) else v}"
                       for k, v in sorted(params.items()) if base_params.get(k) != v]
            ensemble = params.get("train.ensemble", 1) or 1
            model = f"{params.get('train.model', 'head')}" + (f" x{ensemble}" if ensemble > 1 else "")
            lines.append(f"| {name} | {commit['rev'][:7]} | {model} | {_fmt(tr.get('parameters'))} | "
                         f"{' '.join(changed) or '(as committed)'} | {augmentation(params)} | "
                         f"{_fmt(ev.get('test.accuracy'))} | "
                         f"{_fmt(ev.get('test.macro_f1'))} | {_fmt(ev.get('test.f1.shirt'))} | "
                         f"{_fmt(tr.get('train_seconds'))} |")
    return "\n".join(lines)


def _key(line: str) -> tuple[str, str]:
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    return cells[0], cells[1] if len(cells) > 1 else ""


def merge(text: str, old: str) -> str:
    """text plus the experiment rows of old (a previous table) that text does not have. The old
    baseline row is dropped: the baseline is always this clone's HEAD."""
    have = {_key(line) for line in text.splitlines()[2:]}
    kept = [line for line in old.splitlines()[2:]
            if line.startswith("|") and _key(line)[0] != "baseline (HEAD)" and _key(line) not in have]
    return "\n".join([text, *kept])


def partition(text: str) -> tuple[str, str]:
    """(rows of the baseline's commit, rows of older commits), each with the header: the main table
    shows what the current code measured; superseded code's rows go to the archive."""
    lines = text.splitlines()
    header, rows = lines[:2], [line for line in lines[2:] if line.startswith("|")]
    head = next((_key(line)[1] for line in rows if _key(line)[0] == "baseline (HEAD)"), None)
    current = [line for line in rows if _key(line)[1] == head]
    older = [line for line in rows if _key(line)[1] != head]
    return "\n".join(header + current), "\n".join(header + older)


def _replace_block(body: str, start: str, end: str, text: str) -> str:
    block = re.search(re.escape(start) + "(.*?)" + re.escape(end), body, flags=re.S)
    if block is None:
        return f"{body.rstrip()}\n\n## Archive: rows of superseded code\n\n{start}\n{text}\n{end}\n"
    return f"{body[:block.start()]}{start}\n{text}\n{end}{body[block.end():]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imgclf results-table", description=__doc__.splitlines()[0])
    parser.add_argument("--doc", default="docs/results.md", help="the page whose table is regenerated")
    parser.add_argument("--dvc", default="dvc")
    args = parser.parse_args(argv)
    doc = Path(args.doc)
    body = doc.read_text()
    block = re.search(re.escape(START) + "(.*?)" + re.escape(END), body, flags=re.S)
    if block is None:
        print(f"error: {doc}: markers {START} / {END} not found", file=sys.stderr)
        return 2
    shown = subprocess.run([args.dvc, "exp", "show", "--all-commits", "--json"], capture_output=True,
                           text=True, check=True)
    archive = re.search(re.escape(ARCHIVE_START) + "(.*?)" + re.escape(ARCHIVE_END), body, flags=re.S)
    old = block.group(1).strip() + ("\n" + "\n".join(archive.group(1).strip().splitlines()[2:]) if archive else "")
    current, older = partition(merge(table(json.loads(shown.stdout)), old))
    body = _replace_block(body, START, END, current)
    write_text(doc, _replace_block(body, ARCHIVE_START, ARCHIVE_END, older))
    print(current)
    return 0


if __name__ == "__main__":
    sys.exit(main())
