"""Frozen ImageNet backbones from keras.applications, and the exact recipe that feeds them.

Everything that changes a feature vector is collected into `FeatureExtractor.spec`; the cache
namespace is the hash of that spec, so two recipes can never share (or overwrite) vectors.
TensorFlow is imported lazily: `imgclf check` must stay fast.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from imgclf.core.cpu import simd_fingerprint
from imgclf.core.errors import ConfigError

FORMAT_VERSION = 1  # bump when the way vectors are computed or stored changes


@dataclass(frozen=True)
class BackboneInfo:
    module: str    # keras.applications submodule holding preprocess_input
    min_size: int  # smallest square input keras.applications accepts without the top
    mode: str      # what that preprocess_input does: tf, caffe, torch or none (export.py rebuilds it)


BACKBONES: dict[str, BackboneInfo] = {
    "MobileNet": BackboneInfo("mobilenet", 32, "tf"),
    "MobileNetV2": BackboneInfo("mobilenet_v2", 32, "tf"),
    "ResNet50": BackboneInfo("resnet50", 32, "caffe"),
    "VGG16": BackboneInfo("vgg16", 32, "caffe"),
    "VGG19": BackboneInfo("vgg19", 32, "caffe"),
    "DenseNet121": BackboneInfo("densenet", 32, "torch"),
    "EfficientNetB0": BackboneInfo("efficientnet", 32, "none"),
}

# Only methods whose OpenCV and Keras versions agree, so the exported model sees what training saw.
INTERPOLATION = {
    "linear": cv2.INTER_LINEAR,
    "area": cv2.INTER_AREA,
}


def to_rgb_resized(batch: np.ndarray, size: int, resize: str) -> np.ndarray:
    """uint8 (B,H,W) grey or (B,H,W,3) colour -> float32 (B,size,size,3), before preprocess_input.

    Grey is replicated to three channels, as ImageNet models expect colour input.
    """
    out = np.empty((len(batch), size, size, 3), dtype=np.float32)
    interp = INTERPOLATION[resize]
    for i, img in enumerate(batch):
        if img.ndim == 2 or img.shape[-1] == 1:
            img = cv2.cvtColor(img.reshape(img.shape[0], img.shape[1]), cv2.COLOR_GRAY2RGB)
        # Resize in float32: no rounding back to uint8, and the same numbers as Keras' Resizing
        # layer in the exported model (bilinear and area agree to ~1e-3).
        img = img.astype(np.float32)
        if img.shape[0] != size or img.shape[1] != size:
            img = cv2.resize(img, (size, size), interpolation=interp)
        out[i] = img
    return out


def weights_digest(model) -> str:
    """SHA-256 of the loaded weights, in layer order.

    Hashing what was actually loaded (rather than trusting a file name) also covers random
    initialisation and a weights file replaced in place.
    """
    h = hashlib.sha256()
    for w in model.weights:
        arr = np.ascontiguousarray(w.numpy())
        h.update(f"{w.path}{arr.dtype.str}{arr.shape}".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def feature_model(base, layer: str | None, grid: int):
    """The backbone cut at `layer`, its map average-pooled to grid x grid cells and flattened.

    Why not always the last layer, globally pooled: ImageNet's deepest features describe ImageNet
    objects, and global pooling throws away where things are. On 28 px greyscale clothes, a
    mid-network map that keeps a coarse layout (e.g. MobileNet's conv_pw_5 at 6x6) makes the
    head clearly more accurate than the pooled output (measured: docs/design.md, "Mid-network features").
    """
    import keras

    if layer is None:
        fmap = base.output
    else:
        names = [lyr.name for lyr in base.layers]
        if layer not in names:
            hint = [n for n in names if n.endswith("relu")] or names
            raise ConfigError(f"bottleneck.layer: {base.name} has no layer {layer!r}; "
                             f"expected one of: {', '.join(hint)}")
        fmap = base.get_layer(layer).output
    height, width = int(fmap.shape[1]), int(fmap.shape[2])
    if grid == 1:
        x = keras.layers.GlobalAveragePooling2D(name="features_avg")(fmap)
    else:
        if height % grid or width % grid:
            raise ConfigError(f"bottleneck.grid: {grid} does not divide the {height}x{width} map of "
                             f"{layer or 'the output'} at this image_size; expected a divisor of {height}")
        x = keras.layers.AveragePooling2D((height // grid, width // grid), name="features_grid")(fmap)
        x = keras.layers.Flatten(name="features_flat")(x)
    return keras.Model(base.input, x, name=f"{base.name}_features")


@dataclass(frozen=True)
class FeatureRecipe:
    """What a vector is made of, as the `bottleneck` params say it: the backbone and its
    arguments, its weights, how images are resized into it, where it is cut and how the map there
    is pooled. (The CPU and library versions join it in FeatureExtractor.spec.)"""
    backbone: str
    backbone_args: dict[str, Any]
    weights: str | None
    image_size: int
    resize: str
    layer: str | None = None
    grid: int = 1


def extractor_for(p) -> "FeatureExtractor":
    """The extractor the `bottleneck` params describe (stages and the cache CLI share it)."""
    recipe = FeatureRecipe(p.backbone, p.backbone_args, p.weights, p.image_size, p.resize, p.layer, p.grid)
    return FeatureExtractor(recipe, p.batch_size)


class FeatureExtractor:
    def __init__(self, recipe: FeatureRecipe, batch_size: int, init_seed: int = 0):
        """batch_size: images per forward pass (fixed, see __call__); init_seed: weights None only."""
        import keras
        import tensorflow as tf

        backbone, backbone_args, weights = recipe.backbone, recipe.backbone_args, recipe.weights
        image_size, resize, layer, grid = recipe.image_size, recipe.resize, recipe.layer, recipe.grid

        if backbone not in BACKBONES:
            raise ConfigError(f"unknown backbone {backbone!r}; expected one of {sorted(BACKBONES)}")
        info = BACKBONES[backbone]
        if weights is None:
            keras.utils.set_random_seed(init_seed)  # random init must still be reproducible
        with warnings.catch_warnings():
            # Keras warns that sizes other than its native ones load the 224 px weights: intended.
            warnings.filterwarnings("ignore", message=".*will be loaded as the default")
            base = getattr(keras.applications, backbone)(
                include_top=False, weights=weights, input_shape=(image_size, image_size, 3),
                **backbone_args)
        self.model = feature_model(base, layer, grid)
        self.model.trainable = False
        self._preprocess = getattr(keras.applications, info.module).preprocess_input
        self.image_size = image_size
        self.resize = resize
        self.batch_size = batch_size
        self.backbone = backbone
        self.dim = int(self.model.output_shape[-1])
        self.spec = {
            "format_version": FORMAT_VERSION,
            "backbone": backbone,
            "backbone_args": backbone_args,
            "layer": layer or "output",
            "grid": grid,
            "weights": weights,
            "weights_sha256": weights_digest(self.model),
            "image_size": image_size,
            "resize": f"cv2.resize {resize} on float32",
            "colour": "grey replicated to RGB; colour as RGB",
            "preprocess": f"keras.applications.{info.module}.preprocess_input",
            "dtype": "float32",
            "keras": keras.__version__,
            "tensorflow": tf.__version__,
            "cpu": simd_fingerprint(),
        }
        self.namespace = hashlib.sha256(json.dumps(self.spec, sort_keys=True).encode()).hexdigest()[:16]
        spec = tf.TensorSpec((batch_size, image_size, image_size, 3), tf.float32)
        self._forward = tf.function(lambda x: self.model(x, training=False), input_signature=[spec])

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Vectors for up to batch_size images.

        The batch is always padded to the same size so that an image's vector never depends on
        how many other images happened to share its batch (oneDNN may pick other kernels for
        other batch shapes, which changes low-order bits).
        """
        n = len(batch)
        if n > self.batch_size:
            raise ValueError(f"batch of {n} exceeds batch_size {self.batch_size}")
        x = to_rgb_resized(batch, self.image_size, self.resize)
        if n < self.batch_size:
            x = np.concatenate([x, np.zeros((self.batch_size - n, *x.shape[1:]), np.float32)])
        x = self._preprocess(x)
        return np.asarray(self._forward(x))[:n].astype(np.float32, copy=False)
