"""Attribute controls: what a bar of music is (its chord, its density, the piece's key), as tokens a model is conditioned on.

A control is an extractor and a token family (MidiTok's attribute controls, MIDI-GPT's per-bar attributes): from the
notes of a piece on its clock's grid (:class:`BarNotes`) it gives one value per bar, a label of its ``values``.  A
model trained with ``mgf train --controls chord,key,density`` reads, before the first token that falls in each bar,
one control token per control, in the order the bundle lists them (:func:`interleave`); the framework adds their ids
after the representation's own (and after the infilling ones), one per value plus one that stands for "any"
(:class:`Conditioned`), so that any representation with bars and any cell can be conditioned without code.
Training leaves a control out (its "any" token) with a probability per control, so that the model also runs without
it.  At generation the framework makes the row choose the bar's tokens as the clock enters it (the public rule
:class:`mgf.BarTokens`, in C): the values asked for (a progression repeats), else "any".

Third parties add controls with the ``register_controls`` hook (docs/contract.md, "Controls").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from mgf.contract.clock import Clock, TokenKind, clock_of
from mgf.contract.extension import Extension
from mgf.contract.representation import Representation
from mgf.errors import BundleError, PluginError, UsageError

#: the label of the token that stands for "not given", last in every family
ANY = "any"
#: values a control may declare, and the length of a label: a bundle's metadata stays small
MAX_VALUES, MAX_LABEL = 512, 40


@dataclass(frozen=True)
class BarNotes:
    """The notes of a piece on the grid of its clock, what a control's ``extract`` reads.

    ``pitches``, ``velocities``, ``starts`` and ``ends`` (grid steps, end exclusive) per note, in onset order;
    ``bars``: the bars the piece spans; ``steps_per_bar`` from the clock; ``polyphonic``: the representation can
    sound several notes at once (its clock has NOTE_OFF tokens).
    """

    pitches: np.ndarray
    velocities: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    bars: int
    steps_per_bar: int
    polyphonic: bool

    def sounding(self, bar: int) -> tuple[np.ndarray, np.ndarray]:
        """``(pitches, steps)``: the notes sounding in ``bar`` and for how many of its steps."""
        low, high = bar * self.steps_per_bar, (bar + 1) * self.steps_per_bar
        steps = np.minimum(self.ends, high) - np.maximum(self.starts, low)
        keep = steps > 0
        return self.pitches[keep], steps[keep]

    def onsets(self, bar: int) -> np.ndarray:
        """The pitches of the notes that start in ``bar``."""
        low = bar * self.steps_per_bar
        return self.pitches[(self.starts >= low) & (self.starts < low + self.steps_per_bar)]

    def profile(self, bar: int | None = None) -> np.ndarray:
        """float [12]: the steps each pitch class sounds in ``bar`` (None: the whole piece)."""
        if bar is None:
            pitches, steps = self.pitches, self.ends - self.starts
        else:
            pitches, steps = self.sounding(bar)
        return np.bincount(pitches % 12, weights=steps, minlength=12).astype(np.float64)


class Control:
    """A per-bar (or per-piece) attribute: its values, how to find it in music, how to read a value a user types.

    ``name`` is unique (``--controls NAME``, ``--control NAME=VALUE``); ``per_piece`` controls (a key) have one value
    for the whole piece, taken as one string.  A new instance serves one call.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    per_piece: ClassVar[bool] = False
    options: ClassVar[tuple] = ()  #: none: a control's values come from the bundle, not from options

    def supports(self, clock: Clock) -> str | None:
        """Why this control cannot condition a representation of ``clock`` (it has bars), or None."""
        return None

    def values(self, clock: Clock) -> Sequence[str]:
        """The value labels (at most :data:`MAX_VALUES`, unique, without ``"any"``), what the bundle declares."""
        raise NotImplementedError

    def extract(self, notes: BarNotes, values: Sequence[str]) -> np.ndarray:
        """int ``[notes.bars]``: each bar's value, an index into ``values``."""
        raise NotImplementedError

    def parse(self, text: str, values: Sequence[str]) -> int:
        """The index in ``values`` of what a user typed; ``UsageError`` naming the valid values.  Default: the label,
        case aside."""
        folded = [value.casefold() for value in values]
        if text.strip().casefold() in folded:
            return folded.index(text.strip().casefold())
        raise UsageError(f"control {self.name!r}: {text!r:.40} is not one of its values ({describe(values)})")

    @classmethod
    def _contract_problem(cls, subclass: type[Control]) -> str | None:
        """Why ``subclass`` cannot be registered as a control, or None."""
        if subclass.values is Control.values or subclass.extract is Control.extract:
            return "it must implement values and extract"
        return None


def describe(values: Sequence[str], most: int = 30) -> str:
    """``values`` as a short list for a message."""
    shown = ", ".join(values[:most])
    return shown + (f", ... ({len(values)} in all)" if len(values) > most else "")


@dataclass(frozen=True)
class Family:
    """One control of a model: the control, its labels, the id of its first value (its "any" id follows the last)."""

    control: Control
    values: tuple[str, ...]
    first: int

    @property
    def any(self) -> int:
        return self.first + len(self.values)

    @property
    def size(self) -> int:
        return len(self.values) + 1


class Conditioned(Extension):
    """``base`` (a representation, or :class:`mgf.Infilling` of one) with a token family per control after its ids.

    Name, config, files and clock are the base's; the control ids are framing, as infilling's are: they move no time,
    ``write``, ``to_notes`` and the decoder pass over them, and a primer may not hold them.
    """

    def __init__(self, base: Representation, controls: Sequence[tuple[Control, Sequence[str]]]) -> None:
        if isinstance(base, Conditioned):
            raise UsageError("controls: the representation already has control tokens")
        if not controls:
            raise UsageError("controls: give at least one")
        first, families = base.vocab_size, []
        for control, values in controls:
            values = tuple(values)
            families.append(Family(control, values, first))
            first += len(values) + 1
        self.families: tuple[Family, ...] = tuple(families)
        names = [f.control.name for f in families]
        if len(set(names)) < len(names):
            raise UsageError("controls: each control may be given once")
        super().__init__(base)
        # Infilling's ids, when the base has them (they follow the music, the controls follow them)
        infill = getattr(base, "infill", None)
        if infill is not None:
            self.infill = infill

    @property
    def vocab_size(self) -> int:
        return self.families[-1].any + 1

    def transpose(self, tokens: np.ndarray, semitones: int) -> np.ndarray | None:
        """The base's transposition of music without control tokens (controls are extracted after it)."""
        return self.base.transpose(self.music(tokens), semitones)

    # -- the controls
    def is_control(self, tokens: np.ndarray) -> np.ndarray:
        """bool, per token: a control id."""
        tokens = np.asarray(tokens)
        return (tokens >= self.base.vocab_size) & (tokens < self.vocab_size)

    def music(self, tokens: Any) -> np.ndarray:
        """``tokens`` without their control ids."""
        array = np.asarray(tokens)
        if array.dtype.kind not in "iu":
            return array  # the base says what is wrong with it
        return array[~self.is_control(array)] if array.ndim == 1 else array

    def family(self, name: str) -> Family:
        """The family of control ``name``; ``UsageError`` naming the model's controls."""
        for family in self.families:
            if family.control.name == name:
                return family
        raise UsageError(f"this model takes no control {name!r} (it takes: {', '.join(self.names)})")

    @property
    def names(self) -> list[str]:
        return [family.control.name for family in self.families]

    def metadata(self) -> list[dict[str, Any]]:
        """The bundle's ``mgf.controls``: per control, its name and value labels, in token order."""
        return [{"name": f.control.name, "values": list(f.values)} for f in self.families]

    def bar_notes(self, tokens: np.ndarray, offset: int = 0) -> BarNotes:
        """The notes of ``tokens`` (music of the base, no control ids) on the clock's grid, from step ``offset``."""
        clock = clock_of(self.base)
        assert clock is not None  # a Conditioned base has bars (checked when the controls were chosen)
        tokens = np.asarray(tokens, dtype=np.int32)
        notes = self.base.to_notes(tokens) if len(tokens) else []
        array = np.array([(p, v, s, e) for p, v, s, e in notes], dtype=np.float64).reshape(-1, 4)
        starts = np.rint(array[:, 2] / clock.step_seconds).astype(np.int64) + offset
        ends = np.maximum(np.rint(array[:, 3] / clock.step_seconds).astype(np.int64) + offset, starts + 1)
        total = int(clock.steps(tokens)[-1]) + offset
        bars = max(-(-total // clock.steps_per_bar), int(ends.max(initial=0) - 1) // clock.steps_per_bar + 1, 1)
        order = np.argsort(starts, kind="stable")
        return BarNotes(array[order, 0].astype(np.int64), array[order, 1].astype(np.int64), starts[order], ends[order],
                        bars, clock.steps_per_bar, bool((clock.kinds == TokenKind.NOTE_OFF).any()))

    def extract(self, tokens: np.ndarray, offset: int = 0, notes: BarNotes | None = None) -> np.ndarray:
        """int ``[bars, controls]``: the id of each bar's value of each control, in the music ``tokens`` (from step
        ``offset``: the key of a part is the part's)."""
        notes = notes if notes is not None else self.bar_notes(tokens, offset)
        out = np.empty((notes.bars, len(self.families)), np.int32)
        for column, family in enumerate(self.families):
            values = np.asarray(family.control.extract(notes, family.values))
            if values.shape != (notes.bars,) or values.dtype.kind not in "iu" or \
                    (values.size and (values.min() < 0 or values.max() >= len(family.values))):
                raise PluginError(f"control {family.control.name!r}: extract must give one value index in "
                                  f"[0, {len(family.values)}) per bar ({notes.bars}), got {values.dtype} {list(values.shape)}")
            out[:, column] = family.first + values
        return out

    def __repr__(self) -> str:
        return f"Conditioned({self.base!r}, {self.names})"


def interleave(clock: Clock, tokens: np.ndarray, controls: np.ndarray, offset: int = 0, first_bar: int = 0) -> np.ndarray:
    """``tokens`` with the control ids of ``controls[b]`` (int ``[bars, K]``, a row per bar from bar 0; -1: none) before
    the first token that falls in bar b, for each bar from ``first_bar`` in which one falls (steps from ``offset``).

    The rule the generation follows (:class:`mgf.BarTokens`): so what a model learns is what it is asked.
    """
    tokens = np.asarray(tokens, dtype=np.int32)
    if not len(tokens):
        return tokens
    bars = (clock.steps(tokens)[:-1] + offset) // clock.steps_per_bar
    entering = np.flatnonzero((bars > np.concatenate([[first_bar - 1], np.maximum.accumulate(bars)[:-1]]))
                              & (bars >= first_bar))
    parts, last = [], 0
    for index in entering.tolist():
        row = controls[min(int(bars[index]), len(controls) - 1)]
        parts += [tokens[last:index], row[row >= 0]]
        last = index
    parts.append(tokens[last:])
    return np.concatenate(parts).astype(np.int32)


def families_for(clock: Clock | None, controls: Sequence[Control], where: str) -> list[tuple[Control, list[str]]]:
    """``(control, values)`` of each of ``controls`` for a representation of ``clock``; ``UsageError`` where one cannot
    condition it (no bars, or the control says why)."""
    if clock is None or not clock.steps_per_bar:
        raise UsageError(f"{where}: controls are per bar, and this representation has no bars")
    out = []
    for control in controls:
        why = control.supports(clock)
        if why:
            raise UsageError(f"{where}: control {control.name!r} {why}")
        values = [str(v) for v in control.values(clock)]
        check_values(control.name, values, PluginError)
        out.append((control, values))
    return out


def check_values(name: str, values: Any, error: type = BundleError) -> None:
    """``values`` must be 1 to :data:`MAX_VALUES` unique short labels, without "any"."""
    if not isinstance(values, list) or not 1 <= len(values) <= MAX_VALUES or \
            not all(isinstance(v, str) and 0 < len(v) <= MAX_LABEL for v in values):
        raise error(f"control {name!r}: values must be 1 to {MAX_VALUES} labels of 1 to {MAX_LABEL} characters")
    if len(set(values)) < len(values) or ANY in values:
        raise error(f"control {name!r}: values must be unique and not {ANY!r}")


def resolve(representation: Representation, given: Mapping[str, Any],
            optional: frozenset[str] = frozenset()) -> tuple[tuple[int, ...], ...]:
    """Per family of ``representation``, the ids a user's ``given`` values ask for, bar after bar (a progression
    repeats); ``(any,)`` for a control not given.  ``UsageError`` (before any work) for a control the model lacks or a
    value outside its range, naming the valid ones; but a control in ``optional`` (an option of a constraint of the run
    that has the control's name: ``--key "Eb pentatonic"`` for ``scale``) whose value it does not know is "any"."""
    if not isinstance(representation, Conditioned):
        if given:
            raise UsageError(f"this model takes no controls ({', '.join(sorted(given))} given); train one that does "
                             "with `mgf train --controls chord,key,density ...`")
        return ()
    unknown = sorted(set(given) - set(representation.names))
    if unknown:
        raise UsageError(f"this model takes no control {unknown[0]!r} (it takes: {', '.join(representation.names)})")
    out: list[tuple[int, ...]] = []
    for family in representation.families:
        value = given.get(family.control.name)
        if value is None:
            out.append((family.any,))
            continue
        if isinstance(value, str):
            items = [value] if family.control.per_piece else value.replace(",", " ").replace("|", " ").split()
        elif isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            items = [str(value)]
        elif isinstance(value, Sequence) and not family.control.per_piece:
            items = [str(v) for v in value]
        else:
            raise UsageError(f"control {family.control.name!r}: give a value, or for a per-bar control a sequence of "
                             f"values (got {type(value).__name__})")
        if not items or len(items) > 4096:
            if family.control.name in optional:
                out.append((family.any,))
                continue
            raise UsageError(f"control {family.control.name!r}: give 1 to 4096 values, got {len(items)}")
        ids = []
        for item in items:
            try:
                index = family.control.parse(item, family.values)
            except UsageError:
                if family.control.name in optional:
                    ids = [family.any]
                    break
                raise
            if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < len(family.values):
                raise PluginError(f"control {family.control.name!r}: parse gave {index!r}, not an index into its values")
            ids.append(family.first + int(index))
        out.append(tuple(ids))
    return tuple(out)


def bar_table(asked: Sequence[Sequence[int]]) -> np.ndarray:
    """int ``[K, L]``: the control ids of bar after bar (a progression repeats: K is the longest's length, a shorter one
    cycles within it where K is a multiple of its length, else K is their least common multiple, at most 4096)."""
    lengths = [len(ids) for ids in asked]
    period = int(np.lcm.reduce(lengths)) if lengths else 1
    if period > 4096:
        raise UsageError(f"controls: the progressions given repeat together only every {period} bars (at most 4096)")
    return np.array([[ids[bar % len(ids)] for ids in asked] for bar in range(period)], np.int32).reshape(period, len(asked))


@dataclass(frozen=True)
class Framed:
    """What a conditioned run reads and is made to choose: ``before`` (the primer) and ``after`` (a gap's right side)
    with their bars' control ids, and the ``table`` of the bars from ``first`` (the bar of the first generated token)
    up to ``stop`` (None: no end), a row per bar, repeating (:class:`mgf.BarTokens`)."""

    before: np.ndarray
    after: np.ndarray
    table: np.ndarray
    first: int
    stop: int | None


def frame(conditioned: Conditioned, before: np.ndarray, asked: Sequence[Sequence[int]], after: np.ndarray | None = None,
          end: int | None = None) -> Framed:
    """``before`` (and a gap's ``after``, from grid step ``end``) with their bars' control ids interleaved, and the bars
    generated (from the bar the next token falls in) with those ``asked`` (:func:`resolve`; the bar where the primer
    stops, if it stops inside one, takes the first row asked).

    A control asked for reads its true values in the music given (a key from both sides of a gap); one not asked reads
    "any" there too: training leaves a control out of a whole window, so a model has seen a control either everywhere
    or nowhere, never true values around "any" ones."""
    clock = clock_of(conditioned)  # checked: a clock that does not fit is the plugin's one-line error
    assert clock is not None
    per_bar = clock.steps_per_bar
    before = np.asarray(before, np.int32)
    table = bar_table(asked or [(family.any,) for family in conditioned.families])
    first = int(clock.steps(before)[-1]) // per_bar
    start = None if after is None or end is None else int(end)  # the gap's right side's first step
    gap = np.empty(0, np.int32) if start is None else np.asarray(after, np.int32)
    unasked = [set(table[:, column].tolist()) == {family.any} for column, family in enumerate(conditioned.families)]
    if all(unasked):  # every bar reads "any": no need to read the music (for 16,000 primer tokens: 0.15 s)
        last = 0 if start is None else start + int(clock.steps(gap)[-1])
        rows = np.tile(np.array([family.any for family in conditioned.families], np.int32),
                       (max(first, last // per_bar) + 1, 1))
    else:
        notes = conditioned.bar_notes(before)
        if start is not None:
            notes = _merged(notes, conditioned.bar_notes(gap, start))
        rows = conditioned.extract(before, notes=notes)
        for column, family in enumerate(conditioned.families):
            if unasked[column]:
                rows[:, column] = family.any
    own = np.concatenate([rows[:first], table[:1]])
    framed_after = gap if start is None else interleave(clock, gap, rows, offset=start, first_bar=start // per_bar)
    return Framed(interleave(clock, before, own), framed_after, table, first,
                  None if start is None else -(-start // per_bar))


def _merged(a: BarNotes, b: BarNotes) -> BarNotes:
    """The notes of both (``b`` later in the piece), over the bars of the longer."""
    pitches, velocities, starts, ends = (np.concatenate([getattr(a, name), getattr(b, name)])
                                         for name in ("pitches", "velocities", "starts", "ends"))
    return BarNotes(pitches, velocities, starts, ends, max(a.bars, b.bars), a.steps_per_bar, a.polyphonic)


def control_margin(conditioned: Conditioned, steps: int) -> int:
    """Control tokens that ``steps`` tokens of music can cross bars for, at most: a row's per bar entered."""
    clock = clock_of(conditioned)  # checked: a clock that does not fit is the plugin's one-line error
    assert clock is not None
    music = np.arange(conditioned.base.vocab_size)
    crossing = bool((clock.kinds[music] == TokenKind.BAR).any() or (clock.kinds[music] == TokenKind.POSITION).any())
    longest = int(clock.advance[music].max(initial=0))
    bars = steps if crossing else -(-steps * longest // clock.steps_per_bar)
    return len(conditioned.families) * (bars + 1)
