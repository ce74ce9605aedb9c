"""The plan of a run: every setting of a generation resolved and checked once, as plain immutable data.

The CLI, :func:`mgf.generate`, :func:`mgf.stream` and the ``--workers`` processes used to resolve
a run's settings each on their own (the bundle's defaults, each plugin's share of the options, the
limits).  :func:`plan` does it once; a :class:`Plan` is frozen and picklable, so the parent of the
workers builds it and they run it as it is, and :class:`mgf.generation.run.Run` only instantiates
the plugins it names.
"""

from __future__ import annotations

import numbers
import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from mgf.contract import options as opts
from mgf.contract import registry
from mgf.contract.controls import Conditioned, resolve as resolve_controls
from mgf.contract.infill import Infilling, InfillTokens
from mgf.contract.options import Option
from mgf.contract.representation import Representation
from mgf.errors import InputError, UsageError
from mgf.generation.processors import Processor, checked as checked_processors

Pairs = tuple[tuple[str, Any], ...]


@dataclasses.dataclass(frozen=True)
class Gap:
    """What an infilling run (:func:`mgf.infill`) fills.  The model is primed with ``prompt`` (the gap's surroundings
    in the order it learnt them) instead of the plan's primer, which is the music before the gap that the rules and
    constraints read; each row ends with the END id, at grid step ``end`` (None: without a clock, where the model
    chooses), its notes closed but those of the pitches in ``held``, which the music after the gap closes."""

    prompt: tuple[int, ...]
    end: int | None
    held: tuple[int, ...] = ()
    #: the music after the gap (a conditioned model's key is read from both sides)
    after: tuple[int, ...] = ()


def infill_tokens(representation: Representation | None) -> InfillTokens:
    """The infilling ids of a model's representation; a :class:`UsageError` saying how to train a model that has them."""
    if isinstance(representation, Conditioned):
        representation = representation.base
    if not isinstance(representation, Infilling):
        name = getattr(representation, "name", "this")
        raise UsageError(f"this model cannot infill (it was trained to continue only); train one that can with "
                         f"`mgf train --repr {name} --infill 0.5 ...`")
    return representation.infill


@dataclasses.dataclass(frozen=True)
class Plan:
    """What one run does: made by :func:`plan`, never changed (``dataclasses.replace`` makes another, unchecked).

    ``options`` holds each plugin's resolved options as ``(name, value)`` pairs: the sampler's first,
    then each constraint's, in the order of ``constraints``.  ``primer``: token ids, without the start
    token.  ``steps`` is None for a stream that runs until stopped; ``num_outputs`` None for one 1-D output.
    """

    sampler: str
    constraints: tuple[str, ...]
    options: tuple[Pairs, ...]
    processors: tuple[Processor, ...] = ()
    primer: tuple[int, ...] = ()
    steps: int | None = None
    num_outputs: int | None = None
    seed: int | np.random.SeedSequence | None = None
    gap: Gap | None = None  #: an infilling run's (:func:`mgf.infill`); None: the primer is continued
    #: a conditioned model's controls (:func:`mgf.contract.controls.resolve`): per control, the ids asked for bar after
    #: bar; () for a model without controls, or one run without them ("any")
    controls: tuple[tuple[int, ...], ...] = ()

    @property
    def rows(self) -> int:
        """The outputs generated as one batch."""
        return 1 if self.num_outputs is None else self.num_outputs

    def primed(self, primer, representation: Representation) -> Plan:
        """This plan with ``primer`` (token ids of ``representation``) checked and set: for a caller that reads the
        primer with the representation only after the options are checked (``mgf generate``)."""
        return dataclasses.replace(self, primer=tuple(_primer_tokens(primer, representation).tolist()))


def plan(
    defaults: dict[str, Any],
    steps: int | None,
    *,
    sampler: str | None = None,
    constraints: Sequence[str] | str | None = None,
    options: Mapping[str, Any] | None = None,
    processors: Sequence[Processor] | None = None,
    primer=None,
    representation: Representation | None = None,
    seed: int | np.random.SeedSequence | None = None,
    num_outputs: int | None = None,
    typed: bool = False,
    others: Mapping[str, Iterable[Option]] | None = None,
    controls: Mapping[str, Any] | None = None,
) -> Plan:
    """The checked :class:`Plan` of a run; a :class:`UsageError` or :class:`InputError` before any work.

    ``defaults`` are the model's (:func:`generation_settings` merges them).  ``primer`` needs the
    ``representation`` its tokens belong to.  ``typed``: ``options`` were typed on the command line,
    so messages name them as flags (``--top-p``) and the bundle's defaults apart; ``others`` are more
    owners of options that are checked here but are no part of the run (the CLI's model backend).
    ``controls`` (``{"chord": "Am F C G", "key": "A minor", "density": 6}``) steer a conditioned model; an option named
    like an installed control (``chords`` for ``chord``) is one too, and stays an option where the run's sampler or a
    constraint declares it (``key``, of the ``scale`` constraint).
    """
    if steps is not None and (not _is_int(steps) or steps < 1):
        raise UsageError(f"steps must be a positive integer, got {steps!r}")
    if num_outputs is not None and (not _is_int(num_outputs) or num_outputs < 1):
        raise UsageError(f"num_outputs must be a positive integer, got {num_outputs!r}")
    if steps is not None:
        check_limit("steps", steps)
    check_limit("num_outputs", 1 if num_outputs is None else num_outputs)
    if seed is not None and not isinstance(seed, np.random.SeedSequence) and (not _is_int(seed) or seed < 0):
        raise UsageError(f"seed must be a non-negative integer, got {seed!r}")
    if primer is not None and representation is None:
        raise InputError("the model has no representation; load it with mgf.load_model")
    tokens = _primer_tokens(primer, representation) if primer is not None else np.empty(0, np.int32)
    if isinstance(constraints, str):
        constraints = [constraints]
    given = checked_processors(processors)
    options, others = dict(options or {}), dict(others or {})
    theirs = {option.name for owned in others.values() for option in owned}
    sampler, constraints, merged = generation_settings(defaults, sampler, constraints,
                                                       {k: v for k, v in options.items() if k not in theirs},
                                                       processors=given)
    options, merged, asked, optional = _controls_of(sampler, constraints, options, merged, dict(controls or {}), others,
                                                    representation)
    if asked and representation is None:
        raise UsageError("controls need the model's representation; give plan the representation")
    mine = {k: v for k, v in options.items() if k not in theirs}
    sampler_entry = registry.entry("samplers", sampler)
    constraint_entries = [registry.entry("constraints", name) for name in constraints]
    if len({e.origin.name for e in constraint_entries}) < len(constraint_entries):
        raise UsageError("each constraint may be given once (its options apply to it as a whole)")
    run_owners = {f"sampler {sampler!r}": sampler_entry.cls.options}
    run_owners.update({f"constraint {e.origin.name!r}": e.cls.options for e in constraint_entries})
    owners = {**others, **run_owners} if typed else run_owners
    # typed: the bundle's defaults, then what the user typed, so that each message names an option as it was given
    groups = [({k: v for k, v in merged.items() if k not in options}, False), (options, True)] if typed else [(merged, False)]
    resolved: dict[str, dict[str, Any]] = {}
    for values, flags in groups:
        for label, share in opts.split(values, owners, flags=flags).items():
            checked = opts.resolve(owners[label], share, label, flags=flags)
            if label not in resolved:
                resolved[label] = checked
            else:  # a later group's own values over the earlier one's
                resolved[label].update({k: checked[k] for k in share if k in mine})
    return Plan(sampler, tuple(constraints), tuple(tuple(resolved[label].items()) for label in run_owners),
                tuple(given), tuple(tokens.tolist()), None if steps is None else int(steps),
                None if num_outputs is None else int(num_outputs), seed,
                controls=resolve_controls(representation, asked, frozenset(optional)) if representation is not None else ())


def _controls_of(sampler: str, constraints: Sequence[str], options: dict, merged: dict, controls: dict, others,
                 representation) -> tuple[dict, dict, dict, set]:
    """``(options, merged, controls, optional)``, the caller's ``options`` and the run's ``merged`` ones (the bundle's
    defaults under them) with the controls taken out.  An option named like an installed control (``chords``:
    ``chord``) is that control: moved out when no plugin of the run (its sampler, a constraint, ``others``) declares it,
    else an option still, and a control too where the model takes it (a default option of the bundle too).  ``optional``:
    the controls a constraint of the run also reads, which take a value only where it is theirs too
    (:func:`mgf.contract.controls.resolve`)."""
    installed = set(registry.registry("controls"))
    named = {name: "chord" if name == "chords" else name for name in merged}
    if not any(control in installed for control in named.values()):
        return options, merged, controls, set()
    owned = [option for name in constraints for option in registry.entry("constraints", name).cls.options]
    by_constraints = {option.name for option in owned}
    owned += [*registry.entry("samplers", sampler).cls.options, *(option for mine in others.values() for option in mine)]
    declared = {option.name for option in owned}
    textual = {option.name for option in owned if option.type is str}
    takes = set(representation.names) if isinstance(representation, Conditioned) else set()
    optional: set[str] = set()
    kept_options = {name: value for name, value in options.items() if name not in merged}  # ``others``' own
    kept_merged = {}
    for name, value in merged.items():
        control = named[name]
        if control not in installed:
            kept_merged[name] = value
            if name in options:
                kept_options[name] = value
            continue
        if value is not None:
            if name in options and (name not in declared or control in takes):  # the caller's
                if control in controls:
                    raise UsageError(f"control {control!r} is given twice")
                controls[control] = value
            elif name not in options and control in takes:  # the bundle's default steers the model too
                controls.setdefault(control, value)
        if control in takes and name in by_constraints:
            optional.add(control)
        if name in declared:
            # a progression given as a list, or a count given as a number, is a text option's text too ("Am F", "4"):
            # the control takes either
            items = value if isinstance(value, (list, tuple)) else [value]
            plain = all(isinstance(v, (str, numbers.Real)) and not isinstance(v, bool) for v in items)
            kept_merged[name] = " ".join(map(str, items)) if name in textual and plain and value is not None else value
            if name in options:
                kept_options[name] = kept_merged[name]
    return kept_options, kept_merged, controls, optional


def generation_settings(defaults: dict[str, Any], sampler: str | None = None, constraints: Sequence[str] | None = None,
                        options: dict[str, Any] | None = None, *,
                        processors: Sequence[Processor] = ()) -> tuple[str, list[str], dict[str, Any]]:
    """The sampler, constraints and options of a run: the caller's, else the model's ``defaults``, else temperature.

    ``defaults`` is a bundle's (``Model.defaults``: ``sampler``, ``constraints``, ``options``, and
    ``samplers``: per sampler name, constraints that replace the general ones and options that
    override them one by one, when that sampler runs).  Given constraints follow the default ones (a constraint named in both
    runs once, where the defaults put it), so that adding a pitch rule keeps the rules the model is
    sampled with; a default option joins the caller's options when the caller left it out and the
    sampler or a constraint of the run declares it, so that a default ``top_p`` stays out of a beam
    search.  A default option named like the kind of a given processor (``temperature``, ``top_k``,
    ``top_p``) yields to it, so that ``--top-p 0.99`` loosens a bundle's top-p 0.95 instead of
    running after it.  To sample without any default, give a model whose ``defaults`` is ``{}``.
    """
    sampler = sampler if sampler is not None else defaults.get("sampler", "temperature")
    own = defaults.get("samplers", {}).get(sampler, {})
    defaults = {**defaults, "constraints": own.get("constraints", defaults.get("constraints", [])),
                "options": {**defaults.get("options", {}), **own.get("options", {})}}
    constraints = list(dict.fromkeys([*defaults.get("constraints", []), *(constraints or [])]))
    declared = {option.name for option in registry.entry("samplers", sampler).cls.options}
    for name in constraints:
        declared.update(option.name for option in registry.entry("constraints", name).cls.options)
    replaced = {processor.kind for processor in processors}
    merged = {k: v for k, v in defaults.get("options", {}).items() if k in declared and k not in replaced}
    merged.update(options or {})
    return sampler, constraints, merged


#: upper bounds, each raisable with its environment variable: a typo (``--steps 10000000``) must not run for hours
#: or fill memory.  ``num_outputs`` bounds one batched call; ``outputs`` the files one ``mgf generate`` writes,
#: batch after batch, with memory flat in their number; ``primer_tokens`` a primer (a model step per token).
LIMITS = {"steps": ("MGF_MAX_STEPS", 100_000), "num_outputs": ("MGF_MAX_BATCH", 4096),
          "outputs": ("MGF_MAX_OUTPUTS", 100_000), "primer_tokens": ("MGF_MAX_PRIMER_TOKENS", 100_000)}


def limit(name: str) -> int:
    """The upper bound of ``name`` in :data:`LIMITS`, from its environment variable if set."""
    variable, default = LIMITS[name]
    text = os.environ.get(variable)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit() and 0 < len(text) <= 12) or int(text) == 0:
        raise UsageError(f"{variable} must be a positive integer, got {text[:40]!r}")
    return int(text)


def check_limit(name: str, value: int) -> None:
    """``UsageError`` when ``value`` exceeds the limit of ``name``, saying how to raise it."""
    bound = limit(name)
    if value > bound:
        raise UsageError(f"{name} {value} exceeds the limit {bound} (raise it with {LIMITS[name][0]})")


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _primer_tokens(primer, representation: Representation) -> np.ndarray:
    if primer is None:
        return np.empty(0, np.int32)
    array = np.asarray(primer)
    if array.size == 0:
        return np.empty(0, np.int32)
    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise InputError("primer must be a 1-D sequence of integer token ids")
    check_limit("primer_tokens", array.size)  # before any work: the model steps through every primer token
    vocab_size = representation.vocab_size
    if array.min() < 0 or array.max() >= vocab_size:
        bad = array[(array < 0) | (array >= vocab_size)][0]
        raise InputError(f"primer: token id {bad} is outside the vocabulary [0, {vocab_size})")
    start = representation.start_token
    if bool((array == start).any()):
        raise InputError(f"the primer must not contain the start token {start} (it is added)")
    return array.astype(np.int32)
