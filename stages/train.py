"""DVC stage `train`: `head` on the train bottlenecks or `cnn` on the train images, early-stopped or
best-epoch-selected on val; `ensemble: n` soft-votes n seeds."""

import time

import numpy as np

from imgclf.core import paths
from imgclf.core.atomic import write_json
from imgclf.core.npy_rows import NpyRows, Selection, in_memory_if_it_fits
from imgclf.data.manifest import DataError, load_set
from imgclf.models.cnn import CnnConfig, train_cnn
from imgclf.models.head import HeadConfig, train_head
from imgclf.models.keras_file import save_model
from imgclf.models.voting import soft_vote
from stages import stage


def main(params):
    p = params.train
    data = load_set(paths.AUGMENTED, lazy=True)
    m = data.manifest
    train, val = (m["split"] == "train").to_numpy(), (m["split"] == "val").to_numpy()
    excluded = {}
    if p.exclude_label_issues:
        suspects = train_suspects(paths.LABEL_SUSPECTS)
        dropped = train & m["source_id"].isin(suspects).to_numpy()      # a suspect source and its variants
        train = train & ~dropped
        excluded = {"excluded_label_suspects": len(suspects), "excluded_rows": int(dropped.sum())}
        print(f"train: left out {len(suspects)} train images whose labels the audit suspects, with their variants: "
              f"{int(dropped.sum())} rows (listed in {paths.LABEL_SUSPECTS})")
    y = m["label"].to_numpy()
    n_classes = len(data.class_names())
    if p.model == "head":
        x = NpyRows(paths.FEATURES)       # read batch by batch when it does not fit in memory
        if len(x) != len(m):
            raise DataError(f"{paths.FEATURES} has {len(x)} rows but the manifest has {len(m)}; re-run bottleneck")

        x_train, x_val = in_memory_if_it_fits([Selection(x, train), Selection(x, val)])

        def fit(seed, live_dir):
            return train_head(x_train, y[train], x_val, y[val], n_classes,
                              HeadConfig(seed=seed, **p.head.model_dump()), live_dir=live_dir)
    else:
        x_train, x_val = np.asarray(data.images[train]), np.asarray(data.images[val])

        def fit(seed, live_dir):
            return train_cnn(x_train, y[train], x_val, y[val], n_classes,
                             CnnConfig(seed=seed, **p.cnn.model_dump()), live_dir=live_dir)

    start = time.perf_counter()
    models, summaries = [], []
    for k in range(p.ensemble):
        # Training curves are those of the first member; the others only add votes.
        model, summary = fit(p.seed + k, paths.TRAIN_LIVE if k == 0 else None)
        models.append(model)
        summaries.append(summary)
    model = soft_vote(models)
    save_model(model, paths.MODEL)
    train_seconds = round(time.perf_counter() - start, 1)
    summary = {k: v for k, v in summaries[0].items() if k != "train_seconds"}    # the run log has it
    summary.update(model=p.model, ensemble=p.ensemble, parameters=int(model.count_params()), **excluded)
    write_json(paths.METRICS / "train.json", summary)
    # dvclive's own summary repeats metrics/train.json; its per-epoch plots are what is kept.
    (paths.TRAIN_LIVE / "metrics.json").unlink(missing_ok=True)
    print(f"train: {p.model} x{p.ensemble}: {summary['epochs_run']} epochs (best {summary['best_epoch']}), "
          f"best val accuracy {summary['best_val_accuracy']}, {train_seconds} s, "
          f"{summary['parameters']} parameters")
    return {"train_seconds": train_seconds}


def train_suspects(path) -> set[str]:
    """Ids of the train images the label audit flagged (stage labels)."""
    import pandas as pd

    table = pd.read_csv(path, dtype=str)
    if not {"id", "split"} <= set(table.columns):
        raise DataError(f"{path}: expected the label audit's columns id and split, got {list(table.columns)}; "
                        "re-run the labels stage")
    return set(table.loc[table["split"] == "train", "id"])


if __name__ == "__main__":
    stage.run("train", main, keras=True)
