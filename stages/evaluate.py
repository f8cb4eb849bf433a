"""DVC stage `evaluate`: accuracy, macro-F1 and per-class scores on val and the official test set;
exports the self-contained classifier and checks it agrees with the pipeline on test."""

import shutil
from contextlib import nullcontext

import numpy as np

from imgclf.config.params import Checks
from imgclf.core import paths
from imgclf.core.atomic import atomic_path, write_bytes, write_csv, write_json
from imgclf.core.npy_rows import NpyRows, Selection
from imgclf.data.label_audit import find_suspects, suspect_table
from imgclf.data.manifest import load_set
from imgclf.features.backbones import BACKBONES, extractor_for
from imgclf.features.feature_store import FeatureStore, store_path
from imgclf.models.export import build_exported_model
from imgclf.models.keras_file import save_model
from imgclf.review import embedding
from imgclf.review.evaluation import confusion_rows, per_class_table, split_metrics
from imgclf.review.predictions import MirrorViews, SplitPredictions, predict_rows, predict_split
from imgclf.review.previews import label_suspects_preview, misclassified_preview, save_png
from stages import stage

EXPORT_CHECK_IMAGES = 1000


def main(params):
    import keras

    data = load_set(paths.AUGMENTED, lazy=True)
    names = data.class_names()
    model = keras.models.load_model(paths.MODEL, safe_mode=True, compile=False)   # predicting only
    reads_images = params.train.model == "cnn"            # a cnn reads the images, a head the bottlenecks
    flip_tta = not reads_images and params.train.head.flip_tta
    extractor = None if reads_images else extractor_for(params.bottleneck)
    inputs = data.images if reads_images else NpyRows(paths.FEATURES)
    with FeatureStore(store_path(params.bottleneck.cache_dir)) if flip_tta else nullcontext() as store:
        mirror = MirrorViews(data.images, extractor, store) if flip_tta else None
        test, val = (predict_split(model, inputs, data.manifest, split, mirror) for split in ("test", "val"))
    metrics = {p.split: split_metrics(p.y_true, p.y_pred, names) for p in (test, val)}
    suspect = judge_test_labels(data, test, names)
    metrics["test"]["label_suspects"] = int(suspect.sum())

    write_csv(paths.CONFUSION_TEST,
              confusion_rows(test.y_true, test.y_pred, names, ids=data.manifest["id"].to_numpy()[test.mask],
                             confidence=test.probs.max(axis=1), label_suspect=suspect))
    write_csv(paths.PER_CLASS_TEST, per_class_table(test.y_true, test.y_pred, names))
    save_png(paths.PREVIEWS / "test_errors.png",
             misclassified_preview(Selection(data.images, test.mask), test.y_true, test.probs, names))
    view = embedding.test_view(inputs, test, names, "pixel space" if reads_images else "the backbone's feature space",
                               cache_dir=paths.project_root() / ".cache" / "embedding")
    if view is None:
        print(f"evaluate: embedding view skipped: {int(test.mask.sum())} test images (needs 3)")
    else:
        write_bytes(paths.PREVIEWS / "embedding_test.png", view)

    metrics["export"] = export(model, extractor, data, test, flip_tta)
    write_json(paths.EXPORTED_INFO, {"class_names": names, "input_shape": list(data.images.shape[1:]),
                                     "input_dtype": "uint8", "model": params.train.model,
                                     "ensemble": params.train.ensemble,
                                     "flip_tta": flip_tta or (reads_images and params.train.cnn.flip_tta),
                                     "bottleneck_namespace": extractor.namespace if extractor else None})
    write_json(paths.METRICS / "evaluate.json", metrics)
    print(summary_line(metrics, mirror))
    return mirror.counts if mirror else {}


def judge_test_labels(data, test: SplitPredictions, names: list[str]) -> np.ndarray:
    """Per test image: the label audit suspects its label. Test images are out of sample for the
    trained model already, so its probabilities judge them; the worst go to a preview."""
    found = find_suspects(test.y_true, test.probs)
    rows = np.flatnonzero(test.mask)
    table = suspect_table(data.manifest["id"].to_numpy()[rows], np.full(len(rows), "test"), test.y_true, found, names)
    save_png(paths.PREVIEWS / "test_label_suspects.png",
             label_suspects_preview([("test", Selection(data.images, rows[found.rows]), table)], names,
                                    "evaluate: the most suspect test labels (given > suggested, quality)"))
    suspect = np.zeros(len(test.y_true), bool)
    suspect[found.rows] = True
    return suspect


def export(model, extractor, data, test: SplitPredictions, flip_tta: bool) -> dict:
    """Write the self-contained classifier (raw images in, probabilities out) and say how it scores."""
    if extractor is None:
        # A CNN already reads raw images: the exported classifier is models/model.keras byte for byte,
        # so its test predictions are the ones above, and an agreement of 1.0 could never be anything
        # else: say so instead (predicting the test set through every TTA view again would cost a
        # sizeable part of the CNN's time budget).
        with atomic_path(paths.EXPORTED, suffix=".keras") as tmp:
            shutil.copyfile(paths.MODEL, tmp)
        return {"same_file_as_trained_model": True, "test_accuracy": round(float((test.y_pred == test.y_true).mean()), 4)}
    exported = build_exported_model(extractor, model, tuple(data.images.shape[1:]), flip_tta=flip_tta)
    # The export is the pipeline's backbone and head wired into one graph: a wiring fault (channel
    # order, resizing, preprocessing, the mirror) changes most predictions, so test images spread
    # evenly over the set show it without running the backbone over all of them twice more.
    picked = np.unique(np.linspace(0, len(test.y_pred) - 1, min(EXPORT_CHECK_IMAGES, len(test.y_pred))).round().astype(int))
    rows = np.zeros(len(test.mask), bool)
    rows[np.flatnonzero(test.mask)[picked]] = True
    export_pred = np.argmax(predict_rows(exported, Selection(data.images, rows)), axis=1)
    save_model(exported, paths.EXPORTED)
    return {"agreement_with_pipeline_test": round(float((export_pred == test.y_pred[picked]).mean()), 4),
            "checked_test_images": len(picked)}


def summary_line(metrics: dict, mirror: MirrorViews | None) -> str:
    t, export = metrics["test"], metrics["export"]
    exported = ("exported model is the trained file" if "same_file_as_trained_model" in export else
                f"exported model agrees on {export['agreement_with_pipeline_test']:.2%} of {export['checked_test_images']} "
                f"test images")
    views = "" if mirror is None else (
        f"; mean of image and mirror ({sum(v for k, v in mirror.counts.items() if k.endswith('hits'))} mirror vectors "
        f"from the store, {sum(v for k, v in mirror.counts.items() if k.endswith('misses'))} computed)")
    return (f"evaluate: test accuracy {t['accuracy']}, macro-F1 {t['macro_f1']} on {t['images']} images; "
            f"val accuracy {metrics['val']['accuracy']}; {exported}{views}")


if __name__ == "__main__":
    stage.run("evaluate", main, keras=True, checks=Checks(backbones=BACKBONES))
