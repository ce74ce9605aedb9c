"""``temperature``: draw from the softmax of logits / T, optionally cut to the top k or top p."""

import numpy as np

from mgf import InputError, Option, Sampler, hookimpl
from mgf.sampler import prime


def allowed_probabilities(logits, temperature, top_k=0, top_p=1.0):
    """Row-wise probabilities after temperature, top-k and top-p; tokens cut away get exactly 0."""
    z = logits.astype(np.float64) / temperature
    rows, vocab = z.shape
    if 0 < top_k < vocab:
        cut = np.argpartition(-z, top_k, axis=1)[:, top_k:]
        np.put_along_axis(z, cut, -np.inf, axis=1)
    z -= z.max(axis=1, keepdims=True)
    prob = np.exp(z)
    prob /= prob.sum(axis=1, keepdims=True)
    if top_p < 1.0:
        order = np.argsort(-prob, axis=1, kind="stable")
        ranked = np.take_along_axis(prob, order, axis=1)
        before = np.cumsum(ranked, axis=1) - ranked
        np.put_along_axis(prob, order, np.where(before < top_p, ranked, 0.0), axis=1)
        prob /= prob.sum(axis=1, keepdims=True)
    return prob


def draw(prob, rng):
    """One index per row, drawn from ``prob`` by inverse CDF; zero-probability tokens are never drawn."""
    cdf = np.cumsum(prob, axis=1)
    threshold = (1.0 - rng.random(prob.shape[0]))[:, None] * cdf[:, -1:]
    return (cdf < threshold).sum(axis=1).astype(np.int32)


class Temperature(Sampler):
    name = "temperature"
    options = (
        Option("temperature", float, 1.0, "divide logits by T before the softmax (> 0; small = conservative)"),
        Option("top_k", int, 0, "sample only among the k most likely tokens (0: all)"),
        Option("top_p", float, 1.0, "sample only among the most likely tokens whose probability sums to p (nucleus)"),
    )

    def sample(self, model, primer, steps, rng, **options):
        return self.sample_batch(model, primer, steps, 1, rng, **options)[0]

    def sample_batch(self, model, primer, steps, num_outputs, rng, **options):
        opts = self.resolve_options(options)
        check_temperature(opts["temperature"])
        if opts["top_k"] < 0:
            raise InputError(f"top_k must be >= 0, got {opts['top_k']}")
        if not 0.0 < opts["top_p"] <= 1.0:
            raise InputError(f"top_p must be in (0, 1], got {opts['top_p']}")
        logits, state = prime(model, primer, num_outputs)
        out = np.empty((num_outputs, steps), np.int32)
        for i in range(steps):
            out[:, i] = draw(allowed_probabilities(logits, opts["temperature"], opts["top_k"], opts["top_p"]), rng)
            if i + 1 < steps:
                logits, state = model.step(out[:, i].copy(), state)
        return out


def check_temperature(value):
    if not (value > 0.0 and np.isfinite(value)):
        raise InputError(f"temperature must be a positive number, got {value}")


@hookimpl
def register_samplers(register):
    register(Temperature)
