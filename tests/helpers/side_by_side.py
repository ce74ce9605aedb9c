"""Two models stepped side by side on the same tokens, their logits compared at every step.

Every implementation of a model (the native kernel per instruction set and precision, the numpy
reference, Keras) is checked against another this one way, over one grid of shapes: thinc's
``test_ops.py`` does the same for its ops.  The grid holds the sizes that once broke a kernel.
"""

import numpy as np

#: vocab, hidden sizes per layer, embedding (None: one-hot input), batch, threads: odd sizes and sizes
#: that are not multiples of 4 (partial panels, row remainders), one to three layers, more threads than rows
SHAPES = [
    (130, (256,), 64, 1, 1),
    (130, (64,), 16, 8, 1),
    (50, (32, 48, 16), None, 5, 1),
    (388, (40, 24), 32, 3, 2),
    (17, (9,), None, 64, 2),
    (37, (20, 30, 12), 8, 4, 3),
]


def random_tokens(vocab, batch, steps, seed=0):
    """``[steps, batch]`` token ids, one row per step."""
    return np.random.default_rng(seed).integers(0, vocab, (steps, batch)).astype(np.int32)


def step_side_by_side(model, reference, tokens, *, rtol=1e-4, atol=1e-5, states=None):
    """Step ``model`` and ``reference`` on ``tokens`` (``[steps, batch]``) from their initial states, or from
    ``states=(state, reference_state)``; assert their logits agree at every step; return both last states."""
    tokens = np.asarray(tokens, np.int32)
    state, expected_state = states or (model.initial_state(tokens.shape[1]), reference.initial_state(tokens.shape[1]))
    for step, row in enumerate(tokens):
        logits, state = model.step(row, state)
        expected, expected_state = reference.step(row, expected_state)
        np.testing.assert_allclose(logits, expected, rtol=rtol, atol=atol, err_msg=f"step {step}")
    return state, expected_state


class Sequence:
    """The logits a network computed over whole windows (``[batch, steps, vocab]``, e.g. a Keras model called on
    them), stepped as a model: the reference for a model that steps through the same windows."""

    def __init__(self, logits):
        self.logits = np.asarray(logits)

    def initial_state(self, batch):
        assert batch == len(self.logits)
        return 0

    def step(self, tokens, step):
        return self.logits[:, step], step + 1
