"""Soft voting: one Keras model that averages the class probabilities of several."""

from __future__ import annotations


def soft_vote(models: list):
    import keras

    if len(models) == 1:
        return models[0]
    first = models[0]
    inputs = keras.Input(shape=first.input_shape[1:], dtype=first.inputs[0].dtype, name=first.inputs[0].name)
    for k, m in enumerate(models):
        m.name = f"{m.name}_{k}"  # nested models need distinct names to be saved
    outputs = keras.layers.Average(name="soft_vote")([m(inputs) for m in models])
    return keras.Model(inputs, outputs, name=f"vote_of_{len(models)}")
