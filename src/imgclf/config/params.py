"""Typed schema for params.yaml: every key has a type, a range and a description.

Stages validate the whole file before doing any work, so a typo or an out-of-range value
fails in a second with a message naming the key, instead of training a wrong model for an hour.
What the schema alone cannot know (which augmenters imgaug builds, which backbones exist) is
handed in as `Checks` by the code that owns it: each stage passes what its own work needs, so
this module imports no augment or backbone code and an edit there re-runs no other stage.

    imgclf check [params.yaml]    # every check, as make check runs it
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from imgclf.config.schema import Strict, describe, read_yaml
from imgclf.core.errors import UserError

SHA256_HEX = r"^[0-9a-f]{64}$"


@dataclass(frozen=True)
class Checks:
    """build_augmenter: builds augment.augmenters with imgaug, raising on a bad one (the stages that
    augment: split's audit and augment). backbones: name -> an object with min_size (the stages
    that run a backbone). None skips that check: imgaug's import is slow (scipy.stats)."""
    build_augmenter: Callable[[list[dict]], Any] | None = None
    backbones: Mapping[str, Any] | None = None


def _checks(info: ValidationInfo) -> Checks:
    return (info.context or {}).get("checks") or Checks()


class DatasetParams(Strict):
    kind: Literal["fashion_mnist", "image_folder"] = Field(
        "fashion_mnist", description="fashion_mnist: the IDX files of download.*; image_folder: dataset.source.")
    source: str | None = Field(
        None, min_length=1,
        description="image_folder: a directory, a .zip/.tar.gz/.tgz/.tar, or an http(s) URL of such an archive.")
    source_sha256: str | None = Field(
        None, pattern=SHA256_HEX, description="image_folder: expected SHA-256 of the archive (optional).")
    image_size: int = Field(64, ge=8, le=1024, description="image_folder: images are resized to this square size once.")
    colour: Literal["grey", "rgb"] = Field("rgb", description="image_folder: colour the images are converted to.")
    groups_csv: str | None = Field(
        None, min_length=1, description="image_folder: optional CSV with columns file,group (file relative to the folder).")
    on_bad_image: Literal["fail", "skip"] = Field(
        "fail", description="image_folder: a bad file fails the stage, or is skipped and listed in metrics/data.json.")
    max_image_megapixels: float = Field(
        100, gt=0, le=1000, description="image_folder: a bigger image is a bad image, refused by the size in its "
        "header before decoding (a bigger JPEG is decoded at 1/2, 1/4 or 1/8 scale when that fits).")
    max_archive_mb: int = Field(2048, ge=1, le=1_000_000,
                                description="image_folder: refuse archives (packed or unpacked) larger than this.")
    train_limit: int | None = Field(
        None, ge=1, description="fashion_mnist: use only the first N official training images (smoke runs); null = all.")
    test_limit: int | None = Field(
        None, ge=1, description="fashion_mnist: use only the first N official test images (smoke runs); null = all.")

    @model_validator(mode="after")
    def _folder_needs_source(self) -> "DatasetParams":
        if self.kind == "image_folder" and not self.source:
            raise ValueError("dataset.source is required when dataset.kind is image_folder")
        return self


class DownloadParams(Strict):
    sources: list[str] = Field(
        ..., min_length=1,
        description="Where to fetch the files, tried in order: local directories or http(s) base URLs.")
    files: dict[str, str] = Field(
        ..., min_length=1,
        description="File name -> SHA-256 of its content (decompressed for .gz; mirrors recompress).")
    timeout_s: float = Field(60.0, gt=0, le=3600, description="Per-request timeout for HTTP sources, seconds.")
    retries: int = Field(3, ge=0, le=10, description="HTTP retries with exponential back-off per file and source.")

    @field_validator("files")
    @classmethod
    def _checksums_are_sha256(cls, files: dict[str, str]) -> dict[str, str]:
        import re
        for name, digest in files.items():
            if "/" in name or "\\" in name or name in ("", ".", ".."):
                raise ValueError(f"file name {name!r} must be a plain file name")
            if not re.match(SHA256_HEX, digest):
                raise ValueError(f"checksum of {name!r} must be 64 lowercase hex digits, got {digest!r}")
        return files


class SplitParams(Strict):
    val_fraction: float = Field(
        0.1, gt=0.0, lt=1.0, description="Share of training source groups that go to validation.")
    seed: int = Field(42, ge=0, description="Salt of the stable hash that assigns groups to train/val.")
    test_fraction: float = Field(
        0.2, ge=0.0, lt=1.0, description="Share of groups that go to test, for datasets with no test split of their own.")
    near_duplicates: Literal["group", "report", "off"] = Field(
        "group", description="group: near-duplicates join one source group (kept on one side); report: only count "
                             "them; off: skip the search.")
    near_duplicate_max_shift: int = Field(
        4, ge=0, le=16, description="Copies shifted by up to this many px (and/or mirrored) are searched for.")
    near_duplicate_neighbours: int = Field(
        6, ge=0, le=64, description="Candidates for lossy copies: this many nearest neighbours by copy descriptor.")
    near_duplicate_max_rms: float = Field(
        5.25, ge=0.0, le=255.0,
        description="Confirmed pairs: RMS difference (grey levels; best mirror and shift, brightness/contrast "
                    "matched) at most this.")
    audit_recall_pairs: int = Field(
        2000, ge=0, le=1_000_000,
        description="Measure the audit's recall on at least this many (variant, source) pairs made with the "
                    "configured augmenters; 0 = do not measure.")

    @model_validator(mode="after")
    def _fractions_leave_train(self) -> "SplitParams":
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError(f"val_fraction + test_fraction = {self.val_fraction + self.test_fraction:g} "
                             f"leaves nothing for train; their sum must be below 1")
        return self


class AugmenterSpec(Strict):
    name: str = Field(..., description="imgaug.augmenters class name, e.g. Fliplr, Affine.")
    args: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments; YAML lists become tuples (imgaug ranges).")

    @model_validator(mode="after")
    def _builds(self, info: ValidationInfo) -> "AugmenterSpec":
        build = _checks(info).build_augmenter
        if build is None:
            return self
        try:
            build([self.model_dump()])
        except UserError as err:          # the builder's own message: an unknown name
            raise ValueError(str(err)) from None
        except Exception as err:  # imgaug raises bare AssertionError/ValueError/TypeError
            raise ValueError(f"{self.name} with args {self.args} cannot be built: "
                             f"{type(err).__name__}: {err}") from None
        return self


class AugmentParams(Strict):
    multiplier: int = Field(
        2, ge=1, le=64, description="Each train source appears this many times: the original plus multiplier-1 variants.")
    mirror: bool = Field(True, description="Variant 1 is the exact left-right mirror image; variants 2.. come from the "
                                          "augmenters (with false, all of them do).")
    seed: int = Field(42, ge=0, description="Variant k of source s depends only on (seed, s, k) and the augmenter list.")
    augmenters: list[AugmenterSpec] = Field(
        default_factory=lambda: [
            AugmenterSpec(name="Fliplr", args={"p": 0.5}),
            AugmenterSpec(name="Affine", args={"translate_px": {"x": [-3, 3], "y": [-3, 3]}, "mode": "constant", "cval": 0}),
        ], description="Applied in order (imgaug Sequential) to make each variant.")



class BottleneckParams(Strict):
    backbone: str = Field("MobileNet", description="keras.applications model name.")
    backbone_args: dict[str, Any] = Field(
        default_factory=lambda: {"alpha": 0.25}, description="Extra constructor arguments, e.g. {alpha: 0.25} for MobileNet.")
    weights: Literal["imagenet"] | None = Field(
        "imagenet", description="imagenet, or null for random initialisation (tests only).")
    image_size: int = Field(96, le=1024, description="Square input size the images are resized to.")
    resize: Literal["linear", "area"] = Field(
        "linear", description="Interpolation to image_size (OpenCV; the exported model's Keras Resizing matches it).")
    layer: str | None = Field(
        "conv_pw_5_relu", min_length=1,
        description="Backbone layer whose output map is the feature (e.g. conv_pw_5_relu); null = the last.")
    grid: int = Field(6, ge=1, le=64, description="Average-pool that map to grid x grid cells, then flatten; 1 = global average.")
    batch_size: int = Field(256, ge=1, le=4096, description="Images per forward pass (fixed; the last batch is padded).")
    cache_dir: str = Field(
        ".cache/bottlenecks", min_length=1,
        description="On-disk feature store, outside DVC outputs; relative to the project root.")

    @field_validator("backbone")
    @classmethod
    def _known_backbone(cls, name: str, info: ValidationInfo) -> str:
        known = _checks(info).backbones
        if known is not None and name not in known:
            raise ValueError(f"unknown backbone {name!r}; expected one of {sorted(known)}")
        return name

    @field_validator("image_size")
    @classmethod
    def _size_fits_backbone(cls, size: int, info: ValidationInfo) -> int:
        known, backbone = _checks(info).backbones or {}, info.data.get("backbone")
        if backbone in known and size < known[backbone].min_size:
            raise ValueError(f"{size} px is below the {known[backbone].min_size} px that {backbone} accepts")
        return size


class HeadParams(Strict):
    hidden_units: list[int] = Field([384], description="Width of each hidden dense layer of the head.")
    input_dropout: float = Field(0.3, ge=0.0, lt=1.0,
                                 description="Dropout on the (standardised) bottleneck features.")
    dropout: float = Field(0.17, ge=0.0, lt=1.0, description="Dropout after each hidden layer.")
    learning_rate: float = Field(0.002, gt=0.0, le=1.0, description="Adam learning rate (one_cycle: its peak).")
    batch_size: int = Field(512, ge=1, le=65536, description="Training batch size.")
    schedule: Literal["one_cycle", "constant"] = Field(
        "one_cycle", description="one_cycle: the learning rate rises linearly over the first tenth of the steps, then "
                                 "falls along a cosine to 0; every epoch runs and the best val-loss epoch's weights are "
                                 "kept. constant: learning_rate throughout, stopped by patience.")
    epochs: int = Field(8, ge=1, le=10000, description="Epochs (constant: an upper bound; early stopping usually ends sooner).")
    patience: int = Field(6, ge=1, le=1000, description="constant only: epochs without val-loss improvement before "
                                                      "stopping (best weights restored).")
    flip_tta: bool = Field(True, description="Predict each val/test image as the mean of the head on it and on its mirror "
                                            "image (pays off when the head trained on mirrors: augment.mirror).")

    @field_validator("hidden_units")
    @classmethod
    def _positive_units(cls, units: list[int]) -> list[int]:
        if any(u < 1 for u in units):
            raise ValueError(f"every hidden layer needs at least 1 unit, got {units}")
        return units


class CnnParams(Strict):
    filters: list[int] = Field([32, 64, 128], min_length=1, max_length=4,
                               description="Filters of each conv block (two 3x3 convs and a 2x2 max-pool per block).")
    block: Literal["conv-conv-pool", "conv-pool-conv"] = Field(
        "conv-conv-pool", description="Order in a block: VGG's conv-conv-pool, or conv-pool-conv (the second conv at half "
                                      "resolution: a quarter of its cost).")
    dense_units: int = Field(256, ge=1, le=8192, description="Width of the dense layer before the classifier.")
    dropout: float = Field(0.3, ge=0.0, lt=1.0, description="Dropout before and after the dense layer.")
    optimizer: Literal["adamw", "sgd"] = Field("adamw", description="adamw, or sgd (Nesterov momentum 0.9).")
    learning_rate: float = Field(3e-3, gt=0.0, le=1.0, description="Peak learning rate (warm-up, then cosine decay).")
    weight_decay: float = Field(0.02, ge=0.0, le=1.0, description="Decoupled weight decay: weights shrink by lr * weight_decay per step.")
    label_smoothing: float = Field(0.1, ge=0.0, lt=1.0, description="Label smoothing of the cross-entropy.")
    ema: float = Field(0.0, ge=0.0, lt=1.0,
                       description="Keep an exponential moving average of the weights with this momentum and use it as the "
                                   "model (0.999: about the last 1,000 steps); 0 = off, the best val-loss epoch is kept.")
    batch_size: int = Field(128, ge=1, le=65536, description="Training batch size.")
    epochs: int = Field(8, ge=1, le=1000, description="Epochs (the schedule spans all of them; best val-loss weights kept).")
    random_erasing: float = Field(0.5, ge=0.0, le=1.0,
                                  description="Probability of replacing a random rectangle of a training image with noise (Keras RandomErasing); 0 = off.")
    flip_tta: bool = Field(True, description="Predict each image as the mean of it and its left-right mirror image.")
    precision: Literal["float32", "mixed_bfloat16"] = Field(
        "float32", description="mixed_bfloat16 computes in bfloat16 (fast only on CPUs with AVX512-BF16/AMX or GPUs).")
    online_flip: bool = Field(False, description="Mirror half the training images afresh every epoch (on top of the offline variants).")
    online_shift_px: int = Field(0, ge=0, le=8,
                                 description="Shift training images by up to this many pixels afresh every epoch, zero filled; 0 = off.")
    tta_shift_px: int = Field(1, ge=0, le=8,
                              description="Also average the predictions of each test view moved this many pixels up, down, left and right; 0 = off.")

    @field_validator("filters")
    @classmethod
    def _positive_filters(cls, filters: list[int]) -> list[int]:
        if any(f < 1 for f in filters):
            raise ValueError(f"every conv block needs at least 1 filter, got {filters}")
        return filters


class LabelsParams(Strict):
    folds: int = Field(5, ge=2, le=20, description="Each train/val image is scored by a model fitted on the other folds "
                                                    "(by group); fewer when a class has fewer groups.")
    components: int = Field(256, ge=2, le=4096, description="PCA components of the features the fold models read.")
    flip_fraction: float = Field(0.01, ge=0.0, le=0.2, description="Share of train labels flipped in a copy to measure the "
                                                                   "finder's precision and recall; 0 = not measured.")
    seed: int = Field(42, ge=0, description="Seeds the folds, the PCA and the injected flips.")


class TrainParams(Strict):
    model: Literal["head", "cnn"] = Field(
        "head", description="head: dense classifier on cached bottlenecks; cnn: compact CNN from scratch on the images.")
    seed: int = Field(42, ge=0, description="Seeds weight init, dropout and shuffling (model k of an ensemble: seed + k).")
    ensemble: int = Field(1, ge=1, le=10, description="Soft vote over this many models trained with consecutive seeds.")
    exclude_label_issues: bool = Field(
        False, description="Leave out the train images the label audit (stage labels) flags, counted in "
                           "metrics/train.json and listed in metrics/label_suspects.csv.")
    head: HeadParams = HeadParams()
    cnn: CnnParams = CnnParams()


class Params(Strict):
    dataset: DatasetParams = DatasetParams()
    download: DownloadParams
    split: SplitParams = SplitParams()
    augment: AugmentParams = Field(default_factory=AugmentParams)   # built when used, not on import
    bottleneck: BottleneckParams = BottleneckParams()
    labels: LabelsParams = LabelsParams()
    train: TrainParams = TrainParams()

    @model_validator(mode="after")
    def _flip_tta_needs_mirrors_in_training(self) -> "Params":
        # A head that has never seen a mirror image reads its features by position: averaging it
        # over mirrors loses accuracy on Fashion-MNIST (docs/results.md), silently.
        if self.train.model == "head" and self.train.head.flip_tta and self.augment.multiplier < 2:
            raise ValueError("train.head.flip_tta = true needs mirror images in training, but augment.multiplier = 1 "
                             "makes no variants; set augment.multiplier >= 2 (variant 1 is the mirror with "
                             "augment.mirror) or train.head.flip_tta: false")
        return self


class ParamsError(UserError, ValueError):
    """params.yaml is missing, unreadable or breaks the schema; the message names each key."""


def parse_params(raw: Any, path: Path | str = "params.yaml", checks: Checks | None = None) -> Params:
    path = Path(path)
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections at the top level, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw, context={"checks": checks})
    except ValidationError as err:
        raise ParamsError(describe(err, f"{path}: {err.error_count()} invalid parameter(s):", "params.py")) from None


def load_params(path: Path | str, checks: Checks | None = None) -> Params:
    path = Path(path)
    return parse_params(read_yaml(path, ParamsError), path, checks)
