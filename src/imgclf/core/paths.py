"""Where each stage reads and writes, relative to the project root (the same names as dvc.yaml)."""

from pathlib import Path

RAW = Path("data/raw")
SPLIT = Path("data/split")
AUGMENTED = Path("data/augmented")
FEATURES = Path("data/features/features.npy")
MODEL = Path("models/model.keras")
EXPORTED = Path("models/classifier.keras")
EXPORTED_INFO = Path("models/classifier.json")
METRICS = Path("metrics")
TRAIN_LIVE = METRICS / "train"
PREVIEWS = METRICS / "previews"
PLOTS = METRICS / "plots"
CONFUSION_TEST = PLOTS / "confusion_test.csv"      # every test image: id, actual, predicted, confidence
PER_CLASS_TEST = PLOTS / "per_class_test.csv"
LABEL_SUSPECTS = METRICS / "label_suspects.csv"   # every train/val suspect label: rank, id, split, given, suggested, quality


def project_root(cwd: Path | None = None) -> Path:
    """The real project, also from a `dvc exp run --temp/--queue` workspace: queued and temp
    experiments run in a copy under <project>/.dvc/tmp/exps/..., and a feature store or run log
    there would be thrown away with the copy."""
    cwd = (cwd or Path.cwd()).resolve()
    parts = cwd.parts
    for i in range(len(parts) - 3):
        if parts[i:i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    return cwd
