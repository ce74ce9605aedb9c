"""``motifs``: restate what the piece has said before, as folk tunes and chorales do.

A recurrent model of the corpus writes music that wanders: the shipped ``notes`` model repeats
a 4-note pitch pattern of its own a third as often as the tunes it learned from (the
``repetition`` metric of ``mgf eval``), because one unlikely draw at temperature 1 ends a
restatement it had begun.  This constraint makes restating likelier, after Magenta's Lookback
RNN but at decoding time, so that any model of any representation can use it: when the last
``length`` tokens occurred earlier in the piece (the primer counts), ending before they begin,
the token that followed their most recent such occurrence gets ``bonus`` added to its logit
(its probability times e^bonus before the softmax renormalises).  An occurrence overlapping the
last tokens does not count: a long held note would otherwise match itself one step back and be
held longer still.  Nothing is forbidden; a token another constraint forbade stays forbidden.

The loop in C (core/_sample.h) finds the same occurrence through a hash of each window.
"""

from __future__ import annotations

import numpy as np

from mgf import Constraint, Option, hookimpl


class Motifs(Constraint):
    name = "motifs"
    options = (
        Option("length", int, 8, "tokens that must match an earlier passage (8: half a bar of notes' 16ths)",
               low=1, high=512),
        Option("bonus", float, 2.0, "added to the logit of what followed that passage (nats; 0: off)", low=0, high=50),
    )

    def prepare(self, ctx):
        pass

    def apply(self, logits, ctx):
        length, bonus = ctx.options["length"], ctx.options["bonus"]
        for row, history in enumerate(ctx.history):
            following = _after_last_match(history, length)
            if following is not None:
                logits[row, following] += np.float32(bonus)
        return logits

    def _native(self, ctx):
        return {"kind": "motifs", "length": ctx.options["length"], "bonus": ctx.options["bonus"]}


def _after_last_match(history: np.ndarray, length: int) -> int | None:
    """The token after the most recent occurrence of ``history``'s last ``length`` tokens that ends before they
    begin, or None."""
    n = len(history)
    if n < 2 * length:
        return None
    windows = np.lib.stride_tricks.sliding_window_view(history[:n - length], length)
    matches = np.flatnonzero((windows == history[n - length:]).all(axis=1))
    return int(history[matches[-1] + length]) if matches.size else None


@hookimpl
def register_constraints(register):
    register(Motifs)
