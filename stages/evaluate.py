"""DVC stage `evaluate`: accuracy, macro-F1 and per-class scores on val and the official test set."""

import numpy as np

from imgclf import paths, stage
from imgclf.atomic import load_npy, write_csv, write_json
from imgclf.evaluation import confusion_rows, per_class_table, split_metrics
from imgclf.manifest import load_set


def main(params):
    import keras

    data = load_set(paths.AUGMENTED, mmap=True)
    features = load_npy(paths.FEATURES)
    model = keras.models.load_model(paths.MODEL, safe_mode=True)
    m, names = data.manifest, data.class_names()
    metrics = {}
    for split in ("test", "val"):
        mask = (m["split"] == split).to_numpy()
        y_true = m["label"].to_numpy()[mask]
        y_pred = np.argmax(model.predict(features[mask], batch_size=4096, verbose=0), axis=1)
        metrics[split] = split_metrics(y_true, y_pred, names)
        if split == "test":
            write_csv(paths.METRICS / "plots" / "confusion_test.csv", confusion_rows(y_true, y_pred, names))
            write_csv(paths.METRICS / "plots" / "per_class_test.csv", per_class_table(y_true, y_pred, names))
    write_json(paths.METRICS / "evaluate.json", metrics)
    t = metrics["test"]
    print(f"evaluate: test accuracy {t['accuracy']}, macro-F1 {t['macro_f1']} on {t['images']} images; "
          f"val accuracy {metrics['val']['accuracy']}")


if __name__ == "__main__":
    stage.run("evaluate", main)
