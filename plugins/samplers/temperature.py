"""``temperature``: draw from the softmax of logits / T, optionally cut to the top k or top p."""

from mgf import Option, Sampler, draw_from_logits, hookimpl


class Temperature(Sampler):
    name = "temperature"
    options = (
        Option("temperature", float, 1.0, "divide logits by T before the softmax (small = conservative)", low=1e-6, high=100.0),
        Option("top_k", int, 0, "sample only among the k most likely tokens (0: all)", low=0, high=1_000_000),
        Option("top_p", float, 1.0, "sample only among the most likely tokens whose probability sums to p (nucleus)",
               low=1e-6, high=1.0),
    )

    def choose(self, logits, ctx):
        o = ctx.options
        return draw_from_logits(logits, ctx.rng, o["temperature"], o["top_k"], o["top_p"])

    def _native(self, ctx):
        return {"policy": "temperature", **ctx.options}


@hookimpl
def register_samplers(register):
    register(Temperature)
