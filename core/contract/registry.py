"""The plugin manager and the registries: built-in plugins and installed ones, registered the same way.

Third-party plugins are modules named in the ``mgf`` entry-point group of an installed
distribution; ``MGF_LOAD_PLUGINS=a,b`` limits which load (empty: none).  Registries are built
once, on first use.  A plugin never stops mgf: one that fails to import, whose hook raises,
that registers something other than a usable subclass, or whose name is taken, is skipped with
one warning line, and only a command that asks for what it would have provided fails.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import os
import warnings
from typing import Any

import pluggy

from mgf.contract import hookspecs
from mgf.contract.boundary import Origin, guarded
from mgf.errors import UsageError
from mgf.contract.options import Option

DEFAULT_PLUGINS = (
    "mgf.plugins.representations.tokens",
    "mgf.plugins.representations.notes",
    "mgf.plugins.representations.midi",
    "mgf.plugins.representations.audio",
    "mgf.plugins.representations.miditok_tokens",
    "mgf.plugins.backends.numpy_reference",
    "mgf.plugins.backends.native",
    "mgf.plugins.backends.keras_model",
    "mgf.plugins.samplers.greedy",
    "mgf.plugins.samplers.temperature",
    "mgf.plugins.samplers.beam",
    "mgf.plugins.constraints.pitch",
    "mgf.plugins.constraints.close_notes",
    "mgf.plugins.constraints.motifs",
    "mgf.plugins.controls.harmony",
    "mgf.plugins.controls.texture",
    # commands, in the order `mgf --help` lists them
    "mgf.plugins.commands.generate",
    "mgf.plugins.commands.infill",
    "mgf.plugins.commands.train",
    "mgf.plugins.commands.import_hf",
    "mgf.plugins.commands.plugins",
    "mgf.plugins.commands.eval",
    "mgf.plugins.commands.card",
    "mgf.plugins.commands.plot",
    "mgf.plugins.commands.render",
    "mgf.plugins.commands.data",
    "mgf.plugins.commands.serve",
    "mgf.plugins.commands.jam",
)

ENTRY_POINT_GROUP = "mgf"
KINDS = ("representations", "models", "samplers", "constraints", "controls")

pm = pluggy.PluginManager("mgf")
pm.add_hookspecs(hookspecs)

_loaded = False
_distributions: dict[str, tuple[str, str]] = {}
_registries: dict[str, dict[str, Registered]] = {}
#: entry-point name -> why it failed to import; told to whoever asks for something of that name
broken: dict[str, str] = {}
#: plugin name -> the subcommands its ``register_commands`` added (filled while the CLI is built)
commands: dict[str, list[str]] = {}


class PluginWarning(UserWarning):
    """A third-party plugin, or part of one, was skipped."""


#: a registered (guarded) class together with its origin: ``Registered.cls``, ``.plugin``, ...
class Registered:
    __slots__ = ("cls", "origin")

    def __init__(self, cls: Any, origin: Origin) -> None:
        self.cls, self.origin = cls, origin

    @property
    def plugin(self) -> str:
        return self.origin.plugin

    @property
    def distribution(self) -> str:
        return self.origin.distribution

    @property
    def version(self) -> str:
        return self.origin.version


def load_plugins() -> None:
    """Register the built-in plugins and the installed ones (once per process)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module_name in DEFAULT_PLUGINS:
        if pm.get_plugin(module_name) is None:
            pm.register(importlib.import_module(module_name), name=module_name)
    _load_entry_points()


def _load_entry_points() -> None:
    allowed = os.environ.get("MGF_LOAD_PLUGINS")
    names = None if allowed is None else {n.strip() for n in allowed.split(",") if n.strip()}
    entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    unknown = sorted((names or set()) - set(entry_points.names))
    if unknown:
        _skip(f"MGF_LOAD_PLUGINS: no installed plugin is called {', '.join(map(repr, unknown))} "
              f"(installed: {', '.join(sorted(entry_points.names)) or 'none'})")
    for entry_point in entry_points:
        if names is not None and entry_point.name not in names:
            continue
        if pm.get_plugin(entry_point.name) is not None or pm.is_blocked(entry_point.name):
            continue
        dist = entry_point.dist.name if entry_point.dist else "?"
        try:
            module = entry_point.load()
            if pm.is_registered(module):  # already registered in-process (a test fixture) under another name
                continue
            pm.register(module, name=entry_point.name)
        except Exception as error:  # a broken plugin must not break mgf
            broken[entry_point.name] = f"plugin {entry_point.name!r} ({dist}) failed to load: {_one_line(error)}"
            _skip(broken[entry_point.name])
            continue
        if entry_point.dist is not None:
            _distributions[entry_point.name] = (entry_point.dist.name, entry_point.dist.version)


def _one_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


def _skip(message: str) -> None:
    warnings.warn(message, PluginWarning, stacklevel=3)


def origin(plugin_name: str, plugin: Any) -> tuple[str, str]:
    """``(distribution, version)`` of a registered plugin object."""
    if plugin_name in _distributions:
        return _distributions[plugin_name]
    module = getattr(plugin, "__name__", "") or type(plugin).__module__
    if module.startswith("mgf."):
        from mgf import __version__

        return "mgf", __version__
    return "(not installed)", ""


def builtin(plugin_name: str) -> bool:
    return plugin_name in DEFAULT_PLUGINS


def origin_of_impl(impl: Any, kind: str, name: str) -> Origin:
    """The :class:`Origin` of one hook implementation, for messages about what it did."""
    distribution, version = origin(impl.plugin_name, impl.plugin)
    return Origin(kind, name, impl.plugin_name, distribution, version, builtin(impl.plugin_name))


def skip(message: str) -> None:
    """Warn in one line that (part of) a plugin was skipped."""
    _skip(message)


def hook_implementations(hook_name: str) -> list:
    """The implementations of one hook, built-ins first, then third parties in registration order."""
    impls = getattr(pm.hook, hook_name).get_hookimpls()
    return sorted(impls, key=lambda impl: not builtin(impl.plugin_name))


def registry(kind: str) -> dict[str, Registered]:
    """``{name: Registered}`` of one kind: ``"representations"``, ``"models"``, ``"samplers"``, ``"constraints"`` or ``"controls"``."""
    if kind not in _registries:
        load_plugins()
        _registries[kind] = _collect(kind)
    return _registries[kind]


def _base(kind: str) -> Any:
    from mgf.contract.constraint import Constraint
    from mgf.contract.controls import Control
    from mgf.contract.model import ModelBackend
    from mgf.contract.representation import Representation
    from mgf.contract.sampler import Sampler

    return {"representations": Representation, "models": ModelBackend, "samplers": Sampler, "constraints": Constraint,
            "controls": Control}[kind]


def _collect(kind: str) -> dict[str, Registered]:
    found: dict[str, Registered] = {}
    base = _base(kind)
    for impl in hook_implementations(f"register_{kind}"):
        plugin_name = impl.plugin_name
        distribution, version = origin(plugin_name, impl.plugin)
        label = f"plugin {plugin_name!r} ({distribution})"
        offered: list[Any] = []
        try:
            impl.function(**{arg: offered.append for arg in impl.argnames})
        except Exception as error:
            _skip(f"{label} skipped: register_{kind} raised {_one_line(error)}")
            continue
        for cls in offered:
            problem = _problem(cls, base)
            if problem:
                _skip(f"{label} registered {cls!r} as a {kind[:-1]}, skipped: {problem}")
                continue
            if cls.name in found:
                kept = found[cls.name].origin
                warnings.warn(
                    f"{label} also registers the {kind[:-1]} {cls.name!r}; kept the one from {kept.plugin} "
                    f"({kept.distribution}) - choose with MGF_LOAD_PLUGINS",
                    PluginWarning,
                    stacklevel=2,
                )
                continue
            origin_ = Origin(kind, cls.name, plugin_name, distribution, version, builtin(plugin_name))
            found[cls.name] = Registered(guarded(cls, origin_), origin_)
    return found


def _problem(cls: Any, base: Any) -> str | None:
    """Why ``cls`` cannot be registered as a ``base``, or None."""
    if not isinstance(cls, type) or not issubclass(cls, base):
        return f"not a subclass of mgf.{base.__name__}"
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name or any(c.isspace() for c in name):
        return "its name must be a non-empty string without spaces"
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        return f"it does not implement {missing}"
    options = getattr(cls, "options", ())
    if not isinstance(options, tuple) or not all(isinstance(o, Option) for o in options):
        return "options must be a tuple of mgf.Option"
    return base._contract_problem(cls)


def reset() -> None:
    """Forget the registries so the next lookup calls the hooks again (after registering a plugin)."""
    _registries.clear()


def entry(kind: str, name: str) -> Registered:
    """The registration of ``name``; ``UsageError`` listing the installed ones if there is none."""
    found = registry(kind)
    if name not in found:
        known = ", ".join(sorted(found)) or "none"
        hint = f"; {broken[name]}" if name in broken else ""
        raise UsageError(f"no {kind[:-1]} named {name!r} (installed: {known}){hint}")
    return found[name]


def get(kind: str, name: str) -> type:
    """The (guarded) class registered as ``name``; ``UsageError`` listing the known ones if there is none."""
    return entry(kind, name).cls
