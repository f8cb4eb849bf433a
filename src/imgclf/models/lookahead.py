"""Lookahead (Zhang et al., 2019) around any Keras optimizer, as a callback.

The optimizer's weights ("fast") run ahead for k steps; then a second, "slow" copy moves a fraction
alpha of the way towards them and the fast weights restart from it. The slow weights average out
the fast ones' zig-zag across a valley, which is worth most late in a short schedule, when a noisy
step is as large as what is left to learn. A callback, not an optimizer wrapper, because Keras 3
has none and a callback leaves the optimizer, its schedule and the saved model as they are.
"""

from __future__ import annotations

import numpy as np

ALPHA = 0.5          # the paper's default; it found k and alpha robust


def lookahead(every: int):
    """A callback that, every `every` steps and at the last step of each epoch (so that validation
    and the best-epoch snapshot see the slow weights), sets slow += ALPHA * (fast - slow) and
    fast = slow. Built here so that Keras is imported only when a model trains."""
    import keras

    class Lookahead(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.slow = [np.array(v.numpy()) for v in self.model.trainable_variables]
            self.since = 0

        def on_train_batch_end(self, batch, logs=None):
            self.since += 1
            if self.since == every or batch + 1 == self.params["steps"]:
                self.since = 0
                for variable, slow in zip(self.model.trainable_variables, self.slow):
                    slow += ALPHA * (np.asarray(variable.numpy()) - slow)
                    variable.assign(slow)

    return Lookahead()
