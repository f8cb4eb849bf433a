"""The near-duplicate audit's recall per kind of copy, on the real Fashion-MNIST, and what it
flags among the official test set's distinct images (a false-positive proxy).

    python bench/near_duplicate_recall.py [--per-kind 300]     (after `dvc repro split`)

Copies of training images are made the ways users make them (below), each kind alone and every
pair of kinds, and searched against all 70,000 images exactly as the split stage measures its
recall on the augmenters' own variants (as queries: they never change the audit itself). Writes
docs/near_duplicates.md and bench/out/near_duplicate_recall.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import time
from pathlib import Path

import cv2
import numpy as np


def _shift(x, r, fill):
    dy = dx = 0
    while dy == 0 and dx == 0:
        dy, dx = (int(v) for v in r.integers(-4, 5, 2))
    border = {"zero": cv2.BORDER_CONSTANT, "edge": cv2.BORDER_REPLICATE, "wrap": cv2.BORDER_WRAP}[fill]
    return cv2.warpAffine(x, np.float32([[1, 0, dx], [0, 1, dy]]), x.shape[::-1], borderMode=border)


def _exposure(x, r):   # brightness and contrast each within +-10 %
    gain, offset = r.uniform(0.9, 1.1), r.uniform(-25.5, 25.5)
    return np.clip(gain * (x.astype(np.float32) - 127.5) + 127.5 + offset, 0, 255).round().astype(np.uint8)


def _jpeg(x, r):
    ok, buf = cv2.imencode(".jpg", x, [cv2.IMWRITE_JPEG_QUALITY, int(r.integers(70, 96))])
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)


def _from_larger(x, r):   # the copy was saved 2-4x larger; the loader brings it back to size
    f = r.uniform(2, 4)
    big = cv2.resize(x, None, fx=f, fy=f, interpolation=cv2.INTER_CUBIC)
    return cv2.resize(big, x.shape[::-1], interpolation=cv2.INTER_AREA)


def _low_res(x, r):       # harder than asked: a thumbnail (14-23 px) the loader upscales
    s = int(r.integers(14, 24))
    return cv2.resize(cv2.resize(x, (s, s), interpolation=cv2.INTER_AREA), x.shape[::-1], interpolation=cv2.INTER_LINEAR)


KINDS = {"mirror": lambda x, r: x[:, ::-1], "shift_zero": lambda x, r: _shift(x, r, "zero"),
         "shift_edge": lambda x, r: _shift(x, r, "edge"), "shift_wrap": lambda x, r: _shift(x, r, "wrap"),
         "exposure": _exposure, "jpeg": _jpeg, "from_larger": _from_larger}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-kind", type=int, default=300)
    args = parser.parse_args()

    from imgclf.provenance import announce, ran_with
    from imgclf.manifest import load_set
    from imgclf.near_duplicates import AuditConfig, near_duplicates
    from imgclf.params import load_params

    params = load_params("params.yaml").split
    config = AuditConfig(max_shift=params.near_duplicate_max_shift, neighbours=params.near_duplicate_neighbours,
                         max_rms=params.near_duplicate_max_rms)
    run = announce(ran_with(args, {"split": params.model_dump()}))
    data = load_set("data/split")
    images, m = np.asarray(data.images), data.manifest
    pool = np.flatnonzero((m["official_split"] == "train").to_numpy())
    combos = [(k,) for k in KINDS] + list(itertools.combinations(KINDS, 2)) + [("low_res",)]
    funcs = {**KINDS, "low_res": _low_res}
    rng = np.random.default_rng(0)
    copies, sources, kind = [], [], []
    for ci, combo in enumerate(combos):
        r = np.random.default_rng(1000 + ci)
        for i in rng.choice(pool, args.per_kind, replace=False):
            img = images[i]
            for name in combo:
                img = np.ascontiguousarray(funcs[name](img, r))
            copies.append(img)
            sources.append(i)
            kind.append(ci)
    sources, kind = np.array(sources), np.array(kind)
    start = time.perf_counter()
    pairs, probe = near_duplicates(images, config, queries=np.stack(copies))
    seconds = time.perf_counter() - start
    found = np.zeros(len(sources), bool)
    found[probe.a[probe.b == sources[probe.a]]] = True
    official, sha = m["official_split"].to_numpy(), m["sha256"].to_numpy()
    in_test = (official[pairs.a] == "test") & (official[pairs.b] == "test") & (sha[pairs.a] != sha[pairs.b])
    rows = [{"copy": " + ".join(c), "recall": round(float(found[kind == ci].mean()), 3)} for ci, c in enumerate(combos)]
    result = {"ran_with": run, "cpu": run["cpu"], "machine": platform.machine(), "per_kind": args.per_kind,
              "config": config.__dict__, "images": len(images), "copies": len(copies),
              "search_seconds": round(seconds, 1), "pairs_among_images": len(pairs),
              "pairs_within_official_test_distinct": int(in_test.sum()), "recall": rows}
    Path("bench/out").mkdir(parents=True, exist_ok=True)
    Path("bench/out/near_duplicate_recall.json").write_text(json.dumps(result, indent=2) + "\n")
    singles = [r for r in rows if "+" not in r["copy"]]
    table = "\n".join(f"| {r['copy']} | {r['recall']:.3f} |" for r in singles + [r for r in rows if "+" in r["copy"]])
    doc = Path("docs/near_duplicates.md")
    text = doc.read_text() if doc.exists() else ""
    marker = "<!-- recall table: bench/near_duplicate_recall.py -->"
    block = (f"{marker}\nRecall per kind of copy ({args.per_kind} copies of official training images each, "
             f"searched against all {len(images):,} images; defaults max_shift {config.max_shift}, "
             f"neighbours {config.neighbours}, max_rms {config.max_rms:g}; CPU kind {result['cpu']}; commit {run['commit'][:12]}{'+dirty' if run['commit'].endswith('+dirty') else ''}; "
             f"{seconds:.0f} s for the audit with {len(copies):,} copies as queries). Pairs flagged among the official "
             f"test set's distinct images: **{result['pairs_within_official_test_distinct']}**.\n\n"
             f"| copy | recall |\n|---|---|\n{table}\n<!-- end recall table -->")
    if marker in text:
        head, rest = text.split(marker, 1)
        text = head + block + rest.split("<!-- end recall table -->", 1)[1]
    else:
        text += "\n" + block + "\n"
    doc.write_text(text)
    print(json.dumps({k: v for k, v in result.items() if k != "recall"}, indent=2))
    print(table)


if __name__ == "__main__":
    main()
