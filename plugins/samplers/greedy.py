"""``greedy``: always the most likely allowed token."""

import numpy as np

from mgf import Sampler, hookimpl


class Greedy(Sampler):
    name = "greedy"

    def choose(self, logits, ctx):
        return np.argmax(logits, axis=1).astype(np.int32)

    def _native(self, ctx):
        return {"policy": "greedy"}


@hookimpl
def register_samplers(register):
    register(Greedy)
