"""``greedy``: always the most likely next token."""

import numpy as np

from mgf import Sampler, hookimpl
from mgf.sampler import prime


class Greedy(Sampler):
    name = "greedy"

    def sample(self, model, primer, steps, rng, **options):
        return self.sample_batch(model, primer, steps, 1, rng, **options)[0]

    def sample_batch(self, model, primer, steps, num_outputs, rng, **options):
        self.resolve_options(options)
        logits, state = prime(model, primer, num_outputs)
        out = np.empty((num_outputs, steps), np.int32)
        for i in range(steps):
            out[:, i] = logits.argmax(axis=1)
            if i + 1 < steps:
                logits, state = model.step(out[:, i].copy(), state)
        return out


@hookimpl
def register_samplers(register):
    register(Greedy)
