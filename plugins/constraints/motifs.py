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

The whole rule is the public ``mgf.NgramBonus``, which the core runs in both loops.
"""

from __future__ import annotations

from mgf import Constraint, NgramBonus, Option, hookimpl


class Motifs(Constraint):
    name = "motifs"
    options = (
        Option("length", int, 8, "tokens that must match an earlier passage (8: half a bar of notes' 16ths)",
               low=1, high=512),
        Option("bonus", float, 2.0, "added to the logit of what followed that passage (nats; 0: off)", low=0, high=50),
        Option("max_run", int, 32, "tokens in a row a restatement may be favoured for (32: two bars of notes' 16ths)",
               low=1, high=1_000_000),
    )

    def rules(self, ctx):
        return [NgramBonus(ctx.options["length"], ctx.options["bonus"], ctx.options["max_run"])]


@hookimpl
def register_constraints(register):
    register(Motifs)
