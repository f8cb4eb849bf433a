"""The exported classifier with params.yaml's own recipe (MobileNet alpha 0.25 with ImageNet
weights, "tf" preprocessing, cut at conv_pw_5_relu, 6x6 grid): it must give the pipeline's
probabilities, i.e. the head applied to the bottleneck stage's features.

Needs the real weights: KERAS_HOME must hold models/mobilenet_2_5_224_tf_no_top.h5 (.ci/run points
it at the copy beside the clone when there is one); skipped otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from imgclf.config.params import load_params
from tests.conftest import REPO, synthetic_images

WEIGHTS = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models" / "mobilenet_2_5_224_tf_no_top.h5"


@pytest.mark.skipif(not WEIGHTS.is_file(), reason=f"no MobileNet weights at {WEIGHTS} (set KERAS_HOME)")
def test_the_exported_default_recipe_gives_the_pipelines_probabilities():
    from imgclf.features.backbones import extractor_for
    from imgclf.models.export import build_exported_model
    from imgclf.models.head import HeadConfig, build_head

    params = load_params(REPO / "params.yaml")
    p = params.bottleneck
    assert (p.backbone, p.weights, p.layer, p.grid) == ("MobileNet", "imagenet", "conv_pw_5_relu", 6)
    extractor = extractor_for(p)
    images, _ = synthetic_images(48, 7)                       # 28x28 grey, like Fashion-MNIST
    features = extractor(images)
    assert features.shape == (48, 6 * 6 * 64) and features.std() > 0.01     # real, not vanishing, features
    head = build_head(features, 10, HeadConfig(seed=0, **params.train.head.model_dump()))
    exported = build_exported_model(extractor, head, images.shape[1:])
    pipeline = head.predict(features, verbose=0)
    served = exported.predict(images, verbose=0)
    np.testing.assert_allclose(served, pipeline, rtol=1e-3, atol=1e-5)
    assert (served.argmax(1) == pipeline.argmax(1)).all()


@pytest.mark.parametrize("mode", ["tf", "caffe", "torch"])
def test_each_preprocess_mode_is_rebuilt_from_layers_exactly(mode):
    """The exported model carries preprocess_input as plain layers (safe-mode loadable): they must
    compute what keras.applications' own preprocess_input does for that backbone family."""
    import keras
    from keras.applications.imagenet_utils import preprocess_input

    from imgclf.models.export import _preprocess_layers

    images = np.random.default_rng(0).integers(0, 256, (4, 5, 6, 3)).astype(np.float32)
    inputs = keras.Input(shape=images.shape[1:])
    x, prev, pending = inputs, None, []
    for item in _preprocess_layers(mode):
        if isinstance(item, tuple):
            pending.append((prev, item))
            continue
        x, prev = item(x), item
    model = keras.Model(inputs, x)
    for layer, (kernel, bias) in pending:
        layer.set_weights([kernel, bias])
    np.testing.assert_allclose(model.predict(images, verbose=0), preprocess_input(images.copy(), mode=mode),
                               rtol=1e-5, atol=1e-4)
    names = {"tf": ["preprocess_tf"], "caffe": ["preprocess_caffe"], "torch": ["preprocess_scale", "preprocess_norm"]}
    assert [layer.name for layer in model.layers[1:]] == names[mode]      # what model.summary() shows
    assert _preprocess_layers("none") == []


def test_the_exported_model_takes_raw_uint8_images(tiny_extractor):
    """The contract with consumers: uint8 pixels in an input named "image", grey (H, W) or colour
    (H, W, 3), probabilities out, nothing trainable."""
    import keras

    from imgclf.models.export import build_exported_model

    head_in = keras.Input(shape=(tiny_extractor.dim,))
    head = keras.Model(head_in, keras.layers.Dense(3, activation="softmax")(head_in))
    for shape in [(28, 28), (28, 28, 3)]:
        model = build_exported_model(tiny_extractor, head, shape)
        assert model.inputs[0].dtype == "uint8" and tuple(model.inputs[0].shape) == (None, *shape)
        assert model.input_names == ["image"] if hasattr(model, "input_names") else model.inputs[0].name == "image"
        probs = model.predict(np.zeros((2, *shape), np.uint8), verbose=0)
        assert probs.shape == (2, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
        assert model.trainable is False


def test_the_exported_model_names_its_parts(tiny_extractor):
    """model.summary() and get_layer() show a consumer each step by name: the raw input, the
    conversions, the preprocessing, the backbone, the head and the mean of the two views."""
    import keras

    from imgclf.models.export import build_exported_model

    head_in = keras.Input(shape=(tiny_extractor.dim,))
    head = keras.Model(head_in, keras.layers.Dense(3, activation="softmax")(head_in), name="head")
    backbone = tiny_extractor.model.name
    grey = build_exported_model(tiny_extractor, head, (28, 28), flip_tta=True)
    assert grey.name == "classifier"
    assert [layer.name for layer in grey.layers] == [
        "image", "to_float", "add_channel", "width_last", "mirror", "width_back", "grey_to_rgb", "resize",
        "preprocess_tf", backbone, "head", "flip_tta"]
    colour = build_exported_model(tiny_extractor, head, (28, 28, 3))
    assert [layer.name for layer in colour.layers] == ["image", "to_float", "resize", "preprocess_tf", backbone, "head"]


def test_a_caffe_backbone_with_area_resizing_is_served_as_the_pipeline_computes_it():
    """VGG16 ("caffe": BGR and mean subtraction as a fixed 1x1 convolution) and area resizing, on
    colour images: the exported model gives the head's probabilities on the extractor's features."""
    from imgclf.features.backbones import FeatureExtractor, FeatureRecipe
    from imgclf.models.export import build_exported_model

    extractor = FeatureExtractor(FeatureRecipe("VGG16", {}, None, 32, "area"), batch_size=8)
    images = np.random.default_rng(3).integers(0, 256, (8, 20, 20, 3)).astype(np.uint8)
    features = extractor(images)
    head = _head_that_reads(features, 4)
    pipeline = head.predict(features, verbose=0)
    assert pipeline.std() > 0.01                       # the features carry a signal the head reads
    served = build_exported_model(extractor, head, images.shape[1:]).predict(images, verbose=0)
    np.testing.assert_allclose(served, pipeline, rtol=1e-3, atol=1e-4)


def _head_that_reads(features: np.ndarray, classes: int):
    """A random softmax layer scaled to the features, so that its probabilities move with them
    (random-init backbones give features of any magnitude)."""
    import keras

    head_in = keras.Input(shape=(features.shape[1],))
    init = keras.initializers.RandomNormal(stddev=1.0 / max(1e-6, float(features.std())) / np.sqrt(features.shape[1]),
                                           seed=0)
    return keras.Model(head_in, keras.layers.Dense(classes, activation="softmax", kernel_initializer=init)(head_in))


def test_flip_tta_exports_the_mean_of_the_image_and_its_mirror():
    """train.head.flip_tta (on by default): what the evaluate stage scores (the head on the image's
    features and on its mirror image's, averaged) is what the exported model serves; a
    mirror-dependent head proves the second view is the mirror, not the image again. A random-init
    VGG16 (no weights needed, so this runs everywhere, mutation runs included)."""
    from imgclf.features.backbones import FeatureExtractor, FeatureRecipe
    from imgclf.models.export import build_exported_model

    params = load_params(REPO / "params.yaml")
    assert params.train.head.flip_tta and params.augment.mirror
    extractor = FeatureExtractor(FeatureRecipe("VGG16", {}, None, 32, "linear"), batch_size=8)
    images, _ = synthetic_images(8, 8)
    images[:, :, :14] //= 4                                   # left half darker: the mirror differs
    features, mirrored = extractor(images), extractor(np.ascontiguousarray(images[:, :, ::-1]))
    head = _head_that_reads(features, 10)
    one, other = head.predict(features, verbose=0), head.predict(mirrored, verbose=0)
    assert np.abs(one - other).max() > 1e-3
    served = build_exported_model(extractor, head, images.shape[1:], flip_tta=True).predict(images, verbose=0)
    np.testing.assert_allclose(served, (one + other) / 2, rtol=1e-3, atol=1e-5)
