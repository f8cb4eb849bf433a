"""A split's predictions, made the same way for the pipeline's scores and the export check.

One batch size for both: under mixed_bfloat16 a CNN's predictions depend on it (a few test images
change with the batch size). Rows are read from disk a chunk at a time, so memory does not grow
with the data. With flip TTA the head averages each image's prediction with its mirror image's,
whose vector comes through the feature store like every other (by content hash): a re-run
computes none of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from imgclf.core.npy_rows import Selection, chunk_rows
from imgclf.features.bottleneck import compute_features

PREDICT_BATCH = 1024


def predict_rows(model, rows) -> np.ndarray:
    """Predictions for rows (an array or a Selection on disk); every chunk a whole number of
    PREDICT_BATCH batches, so the batches are those of one predict call."""
    per_chunk = max(1, chunk_rows(int(np.prod(rows.shape[1:])) * rows.dtype.itemsize) // PREDICT_BATCH) * PREDICT_BATCH
    parts = [model.predict(chunk, batch_size=PREDICT_BATCH, verbose=0) for chunk in rows.chunks(per_chunk)]
    return np.concatenate(parts) if parts else np.zeros((0, model.output_shape[-1]), np.float32)


@dataclass
class MirrorViews:
    """The second view of flip TTA for a head: the mirror images' vectors from `store`, counted."""
    images: object                      # the images the features were computed from (rows on disk)
    extractor: object
    store: object
    counts: dict[str, int] = field(default_factory=dict)

    def probabilities(self, model, mask: np.ndarray, split: str) -> np.ndarray:
        mirrored = np.ascontiguousarray(np.asarray(Selection(self.images, mask))[:, :, ::-1])
        features, report = compute_features(mirrored, self.extractor, self.store, show_progress=False)
        self.counts[f"mirror_{split}_hits"], self.counts[f"mirror_{split}_misses"] = report.hits, report.misses
        return model.predict(features, batch_size=PREDICT_BATCH, verbose=0)


@dataclass(frozen=True)
class SplitPredictions:
    split: str
    mask: np.ndarray                    # the split's rows of the manifest
    y_true: np.ndarray
    probs: np.ndarray

    @property
    def y_pred(self) -> np.ndarray:
        return np.argmax(self.probs, axis=1)


def predict_split(model, inputs, manifest: pd.DataFrame, split: str, mirror: MirrorViews | None = None) -> SplitPredictions:
    """inputs: what the model reads, one row per manifest row (features for a head, images for a CNN)."""
    mask = (manifest["split"] == split).to_numpy()
    probs = predict_rows(model, Selection(inputs, mask))
    if mirror is not None:
        probs = (probs + mirror.probabilities(model, mask, split)) / 2
    return SplitPredictions(split, mask, manifest["label"].to_numpy()[mask], probs)
