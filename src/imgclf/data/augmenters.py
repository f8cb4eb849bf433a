"""augment.augmenters as imgaug builds them, and the one way a variant is made from them.

Shared by the augment stage and the split stage's audit, which measures its recall on exactly the
variants the augment stage will make; kept apart from the augment stage's own code, so an edit
there re-runs augment alone (docs/architecture.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from imgclf.core.errors import ConfigError
from imgclf.core.hashing import stable_seed


def _tuples(value: Any) -> Any:
    """YAML has no tuples; imgaug reads a tuple as a range (a list would mean 'choose one')."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value


def build_augmenter(specs: list[dict]):
    import imgaug.augmenters as iaa

    children = []
    for spec in specs:
        cls = getattr(iaa, spec["name"], None)
        if not (isinstance(cls, type) and issubclass(cls, iaa.Augmenter)):
            raise ConfigError(f"unknown augmenter {spec['name']!r}; expected an imgaug.augmenters class such as "
                              f"Fliplr, Affine, GaussianBlur, AdditiveGaussianNoise, LinearContrast")
        children.append(cls(**_tuples(spec.get("args", {}))))
    return iaa.Sequential(children)


def make_variant(augmenter, image: np.ndarray, seed: int, image_id: str, k: int) -> np.ndarray:
    augmenter.seed_(stable_seed("augment", seed, image_id, k))
    out = augmenter.augment_image(image)
    if out.shape != image.shape or out.dtype != image.dtype:
        raise ConfigError(f"augmenters changed image {image_id} from {image.shape} {image.dtype} to "
                         f"{out.shape} {out.dtype}; use size-preserving augmenters")
    return out
