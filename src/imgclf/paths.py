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
