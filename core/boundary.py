"""Error boundaries around plugin code: whatever a plugin raises reaches the user as one line.

Every registered class is replaced by a *guarded* subclass whose contract methods run inside
:func:`guard`: an exception that is not an :class:`mgf.MgfError` becomes a
:class:`mgf.PluginError` naming the plugin's distribution, version, kind, name and the call,
with the original exception chained (``MGF_DEBUG=1`` shows its traceback).  Subclassing keeps
``isinstance`` and the class's own attributes working, and a nested guard passes a
``PluginError`` through unchanged, so a plugin calling its own methods costs nothing extra.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from .errors import MgfError, PluginError

#: the contract methods (and properties) called through a guard, per kind of plugin
GUARDED = {
    "representations": (
        "__init__", "config", "vocab_size", "start_token", "read", "read_pieces", "write", "parse_primer",
        "to_notes", "token_pitches", "transpose", "fit", "tensors", "load_tensors",
    ),
    "models": ("__init__", "load"),
    "samplers": ("__init__", "choose", "search"),
    "constraints": ("__init__", "prepare", "apply"),
}


@dataclass(frozen=True)
class Origin:
    """Where a plugin class comes from: its kind and name, and the plugin, distribution and version that registered it."""

    kind: str
    name: str
    plugin: str
    distribution: str
    version: str

    def describe(self, call: str) -> str:
        """``plugin mgf-foo 0.3 (representation 'foo', parse_primer)``."""
        where = f"{self.distribution} {self.version}".strip()
        return f"plugin {where} ({self.kind[:-1]} {self.name!r}, {call})"


@contextmanager
def guard(origin: Origin | None, call: str) -> Iterator[None]:
    """Turn any exception but an ``MgfError`` raised inside into a one-line ``PluginError``."""
    try:
        yield
    except (MgfError, BrokenPipeError):  # a closed pipe is its reader's doing (`mgf plugins | head`), not the plugin's
        raise
    except RecursionError as error:
        raise PluginError(f"{_where(origin, call)}: RecursionError: {_first_line(error)}") from error
    except Exception as error:
        raise PluginError(f"{_where(origin, call)}: {type(error).__name__}: {_first_line(error)}") from error


def _where(origin: Origin | None, call: str) -> str:
    return origin.describe(call) if origin is not None else f"plugin code ({call})"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= 300 else line[:297] + "..."


def origin_of(obj: object) -> Origin | None:
    """The :class:`Origin` of a guarded plugin class or instance, or ``None``."""
    return getattr(obj, "__mgf_origin__", None)


def guarded(cls: type, origin: Origin) -> type:
    """A subclass of ``cls`` whose contract methods run inside :func:`guard` for ``origin``.

    Each wrapper looks the method up on ``cls`` at call time, so a method replaced later
    (a test's monkeypatch, a plugin's own patching) is still the one that runs.
    """
    namespace: dict = {"__mgf_origin__": origin, "__module__": cls.__module__, "__qualname__": cls.__qualname__,
                       "__doc__": cls.__doc__}
    wrapped = {}
    for attribute in GUARDED[origin.kind]:
        value = inspect.getattr_static(cls, attribute, None)
        if isinstance(value, property) and value.fget is not None:
            wrapped[attribute] = "property"
        elif inspect.isgeneratorfunction(value):
            wrapped[attribute] = "generator"
        elif inspect.isfunction(value):
            wrapped[attribute] = "method"
    guarded_cls = type(cls.__name__, (cls,), namespace)
    for attribute, kind in wrapped.items():
        setattr(guarded_cls, attribute, _wrap(guarded_cls, attribute, kind, origin))
    return guarded_cls


def _wrap(owner: type, attribute: str, kind: str, origin: Origin):
    original = inspect.getattr_static(owner.__mro__[1], attribute)

    if kind == "property":
        def getter(self):
            with guard(origin, attribute):
                return getattr(super(owner, self), attribute)

        return property(getter, doc=original.__doc__)

    if kind == "generator":
        @functools.wraps(original)
        def generator(self, *args, **kwargs):
            with guard(origin, attribute):
                yield from getattr(super(owner, self), attribute)(*args, **kwargs)

        return generator

    @functools.wraps(original)
    def method(self, *args, **kwargs):
        with guard(origin, attribute):
            return getattr(super(owner, self), attribute)(*args, **kwargs)

    return method
