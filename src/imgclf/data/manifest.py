"""A dataset on disk: one uint8 image array plus a CSV manifest with one row per image.

Columns: id, source_id, group_id, label, class_name, split, sha256 (and variant, parent_id after
augmentation). The manifest is what reviewers read and what later stages trust for labels and
splits; `sha256` is image_sha256 of the row's pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from imgclf.core.atomic import load_npy, missing, save_npy, write_csv
from imgclf.core.errors import UserError
from imgclf.core.npy_rows import NpyRows

SPLITS = ("train", "val", "test")
IMAGES = "images.npy"
MANIFEST = "manifest.csv"


class DataError(UserError, ValueError):
    pass


@dataclass
class ImageSet:
    images: np.ndarray
    manifest: pd.DataFrame

    def subset(self, mask) -> "ImageSet":
        """Rows by boolean mask or integer positions, images and manifest together."""
        mask = np.asarray(mask)
        return ImageSet(self.images[mask], self.manifest.iloc[mask].reset_index(drop=True))

    def class_names(self) -> list[str]:
        pairs = self.manifest[["label", "class_name"]].drop_duplicates().sort_values("label")
        return pairs["class_name"].tolist()


def save_set(directory: Path | str, data: ImageSet, write_images: bool = True) -> None:
    """write_images=False: the images are already being written to directory/images.npy (the
    split stage decodes a folder straight into it); only the manifest is written."""
    directory = Path(directory)
    if len(data.images) != len(data.manifest):
        raise DataError(f"{directory}: {len(data.images)} images but {len(data.manifest)} manifest rows")
    if write_images:
        save_npy(directory / IMAGES, data.images)
    write_csv(directory / MANIFEST, data.manifest)


def load_set(directory: Path | str, lazy: bool = False) -> ImageSet:
    """lazy: images are read from disk as rows are asked for (NpyRows), so a stage that streams
    over them holds a chunk, not the whole array."""
    directory = Path(directory)
    images = NpyRows(directory / IMAGES) if lazy else load_npy(directory / IMAGES)
    if not (directory / MANIFEST).is_file():
        raise missing(directory / MANIFEST)
    manifest = pd.read_csv(directory / MANIFEST, dtype={"id": str, "source_id": str, "group_id": str,
                                                          "class_name": str, "split": str, "sha256": str,
                                                          "parent_id": str})
    if len(images) != len(manifest):
        raise DataError(f"{directory}: {IMAGES} has {len(images)} images but {MANIFEST} has "
                        f"{len(manifest)} rows; re-run the stage that wrote it")
    return ImageSet(images, manifest)
