"""Test-time views built from plain Keras layers, shared by the CNN and the exported head: a saved
model that uses them still loads in Keras' safe mode (a Lambda layer would not)."""

from __future__ import annotations

import numpy as np


def mirror(x, width: int):
    """Left-right flip as a fixed 0/1 matrix on the width axis: exact in float32, and a plain
    Dense layer, so the saved model loads in Keras' safe mode (a Lambda would not)."""
    from keras import layers

    to_last = layers.Permute((1, 3, 2), name="width_last")(x)
    flip = layers.Dense(width, use_bias=False, trainable=False, name="mirror")
    flipped = flip(to_last)
    flip.set_weights([np.eye(width, dtype="float32")[::-1].copy()])
    return layers.Permute((1, 3, 2), name="width_back")(flipped)
