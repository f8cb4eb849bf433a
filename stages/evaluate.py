"""DVC stage `evaluate`: accuracy, macro-F1 and per-class scores on val and the official test set;
exports the self-contained classifier and checks it agrees with the pipeline on test."""

import shutil

import numpy as np

from imgclf import embedding, paths, stage
from imgclf.atomic import atomic_path, write_bytes, write_csv, write_json
from imgclf.keras_file import save_model
from imgclf.backbones import extractor_for
from imgclf.bottleneck import compute_features, store_path
from imgclf.evaluation import confusion_rows, per_class_table, split_metrics
from imgclf.export import build_exported_model
from imgclf.feature_store import FeatureStore
from imgclf.manifest import load_set
from imgclf.npy_rows import NpyRows, Selection, chunk_rows
from imgclf.previews import misclassified_preview, save_png


# One batch size for the pipeline's predictions and the export check: under mixed_bfloat16 a
# CNN's predictions depend on it (a few test images change with the batch size).
PREDICT_BATCH = 1024


def write_embedding_view(mask, y_true, y_pred, names, features, space: str) -> None:
    """The projector view of a fixed sample of the test set in the space the model reads: the
    frozen backbone's features for the head, the pixels for a CNN (the bottleneck stage computes
    no features for a CNN)."""
    rows = np.flatnonzero(mask)
    pick = embedding.sample_rows(len(rows))
    if len(pick) < 3:
        print(f"evaluate: embedding view skipped: {len(pick)} test images (needs 3)")
        return
    xy = embedding.project(np.asarray(features[rows[pick]]))
    title = f"Test images in {space} (t-SNE of {len(pick):,} of {len(rows):,})"
    write_bytes(paths.PREVIEWS / "embedding_test.png", embedding.render(xy, y_true[pick], y_pred[pick], names, title))


def predict_rows(model, rows: Selection) -> np.ndarray:
    """Predictions for rows on disk, a chunk at a time (memory does not grow with the data); every
    chunk a whole number of PREDICT_BATCH batches, so the batches are those of one predict call."""
    per_chunk = max(1, chunk_rows(int(np.prod(rows.shape[1:])) * rows.dtype.itemsize) // PREDICT_BATCH) * PREDICT_BATCH
    parts = [model.predict(chunk, batch_size=PREDICT_BATCH, verbose=0) for chunk in rows.chunks(per_chunk)]
    return np.concatenate(parts) if parts else np.zeros((0, model.output_shape[-1]), np.float32)


def mirrored_probabilities(model, images: Selection, extractor, store) -> tuple[np.ndarray, int, int]:
    """The head's probabilities for the mirror images of `images`, and the store's (hits, misses):
    their vectors come through the feature store like every other (by content hash), so a re-run
    computes none of them."""
    mirrored = np.ascontiguousarray(np.asarray(images)[:, :, ::-1])
    features, report = compute_features(mirrored, extractor, store, show_progress=False)
    return model.predict(features, batch_size=PREDICT_BATCH, verbose=0), report.hits, report.misses


def main(params):
    import keras

    data = load_set(paths.AUGMENTED, lazy=True)
    model = keras.models.load_model(paths.MODEL, safe_mode=True, compile=False)   # predicting only
    on_images = params.train.model == "cnn"  # a cnn reads the images, a head the bottlenecks
    inputs = data.images if on_images else NpyRows(paths.FEATURES)
    m, names = data.manifest, data.class_names()
    flip_tta = not on_images and params.train.head.flip_tta
    extractor = None if on_images else extractor_for(params.bottleneck)
    metrics, machine = {}, {}
    for split in ("test", "val"):
        mask = (m["split"] == split).to_numpy()
        y_true = m["label"].to_numpy()[mask]
        probs = predict_rows(model, Selection(inputs, mask))
        if flip_tta:
            with FeatureStore(store_path(params.bottleneck.cache_dir)) as store:
                mirrored, hits, misses = mirrored_probabilities(model, Selection(data.images, mask), extractor, store)
            probs = (probs + mirrored) / 2
            machine[f"mirror_{split}_hits"], machine[f"mirror_{split}_misses"] = hits, misses
        y_pred = np.argmax(probs, axis=1)
        metrics[split] = split_metrics(y_true, y_pred, names)
        if split == "test":
            test_images, test_true, test_pred = Selection(data.images, mask), y_true, y_pred
            write_csv(paths.METRICS / "plots" / "confusion_test.csv",
                      confusion_rows(y_true, y_pred, names, ids=m["id"].to_numpy()[mask], confidence=probs.max(axis=1)))
            write_csv(paths.METRICS / "plots" / "per_class_test.csv", per_class_table(y_true, y_pred, names))
            save_png(paths.PREVIEWS / "test_errors.png", misclassified_preview(test_images, y_true, probs, names))
            write_embedding_view(mask, y_true, y_pred, names, inputs,
                                 "pixel space" if on_images else "the backbone's feature space")

    if on_images:
        # A CNN already reads raw images: the exported classifier is models/model.keras byte for byte,
        # so its test predictions are the ones above. Predicting the test set through every TTA view a
        # second time would cost a sizeable part of the CNN's time budget and could not disagree.
        with atomic_path(paths.EXPORTED, suffix=".keras") as tmp:
            shutil.copyfile(paths.MODEL, tmp)
    else:
        exported = build_exported_model(extractor, model, tuple(data.images.shape[1:]), flip_tta=flip_tta)
        export_pred = np.argmax(predict_rows(exported, test_images), axis=1)
        save_model(exported, paths.EXPORTED)
    if on_images:
        # Nothing was measured: the exported file is the trained one, byte for byte. Say so
        # instead of reporting an agreement of 1.0 that could never be anything else.
        metrics["export"] = {"same_file_as_trained_model": True,
                             "test_accuracy": metrics["test"]["accuracy"]}
    else:
        metrics["export"] = {
            "agreement_with_pipeline_test": round(float((export_pred == test_pred).mean()), 4),
            "test_accuracy": round(float((export_pred == test_true).mean()), 4),
        }
    write_json(paths.EXPORTED_INFO, {"class_names": names, "input_shape": list(data.images.shape[1:]),
                                     "input_dtype": "uint8", "model": params.train.model,
                                     "ensemble": params.train.ensemble, "flip_tta": flip_tta or
                                     (on_images and params.train.cnn.flip_tta),
                                     "bottleneck_namespace": extractor.namespace if extractor else None})
    write_json(paths.METRICS / "evaluate.json", metrics)
    t = metrics["test"]
    export = ("exported model is the trained file" if on_images else
              f"exported model agrees on {metrics['export']['agreement_with_pipeline_test']:.2%} of test images")
    views = (f"; mean of image and mirror ({sum(v for k, v in machine.items() if k.endswith('hits'))} mirror vectors "
             f"from the store, {sum(v for k, v in machine.items() if k.endswith('misses'))} computed)") if flip_tta else ""
    print(f"evaluate: test accuracy {t['accuracy']}, macro-F1 {t['macro_f1']} on {t['images']} images; "
          f"val accuracy {metrics['val']['accuracy']}; {export}{views}")
    return machine


if __name__ == "__main__":
    stage.run("evaluate", main, keras=True, augments=False)
