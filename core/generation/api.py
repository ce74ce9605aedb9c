"""The embedding API: load a bundle, generate tokens.  Imports no TensorFlow and no music21."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from mgf.contract import bundle
from mgf.contract import registry
from mgf.contract.boundary import guard
from mgf.errors import BundleError, InputError, PluginError, UsageError
from mgf.generation.processors import Processor, checked as checked_processors
from mgf.generation.run import Run
from mgf.contract.model import Model, takes_path
from mgf.contract.options import resolve
from mgf.contract.representation import Representation


def installed(kind: str) -> dict[str, registry.Registered]:
    """Every plugin class of one kind by name: ``"representations"``, ``"models"``, ``"samplers"`` or ``"constraints"``.

    Each value has ``cls`` (the class, guarded by the error boundary) and ``origin`` (kind, name,
    plugin, distribution, version), also as ``.plugin``, ``.distribution``, ``.version``.
    """
    if kind not in registry.KINDS:
        raise UsageError(f"no plugin kind {kind!r} (kinds: {', '.join(registry.KINDS)})")
    return dict(registry.registry(kind))


def installed_commands() -> dict[str, list[str]]:
    """The subcommands each plugin added to the ``mgf`` command line (filled once the CLI is built)."""
    return {plugin: list(names) for plugin, names in registry.commands.items()}


def plugin_class(kind: str, name: str) -> type:
    """The class registered as ``name`` of ``kind``; a ``UsageError`` listing the installed ones if there is none."""
    return registry.get(kind, name)


def get_representation(name: str, **config: Any) -> Representation:
    """An instance of the representation registered as ``name``, its ``config`` checked against its declared options."""
    entry = registry.entry("representations", name)
    values = resolve(entry.cls.options, config, f"representation {name!r}")
    return entry.cls(**values)


def read_notes(representation_name, path):
    """The notes of a music file (or ``corpus:`` reference) as read by a representation; ``InputError`` if none."""
    representation = get_representation(representation_name)
    notes = representation.to_notes(representation.read(path))
    if not notes:
        raise InputError(f"{path}: no notes in it")
    return notes


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


def representation_of(path: str | os.PathLike, loaded: bundle.Bundle | None = None) -> Representation:
    """The representation a bundle was trained with, rebuilt from its metadata and ``repr.*`` tensors."""
    if loaded is None:
        loaded = bundle.read(path, weights=False)  # one parse of the header, no weights
    spec, tensors = loaded.representation, loaded.repr_tensors
    if spec["name"] not in registry.registry("representations"):
        raise BundleError(
            f"{path}: needs the representation {spec['name']!r}, which is not installed (see `mgf plugins`)"
        )
    try:
        representation = get_representation(spec["name"], **spec["config"])
    except UsageError as error:
        raise BundleError(f"{path}: bad representation config: {error}") from None
    representation.load_tensors(tensors)
    return representation


def load_model(source: str | os.PathLike | bundle.Bundle, backend: str = "native", **backend_options: Any) -> Model:
    """Load a model with the model backend ``backend``; ``backend_options`` are checked against its options.

    ``source`` is a bundle's path, or a :class:`mgf.contract.bundle.Bundle` in memory (checked as a file
    would be): a command that has read the file already, a trained model scored before it is written.
    The bundle is read and checked once, here, and the backend's ``load`` is handed that Bundle.  The
    returned model knows its representation (``model.representation``) and the bundle's sampling
    defaults (``model.defaults``).
    """
    entry = registry.entry("models", backend)
    values = resolve(entry.cls.options, backend_options, f"model backend {backend!r}")
    loaded: bundle.Bundle | None
    if isinstance(source, bundle.Bundle) and takes_path(entry.cls):  # contract 2's load(path)
        if source.path is None:
            raise UsageError(f"model backend {backend!r} loads from a file; give load_model the bundle's path")
        source = source.path
    if isinstance(source, bundle.Bundle):
        loaded, where = source, source.path or "bundle"
        bundle.validate(loaded, where)
    else:
        where = os.fspath(source)
        loaded = bundle.read(source) if entry.cls.reads_bundles else None
    if loaded is not None:
        representation = representation_of(where, loaded)
        model = entry.cls(**values).load(source if takes_path(entry.cls) else loaded)  # a path: contract 2's load(path)
        defaults = loaded.defaults
    else:
        model = entry.cls(**values).load(source)
        if not isinstance(getattr(model, "representation", None), Representation):
            raise PluginError(f"{entry.origin.describe('load')}: a backend with its own file format must set "
                              "model.representation")
        representation = model.representation
        defaults = {}
    if not isinstance(model, Model):
        raise PluginError(f"{entry.origin.describe('load')}: returned {type(model).__name__}, not an mgf.Model")
    with guard(entry.origin, "vocab_size"):
        vocab_size = model.vocab_size
    if vocab_size != representation.vocab_size:
        raise BundleError(
            f"{where}: the model scores {vocab_size} tokens but its representation "
            f"{representation.name!r} has {representation.vocab_size}"
        )
    model.representation, model.defaults = representation, dict(defaults)
    setattr(model, "__mgf_origin__", entry.origin)  # noqa: B010 - not a declared attribute of Model (mypy)
    return model


def generate(
    model: Model,
    steps: int,
    sampler: str | None = None,
    primer=None,
    seed: int | np.random.SeedSequence | None = None,
    num_outputs: int | None = None,
    progress: bool | None = False,
    constraints: Sequence[str] | None = None,
    processors: Sequence[Processor] | None = None,
    **options: Any,
) -> np.ndarray:
    """The primer (without the start token) followed by ``steps`` generated tokens, as int32.

    ``primer`` is a sequence of token ids of the model's representation.  ``constraints`` names
    constraints applied at every step, in order.  ``processors`` (:mod:`mgf.processors`: ``MinP(0.05)``,
    ``Temperature(0.8)``, ...) reshape the logits after the constraints, in the order given, under
    every sampler; a sampler's own options that stand for processors (the ``temperature`` sampler's
    ``temperature``, ``top_k``, ``top_p``) run before them.  ``options`` go to the sampler and the
    constraints that declare them (e.g. ``temperature=0.9, top_k=20, key="D minor"``); an option
    none of them declares, or a bad value, is a :class:`UsageError` before any work.  What is
    not given comes from the model's ``defaults`` (:func:`generation_settings`).  With
    ``num_outputs`` the result is 2-D, one row per output, generated as one batch.  Equal
    seeds give equal results.  ``progress=None`` shows a bar of model steps on a terminal (the
    CLI's default), True always.
    """
    if not _is_int(steps) or steps < 1:
        raise UsageError(f"steps must be a positive integer, got {steps!r}")
    if num_outputs is not None and (not _is_int(num_outputs) or num_outputs < 1):
        raise UsageError(f"num_outputs must be a positive integer, got {num_outputs!r}")
    check_limit("steps", steps)
    check_limit("num_outputs", 1 if num_outputs is None else num_outputs)
    rows = 1 if num_outputs is None else int(num_outputs)
    run = checked_run(model, sampler, primer, seed, rows, constraints, processors, options)
    user = run.primer
    bar = None
    if progress or (progress is None and sys.stderr is not None and sys.stderr.isatty()):  # tqdm's own rule for None
        from tqdm import tqdm

        bar = tqdm(total=len(user) + 1 + int(steps) - 1, desc="generating", unit="step", leave=False,
                   disable=None if progress is None else False)
    run.bar = bar
    try:
        new = run.generate(int(steps))
    finally:
        if bar is not None:
            bar.close()
    pieces = np.concatenate([np.broadcast_to(user, (rows, len(user))), new], axis=1).astype(np.int32)
    return pieces[0] if num_outputs is None else pieces


def checked_run(model: Model, sampler: str | None, primer, seed, rows: int, constraints: Sequence[str] | str | None,
                processors: Sequence[Processor] | None, options: dict[str, Any]) -> Run:
    """The :class:`Run` of a :func:`generate` or :func:`mgf.stream` call, its other arguments checked (``run.primer``:
    the primer's tokens) and the model's defaults filled in (:func:`generation_settings`)."""
    if seed is not None and not isinstance(seed, np.random.SeedSequence) and (not _is_int(seed) or seed < 0):
        raise UsageError(f"seed must be a non-negative integer, got {seed!r}")
    if model.representation is None:
        raise InputError("the model has no representation; load it with mgf.load_model")
    user = _primer_tokens(primer, model)
    if isinstance(constraints, str):
        constraints = [constraints]
    given = checked_processors(processors)
    sampler, constraints, options = generation_settings(getattr(model, "defaults", {}), sampler, constraints, options,
                                                        processors=given)
    return Run(model, sampler, constraints, options, user, np.random.default_rng(seed), rows, processors=given)


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


def _primer_tokens(primer, model: Model) -> np.ndarray:
    if primer is None:
        return np.empty(0, np.int32)
    array = np.asarray(primer)
    if array.size == 0:
        return np.empty(0, np.int32)
    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise InputError("primer must be a 1-D sequence of integer token ids")
    check_limit("primer_tokens", array.size)  # before any work: the model steps through every primer token
    if array.min() < 0 or array.max() >= model.vocab_size:
        bad = array[(array < 0) | (array >= model.vocab_size)][0]
        raise InputError(f"primer: token id {bad} is outside the vocabulary [0, {model.vocab_size})")
    start = model.representation.start_token if model.representation is not None else -1
    if bool((array == start).any()):
        raise InputError(f"the primer must not contain the start token {start} (it is added)")
    return array.astype(np.int32)
