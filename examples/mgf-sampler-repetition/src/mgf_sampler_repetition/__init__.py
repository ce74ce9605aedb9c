"""``repetition``: temperature sampling with a penalty on recently seen tokens, against the loops small models fall into."""

import mgf
import numpy as np


def penalised(logits, recent, penalty):
    """Logits with every token in ``recent[row]`` penalised (CTRL: divide if positive, multiply if negative)."""
    out = logits.astype(np.float64)
    for row, tokens in enumerate(recent):
        if len(tokens):
            idx = np.unique(tokens)
            values = out[row, idx]
            out[row, idx] = np.where(values > 0, values / penalty, values * penalty)
    return out


class Repetition(mgf.Policy):
    name = "repetition"
    options = (
        mgf.Option("temperature", float, 1.0, "divide logits by T before the softmax", low=1e-3, high=100.0),
        mgf.Option("penalty", float, 1.3, "how hard recent tokens are pushed down (1: plain temperature)", low=1.0, high=100.0),
        mgf.Option("window", int, 16, "how many recent tokens (primer included) are penalised", low=0, high=100_000),
    )

    def choose(self, logits, ctx):
        o = ctx.options
        recent = ctx.history[:, -o["window"]:] if o["window"] else ctx.history[:, :0]
        return mgf.draw_from_logits(penalised(logits, recent, o["penalty"]).astype(np.float32), ctx.rng, o["temperature"])


@mgf.hookimpl
def register_samplers(register):
    register(Repetition)
