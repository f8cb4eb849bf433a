"""DVC stage `labels`: the label audit. Every train and val source image is scored out of sample
from the cached features, cleanlab names the suspect labels, and the finder is measured on label
flips injected into a copy of the train labels."""

import time

import numpy as np
import pandas as pd

from imgclf.core import paths
from imgclf.core.atomic import write_csv, write_json
from imgclf.core.npy_rows import NpyRows, Selection
from imgclf.data.label_audit import (
    find_suspects,
    flip_check,
    SUSPECT_COLUMNS,
    fold_of,
    out_of_sample_probs,
    reduce,
    suspect_table,
    usable_folds,
)
from imgclf.data.manifest import DataError, load_set
from imgclf.review.evaluation import metric_key
from imgclf.review.previews import label_suspects_preview, save_png
from stages import stage

SPLITS = ("train", "val")


def main(params):
    p = params.labels
    data = load_set(paths.AUGMENTED, lazy=True)
    m, names = data.manifest, data.class_names()
    if params.train.model == "cnn":
        # The bottleneck stage computes no vectors for a CNN; the audit reads them.
        skipped = {"skipped": "train.model is cnn: the audit reads the bottleneck features"}
        write_json(paths.METRICS / "labels.json", skipped)
        write_csv(paths.LABEL_SUSPECTS, pd.DataFrame(columns=SUSPECT_COLUMNS))
        save_png(paths.PREVIEWS / "label_suspects.png", label_suspects_preview([], names, skipped["skipped"]))
        print(f"labels: skipped: {skipped['skipped']}")
        return
    start = time.perf_counter()
    # Sources only: a variant carries its source's label, so auditing the source audits both.
    mask = (m["split"].isin(SPLITS) & (m["variant"] == 0)).to_numpy()
    rows = np.flatnonzero(mask)
    features = NpyRows(paths.FEATURES)
    if len(features) != len(m):
        raise DataError(f"{paths.FEATURES} has {len(features)} rows but the manifest has {len(m)}; re-run bottleneck")
    y, groups, split = m["label"].to_numpy()[rows], m["group_id"].to_numpy()[rows], m["split"].to_numpy()[rows]
    folds = usable_folds(y, groups, p.folds, names)
    z = reduce(Selection(features, mask), p.components, p.seed)
    fold = fold_of(y, groups, folds, p.seed)
    found = find_suspects(y, out_of_sample_probs(z, y, fold, len(names)))
    check = flip_check(z, y, fold, len(names), np.flatnonzero(split == "train"), found, p.flip_fraction, p.seed)

    table = suspect_table(m["id"].to_numpy()[rows], split, y, found, names)
    write_csv(paths.LABEL_SUSPECTS, table)
    per_split = {s: table[table["split"] == s] for s in SPLITS}
    metrics = {
        "images_scored": {s: int((split == s).sum()) for s in SPLITS},
        "folds": folds,
        "estimated_noise_rate": round(found.noise_rate, 4),
        "suspects": {s: len(t) for s, t in per_split.items()},
        "suspects_per_class": {s: {metric_key(n): int((t["given"] == n).sum()) for n in names}
                               for s, t in per_split.items()},
        "classes_with_too_few_examples": ", ".join(names[c] for c in found.few_example_classes),
        "injected_flips": check.as_metrics(),
    }
    write_json(paths.METRICS / "labels.json", metrics)
    ranked = rows[found.rows]                       # manifest rows of the suspects, most suspect first
    save_png(paths.PREVIEWS / "label_suspects.png",
             label_suspects_preview([(s, Selection(data.images, ranked[split[found.rows] == s]), t)
                                     for s, t in per_split.items()],
                                    names, "labels: the most suspect labels (given > suggested, quality)"))
    seconds = time.perf_counter() - start
    print(f"labels: {len(rows)} train and val images scored out of sample in {folds} folds; "
          f"{metrics['suspects']['train']} train and {metrics['suspects']['val']} val label suspects "
          f"(estimated noise rate {found.noise_rate:.2%}); injected flips: {check.found} of {check.flipped} found, "
          f"precision {check.precision}, recall {check.recall}; {seconds:.1f} s")
    return {"audit_seconds": round(seconds, 1)}


if __name__ == "__main__":
    stage.run("labels", main)
