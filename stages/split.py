"""DVC stage `split`: official test stays test; train groups go to train/val by a stable hash."""

from imgclf import fashion_mnist, paths, stage
from imgclf.atomic import write_json
from imgclf.manifest import save_set
from imgclf.previews import save_png, split_preview
from imgclf.split import assign_splits, split_summary


def main(params):
    data = fashion_mnist.load(paths.RAW, params.dataset.train_limit, params.dataset.test_limit)
    result = assign_splits(data, params.split.val_fraction, params.split.seed)
    stats, leakage = split_summary(result.manifest)
    save_set(paths.SPLIT, result)
    write_json(paths.METRICS / "split.json", stats)
    write_json(paths.METRICS / "leakage.json", leakage)
    save_png(paths.PREVIEWS / "split_sources.png", split_preview(result.images, result.manifest))
    print(f"split: {stats['train_images']} train, {stats['val_images']} val, {stats['test_images']} test, "
          f"{stats['excluded_images']} excluded (identical to a test image); "
          f"{leakage['sources_in_more_than_one_split']} sources and "
          f"{leakage['identical_images_across_splits']} identical images across splits")


if __name__ == "__main__":
    stage.run("split", main)
