"""The plugin manager and the registries: built-in plugins and installed ones, registered the same way.

Third-party plugins are modules named in the ``mgf`` entry-point group of an installed
distribution; ``MGF_LOAD_PLUGINS=a,b`` limits which load (empty: none).  A plugin that fails
to import is reported in one line and skipped.  Registries are built once, on first use.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import warnings
from dataclasses import dataclass
from typing import Any

import pluggy

from . import hookspecs
from .errors import PluginError

DEFAULT_PLUGINS = (
    "mgf.plugins.repr_tokens",
    "mgf.plugins.repr_notes",
    "mgf.plugins.repr_midi",
    "mgf.plugins.repr_audio",
    "mgf.plugins.model_numpy",
    "mgf.plugins.model_native",
    "mgf.plugins.model_keras",
    "mgf.plugins.sampler_greedy",
    "mgf.plugins.sampler_temperature",
    "mgf.plugins.sampler_beam",
    # commands: pluggy calls the last registered first, and that is the order `mgf --help` lists
    "mgf.plugins.cmd_data",
    "mgf.plugins.cmd_render",
    "mgf.plugins.cmd_plot",
    "mgf.plugins.cmd_eval",
    "mgf.plugins.cmd_plugins",
    "mgf.plugins.cmd_train",
    "mgf.plugins.cmd_generate",
)

ENTRY_POINT_GROUP = "mgf"

pm = pluggy.PluginManager("mgf")
pm.add_hookspecs(hookspecs)

_loaded = False


class PluginWarning(UserWarning):
    """A third-party plugin could not be loaded."""


@dataclass(frozen=True)
class Registered:
    """A registered class and where it comes from."""

    cls: type
    plugin: str
    distribution: str
    version: str


def load_plugins() -> None:
    """Register the built-in plugins and the installed ones (once per process)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    _load_entry_points()
    for module_name in DEFAULT_PLUGINS:
        if pm.get_plugin(module_name) is None:
            pm.register(importlib.import_module(module_name), name=module_name)


def _load_entry_points() -> None:
    allowed = os.environ.get("MGF_LOAD_PLUGINS")
    names = None if allowed is None else {n.strip() for n in allowed.split(",") if n.strip()}
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if names is not None and entry_point.name not in names:
            continue
        if pm.get_plugin(entry_point.name) is not None:
            continue
        try:
            module = entry_point.load()
            pm.register(module, name=entry_point.name)
        except Exception as error:  # a broken plugin must not break mgf
            dist = entry_point.dist.name if entry_point.dist else "?"
            message = str(error).splitlines()[0] if str(error) else ""
            warnings.warn(
                f"plugin {entry_point.name!r} ({dist}) failed to load: {type(error).__name__}: {message}",
                PluginWarning,
                stacklevel=2,
            )
            continue
        if entry_point.dist is not None:
            _distributions[entry_point.name] = (entry_point.dist.name, entry_point.dist.version)


_distributions: dict[str, tuple[str, str]] = {}
_registries: dict[str, dict[str, Registered]] = {}


def _origin(plugin_name: str, plugin: Any) -> tuple[str, str]:
    if plugin_name in _distributions:
        return _distributions[plugin_name]
    module = getattr(plugin, "__name__", "") or type(plugin).__module__
    if module.startswith("mgf."):
        from . import __version__

        return "mgf", __version__
    return "(not installed)", ""


def registry(kind: str) -> dict[str, Registered]:
    """``{name: Registered}`` of one kind: ``"representations"``, ``"models"`` or ``"samplers"``."""
    if kind not in _registries:
        load_plugins()
        _registries[kind] = _collect(kind)
    return _registries[kind]


def _collect(kind: str) -> dict[str, Registered]:
    hook = getattr(pm.hook, f"register_{kind}")
    found: dict[str, Registered] = {}
    for impl in hook.get_hookimpls():
        plugin_name = impl.plugin_name
        distribution, version = _origin(plugin_name, impl.plugin)

        def register(cls: type, plugin_name: str = plugin_name, distribution=distribution, version=version) -> None:
            name = getattr(cls, "name", None)
            if not isinstance(name, str) or not name:
                raise PluginError(f"plugin {plugin_name!r} registered {cls!r} without a name")
            if name in found:
                other = found[name]
                raise PluginError(
                    f"two plugins register the {kind[:-1]} {name!r}: {other.plugin} ({other.distribution}) "
                    f"and {plugin_name} ({distribution})"
                )
            found[name] = Registered(cls, plugin_name, distribution, version)

        impl.function(**{arg: register for arg in impl.argnames})
    return found


def reset() -> None:
    """Forget the registries so the next lookup calls the hooks again (after registering a plugin)."""
    _registries.clear()


def get(kind: str, name: str) -> type:
    """The class registered as ``name``; ``PluginError`` listing the known ones if there is none."""
    found = registry(kind)
    if name not in found:
        known = ", ".join(sorted(found)) or "none"
        raise PluginError(f"no {kind[:-1]} named {name!r} (installed: {known})")
    return found[name].cls
