"""DVC stage `split`: official test stays test; other groups go to train/val(/test) by a stable
hash. Groups join a photo's copies by name, identical pixels and (in `group` mode) the
near-duplicate audit, whose recall on the pipeline's own variants is measured on every run."""

from pathlib import Path

import numpy as np

from imgclf.config.params import Checks
from imgclf.core import paths
from imgclf.core.atomic import require_space, write_csv, write_json
from imgclf.core.npy_rows import NpyRows, npy_row_writer
from imgclf.data import fashion_mnist, image_folder
from imgclf.data.audit import NO_AUDIT, audit
from imgclf.data.augmenters import build_augmenter
from imgclf.data.folder_walk import not_copied
from imgclf.data.image_folder import image_shape
from imgclf.data.manifest import IMAGES, ImageSet, save_set
from imgclf.data.near_duplicates import AuditConfig
from imgclf.data.split import assign_splits, near_duplicate_report, require_train_and_val, split_summary
from imgclf.review.previews import near_duplicate_preview, save_png, split_preview
from stages import stage


def main(params):
    d = params.dataset
    if d.kind != "image_folder":
        data = fashion_mnist.load(paths.RAW, d.train_limit, d.test_limit)
        split(params, data, {"files": len(data.images), "images": len(data.images), "skipped_bad_images": 0,
                             "ignored_files": 0, "ignored_class_folders": 0, "pre_split": True})
        return
    groups = image_folder.read_groups_csv(Path(d.groups_csv)) if d.groups_csv else None
    found = image_folder.scan(paths.RAW / "images", not_copied(paths.RAW))
    # Decoded straight into the output file and read back a chunk at a time: the stage never holds
    # the folder's pixels, whatever its size. The file takes its name only if the whole stage succeeds.
    shape = (len(found), *image_shape(d.image_size, d.colour))
    require_space(paths.SPLIT / IMAGES, int(np.prod(shape, dtype=np.int64)), f"{len(found):,} decoded images")
    with npy_row_writer(paths.SPLIT / IMAGES, shape, np.uint8) as out:
        decoding = image_folder.Decoding(d.image_size, d.colour, d.max_image_megapixels)
        manifest, folder = image_folder.decode_into(found, out, decoding, d.on_bad_image, groups, origin=d.source)
        out.keep_first(len(manifest))
        for item in folder.skipped:
            print(f"skipped: {item['path']}: {item['reason']}")
        for item in folder.ignored_folders:
            print(f"class folder left out: {item['path']}: {item['reason']}")
        with NpyRows(out.path) as images:
            split(params, ImageSet(images, manifest), folder.as_metrics(), images_written=True)
        write_csv(paths.SPLIT / image_folder.NOT_USED, folder.not_used())


def split(params, data: ImageSet, data_report: dict, images_written: bool = False) -> None:
    p = params.split
    found = NO_AUDIT if p.near_duplicates == "off" else audit(
        data, AuditConfig(max_shift=p.near_duplicate_max_shift, neighbours=p.near_duplicate_neighbours,
                          max_rms=p.near_duplicate_max_rms),
        [a.model_dump() for a in params.augment.augmenters], params.augment.seed, p.audit_recall_pairs)
    pairs = found.pairs
    links = (pairs.a, pairs.b) if p.near_duplicates == "group" else None
    result = assign_splits(data, p.val_fraction, p.seed, links, test_fraction=p.test_fraction,
                           fail_on_label_conflict=p.near_duplicates == "group")
    stats, leakage = split_summary(result.manifest)
    require_train_and_val(stats, len(data.images))
    pair_report, in_test = near_duplicate_report(result.manifest, pairs.a, pairs.b, p.near_duplicates)
    leakage.update(pair_report, audit_recall_own_variants=found.recall, audit_recall_pairs=found.probes)
    save_set(paths.SPLIT, result, write_images=not images_written)
    write_json(paths.METRICS / "split.json", stats)
    write_json(paths.METRICS / "data.json", data_report)
    write_json(paths.METRICS / "leakage.json", leakage)
    save_png(paths.PREVIEWS / "split_sources.png", split_preview(result.images, result.manifest))
    save_png(paths.PREVIEWS / "near_duplicates.png", near_duplicate_preview(result.images, result.manifest, pairs, in_test, p))
    print(f"split: {data_report['files']} files: {data_report['images']} images read, "
          f"{data_report['skipped_bad_images']} bad images skipped, {data_report['ignored_files']} other files "
          f"ignored ({', '.join(f'{n} {r}' for r, n in data_report.get('ignored_by_reason', {}).items()) or 'none'})"
          f"; {data_report['ignored_class_folders']} class folders left out"
          + (f" (each listed in {data_report['complete_list']})" if "complete_list" in data_report else ""))
    searched = ("near-duplicate search off" if p.near_duplicates == "off" else
                f"{len(pairs)} near-duplicate pairs ({p.near_duplicates} mode), {int(in_test.sum())} within the "
                f"official test set, audit recall on {found.probes} own variants {found.recall}, {found.seconds:.1f} s")
    across = sum(leakage[f"near_duplicate_pairs_{x}"] for x in ("train_val", "test_train", "test_val"))
    print(f"split: {stats['train_images']} train, {stats['val_images']} val, {stats['test_images']} test, "
          f"{stats['excluded_images']} excluded (grouped with a test image), {stats['groups']} groups; "
          f"{leakage['sources_in_more_than_one_split']} sources, {leakage['identical_images_across_splits']} "
          f"identical images and {across} near-duplicate pairs across splits; {searched}")


if __name__ == "__main__":
    stage.run("split", main, checks=Checks(build_augmenter=build_augmenter))
