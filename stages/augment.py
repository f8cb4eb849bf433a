"""DVC stage `augment`: each train source becomes augment.multiplier images; val/test untouched."""

from imgclf import paths, stage
from imgclf.atomic import write_json
from imgclf.augment import augment_set
from imgclf.manifest import load_set, save_set
from imgclf.previews import augment_preview, save_png


def main(params):
    p = params.augment
    data = load_set(paths.SPLIT)
    result, summary = augment_set(data, p.multiplier, p.seed, [a.model_dump() for a in p.augmenters])
    save_set(paths.AUGMENTED, result)
    seconds = summary.pop("seconds")
    write_json(paths.METRICS / "augment.json", summary)
    save_png(paths.PREVIEWS / "augment_variants.png", augment_preview(result.images, result.manifest))
    print(f"augment: {summary['train_sources']} train sources x {p.multiplier} = {summary['train_images']} "
          f"train images ({summary['variants_made']} variants made, "
          f"{summary['variants_identical_to_original']} identical to their original), "
          f"{summary['excluded_images_dropped']} excluded images left out, {seconds} s")
    return {"augment_seconds": seconds}


if __name__ == "__main__":
    stage.run("augment", main)
