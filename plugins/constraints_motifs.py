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
held longer still.  A restatement earns the bonus for ``max_run`` tokens in a row at most (a
folk tune restates a phrase, then moves on): without the cap, what has just been restated
matches again at the next step, and a piece can loop on one motif to its end.  Nothing is
forbidden; a token another constraint forbade stays forbidden.

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
        Option("max_run", int, 32, "tokens in a row a restatement may be favoured for (32: two bars of notes' 16ths)",
               low=1, high=1_000_000),
    )

    def prepare(self, ctx):
        self.states: dict[bytes, tuple[int, int | None]] = {}

    def apply(self, logits, ctx):
        length, bonus, cap = ctx.options["length"], np.float32(ctx.options["bonus"]), ctx.options["max_run"]
        states = {}
        for row, history in enumerate(ctx.history):
            previous = self.states.get(history[:-1].tobytes()) if len(history) else None
            run = _run(history, length) if previous is None else _next_run(*previous, history[-1])
            following = _after_last_match(history, length)
            states[history.tobytes()] = (run, following)
            if following is not None and run < cap:
                logits[row, following] += bonus
        self.states = states
        return logits

    def _native(self, ctx):
        return {"kind": "motifs", "length": ctx.options["length"], "bonus": ctx.options["bonus"],
                "max_run": ctx.options["max_run"], "run": _run(ctx.history[0], ctx.options["length"])}


def _after_last_match(history: np.ndarray, length: int) -> int | None:
    """The token after the most recent occurrence of ``history``'s last ``length`` tokens that ends before they
    begin, or None."""
    n = len(history)
    if n < 2 * length:
        return None
    windows = np.lib.stride_tricks.sliding_window_view(history[:n - length], length)
    matches = np.flatnonzero((windows == history[n - length:]).all(axis=1))
    return int(history[matches[-1] + length]) if matches.size else None


def _next_run(run: int, following: int | None, token: int) -> int:
    """The restatement's length after ``token``: one more if it was what the bonus favoured, else 0."""
    return run + 1 if following is not None and token == following else 0


def _run(history: np.ndarray, length: int) -> int:
    """How many of ``history``'s last tokens in a row each continued the passage before them (from scratch)."""
    run = 0
    for step in range(len(history)):
        run = _next_run(run, _after_last_match(history[:step], length), history[step])
    return run


@hookimpl
def register_constraints(register):
    register(Motifs)
