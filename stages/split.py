"""DVC stage `split`: official test stays test; train groups go to train/val by a stable hash.
Also audits near-duplicates across splits (and, in `group` mode, keeps them on one side)."""

import time

import numpy as np

from pathlib import Path

from imgclf import fashion_mnist, image_folder, paths, stage
from imgclf.atomic import write_json
from imgclf.manifest import save_set
from imgclf.near_duplicates import near_duplicates, spectral_hash
from imgclf.previews import pairs_preview, save_png, split_preview
from imgclf.split import assign_splits, near_duplicate_counts, split_summary


def main(params):
    p, d = params.split, params.dataset
    if d.kind == "image_folder":
        groups = image_folder.read_groups_csv(Path(d.groups_csv)) if d.groups_csv else None
        data, folder = image_folder.load(paths.RAW / "images", d.image_size, d.colour, d.on_bad_image, groups)
        data_report = folder.as_metrics()
        for item in folder.skipped:
            print(f"skipped: {item['path']}: {item['reason']}")
    else:
        data = fashion_mnist.load(paths.RAW, d.train_limit, d.test_limit)
        data_report = {"images": len(data.images), "skipped_bad_images": 0, "ignored_non_image_files": 0,
                       "pre_split": True, "skipped": [], "ignored": []}
    pairs = None
    if p.near_duplicates != "off":
        start = time.perf_counter()
        pairs = near_duplicates(data.images, spectral_hash(data.images), np.arange(len(data.images)), None,
                                p.near_duplicate_hash_bits, p.near_duplicate_max_rms)
        search_s = time.perf_counter() - start
    links = (pairs.a, pairs.b) if pairs is not None and p.near_duplicates == "group" else None
    result = assign_splits(data, p.val_fraction, p.seed, links, test_fraction=p.test_fraction)
    stats, leakage = split_summary(result.manifest)
    if pairs is not None:
        leakage.update(near_duplicate_counts(result.manifest, pairs.a, pairs.b))
        leakage.update({"near_duplicate_mode": p.near_duplicates,
                        "near_duplicate_hash_bits": p.near_duplicate_hash_bits,
                        "near_duplicate_max_rms": p.near_duplicate_max_rms,
                        "near_duplicate_search_seconds": round(search_s, 1)})
        split = result.manifest["split"].to_numpy()
        cross = split[pairs.a] != split[pairs.b]
        save_png(paths.PREVIEWS / "near_duplicates.png", pairs_preview(
            result.images, result.manifest, pairs.a[cross], pairs.b[cross], pairs.rms[cross],
            f"split: closest near-duplicate pairs across splits (rms <= {p.near_duplicate_max_rms:g})"))
    else:
        save_png(paths.PREVIEWS / "near_duplicates.png", pairs_preview(
            result.images, result.manifest, np.empty(0, int), np.empty(0, int), np.empty(0),
            "split: near-duplicate search is off"))
    save_set(paths.SPLIT, result)
    write_json(paths.METRICS / "split.json", stats)
    write_json(paths.METRICS / "data.json", data_report)
    write_json(paths.METRICS / "leakage.json", leakage)
    save_png(paths.PREVIEWS / "split_sources.png", split_preview(result.images, result.manifest))
    near = ("" if pairs is None else
            f"; near-duplicate pairs train-val {leakage['near_duplicate_pairs_train_val']}, "
            f"train-test {leakage['near_duplicate_pairs_test_train']}, val-test "
            f"{leakage['near_duplicate_pairs_test_val']} ({p.near_duplicates} mode, {search_s:.1f} s)")
    print(f"split: {data_report['images']} images read, {data_report['skipped_bad_images']} bad files skipped, "
          f"{data_report['ignored_non_image_files']} non-image files ignored")
    print(f"split: {stats['train_images']} train, {stats['val_images']} val, {stats['test_images']} test, "
          f"{stats['excluded_images']} excluded (grouped with a test image); "
          f"{leakage['sources_in_more_than_one_split']} sources and "
          f"{leakage['identical_images_across_splits']} identical images across splits" + near)


if __name__ == "__main__":
    stage.run("split", main)
