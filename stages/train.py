"""DVC stage `train`: a dense head on the train bottlenecks, early-stopped on val loss."""

from imgclf import paths, stage
from imgclf.atomic import atomic_path, load_npy, write_json
from imgclf.head import HeadConfig, train_head
from imgclf.manifest import load_set


def main(params):
    p = params.train
    data = load_set(paths.AUGMENTED, mmap=True)
    features = load_npy(paths.FEATURES)
    m = data.manifest
    if len(features) != len(m):
        raise ValueError(f"{paths.FEATURES} has {len(features)} rows but the manifest has {len(m)}")
    train, val = (m["split"] == "train").to_numpy(), (m["split"] == "val").to_numpy()
    cfg = HeadConfig(**p.model_dump(exclude={"model"}))
    model, summary = train_head(features[train], m["label"].to_numpy()[train],
                                features[val], m["label"].to_numpy()[val],
                                len(data.class_names()), cfg, live_dir=paths.TRAIN_LIVE)
    with atomic_path(paths.MODEL, suffix=".keras") as tmp:
        model.save(tmp)
    write_json(paths.METRICS / "train.json", summary)
    print(f"train: {summary['epochs_run']} epochs (best {summary['best_epoch']}), best val accuracy "
          f"{summary['best_val_accuracy']}, {summary['train_seconds']} s, {summary['parameters']} parameters")


if __name__ == "__main__":
    stage.run("train", main)
