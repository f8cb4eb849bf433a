"""The near-duplicate audit's recall per kind of copy and per kind of folder, and what it flags
among Fashion-MNIST's official test images (a false-positive proxy).

    python bench/near_duplicate_recall.py [--per-kind 300] [--kinds fashion28,digits48]
        [--before bench/out/near_duplicate_recall_before.json]      (after `dvc repro split`)

Copies of training images are made the ways users make them (below), each kind alone and every
pair of kinds, and searched against the whole folder exactly as the split stage measures its
recall on the augmenters' own variants (as queries: they never change the audit itself); the
augmenters' own variants (params.yaml's, as the split stage makes them) are a row too. The
folders are bench/support/folder_kinds.py's: Fashion-MNIST at 28 px grey and at 96 px tinted RGB, blocky
48 px digits, 64 px photo tiles. Writes docs/near_duplicates.md's table and
bench/out/near_duplicate_recall.json; --before adds an earlier run's figures to each cell.
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
from support import folder_kinds  # bench/support: helpers, not benchmarks


def _shift(x, r, fill):
    dy = dx = 0
    while dy == 0 and dx == 0:
        dy, dx = (int(v) for v in r.integers(-4, 5, 2))
    border = {"zero": cv2.BORDER_CONSTANT, "edge": cv2.BORDER_REPLICATE, "wrap": cv2.BORDER_WRAP}[fill]
    return cv2.warpAffine(x, np.float32([[1, 0, dx], [0, 1, dy]]), (x.shape[1], x.shape[0]), borderMode=border)


def _exposure(x, r):   # brightness and contrast each within +-10 %
    gain, offset = r.uniform(0.9, 1.1), r.uniform(-25.5, 25.5)
    return np.clip(gain * (x.astype(np.float32) - 127.5) + 127.5 + offset, 0, 255).round().astype(np.uint8)


def _jpeg(x, r):
    ok, buf = cv2.imencode(".jpg", x, [cv2.IMWRITE_JPEG_QUALITY, int(r.integers(70, 96))])
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)


def _from_larger(x, r):   # the copy was saved 2-4x larger; the loader brings it back to size
    f = r.uniform(2, 4)
    big = cv2.resize(x, None, fx=f, fy=f, interpolation=cv2.INTER_CUBIC)
    return cv2.resize(big, (x.shape[1], x.shape[0]), interpolation=cv2.INTER_AREA)


def _low_res(x, r):       # saved at 50-82 % of the size, loaded back (the split stage upscales linearly)
    s = max(2, int(round(r.uniform(0.5, 0.82) * x.shape[0])))
    return cv2.resize(cv2.resize(x, (s, s), interpolation=cv2.INTER_AREA), (x.shape[1], x.shape[0]),
                      interpolation=cv2.INTER_LINEAR)


def _thumbnail(x, r):     # saved at 20-40 % of the size (a 6-11 px thumbnail of a 28 px image), loaded back
    s = max(2, int(round(r.uniform(0.2, 0.4) * x.shape[0])))
    return cv2.resize(cv2.resize(x, (s, s), interpolation=cv2.INTER_AREA), (x.shape[1], x.shape[0]),
                      interpolation=cv2.INTER_LINEAR)


KINDS = {"mirror": lambda x, r: x[:, ::-1], "shift_zero": lambda x, r: _shift(x, r, "zero"),
         "shift_edge": lambda x, r: _shift(x, r, "edge"), "shift_wrap": lambda x, r: _shift(x, r, "wrap"),
         "exposure": _exposure, "jpeg": _jpeg, "from_larger": _from_larger}


OWN = "own variants (params.yaml's augmenters)"


def measure(data, per_kind: int, config, augment) -> dict:
    """Recall per copy kind on one folder, the pairs it flags, and the time the audit took."""
    from imgclf.data.audit import probe_variants
    from imgclf.data.near_duplicates import near_duplicates

    images, m = np.asarray(data.images), data.manifest
    pool = np.flatnonzero(m["official_split"].isin(["train", "pool"]).to_numpy())
    combos = [(k,) for k in KINDS] + list(itertools.combinations(KINDS, 2)) + [("low_res",), ("thumbnail",)]
    funcs = {**KINDS, "low_res": _low_res, "thumbnail": _thumbnail}
    rng = np.random.default_rng(0)
    copies, sources, kind = [], [], []
    for ci, combo in enumerate(combos):
        r = np.random.default_rng(1000 + ci)
        for i in rng.choice(pool, min(per_kind, len(pool)), replace=False):
            img = images[i]
            for name in combo:
                img = np.ascontiguousarray(funcs[name](img, r))
            copies.append(img)
            sources.append(i)
            kind.append(ci)
    variants, variant_sources = probe_variants(data, [a.model_dump() for a in augment.augmenters], augment.seed, 2000)
    queries = np.concatenate([np.stack(copies), variants]) if len(variants) else np.stack(copies)
    sources = np.concatenate([sources, variant_sources]).astype(np.int64)
    kind = np.concatenate([kind, np.full(len(variant_sources), len(combos))])
    start = time.perf_counter()
    pairs, probe = near_duplicates(images, config, queries=queries)
    seconds = time.perf_counter() - start
    found = np.zeros(len(sources), bool)
    found[probe.a[probe.b == sources[probe.a]]] = True
    official, sha = m["official_split"].to_numpy(), m["sha256"].to_numpy()
    in_test = (official[pairs.a] == "test") & (official[pairs.b] == "test") & (sha[pairs.a] != sha[pairs.b])
    recall = {" + ".join(c): round(float(found[kind == ci].mean()), 3) for ci, c in enumerate(combos)}
    recall[OWN] = round(float(found[kind == len(combos)].mean()), 3) if len(variant_sources) else None
    return {"images": len(images), "shape": list(images.shape[1:]), "copies": len(queries),
            "search_seconds": round(seconds, 1), "pairs_among_images": len(pairs),
            "pairs_within_official_test_distinct": int(in_test.sum()) if (official == "test").any() else None,
            "recall": recall}


def _cell(after, before) -> str:
    if after is None:
        return "-"
    return f"{after:.3f}" if before is None or before == after else f"{after:.3f} ({before:.3f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-kind", type=int, default=300)
    parser.add_argument("--kinds", default=",".join(folder_kinds.KINDS))
    parser.add_argument("--before", type=Path, help="an earlier run's JSON: its figures go in brackets")
    parser.add_argument("--json", type=Path, default=Path("bench/out/near_duplicate_recall.json"))
    parser.add_argument("--no-doc", action="store_true", help="write the JSON only")
    args = parser.parse_args()

    from imgclf.config.params import load_params
    from imgclf.core.provenance import announce, ran_with
    from imgclf.data.near_duplicates import AuditConfig

    params = load_params("params.yaml")
    config = AuditConfig(max_shift=params.split.near_duplicate_max_shift, neighbours=params.split.near_duplicate_neighbours,
                         max_rms=params.split.near_duplicate_max_rms)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    run = announce(ran_with(settings, {"split": params.split.model_dump()}))
    fashion = folder_kinds.fashion28()
    kinds = args.kinds.split(",")
    folders = {}
    for name in kinds:
        folders[name] = measure(folder_kinds.build(name, fashion), args.per_kind, config, params.augment)
        print(name, json.dumps({k: v for k, v in folders[name].items() if k != "recall"}), flush=True)
    result = {"ran_with": run, "cpu": run["cpu"], "machine": platform.machine(), "per_kind": args.per_kind,
              "config": config.__dict__, "folders": folders}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    before = json.loads(args.before.read_text())["folders"] if args.before else {}
    copies = list(next(iter(folders.values()))["recall"])
    copies = [c for c in copies if "+" not in c and c != OWN] + [OWN] + [c for c in copies if "+" in c]
    header = "| copy | " + " | ".join(f"{k} ({'x'.join(map(str, folders[k]['shape']))})" for k in kinds) + " |"
    lines = [header, "|---" * (len(kinds) + 1) + "|"]
    for c in copies:
        cells = [_cell(folders[k]["recall"].get(c), before.get(k, {}).get("recall", {}).get(c)) for k in kinds]
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    summary = [("images", "images"), ("pairs among the images", "pairs_among_images"),
               ("pairs among the official test set's distinct images", "pairs_within_official_test_distinct"),
               ("audit seconds (with the copies as queries)", "search_seconds")]
    for label, key in summary:
        cells = []
        for k in kinds:
            a, b = folders[k][key], before.get(k, {}).get(key)
            cells.append("-" if a is None else f"{a:,}" if b is None or a == b else f"{a:,} ({b:,})")
        lines.append(f"| *{label}* | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    if args.no_doc:
        return
    doc = Path("docs/near_duplicates.md")
    text = doc.read_text() if doc.exists() else ""
    marker = "<!-- recall table: bench/near_duplicate_recall.py -->"
    block = (f"{marker}\nRecall per kind of copy ({args.per_kind} copies of training images per kind and folder, "
             f"fewer where the folder has fewer; searched against the whole folder; max_shift {config.max_shift}, "
             f"neighbours {config.neighbours}, max_rms {config.max_rms:g}; CPU kind {result['cpu']}; commit "
             f"{run['commit'][:12]}{'+dirty' if run['commit'].endswith('+dirty') else ''}"
             + (f"; in brackets where different: {args.before}, commit {json.loads(args.before.read_text())['ran_with']['commit'][:12]}"
                if args.before else "") + f").\n\n{table}\n<!-- end recall table -->")
    if marker in text:
        head, rest = text.split(marker, 1)
        text = head + block + rest.split("<!-- end recall table -->", 1)[1]
    else:
        text += "\n" + block + "\n"
    doc.write_text(text)


if __name__ == "__main__":
    main()
