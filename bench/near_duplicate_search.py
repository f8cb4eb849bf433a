"""Sub-quadratic candidate search at scale, and whether it finds what an exhaustive one finds.

    python bench/near_duplicate_search.py [--images 1000000]      (after `dvc repro split`)

1. Scale: the real Fashion-MNIST (70,000) plus mirrored / shifted (zero fill, up to 4 px) /
   re-exposed variants of it up to --images. Descriptors and window keys are computed first (that
   is per-image work, linear); then the candidate search is timed alone: the exact-overlap join
   (sort + binary search) and the descriptor neighbours (faiss inverted file above EXACT_MAX
   images). Reported: seconds, candidate pairs, peak RSS of the process.
2. Same pairs: on the 70,000 real images, the inverted file's neighbour pairs and confirmed
   near-duplicates against those of the exhaustive search (IndexFlatL2); the exact-overlap join is
   exact by construction.
3. The window search (shifted and lossy copies), whose work grows as n^1.5: timed at 70,000 and
   at WINDOW_MAX images; above WINDOW_MAX the audit leaves it out.
Writes bench/out/near_duplicate_search.json and a table in docs/near_duplicates.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np


def _rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _variants(images: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """n images: the originals, then mirrored/shifted/re-exposed copies of random originals."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, *images.shape[1:]), np.uint8)
    out[:len(images)] = images
    for start in range(len(images), n, 65536):
        count = min(65536, n - start)
        src = images[rng.integers(0, len(images), count)]
        flip = rng.random(count) < 0.5
        src[flip] = src[flip, :, ::-1]
        dy, dx = rng.integers(-4, 5), rng.integers(-4, 5)        # one shift per block, zero fill
        shifted = np.zeros_like(src)
        h, w = src.shape[1:]
        shifted[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
            src[:, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
        gain = rng.uniform(0.9, 1.1, count)[:, None, None]
        out[start:start + count] = np.clip(gain * shifted, 0, 255).astype(np.uint8)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=1_000_000)
    args = parser.parse_args()

    import imgclf.data.near_duplicates as nd
    from imgclf.core.provenance import announce, ran_with
    from imgclf.data.manifest import load_set
    from imgclf.data.near_duplicates import (
        AuditConfig,
        copy_descriptors,
        near_duplicates,
        neighbour_pairs,
        overlap_keys,
        overlap_pairs,
        window_pairs,
    )

    config = AuditConfig()
    real = np.asarray(load_set("data/split").images)
    run = announce(ran_with(args, {"near_duplicates": config.__dict__}))
    result = {"ran_with": run, "cpu": run["cpu"], "config": config.__dict__}

    # 2. same pairs on the real images: inverted file vs exhaustive
    desc = copy_descriptors(real)
    flat = neighbour_pairs(desc, config.neighbours, config.max_descriptor_distance)
    ivf = neighbour_pairs(desc, config.neighbours, config.max_descriptor_distance, exact_max=0)
    flat_set, ivf_set = set(zip(*map(np.ndarray.tolist, flat))), set(zip(*map(np.ndarray.tolist, ivf)))
    exhaustive, _ = near_duplicates(real, config)
    saved, nd.EXACT_MAX = nd.EXACT_MAX, 0
    try:
        approximate, _ = near_duplicates(real, config)
    finally:
        nd.EXACT_MAX = saved
    ex = set(zip(exhaustive.a.tolist(), exhaustive.b.tolist()))
    ap = set(zip(approximate.a.tolist(), approximate.b.tolist()))
    result["same_pairs_70k"] = {
        "neighbour_pairs_exhaustive": len(flat_set), "neighbour_pairs_inverted_file": len(ivf_set),
        "neighbour_recall": round(len(flat_set & ivf_set) / max(len(flat_set), 1), 4),
        "confirmed_exhaustive": len(ex), "confirmed_inverted_file": len(ap),
        "confirmed_recall": round(len(ex & ap) / max(len(ex), 1), 4), "confirmed_extra": len(ap - ex)}
    print(json.dumps(result["same_pairs_70k"]))
    del desc, flat, ivf, flat_set, ivf_set

    # 1. scale
    t = time.perf_counter()
    images = _variants(real, args.images)
    centre, probes = overlap_keys(images, config.max_shift)
    desc = copy_descriptors(images)
    del images
    prepare = time.perf_counter() - t
    t = time.perf_counter()
    ea, _ = overlap_pairs(centre, probes)
    overlap_s = time.perf_counter() - t
    t = time.perf_counter()
    na, _ = neighbour_pairs(desc, config.neighbours, config.max_descriptor_distance)
    neighbour_s = time.perf_counter() - t
    result["scale"] = {"images": args.images, "prepare_seconds": round(prepare, 1),
                       "overlap_join_seconds": round(overlap_s, 1), "overlap_candidates": int(len(ea)),
                       "neighbour_search_seconds": round(neighbour_s, 1), "neighbour_candidates": int(len(na)),
                       "search_seconds": round(overlap_s + neighbour_s, 1), "peak_rss_gib": round(_rss_gib(), 2)}
    print(json.dumps(result["scale"]))

    # 3. the window search, at the real size and at the largest size the audit runs it
    result["window"] = []
    for n_w in (len(real), nd.WINDOW_MAX):
        images = _variants(real, n_w)
        t = time.perf_counter()
        wa, _, _ = window_pairs(images, len(images), config.max_shift, config.max_window_distance)
        result["window"].append({"images": n_w, "seconds": round(time.perf_counter() - t, 1),
                                 "candidates": int(len(wa))})
        print(json.dumps(result["window"][-1]))
        del images
    Path("bench/out").mkdir(parents=True, exist_ok=True)
    Path("bench/out/near_duplicate_search.json").write_text(json.dumps(result, indent=2) + "\n")
    s, p = result["scale"], result["same_pairs_70k"]
    block = (f"<!-- search table: bench/near_duplicate_search.py -->\n"
             f"Candidate search on {s['images']:,} images (CPU kind {result['cpu']}; commit {run['commit'][:12]}{'+dirty' if run['commit'].endswith('+dirty') else ''}; the real 70,000 plus "
             f"mirrored/shifted/re-exposed copies): exact-overlap join {s['overlap_join_seconds']} s, descriptor "
             f"neighbours (faiss inverted file, 8 of {int(4 * np.sqrt(s['images']))} lists probed) {s['neighbour_search_seconds']} s, **{s['search_seconds']} s in all**, "
             f"peak RSS of the whole process {s['peak_rss_gib']} GiB (descriptors and keys computed beforehand in "
             f"{s['prepare_seconds']} s, linear in the images).\n\n"
             f"On the 70,000 real images the inverted file returns {p['neighbour_recall']:.2%} of the exhaustive "
             f"search's neighbour pairs, and {p['confirmed_recall']:.2%} of its {p['confirmed_exhaustive']} confirmed "
             f"near-duplicate pairs ({p['confirmed_extra']} extra). The split stage searches exhaustively up to "
             f"{nd.EXACT_MAX:,} images.\n\n"
             f"The window search (shifted and lossy copies) is not sub-quadratic: 2 x 81 nearest-neighbour "
             f"searches per image in an inverted file of the centre crops, n^1.5 work. "
             + ", ".join(f"{w['seconds']} s at {w['images']:,} images" for w in result["window"])
             + f" (same CPU). The audit runs it up to {nd.WINDOW_MAX:,} images and leaves it out above, where "
             f"shifted copies are still found when saved losslessly (exact overlap) and lossy ones by the descriptor "
             f"neighbours (recall per kind below WINDOW_MAX: the table above).\n<!-- end search table -->")
    doc = Path("docs/near_duplicates.md")
    text = doc.read_text() if doc.exists() else ""
    if "<!-- search table" in text:
        head, rest = text.split("<!-- search table: bench/near_duplicate_search.py -->", 1)
        text = head + block + rest.split("<!-- end search table -->", 1)[1]
    else:
        text += "\n" + block + "\n"
    doc.write_text(text)


if __name__ == "__main__":
    main()
