"""Augment on one process against all cores: wall time and byte identity of the outputs.

    python bench/augment_parallel.py --multiplier 4 [--split data/split]

Runs the augment stage (`python -m stages.augment`) twice in a scratch project on the real split
(data/split of this project, linked, not copied), with IMGCLF_WORKERS=1 and then with every core,
and compares the SHA-256 of data/augmented/images.npy and manifest.csv. Prints one table row.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--multiplier", type=int, default=4)
    parser.add_argument("--split", type=Path, default=REPO / "data/split")
    parser.add_argument("--work", type=Path, default=Path("/tmp/imgclf-augment-parallel"))
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    from imgclf.core.parallel import default_workers
    from imgclf.core.provenance import announce, ran_with

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["augment"]["multiplier"] = args.multiplier
    announce(ran_with(args, {"augment": params["augment"]}))
    if not (args.split / "images.npy").is_file():
        raise SystemExit(f"{args.split}/images.npy is missing: run `dvc repro split` first")
    cores = default_workers()
    results = {}
    for workers in (1, cores):
        project = args.work / f"w{workers}"
        shutil.rmtree(project, ignore_errors=True)
        (project / "data").mkdir(parents=True)
        (project / "data/split").symlink_to(args.split.resolve())
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{REPO / 'src'}", IMGCLF_WORKERS=str(workers))
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "stages.augment"], cwd=project, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        results[workers] = (seconds, sha256(project / "data/augmented/images.npy"),
                            sha256(project / "data/augmented/manifest.csv"))
        print(f"{workers} process(es): {seconds:.1f} s (stage wall time, start-up included)", flush=True)
    (t1, img1, man1), (tn, imgn, mann) = results[1], results[cores]
    same = img1 == imgn and man1 == mann
    print(f"| {args.multiplier} | {t1:.1f} | {tn:.1f} ({cores} processes) | {t1 / tn:.2f}x | "
          f"{'identical' if same else 'DIFFERENT'} (images.npy {imgn[:12]}, manifest.csv {mann[:12]}) |")
    if not same:
        raise SystemExit("outputs differ between 1 and all processes")


if __name__ == "__main__":
    main()
