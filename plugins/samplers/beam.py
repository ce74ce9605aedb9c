"""``beam``: keep the ``beam_size`` most probable continuations, ranked by total log-probability.

With ``branch_factor`` 0 this is the classic deterministic beam search: every beam is extended by
every allowed token and the best ``beam_size`` survive; ``--num-outputs N`` returns the N best
final beams, which are distinct sequences by construction.  With ``branch_factor`` > 0 it is
Magenta's sampled beam: each beam is copied ``branch_factor`` times, each copy extended by
``steps_per_iteration`` tokens drawn at ``temperature``, and the best ``beam_size`` copies
survive; ``--num-outputs N`` runs N independent searches as one batch.  All rows of a search
run as one batch through the model and reorder with ``State.take``.  Every beam has the same
length (no end token), so no length normalisation is needed to compare them.  The run's
processors (``--min-p``, ``--repetition-penalty``, ...) reach the search through ``ctx.prime``
and ``ctx.constrain``, after the constraints: they shape both the draws and the scores.

The most probable continuation of a music model is rarely music: at each step holding the
sounding note is likelier than any new note, so a wide exhaustive beam converges on a few held
notes (``--beam-size 8 --steps 64`` on the shipped ``notes`` model: four whole notes).  When an
output repeats one token in at least :data:`COLLAPSED` of its steps, ``search`` warns and names
the settings that keep the music moving.
"""

import warnings

import numpy as np

from mgf import Conditioned, InputError, Option, Search, UsageError, draw_from_logits, hookimpl, log_softmax

#: share of an output's steps taken by its most frequent token above which the search counts as collapsed
COLLAPSED = 0.85


class Beam(Search):
    name = "beam"
    options = (
        Option("beam_size", int, 4, "number of continuations kept", low=1, high=1024),
        Option("branch_factor", int, 0, "0: exhaustive beam; > 0: sampled branches per beam (Magenta)", low=0, high=256),
        Option("steps_per_iteration", int, 1, "tokens each sampled branch grows before the beams are ranked", low=1,
               high=1_000_000),
        Option("temperature", float, 1.0, "temperature of the sampled branches", low=1e-6, high=100.0),
    )

    def search(self, model, ctx, steps):
        if ctx.options["branch_factor"] == 0:
            tokens = self._exhaustive(model, ctx, steps)
        else:
            tokens = self._sampled(model, ctx, steps)
        music = list(tokens)  # a conditioned model's control tokens, chosen for it at every bar, are no part of a collapse
        if isinstance(ctx.representation, Conditioned):
            music = [ctx.representation.music(row) for row in tokens]
        _warn_if_collapsed(music, "try --branch-factor 2 (a sampled beam) or the temperature sampler"
                           if ctx.options["branch_factor"] == 0 else
                           "try fewer beams, more --steps-per-iteration or the temperature sampler")
        return tokens

    def _exhaustive(self, model, ctx, steps):
        beam_size, wanted = ctx.options["beam_size"], ctx.num_outputs
        if wanted > beam_size:
            raise UsageError(f"beam search keeps {beam_size} beams and cannot return {wanted} outputs; "
                             f"give --beam-size {wanted} or more")
        logits, state = ctx.prime(1)
        scores = np.zeros(1)
        tokens = np.empty((1, 0), np.int32)
        for i in range(steps):
            total = (scores[:, None] + log_softmax(logits)).ravel()
            best = np.argsort(-total, kind="stable")[:beam_size]
            best = best[np.isfinite(total[best])]
            parents, chosen = np.divmod(best, logits.shape[1])
            scores = total[best]
            tokens = np.concatenate([tokens[parents], chosen[:, None].astype(np.int32)], axis=1)
            if i + 1 < steps:
                logits, state = model.step(tokens[:, -1].copy(), state.take(parents))
                logits = ctx.constrain(logits, tokens)
        if len(tokens) < wanted:
            raise InputError(f"beam search found only {len(tokens)} allowed continuation(s), fewer than {wanted} outputs")
        return tokens[:wanted]

    def _sampled(self, model, ctx, steps):
        beam_size, branches = ctx.options["beam_size"], ctx.options["branch_factor"]
        temperature, grow_by = ctx.options["temperature"], ctx.options["steps_per_iteration"]
        logits, state = ctx.prime(ctx.num_outputs)
        group = np.arange(ctx.num_outputs)  # which search each row belongs to
        scores = np.zeros(ctx.num_outputs)
        tokens = np.empty((ctx.num_outputs, 0), np.int32)
        done = 0
        while done < steps:
            parents = np.repeat(np.arange(len(scores)), branches)
            logits, state, scores = logits[parents], state.take(parents), scores[parents]
            tokens, group = tokens[parents], group[parents]
            grow = min(grow_by, steps - done)
            for j in range(grow):
                chosen = draw_from_logits(logits, ctx.rng, temperature)
                scores = scores + log_softmax(logits)[np.arange(len(chosen)), chosen]
                tokens = np.concatenate([tokens, chosen[:, None]], axis=1)
                if done + j + 1 < steps:
                    logits, state = model.step(chosen, state)
                    logits = ctx.constrain(logits, tokens)
            done += grow
            order = np.lexsort((-scores, group))  # by search, best first within each
            first = np.searchsorted(group[order], group[order])
            keep = order[np.arange(len(order)) - first < beam_size]
            scores, tokens, logits, group = scores[keep], tokens[keep], logits[keep], group[keep]
            if done < steps:
                state = state.take(keep)
        best = np.lexsort((-scores, group))
        return tokens[best[np.searchsorted(group[best], np.arange(ctx.num_outputs))]]


def _warn_if_collapsed(tokens: list[np.ndarray], advice: str) -> None:
    """One warning when an output repeats one token in at least ``COLLAPSED`` of its steps (8 steps or more)."""
    if min(len(row) for row in tokens) < 8:
        return
    shares = [np.bincount(row).max() / len(row) for row in tokens]
    worst = int(np.argmax(shares))
    if shares[worst] >= COLLAPSED:
        token = int(np.bincount(tokens[worst]).argmax())
        collapsed = sum(share >= COLLAPSED for share in shares)
        warnings.warn(f"beam search collapsed: {collapsed} of {len(tokens)} output(s) repeat one token (id {token} "
                      f"in {shares[worst]:.0%} of the steps of the worst): the most probable continuation of a music "
                      f"model is mostly held notes; {advice}", stacklevel=3)


@hookimpl
def register_samplers(register):
    register(Beam)
