"""A folder of real Fashion-MNIST photos and copies of them made the ways users make them, with
and without `_nohash_` names; `dvc repro split` on it, then: is every copy beside its original?

    python bench/copies_folder.py [--photos 300] [--out bench/out/copies_folder]

Builds <out>/images/<class>/<photo>.png (official training images) plus one copy per photo,
cycling through the kinds of bench/near_duplicate_recall.py; even photos' copies are named
`<photo>_nohash_<kind>.<ext>`, odd ones `copy_<n>.<ext>` (no marker: only the audit can link them).
Then a scratch DVC project (this repo's dvc.yaml, stages, src and params.yaml with
dataset.kind=image_folder) runs `dvc repro split`, and the split manifest is checked.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from near_duplicate_recall import KINDS  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--photos", type=int, default=300)
    parser.add_argument("--out", default="bench/out/copies_folder")
    args = parser.parse_args()
    from imgclf.core.provenance import announce, ran_with
    run = announce(ran_with(args, {"params.yaml": "the repository's, with dataset.kind image_folder"}))
    from imgclf.data.manifest import load_set

    out = Path(args.out).resolve()
    shutil.rmtree(out, ignore_errors=True)
    data = load_set(REPO / "data/split")
    m = data.manifest
    train = np.flatnonzero((m["official_split"] == "train").to_numpy())[:args.photos]
    kinds = list(KINDS)
    rng = np.random.default_rng(0)
    pairs = []
    for n, i in enumerate(train):
        cls = m["class_name"][i]
        d = out / "images" / cls
        d.mkdir(parents=True, exist_ok=True)
        original = d / f"photo{n}.png"
        cv2.imwrite(str(original), data.images[i])
        kind = kinds[n % len(kinds)]
        copy = np.ascontiguousarray(KINDS[kind](data.images[i], rng))
        ext = ".jpg" if kind == "jpeg" else ".png"
        name = f"photo{n}_nohash_{kind}{ext}" if n % 2 == 0 else f"copy_{n}{ext}"
        params = [cv2.IMWRITE_JPEG_QUALITY, 100] if ext == ".jpg" else []
        cv2.imwrite(str(d / name), copy, params)
        pairs.append((f"{cls}/{original.name}", f"{cls}/{name}", kind, n % 2 == 0))
    project = out / "project"
    project.mkdir()
    for item in ("dvc.yaml", "stages", "src"):
        src = REPO / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, project / item)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["dataset"].update(kind="image_folder", source=str(out / "images"), image_size=28, colour="grey")
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "repro", "split"]):
        result = subprocess.run(cmd, cwd=project, capture_output=True, text=True)
        if result.returncode:
            sys.exit(f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}")
    print("\n".join(line for line in result.stdout.splitlines() if line.startswith("split:")))
    split = load_set(project / "data/split").manifest.set_index("id")["split"]
    rows = []
    for original, copy, kind, named in pairs:
        rows.append({"kind": kind, "named": named, "together": bool(split[original] == split[copy])})
    together = sum(r["together"] for r in rows)
    summary = {"ran_with": run, "copies": len(rows), "beside_original": together,
               "by_kind": {k: f"{sum(r['together'] for r in rows if r['kind'] == k)}/{sum(r['kind'] == k for r in rows)}"
                           for k in kinds},
               "named": f"{sum(r['together'] for r in rows if r['named'])}/{sum(r['named'] for r in rows)}",
               "unnamed": f"{sum(r['together'] for r in rows if not r['named'])}/{sum(not r['named'] for r in rows)}",
               "leakage": json.loads((project / "metrics/leakage.json").read_text())}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "leakage"}, indent=2))


if __name__ == "__main__":
    main()
