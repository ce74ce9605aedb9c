"""The rules a constraint is assembled from (``mgf.rules``): public building blocks the core runs in C.

A constraint's ``rules(ctx)`` returns a list of these; the core compiles them once per run
(:class:`mgf.kernel._native.RuleSet`) and applies them in both loops, the C loop included, so a third-party
constraint built from them runs at the speed of the built-in ones, which are built from the same blocks.
Each rule edits a row's logits before every choice, in the order given, after the start token is forbidden:

- :class:`Forbid`: these tokens are never chosen.
- :class:`RunLimit`: tokens fall in groups; once the group started last has started ``max_run`` times in a row,
  its tokens are forbidden (no-repeat: groups are pitches; hold-limit: each token its own group).
- :class:`NgramBonus`: the token that followed the most recent earlier occurrence of the row's last ``length``
  tokens (ending before they begin) gets ``bonus`` added to its logit, while the restatement has run fewer than
  ``max_run`` tokens in a row.
- :class:`CloseNotes`: on the representation's clock, no token carries a sounding note past ``max_steps`` grid
  steps; once a note has sounded that long only NOTE_OFFs of such notes remain; with ``max_polyphony`` notes
  sounding, NOTE_ONs of silent pitches are forbidden and their probability goes to the (first) NOTE_OFF of the
  longest-sounding note (the lowest pitch among equals).  A note ends at a NOTE_OFF of its pitch or at a REST,
  which ends every note (and is never forbidden for carrying one).
- :class:`Automaton`: a state per row runs over the primer and each chosen token (``next[state, token]``); in
  state s, the tokens of ``forbid[s]`` are forbidden and ``bias[s]`` is added.
- :class:`BarMask`: in bar b the tokens of ``masks[b % K]`` (``cycle``) or ``masks[min(b, K - 1)]`` are forbidden.
- :class:`BarBias`: in bar b ``bias[b % K]`` (``cycle``) or ``bias[min(b, K - 1)]`` is added to the logits; with
  ``keep``, the kept tokens are then shifted together so that their total probability is what it was.
- :class:`BarBudget`: at most ``limit`` of these tokens per bar.
- :class:`BarTokens`: as the row enters bar b (``first <= b < stop``), before any other token of the bar, it
  chooses the ids of ``tokens[(b - first) % K]`` (``cycle``) or ``tokens[min(b - first, K - 1)]`` in order (attribute
  controls); everywhere else the ``reserved`` tokens are forbidden.
- :class:`TimeLimit`: no token moves the row to a step past ``end`` (by the clock's rules: a BAR to the next bar
  line, a POSITION to its place in the bar).  With ``final`` (infilling's END): ``final`` is forbidden before
  ``end``; at ``end`` the NOTE_OFFs of the notes sounding there come first (but those of ``held``), then only
  ``final``, and after ``final`` only ``final``: a row ends exactly at ``end``, its notes closed; with ``within``
  it does so by that many tokens, for any weights, where the clock moves time without BAR and POSITION tokens.

Bar, beat and step come from the representation's :class:`mgf.Clock` (the rules that need one say so with
``needs_clock``); a run whose representation has none refuses them with a one-line error.  Arrays are checked
here (dtype, shape, values) and against the vocabulary when the run compiles them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Union

import numpy as np

from mgf.errors import PluginError, UsageError

__all__ = ["RULES", "Automaton", "BarBias", "BarBudget", "BarMask", "BarTokens", "CloseNotes", "Forbid", "NgramBonus", "Rule", "RunLimit",
           "TimeLimit"]

_INT32 = (-(2**31), 2**31 - 1)


def _array(rule, name: str, kinds: str, ndim: int):
    """The field ``name`` of ``rule`` as a read-only numpy array of one of the dtype ``kinds`` and ``ndim``."""
    value = getattr(rule, name)
    array = np.array(value)  # a copy: the rule stays as it was made
    if array.ndim != ndim or array.dtype.kind not in kinds or (ndim == 2 and 0 in array.shape):
        what = {"b": "bool", "iu": "int", "f": "float"}[kinds]
        raise PluginError(f"mgf.rules.{type(rule).__name__}: {name} must be a non-empty {ndim}-D {what} array, "
                          f"got {array.dtype} {list(array.shape)}")
    if kinds == "iu" and array.size and (array.min() < _INT32[0] or array.max() > _INT32[1]):
        raise PluginError(f"mgf.rules.{type(rule).__name__}: {name} must fit int32")
    array.flags.writeable = False
    object.__setattr__(rule, name, array)
    return array


def _int(rule, name: str, low: int, high: int = 2**62) -> None:
    value = getattr(rule, name)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise UsageError(f"mgf.rules.{type(rule).__name__}: {name} must be an integer in [{low}, {high}], got {value!r}")
    object.__setattr__(rule, name, int(value))


@dataclass(frozen=True, eq=False)
class Forbid:
    """``tokens``: bool [V]; these tokens are never chosen."""

    tokens: np.ndarray
    kind: ClassVar[str] = "forbid"
    needs_clock: ClassVar[bool] = False

    def __post_init__(self) -> None:
        _array(self, "tokens", "b", 1)


@dataclass(frozen=True, eq=False)
class RunLimit:
    """``groups``: int [V], each token's group (-1: none; such tokens neither count nor end a run); once the group
    started last has started ``max_run`` times in a row, its tokens are forbidden."""

    groups: np.ndarray
    max_run: int
    kind: ClassVar[str] = "run_limit"
    needs_clock: ClassVar[bool] = False

    def __post_init__(self) -> None:
        groups = _array(self, "groups", "iu", 1)
        if groups.size and groups.min() < -1:
            raise PluginError("mgf.rules.RunLimit: groups must be >= -1")
        _int(self, "max_run", 1, 2**30)


@dataclass(frozen=True, eq=False)
class NgramBonus:
    """The token after the most recent earlier occurrence of the row's last ``length`` tokens gets ``bonus`` (nats)
    added, while the restatement has run fewer than ``max_run`` tokens in a row."""

    length: int
    bonus: float
    max_run: int
    kind: ClassVar[str] = "ngram_bonus"
    needs_clock: ClassVar[bool] = False

    def __post_init__(self) -> None:
        _int(self, "length", 1, 2**30)
        _int(self, "max_run", 1, 2**30)
        try:
            bonus = float(self.bonus)
        except (TypeError, ValueError):
            bonus = float("nan")
        if not 0 <= bonus <= 1e6:
            raise UsageError(f"mgf.rules.NgramBonus: bonus must be a number in [0, 1e6], got {self.bonus!r}")
        object.__setattr__(self, "bonus", bonus)


@dataclass(frozen=True, eq=False)
class CloseNotes:
    """No note sounds longer than ``max_steps`` grid steps; at most ``max_polyphony`` (None: any) at once."""

    max_steps: int
    max_polyphony: int | None = None
    kind: ClassVar[str] = "close_notes"
    needs_clock: ClassVar[bool] = True

    def __post_init__(self) -> None:
        _int(self, "max_steps", 1, 2**30)
        if self.max_polyphony is not None:
            _int(self, "max_polyphony", 1, 128)


@dataclass(frozen=True, eq=False)
class Automaton:
    """``next``: int [S, V] next state; ``forbid``: bool [S, V] forbidden per state; ``bias``: float [S, V] added per
    state; the state starts at ``start`` and runs over the primer, then each chosen token."""

    next: np.ndarray
    forbid: np.ndarray | None = None
    bias: np.ndarray | None = None
    start: int = 0
    kind: ClassVar[str] = "automaton"
    needs_clock: ClassVar[bool] = False

    def __post_init__(self) -> None:
        following = _array(self, "next", "iu", 2)
        states = following.shape[0]
        if following.min() < 0 or following.max() >= states:
            raise PluginError(f"mgf.rules.Automaton: next must hold states in [0, {states})")
        for name, kinds in (("forbid", "b"), ("bias", "f")):
            if getattr(self, name) is not None and _array(self, name, kinds, 2).shape != following.shape:
                raise PluginError(f"mgf.rules.Automaton: {name} must have next's shape {list(following.shape)}")
        if self.bias is not None:
            if not np.isfinite(self.bias).all():
                raise PluginError("mgf.rules.Automaton: bias must be finite")
            object.__setattr__(self, "bias", self.bias.astype(np.float32))
        _int(self, "start", 0, states - 1)


@dataclass(frozen=True, eq=False)
class BarMask:
    """``masks``: bool [K, V]; in bar b the tokens of ``masks[b % K]`` (``cycle``) or ``masks[min(b, K - 1)]``
    are forbidden."""

    masks: np.ndarray
    cycle: bool = True
    kind: ClassVar[str] = "bar_mask"
    needs_clock: ClassVar[bool] = True

    def __post_init__(self) -> None:
        _array(self, "masks", "b", 2)
        object.__setattr__(self, "cycle", bool(self.cycle))


@dataclass(frozen=True, eq=False)
class BarBias:
    """``bias``: float [K, V] (nats); in bar b ``bias[b % K]`` (``cycle``) or ``bias[min(b, K - 1)]`` is added to the
    logits: BarMask's soft form (favour a bar's chord tones without forbidding the others).  ``keep``: bool [V], tokens
    whose total probability the bias leaves as it was (it moves mass among them only: favouring some notes over others
    without making notes likelier than holds and rests)."""

    bias: np.ndarray
    cycle: bool = True
    keep: np.ndarray | None = None
    kind: ClassVar[str] = "bar_bias"
    needs_clock: ClassVar[bool] = True

    def __post_init__(self) -> None:
        bias = _array(self, "bias", "f", 2)
        if not (np.isfinite(bias).all() and np.abs(bias).max() <= 1e6):
            raise UsageError("mgf.rules.BarBias: bias must be finite numbers within 1e6 (nats)")
        object.__setattr__(self, "bias", bias.astype(np.float32))
        object.__setattr__(self, "cycle", bool(self.cycle))
        if self.keep is not None and _array(self, "keep", "b", 1).shape != bias.shape[1:]:
            raise PluginError(f"mgf.rules.BarBias: keep must have one entry per token id ({bias.shape[1]})")


@dataclass(frozen=True, eq=False)
class BarBudget:
    """``tokens``: bool [V]; at most ``limit`` of them per bar."""

    tokens: np.ndarray
    limit: int
    kind: ClassVar[str] = "bar_budget"
    needs_clock: ClassVar[bool] = True

    def __post_init__(self) -> None:
        _array(self, "tokens", "b", 1)
        _int(self, "limit", 0)


@dataclass(frozen=True, eq=False)
class BarTokens:
    """``tokens``: int [K, L] token ids, -1 padding a row's end.  As the row enters bar b (``first <= b < stop``; ``stop``
    None: no end), before the first other token that falls in bar b, the row chooses ``tokens[(b - first) % K]``
    (``cycle``) or ``tokens[min(b - first, K - 1)]``, in order, up to its first -1: then every other token is forbidden
    and the listed one allowed whatever the rules before said.  Everywhere else the tokens of ``reserved`` (bool [V];
    None: every id in ``tokens``) are forbidden."""

    tokens: np.ndarray
    first: int = 0
    stop: int | None = None
    cycle: bool = True
    reserved: np.ndarray | None = None
    kind: ClassVar[str] = "bar_tokens"
    needs_clock: ClassVar[bool] = True

    def __post_init__(self) -> None:
        tokens = _array(self, "tokens", "iu", 2)
        if tokens.min() < -1:
            raise PluginError("mgf.rules.BarTokens: tokens must hold token ids, or -1 (padding)")
        _int(self, "first", 0)
        if self.stop is not None:
            _int(self, "stop", self.first + 1)
        object.__setattr__(self, "cycle", bool(self.cycle))
        if self.reserved is not None:
            _array(self, "reserved", "b", 1)


@dataclass(frozen=True, eq=False)
class TimeLimit:
    """No token moves the row to a step past ``end``.  ``final``: a token id that does not move time, chosen once
    the row is at ``end`` and its notes but those of ``held`` (bool [128], pitches that may sound on past ``end``)
    are closed, and only then; after it, only it (padding: allowed even where a rule before forbids it).
    ``within``: the row's tokens (its primer's included) by which it chooses ``final``: no token after which the
    longest moves that fit (a BAR's or a POSITION's aside), the closing NOTE_OFFs and ``final`` no longer fit in
    them, while any token still leaves them room."""

    end: int
    final: int | None = None
    held: np.ndarray | None = None
    within: int | None = None
    kind: ClassVar[str] = "time_limit"
    needs_clock: ClassVar[bool] = True

    def __post_init__(self) -> None:
        _int(self, "end", 0)
        if self.final is not None:
            _int(self, "final", 0, 2**31 - 1)
        if self.held is not None and _array(self, "held", "b", 1).shape != (128,):
            raise PluginError("mgf.rules.TimeLimit: held must have one entry per MIDI pitch (128)")
        if self.within is not None:
            if self.final is None:
                raise UsageError("mgf.rules.TimeLimit: within bounds the tokens before final; give final too")
            _int(self, "within", 1, 2**30)


Rule = Union[Forbid, RunLimit, NgramBonus, CloseNotes, Automaton, BarMask, BarBias, BarBudget, BarTokens, TimeLimit]
#: every rule class
RULES = (Forbid, RunLimit, NgramBonus, CloseNotes, Automaton, BarMask, BarBias, BarBudget, BarTokens, TimeLimit)
