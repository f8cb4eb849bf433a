"""DVC stage `bottleneck`: frozen-backbone features for every image, through the feature store."""

import numpy as np

from imgclf.config.params import Checks
from imgclf.core import paths, quiet_keras
from imgclf.core.atomic import require_space, save_npy, write_json
from imgclf.core.npy_rows import npy_row_writer
from imgclf.data.manifest import load_set
from imgclf.features.backbones import BACKBONES, extractor_for
from imgclf.features.bottleneck import compute_features
from imgclf.features.feature_store import FeatureStore, store_path
from stages import stage


def main(params):
    p = params.bottleneck
    data = load_set(paths.AUGMENTED, lazy=True)
    if params.train.model == "cnn":
        # A CNN reads the images; computing vectors nobody reads costs a cold run over a minute.
        # Switching back to the head re-runs this stage, served from the store.
        save_npy(paths.FEATURES, np.zeros((0, 0), np.float32))
        write_json(paths.METRICS / "bottleneck.json", {"skipped": "train.model is cnn", "images": len(data.images)})
        print(f"bottleneck: skipped for {len(data.images)} images: train.model is cnn, which reads the images")
        return
    quiet_keras.import_keras()       # here, not in stage.run: a CNN run skips the stage without TensorFlow
    extractor = extractor_for(p)
    store = store_path(p.cache_dir)
    shape = (len(data.images), extractor.dim)
    require_space(paths.FEATURES, shape[0] * shape[1] * 4, "the bottleneck features")
    with FeatureStore(store) as opened, npy_row_writer(paths.FEATURES, shape, np.float32) as out:
        _, report = compute_features(data.images, extractor, opened, out=out)
    figures = report.as_metrics()
    # What the vectors are is the change's; how many the local store already held is the machine's.
    write_json(paths.METRICS / "bottleneck.json",
               {k: figures.pop(k) for k in ("namespace", "images", "unique_images", "corrupt")})
    print(report.line())
    print(f"bottleneck: store {store}")
    return figures


if __name__ == "__main__":
    stage.run("bottleneck", main, checks=Checks(backbones=BACKBONES))
