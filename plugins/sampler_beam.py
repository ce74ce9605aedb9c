"""``beam``: keep the ``beam_size`` most probable continuations, ranked by total log-probability.

With ``branch_factor`` 0 this is the classic deterministic beam search: every beam is extended by
every token and the best ``beam_size`` survive.  With ``branch_factor`` > 0 it is Magenta's
sampled beam: each beam is copied ``branch_factor`` times, each copy extended by
``steps_per_iteration`` tokens drawn at ``temperature``, and the best ``beam_size`` copies
survive.  All beams of one search run as one batch through ``Model.step`` and reorder their
rows with ``State.take``.  Every beam has the same length (no end token), so no length
normalisation is needed to compare them.
"""

import numpy as np

from mgf import InputError, Option, Sampler, hookimpl
from mgf.sampler import log_softmax, prime

from .sampler_temperature import allowed_probabilities, check_temperature, draw


class Beam(Sampler):
    name = "beam"
    options = (
        Option("beam_size", int, 4, "number of continuations kept"),
        Option("branch_factor", int, 0, "0: exhaustive beam; > 0: sampled branches per beam (Magenta)"),
        Option("steps_per_iteration", int, 1, "tokens each sampled branch grows before the beams are ranked"),
        Option("temperature", float, 1.0, "temperature of the sampled branches"),
    )

    def sample(self, model, primer, steps, rng, **options):
        opts = self.resolve_options(options)
        for name in ("beam_size", "steps_per_iteration"):
            if opts[name] < 1:
                raise InputError(f"{name} must be >= 1, got {opts[name]}")
        if opts["branch_factor"] < 0:
            raise InputError(f"branch_factor must be >= 0, got {opts['branch_factor']}")
        check_temperature(opts["temperature"])
        logits, state = prime(model, primer, 1)
        if opts["branch_factor"] == 0:
            return self._exhaustive(model, logits, state, steps, opts["beam_size"])
        return self._sampled(model, logits, state, steps, rng, opts)

    def _exhaustive(self, model, logits, state, steps, beam_size):
        scores = np.zeros(1)
        tokens = np.empty((1, 0), np.int32)
        for i in range(steps):
            total = (scores[:, None] + log_softmax(logits)).ravel()
            best = np.argsort(-total, kind="stable")[:beam_size]
            parents, chosen = np.divmod(best, logits.shape[1])
            scores = total[best]
            tokens = np.concatenate([tokens[parents], chosen[:, None].astype(np.int32)], axis=1)
            if i + 1 < steps:
                logits, state = model.step(tokens[:, -1].copy(), state.take(parents))
        return tokens[0]

    def _sampled(self, model, logits, state, steps, rng, opts):
        beam_size, branches = opts["beam_size"], opts["branch_factor"]
        scores = np.zeros(1)
        tokens = np.empty((1, 0), np.int32)
        done = 0
        while done < steps:
            parents = np.repeat(np.arange(len(scores)), branches)
            logits, state, scores, tokens = logits[parents], state.take(parents), scores[parents], tokens[parents]
            grow = min(opts["steps_per_iteration"], steps - done)
            for j in range(grow):
                chosen = draw(allowed_probabilities(logits, opts["temperature"]), rng)
                scores = scores + log_softmax(logits)[np.arange(len(chosen)), chosen]
                tokens = np.concatenate([tokens, chosen[:, None]], axis=1)
                if done + j + 1 < steps:
                    logits, state = model.step(chosen, state)
            done += grow
            keep = np.argsort(-scores, kind="stable")[:beam_size]
            scores, tokens, logits = scores[keep], tokens[keep], logits[keep]
            if done < steps:
                state = state.take(keep)
        return tokens[0]


@hookimpl
def register_samplers(register):
    register(Beam)
