"""A bundle that can infill, of random weights, as ``mgf train --infill`` writes one: for the tests of what serves it."""

import dataclasses

import mgf
from mgf.contract import bundle
from mgf.contract.infill import InfillTokens


def infill_bundle(path, name="notes", hidden=(32,), seed=0, context=64):
    """Write to ``path`` a bundle over ``name``'s vocabulary and the four infilling ids; returns ``path``."""
    base = mgf.get_representation(name)
    made = bundle.random_bundle(base.vocab_size + 4, hidden, representation={"name": name, "config": base.config()}, seed=seed)
    made = dataclasses.replace(made, infill={"format": "spm", "tokens": InfillTokens.after(base.vocab_size).as_dict(),
                                             "rate": 0.5, "context": context, "gap": "bars"})
    bundle.write(made, path)
    return path
