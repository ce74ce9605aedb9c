"""``repetition``: temperature sampling with a penalty on recently generated tokens."""

import numpy as np

import mgf
from mgf.sampler import prime


def penalised(logits, recent, penalty):
    """Logits with every token in ``recent[row]`` penalised (CTRL: divide if positive, multiply if negative)."""
    out = logits.astype(np.float64)
    for row, tokens in enumerate(recent):
        if len(tokens):
            idx = np.unique(tokens)
            values = out[row, idx]
            out[row, idx] = np.where(values > 0, values / penalty, values * penalty)
    return out


class Repetition(mgf.Sampler):
    name = "repetition"
    options = (
        mgf.Option("temperature", float, 1.0, "divide logits by T before the softmax (> 0)"),
        mgf.Option("penalty", float, 1.3, "how hard recent tokens are pushed down (>= 1; 1 = plain temperature)"),
        mgf.Option("window", int, 16, "how many recent generated tokens are penalised"),
    )

    def sample(self, model, primer, steps, rng, **options):
        return self.sample_batch(model, primer, steps, 1, rng, **options)[0]

    def sample_batch(self, model, primer, steps, num_outputs, rng, **options):
        opts = self.resolve_options(options)
        if not opts["temperature"] > 0:
            raise mgf.InputError(f"temperature must be positive, got {opts['temperature']}")
        if opts["penalty"] < 1 or opts["window"] < 0:
            raise mgf.InputError("penalty must be >= 1 and window >= 0")
        logits, state = prime(model, primer, num_outputs)
        out = np.empty((num_outputs, steps), np.int32)
        for i in range(steps):
            recent = out[:, max(0, i - opts["window"]):i] if opts["window"] else out[:, :0]
            z = penalised(logits, recent, opts["penalty"]) / opts["temperature"]
            z -= z.max(axis=1, keepdims=True)
            prob = np.exp(z)
            cdf = np.cumsum(prob, axis=1)
            threshold = (1.0 - rng.random(num_outputs))[:, None] * cdf[:, -1:]
            out[:, i] = (cdf < threshold).sum(axis=1)
            if i + 1 < steps:
                logits, state = model.step(out[:, i].copy(), state)
        return out


@mgf.hookimpl
def register_samplers(register):
    register(Repetition)
