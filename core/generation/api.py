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
from mgf.generation.plan import Plan, check_limit, generation_settings, plan  # noqa: F401 - check_limit, generation_settings: mgf's
from mgf.generation.processors import Processor
from mgf.generation.run import Run
from mgf.contract.model import Model, takes_path
from mgf.contract.options import resolve
from mgf.contract.representation import Representation
from mgf.contract.controls import Conditioned
from mgf.contract.infill import Infilling


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
    if loaded.infill is not None:  # the bundle's checked ids are the ones that follow the representation's
        representation = Infilling(representation)
    if loaded.controls is not None:  # their families follow
        representation = _conditioned(representation, loaded.controls, os.fspath(path))
    return representation


def _conditioned(base: Representation, spec: list[dict[str, Any]], where: str) -> Conditioned:
    """The :class:`Conditioned` of a bundle's ``mgf.controls`` (checked when read): each control must be installed."""
    missing = [entry["name"] for entry in spec if entry["name"] not in registry.registry("controls")]
    if missing:
        raise BundleError(f"{where}: needs the control {missing[0]!r:.40}, which is not installed (see `mgf plugins`)")
    return Conditioned(base, [(registry.get("controls", entry["name"])(), entry["values"]) for entry in spec])


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
    model.infill = None if loaded is None or loaded.infill is None else dict(loaded.infill)
    setattr(model, "__mgf_origin__", entry.origin)  # noqa: B010 - not a declared attribute of Model (mypy)
    return model


def generate(
    model: Model,
    steps: int | None = None,
    sampler: str | None = None,
    primer=None,
    seed: int | np.random.SeedSequence | None = None,
    num_outputs: int | None = None,
    progress: bool | None = False,
    constraints: Sequence[str] | None = None,
    processors: Sequence[Processor] | None = None,
    plan: Plan | None = None,
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
    CLI's default), True always.  ``plan`` (:func:`mgf.generation.plan.plan`, made for this model) stands for all
    the settings but ``progress``: a plan is checked once and can be run many times, or elsewhere.
    """
    if plan is None:
        if steps is None:
            raise UsageError("steps must be a positive integer, got None")
        run = checked_run(model, sampler, primer, seed, num_outputs, constraints, processors, options, steps=steps)
    else:
        if any(x is not None for x in (steps, sampler, primer, seed, num_outputs, constraints, processors)) or options:
            raise UsageError("give generate either a plan or the settings it is made of, not both")
        if plan.steps is None:
            raise UsageError("a plan for generate needs steps")
        if plan.primer and max(plan.primer) >= model.vocab_size:
            raise InputError(f"the plan's primer does not fit the model's vocabulary [0, {model.vocab_size})")
        run = Run(model, plan)
    steps, num_outputs, rows = run.plan.steps, run.plan.num_outputs, run.plan.rows
    user = run.music_primer
    run.bar = bar = progress_bar(progress, len(user) + 1 + int(steps) - 1)
    try:
        new = run.generate(int(steps))
    finally:
        if bar is not None:
            bar.close()
    pieces = np.concatenate([np.broadcast_to(user, (rows, len(user))), new], axis=1).astype(np.int32)
    return pieces[0] if num_outputs is None else pieces


def progress_bar(progress: bool | None, total: int):
    """A bar of ``total`` model steps for ``progress`` (True: always; None: on a terminal), else None."""
    if not (progress or (progress is None and sys.stderr is not None and sys.stderr.isatty())):  # tqdm's rule for None
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="generating", unit="step", leave=False, disable=None if progress is None else False)


def checked_run(model: Model, sampler: str | None, primer, seed, rows: int | None, constraints: Sequence[str] | str | None,
                processors: Sequence[Processor] | None, options: dict[str, Any], steps: int | None = None) -> Run:
    """The :class:`Run` of a :func:`generate` or :func:`mgf.stream` call: its :func:`~mgf.generation.plan.plan`, with
    the model's defaults filled in (:func:`generation_settings`); ``rows`` outputs, 1-D when ``rows`` is None."""
    settings = plan(getattr(model, "defaults", {}), steps, sampler=sampler, constraints=constraints, options=options,
                    processors=processors, primer=primer, representation=model.representation, seed=seed,
                    num_outputs=rows)
    return Run(model, settings)
