"""Infilling (``mgf.infill``, ``mgf.infill_piece``): a model trained with ``mgf train --infill`` fills a gap in a piece.

The model reads the gap's surroundings as it learnt them (:func:`mgf.contract.infill.sequence`: the music after
the gap, then the music before it, each cut to the ``context`` tokens of its bundle's ``mgf.infill``) and writes
the middle.  The rules, constraints and processors read the music before the gap as their primer, so that the
clock places the middle where it falls in the piece.  Where the representation has a clock, a rule
(:class:`mgf.TimeLimit` with ``final``) keeps every middle from passing the gap's end, closes the notes it leaves
sounding there and then ends it with END: each middle advances exactly the gap's steps, under any sampler and
any weights.  The run is :func:`mgf.generate`'s, with its samplers, processors, constraints and batching; it stops
once every row has ended.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from mgf.contract.clock import Clock, TokenKind, clock_of
from mgf.contract.controls import Conditioned, frame
from mgf.contract.infill import gap_bounds, gap_bounds_seconds, sequence
from mgf.contract.model import Model
from mgf.errors import InputError, UsageError
from mgf.generation.api import progress_bar
from mgf.generation.plan import Gap, Plan, check_limit, infill_tokens, plan as make_plan
from mgf.generation.processors import Processor
from mgf.generation.run import Run

#: a middle may take MARGIN times the tokens per step of the music around it; with a clock, and every pitch's
#: NOTE_OFF and END more (its end rule makes it end by then, whatever the weights); without, SLACK per token id more
#: (random weights choose END after about as many tokens as the vocabulary has)
MARGIN, SLACK = 4, 4


def infill(
    model: Model,
    before,
    after,
    *,
    length: int | None = None,
    max_tokens: int | None = None,
    sampler: str | None = None,
    seed: int | np.random.SeedSequence | None = None,
    num_outputs: int | None = None,
    progress: bool | None = False,
    constraints: Sequence[str] | None = None,
    processors: Sequence[Processor] | None = None,
    plan: Plan | None = None,
    **options: Any,
) -> np.ndarray | list[np.ndarray]:
    """The middle a model writes between ``before`` and ``after`` (token ids of its representation), END left out.

    ``length``: the grid steps of the representation's clock that the middle fills (what :func:`infill_piece`
    measures: from the gap's first token to the first token after it); every middle ends exactly there.  Without
    a clock it is the gap's length in tokens, and a middle ends where the model chooses END.  ``max_tokens``
    bounds a middle, END included (default: from the tokens per step of the music around the gap, or exact where
    every token moves time); with a clock the end rule makes every middle end by then whatever the weights, if
    the longest moves fit in it; a middle that has not ended is an ``InputError``.  The other arguments are
    :func:`mgf.generate`'s (a ``plan`` stands for its settings; its steps and primer are the gap's).  With
    ``num_outputs`` (or a plan's) a list of middles (their lengths in tokens differ), generated
    as one batch.  A model that cannot infill is a ``UsageError`` saying how to train one.
    """
    ids = infill_tokens(model.representation)
    before, after = (_tokens(part, name) for part, name in ((before, "before"), (after, "after")))
    if length is None or isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 1:
        raise UsageError(f"infill: length must be a positive integer (the gap's grid steps), got {length!r}")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, (int, np.integer))
                                   or max_tokens < 1):
        raise UsageError(f"infill: max_tokens must be a positive integer, got {max_tokens!r}")
    clock = clock_of(model.representation)
    start = model.representation.start_token
    budget = int(max_tokens) if max_tokens is not None else _budget(clock, before, after, int(length), ids.suffix, start)
    context = (model.infill or {}).get("context", max(len(before), len(after)))
    if (after == start).any():
        raise InputError(f"infill: after must not contain the start token {start} (it is added)")
    if plan is None:
        settings = make_plan(getattr(model, "defaults", {}), budget, sampler=sampler, constraints=constraints,
                             options=options, processors=processors, primer=before, representation=model.representation,
                             seed=seed, num_outputs=num_outputs)
    elif any(x is not None for x in (sampler, seed, num_outputs, constraints, processors)) or options:
        raise UsageError("give infill either a plan or the settings it is made of, not both")
    else:
        check_limit("steps", budget)
        settings = dataclasses.replace(plan.primed(before, model.representation), steps=budget)
    end = None if clock is None else int(clock.steps(before)[-1]) + int(length)
    read_before, read_after = before, after
    conditioned = model.representation if isinstance(model.representation, Conditioned) else None
    if conditioned is not None and end is not None:  # both sides with their bars' controls, as the model learnt them
        framed = frame(conditioned, before, settings.controls, after, end)
        read_before, read_after = framed.before, framed.after
        settings = dataclasses.replace(settings, steps=budget + len(conditioned.families) * (-(-int(length) //
                                                                                              clock.steps_per_bar) + 2))
        budget = settings.steps
    prompt = sequence(ids, read_before[max(0, len(read_before) - context):], read_after[:context])
    gap = Gap(tuple(prompt.tolist()), end, () if clock is None else _held(clock, after), tuple(after.tolist()))
    run = Run(model, dataclasses.replace(settings, gap=gap))
    run.bar = bar = progress_bar(progress, len(prompt) + budget)
    try:
        rows = run.generate(int(budget))
    finally:
        if bar is not None:
            bar.close()
    middles = []
    for index, row in enumerate(rows):
        ended = np.flatnonzero(row == ids.end)
        if not ended.size:
            which = f"output {index + 1}'s middle" if settings.num_outputs is not None else "the middle"
            raise InputError(f"infill: {which} did not reach the gap's end within {budget} tokens; raise max_tokens")
        middles.append(row[: ended[0]].astype(np.int32))
    return middles[0] if settings.num_outputs is None else middles


def infill_piece(
    model: Model,
    tokens,
    *,
    bars: tuple[int, int] | None = None,
    seconds: tuple[float, float] | None = None,
    **settings: Any,
) -> np.ndarray | list[np.ndarray]:
    """``tokens`` (a piece of the model's representation) with the gap refilled: whole pieces, the music outside the
    gap as it was.

    The gap is ``bars=(a, b)``, bars ``a`` to ``b`` as a musician counts them (from 1, both included), or
    ``seconds=(a, b)`` (from ``a`` up to ``b``) where the representation has no bars; :func:`gap_bounds` finds
    its tokens, and the middle fills exactly their steps.  The notes the piece holds across the gap's end keep
    sounding; the middle closes its others there, and ends with the piece's loudness (VELOCITY) there.
    ``settings`` are :func:`infill`'s; with ``num_outputs`` (or a plan's), a list.
    """
    infill_tokens(model.representation)  # before anything else: a model that cannot infill says so first
    piece = _tokens(tokens, "the piece")
    clock = clock_of(model.representation, needed_by="infilling a piece's bars or seconds")
    assert clock is not None  # clock_of says so
    if (bars is None) == (seconds is None):
        raise UsageError("infill: give the gap as bars or as seconds, one of them")
    steps = clock.steps(piece)
    if bars is not None:
        first, last = bars
        if not clock.steps_per_bar:
            raise UsageError(f"infill: representation {model.representation.name!r} has no bars; give the gap in seconds")
        count = math.ceil(int(steps[-1]) / clock.steps_per_bar)
        if not 1 <= first <= last:
            raise UsageError(f"infill: bars run from 1 up, the first no later than the last; got {first}-{last}")
        if last > count:
            raise UsageError(f"infill: bars {first}-{last} run past the piece, which has {count} bar(s)")
        i, j = gap_bounds(clock, piece, first - 1, last - 1)
        where = f"bars {first}-{last}"
    else:
        start, stop = seconds  # type: ignore[misc]
        total = float(clock.seconds_of(steps[-1]))
        if not 0 <= start < stop:
            raise UsageError(f"infill: the gap runs from A to B seconds, 0 <= A < B; got {start}-{stop}")
        if stop > total + 1e-9:
            raise UsageError(f"infill: seconds {start}-{stop} run past the piece, which lasts {total:.2f} s")
        i, j = gap_bounds_seconds(clock, piece, start, stop)
        where = f"seconds {start}-{stop}"
    if i == j or steps[j] == steps[i]:
        raise UsageError(f"infill: no music falls in {where} of the piece: nothing to fill")
    middles = infill(model, piece[:i], piece[j:], length=int(steps[j] - steps[i]), **settings)
    whole = [np.concatenate([piece[:i], middle, _loudness(clock, piece, i, j, middle), piece[j:]]).astype(np.int32)
             for middle in ([middles] if isinstance(middles, np.ndarray) else middles)]
    return whole if isinstance(middles, list) else whole[0]


def _tokens(tokens, name: str) -> np.ndarray:
    """``tokens`` as a 1-D int32 array, or an ``InputError`` naming them."""
    array = np.asarray(tokens)
    if array.size == 0:
        return np.empty(0, np.int32)
    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise InputError(f"infill: {name} must be a 1-D sequence of integer token ids")
    return array.astype(np.int32)


def _loudness(clock: Clock, piece: np.ndarray, i: int, j: int, middle: np.ndarray) -> list[int]:
    """The piece's VELOCITY token in force at the gap's end, where the middle leaves another in force (so that the
    notes after the gap keep their loudness); else nothing."""
    def last(tokens: np.ndarray) -> int | None:
        found = np.flatnonzero(clock.kinds[tokens] == TokenKind.VELOCITY)
        return int(tokens[found[-1]]) if found.size else None

    wanted = last(piece[:j])
    return [] if wanted is None or wanted == last(np.concatenate([piece[:i], middle])) else [wanted]


def _held(clock: Clock, after: np.ndarray) -> tuple[int, ...]:
    """The pitches that ``after`` closes without starting them: notes the piece holds across the gap's end."""
    held: list[int] = []
    seen: set[int] = set()
    for kind, pitch in zip(clock.kinds[after].tolist(), clock.pitches[after].tolist()):
        if kind == TokenKind.REST:
            break
        if kind in (TokenKind.NOTE_ON, TokenKind.NOTE_OFF) and pitch not in seen:
            seen.add(pitch)
            if kind == TokenKind.NOTE_OFF:
                held.append(pitch)
    return tuple(held)


def _budget(clock: Clock | None, before: np.ndarray, after: np.ndarray, length: int, music: int, start: int) -> int:
    """Tokens a middle of ``length`` may take, END included: exact where every token of music moves time on
    (``notes``, ``audio``), else from the tokens per step of the music around the gap."""
    if clock is None:
        return length * MARGIN + SLACK * music
    chosen = np.arange(music) != start
    kinds, moves = clock.kinds[:music][chosen], clock.advance[:music][chosen]
    plain = (kinds != TokenKind.BAR) & (kinds != TokenKind.POSITION)
    if moves.size and moves.min() >= 1 and plain.all():
        return length // int(moves.min()) + 1
    spanned = int(clock.steps(before)[-1]) + int(clock.steps(after)[-1])
    fewest = length // max(int(moves[plain].max(initial=0)), 1) + 1  # by the longest moves
    # then room for a NOTE_OFF of every pitch, and END
    return max(math.ceil(length * max(len(before) + len(after), 1) / max(spanned, 1) * MARGIN), fewest) + 128 + 1
