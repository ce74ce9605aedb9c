"""``temperature``: draw from the softmax of the processed logits (the plain draw).

Its options ``temperature``, ``top_k`` and ``top_p`` (contract 2's, and the bundles' defaults)
stand for the processors ``Temperature``, ``TopK`` and ``TopP``, in that order, before the
run's own processors (``--min-p``, ``--repetition-penalty``, ... on the command line); values
that change nothing are left out.
"""

from mgf import Option, Policy, hookimpl, processors


class Temperature(Policy):
    """The plain draw: ``greedy = False`` tells the core to draw itself (one uniform per row from the run's rng)."""

    name = "temperature"
    greedy = False
    options = (
        Option("temperature", float, 1.0, "divide logits by T before the softmax (small = conservative)", low=1e-6, high=100.0),
        Option("top_k", int, 0, "sample only among the k most likely tokens (0: all)", low=0, high=1_000_000),
        Option("top_p", float, 1.0, "sample only among the most likely tokens whose probability sums to p (nucleus)",
               low=1e-6, high=1.0),
    )

    def processors(self, ctx):
        o = ctx.options
        return processors.from_options(o["temperature"], o["top_k"], o["top_p"])


@hookimpl
def register_samplers(register):
    register(Temperature)
