"""DVC stage `augment`: each train source becomes augment.multiplier images; val/test untouched."""

import numpy as np

from imgclf.config.params import Checks
from imgclf.core import paths
from imgclf.core.atomic import require_space, write_csv, write_json
from imgclf.core.npy_rows import NpyRows, npy_row_writer
from imgclf.core.parallel import default_workers
from imgclf.data.augment import Recipe, augment_into, output_rows
from imgclf.data.augmenters import build_augmenter
from imgclf.data.manifest import IMAGES, MANIFEST, load_set
from imgclf.review.previews import augment_preview, save_png
from stages import stage


def main(params):
    p = params.augment
    data = load_set(paths.SPLIT, lazy=True)
    shape = (output_rows(data.manifest, p.multiplier), *data.images.shape[1:])
    dest = paths.AUGMENTED / IMAGES
    require_space(dest, int(np.prod(shape, dtype=np.int64)) * data.images.dtype.itemsize,
                  f"{shape[0]:,} augmented images (augment.multiplier {p.multiplier})")
    workers = default_workers()
    with npy_row_writer(dest, shape, data.images.dtype) as out:
        recipe = Recipe(p.multiplier, p.seed, [a.model_dump() for a in p.augmenters], p.mirror)
        manifest, summary = augment_into(data, out, recipe, workers=workers)
    write_csv(paths.AUGMENTED / MANIFEST, manifest)
    seconds = summary.pop("seconds")
    machine = {"augment_seconds": seconds, "augment_workers": workers,
               **({"worker_peak_rss_mib": summary.pop("worker_peak_rss_mib")} if "worker_peak_rss_mib" in summary else {})}
    write_json(paths.METRICS / "augment.json", summary)
    save_png(paths.PREVIEWS / "augment_variants.png", augment_preview(NpyRows(dest), manifest))
    print(f"augment: {summary['train_sources']} train sources x {p.multiplier} = {summary['train_images']} "
          f"train images ({summary['variants_made']} variants made, "
          f"{summary['variants_identical_to_original']} identical to their original), "
          f"{summary['excluded_images_dropped']} excluded images left out, {seconds} s on {workers} processes")
    return machine


if __name__ == "__main__":
    stage.run("augment", main, checks=Checks(build_augmenter=build_augmenter))
