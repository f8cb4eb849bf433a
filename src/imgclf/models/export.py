"""One self-contained Keras model: raw uint8 images in, class probabilities out.

Grey-to-RGB, resizing, the backbone's preprocess_input, the frozen backbone and the trained head
are all standard Keras layers inside it, so a consumer loads it with `keras.models.load_model`
(safe mode) and needs none of this package. preprocess_input is rebuilt from layers (Rescaling,
a fixed 1x1 convolution, Normalization) because a Lambda layer cannot be loaded in safe mode.
"""

from __future__ import annotations

import numpy as np

from imgclf.features.backbones import BACKBONES
from imgclf.models.mirror_layer import mirror

_RESIZE = {"linear": "bilinear", "area": "area"}
_CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)
_TORCH_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_TORCH_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def _preprocess_layers(mode: str):
    import keras

    if mode == "tf":
        return [keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocess_tf")]
    if mode == "caffe":
        # RGB -> BGR and mean subtraction as one fixed 1x1 convolution.
        conv = keras.layers.Conv2D(3, 1, name="preprocess_caffe", trainable=False)
        kernel = np.zeros((1, 1, 3, 3), np.float32)
        for out_c, in_c in enumerate((2, 1, 0)):
            kernel[0, 0, in_c, out_c] = 1.0
        return [conv, (kernel, -_CAFFE_MEAN_BGR)]
    if mode == "torch":
        return [keras.layers.Rescaling(1 / 255.0, name="preprocess_scale"),
                keras.layers.Normalization(mean=_TORCH_MEAN, variance=_TORCH_STD**2, name="preprocess_norm")]
    return []


def build_exported_model(extractor, head, raw_shape: tuple[int, ...], *, flip_tta: bool = False):
    """raw_shape: one raw image's shape, (H, W) for grey or (H, W, 3) for colour. flip_tta: the
    output is the mean of the head's probabilities for the image and for its mirror image, the
    classifier the evaluate stage scores (backbone and head shared by both views)."""
    import keras

    inputs = keras.Input(shape=raw_shape, dtype="uint8", name="image")
    x = keras.layers.Rescaling(1.0, name="to_float")(inputs)
    if len(raw_shape) == 2:
        x = keras.layers.Reshape((*raw_shape, 1), name="add_channel")(x)
    grey = x.shape[-1] == 1
    to_rgb = keras.layers.Concatenate(name="grey_to_rgb")
    size = extractor.image_size
    resize = keras.layers.Resizing(size, size, interpolation=_RESIZE[extractor.resize], name="resize")
    layers = _preprocess_layers(BACKBONES[extractor.backbone].mode)
    pending_weights = []
    steps = []
    for item in layers:
        if isinstance(item, tuple):
            pending_weights.append((steps[-1], item))
        else:
            steps.append(item)

    def classify(view):
        view = to_rgb([view, view, view]) if grey else view
        view = resize(view)
        for step in steps:
            view = step(view)
        return head(extractor.model(view))

    if flip_tta:
        outputs = keras.layers.Average(name="flip_tta")([classify(x), classify(mirror(x, raw_shape[1]))])
    else:
        outputs = classify(x)
    model = keras.Model(inputs, outputs, name="classifier")
    for layer, (kernel, bias) in pending_weights:
        layer.set_weights([kernel, bias])
    model.trainable = False
    return model
