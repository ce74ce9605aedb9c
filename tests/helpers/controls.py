"""Bundles of random weights: conditioned ones, as ``mgf train --controls`` writes them (``infill``: with infilling's
ids), and plain ones, whose tokens are all music (the shipped ``notes`` model takes controls)."""

import dataclasses

import mgf
from mgf.contract import bundle, registry
from mgf.contract.clock import clock_of
from mgf.contract.controls import Conditioned, families_for
from mgf.contract.infill import InfillTokens


def conditioned_made(name="notes", controls=("chord", "key", "density"), infill=False, hidden=(32,), seed=0,
                     scale=1.0) -> bundle.Bundle:
    base = mgf.get_representation(name)
    families = families_for(clock_of(base), [registry.get("controls", c)() for c in controls], "test")
    framed = mgf.Infilling(base) if infill else base
    conditioned = Conditioned(framed, families)
    made = bundle.random_bundle(conditioned.vocab_size, hidden, representation={"name": name, "config": base.config()},
                                seed=seed, scale=scale)
    extra = {"infill": {"format": "spm", "tokens": InfillTokens.after(base.vocab_size).as_dict(), "rate": 0.5,
                        "context": 64, "gap": "bars"}} if infill else {}
    return dataclasses.replace(made, controls=conditioned.metadata(), **extra)


def conditioned_bundle(path, **kwargs):
    bundle.write(conditioned_made(**kwargs), path)
    return path


def plain_model(name="notes", hidden=(16,), seed=0, scale=1.0):
    """A loaded model of ``name`` without controls or infilling ids, of random weights."""
    base = mgf.get_representation(name)
    return mgf.load_model(bundle.random_bundle(base.vocab_size, hidden, representation={"name": name,
                                                                                        "config": base.config()},
                                               seed=seed, scale=scale))
