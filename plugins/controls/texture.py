"""Built-in controls of texture: ``density`` (notes that start in a bar) and ``polyphony`` (notes sounding at once).

Counts are exact up to where music is usually counted note by note, then binned (MIDI-GPT bins its per-bar density
the same way): a label is a count (``6``) or a range (``13-15``, ``48+``), and a number given at generation picks the
label it falls in.
"""

from __future__ import annotations

import numpy as np

from mgf import Automaton, BarBudget, Constraint, Control, Option, UsageError, hookimpl, token_pitches
from mgf.contract.clock import TokenKind, clock_of
from mgf.contract.controls import BarNotes, describe

#: the lower ends of the bins past the exact counts
DENSITY_BINS = (13, 16, 20, 24, 32, 48, 64)
POLYPHONY_BINS = (7,)


def _labels(exact: int, bins: tuple[int, ...]) -> tuple[str, ...]:
    """``0 .. exact``, then a range per bin (the last open)."""
    ranges = [f"{low}-{high - 1}" if high - 1 > low else str(low) for low, high in zip(bins, bins[1:])]
    return tuple(str(n) for n in range(exact + 1)) + tuple(ranges) + (f"{bins[-1]}+",)


def _bin(count: int, values) -> int:
    """The index of the label of ``values`` that ``count`` falls in."""
    for index in range(len(values) - 1, -1, -1):
        label = values[index]
        if count >= int(label.rstrip("+").split("-")[0]):
            return index
    return 0


def _number(name: str, text: str, values) -> int:
    """What a user typed (a count, or a label), as the index of the label it falls in; ``UsageError`` past the range."""
    text = str(text).strip()
    if text in values:
        return list(values).index(text)
    if not (text.isascii() and text.isdigit() and len(text) <= 6):
        raise UsageError(f"control {name!r}: {text!r:.40} is not a count it knows ({describe(list(values))})")
    count, top = int(text), values[-1]
    if not top.endswith("+") and count > int(top.split("-")[-1]):
        raise UsageError(f"control {name!r}: {count} is past its range ({describe(list(values))})")
    return _bin(count, values)


class Density(Control):
    """Notes that start in the bar: ``0`` to a bar's grid steps on a monophonic representation, counts to 12 then bins
    on a polyphonic one; ``--density 6``."""

    name = "density"
    description = "notes starting in the bar (counts, binned above 12); --density 6"

    def values(self, clock):
        polyphonic = bool((clock.kinds == TokenKind.NOTE_OFF).any())
        return _labels(12, DENSITY_BINS) if polyphonic else tuple(str(n) for n in range(min(clock.steps_per_bar, 64) + 1))

    def extract(self, notes: BarNotes, values):
        counts = np.bincount(notes.starts // notes.steps_per_bar, minlength=notes.bars)[:notes.bars]
        return np.array([_bin(int(c), values) for c in counts], np.int64)

    def parse(self, text, values):
        return _number(self.name, text, values)


class Polyphony(Control):
    """Notes sounding at once, on average over the steps of the bar where any sounds (rounded; 0: a silent bar), on a
    representation that sounds several at once; ``--polyphony 3``."""

    name = "polyphony"
    description = "notes sounding at once, bar average where any sounds (polyphonic representations); --polyphony 3"

    def supports(self, clock):
        if not (clock.kinds == TokenKind.NOTE_OFF).any():
            return "needs a representation that sounds several notes at once (NOTE_OFF tokens); this one is monophonic"
        return None

    def values(self, clock):
        return _labels(6, POLYPHONY_BINS)

    def extract(self, notes: BarNotes, values):
        per_bar, out = notes.steps_per_bar, np.zeros(notes.bars, np.int64)
        if not len(notes.starts):
            return out
        total = notes.bars * per_bar
        change = np.zeros(total + 1, np.int64)
        np.add.at(change, np.clip(notes.starts, 0, total), 1)
        np.add.at(change, np.clip(notes.ends, 0, total), -1)
        sounding = np.cumsum(change)[:total].reshape(notes.bars, per_bar)
        for bar, steps in enumerate(sounding):
            busy = steps[steps > 0]
            out[bar] = _bin(int(np.rint(busy.mean())) if busy.size else 0, values)
        return out

    def parse(self, text, values):
        return _number(self.name, text, values)


class FollowDensity(Constraint):
    """Give each bar the notes ``--density`` asks (one count, or one a bar from the first bar generated, repeating):
    once a bar has its count no note starts in it, and once its steps left are as many as the notes it lacks, each
    starts one; so ``--density 0`` is a silent bar and 16 a note on each of its 16 steps, which the ``density``
    control alone only leaned toward (0.22 and 12.3 notes a bar).  Where a token may move time by more than a step
    (``midi``), only the first half holds: at most the count (a bin's top) starts.  Without ``--density``, nothing."""

    name = "follow-density"
    options = (Option("density", str, None, "notes that start in each bar: '6', or one count a bar, repeating: '2 6'"),)

    def rules(self, ctx):
        text = ctx.options["density"]
        if not text:  # nothing asked: a model's default that waits for --density
            return []
        clock = clock_of(ctx.representation, self.name)
        if clock is None or not clock.steps_per_bar:
            raise UsageError(f"constraint {self.name!r} needs a representation with bars; {ctx.representation.name!r} "
                             "has none")
        density = Density()
        values = density.values(clock)
        items = str(text).replace(",", " ").split()
        if not 0 < len(items) <= 64:
            raise UsageError(f"constraint {self.name!r}: give 1 to 64 counts, got {len(items)}")
        tops = [values[density.parse(item, values)].split("-")[-1] for item in items]
        counts = [None if top.endswith("+") else int(top) for top in tops]  # None: no limit
        onsets = token_pitches(ctx.representation, self.name) >= 0
        moves = clock.advance.astype(np.int64)
        if moves.max(initial=0) > 1:  # time shifts: no step count to fill, the cap alone, for one count
            return [BarBudget(onsets, counts[0])] if len(set(counts)) == 1 and counts[0] is not None else []
        return [self._automaton(counts, clock.steps_per_bar, onsets, moves == 1, ctx)]

    #: entries of the automaton's tables (states x vocabulary) at most: about 20 MB
    MAX_TABLE = 1 << 22

    def _automaton(self, counts, per_bar, onsets, steps, ctx):
        """States (bar of the progression, step in the bar, notes started in it, counted up to one past the most a bar
        asks: beyond, a bar is past its count all the same); tokens that move no time keep the state."""
        asked_counts = [per_bar if count is None else min(count, per_bar) for count in counts]
        kinds, width = len(counts), max(asked_counts) + 2
        states = kinds * per_bar * width
        if states * len(onsets) > self.MAX_TABLE:
            raise UsageError(f"constraint {self.name!r}: {kinds} count(s) on bars of {per_bar} steps need "
                             f"{states * len(onsets):,} table entries, more than {self.MAX_TABLE:,}: give fewer counts")
        index = np.arange(states)
        bar, rest = np.divmod(index, per_bar * width)
        position, started = np.divmod(rest, width)
        wraps = position + 1 == per_bar
        after = np.where(wraps, ((bar + 1) % kinds) * per_bar * width,  # the next bar, from its first step
                         bar * per_bar * width + (position + 1) * width)
        following = np.repeat(index[:, None], len(onsets), axis=1)
        following[:, steps & ~onsets] = (after + np.where(wraps, 0, started))[:, None]
        following[:, steps & onsets] = (after + np.where(wraps, 0, np.minimum(started + 1, width - 1)))[:, None]
        asked = np.array(asked_counts)[bar]
        forbid = np.zeros((states, len(onsets)), bool)
        forbid[np.ix_(started >= asked, onsets & steps)] = True  # the bar has its notes
        forbid[np.ix_(asked - started >= per_bar - position, steps & ~onsets)] = True  # every step left must start one
        first = int(ctx.clock["step"][0]) // per_bar if ctx.clock is not None else 0  # the progression's first bar
        return Automaton(following, forbid, start=((-first) % kinds) * per_bar * width)


@hookimpl
def register_controls(register):
    register(Density)
    register(Polyphony)


@hookimpl
def register_constraints(register):
    register(FollowDensity)
