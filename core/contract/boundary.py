"""Error boundaries around plugin code: whatever a plugin raises reaches the user as one line.

Every registered class is replaced by a *guarded* subclass whose contract methods run inside
:func:`guard`: an exception that is not an :class:`mgf.MgfError` becomes a
:class:`mgf.PluginError` naming the plugin's distribution, version, kind, name and the call,
with the original exception chained (``MGF_DEBUG=1`` shows its traceback).  Subclassing keeps
``isinstance`` and the class's own attributes working, and a nested guard passes a
``PluginError`` through unchanged, so a plugin calling its own methods costs nothing extra.

The built-in plugins are mgf's own code, and their failures are not blamed on "plugin mgf": an
``OSError`` about a file is an :class:`mgf.InputError` naming the file, anything else an internal
error saying where in mgf it failed and to report it.  Whatever an error prints is passed through
:func:`printable`, so that a message quoting a file's bytes cannot drive the terminal.
"""

from __future__ import annotations

import functools
import inspect
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from mgf.errors import InputError, MgfError, PluginError

#: the contract methods (and properties) called through a guard, per kind of plugin
GUARDED = {
    "representations": (
        "__init__", "config", "vocab_size", "start_token", "read", "read_pieces", "write", "parse_primer",
        "to_notes", "decoder", "token_pitches", "clock", "transpose", "fit", "tensors", "load_tensors",
    ),
    "models": ("__init__", "load"),
    "samplers": ("__init__", "choose", "search", "processors"),
    "constraints": ("__init__", "prepare", "rules", "apply"),
    "controls": ("__init__", "supports", "values", "extract", "parse"),
}


@dataclass(frozen=True)
class Origin:
    """Where a plugin class comes from: its kind and name, and the plugin, distribution and version that registered it."""

    kind: str
    name: str
    plugin: str
    distribution: str
    version: str
    builtin: bool = False  #: one of mgf's own plugins: its failures are mgf's

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
    except Exception as error:
        if origin is not None and origin.builtin:
            raise _own_failure(error, origin, call) from error
        raise PluginError(f"{_where(origin, call)}: {type(error).__name__}: {_first_line(error)}") from error


class InternalError(PluginError):
    """A bug in mgf itself (one of its built-in plugins failed): a ``PluginError``, as any plugin's failure is."""


def _own_failure(error: Exception, origin: Origin, call: str) -> MgfError:
    """What a failure inside one of mgf's own plugins is: a file it cannot use (input), else a bug to report."""
    if isinstance(error, OSError) and isinstance(error.filename, (str, bytes, os.PathLike)):
        return InputError(printable(f"{os.fsdecode(error.filename)}: cannot use it ({error.strerror or error})"))
    where = origin.plugin if origin.kind == "commands" else f"{origin.kind[:-1]} {origin.name!r}, {call}"
    line = _own_frame(error)
    where += f", at {line}" if line else ""
    return InternalError(f"internal error in mgf {origin.version} ({where}): {type(error).__name__}: "
                         f"{_first_line(error)}; MGF_DEBUG=1 shows the traceback, please report it")


def _own_frame(error: BaseException) -> str | None:
    """``core/training/cache.py:112``: the innermost line of mgf's own code (its boundary excepted) that the error passed."""
    here = os.path.abspath(__file__)
    own = _own_folders()
    root = os.path.dirname(own[0])  # the folder above mgf's, so that a line reads core/training/cache.py:112
    folders = tuple(os.path.join(folder, "") for folder in own)
    found, trace = None, error.__traceback__
    while trace is not None:
        file = os.path.abspath(trace.tb_frame.f_code.co_filename)
        if file.startswith(folders) and file != here:
            found = f"{os.path.relpath(file, root)}:{trace.tb_lineno}"
        trace = trace.tb_next
    return found


def _own_folders() -> list[str]:
    """The folders of mgf's packages (``mgf``, ``mgf.plugins``, ``mgf.cli``: apart in a checkout, nested when installed)."""
    import importlib.util

    folders = [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]  # mgf's, this file being in mgf.contract
    for name in ("mgf.plugins", "mgf.cli"):
        spec = importlib.util.find_spec(name)
        folders.extend(os.path.abspath(f) for f in getattr(spec, "submodule_search_locations", None) or [])
    return folders


def _where(origin: Origin | None, call: str) -> str:
    return origin.describe(call) if origin is not None else f"plugin code ({call})"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    line = printable(text.splitlines()[0] if text else "")
    return line if len(line) <= 300 else line[:297] + "..."


#: control characters (C0, DEL, C1: terminal escape sequences start with ESC or CSI) and the bidirectional
#: overrides and isolates, which reorder what a terminal shows
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with control characters written as escapes (``\\x1b``, ``\\u202e``): safe to print on a terminal.

    Error messages quote file names and file contents; printed raw, an ESC sequence in them
    could clear the screen, retitle the window or hide the rest of the line.
    """
    return _UNPRINTABLE.sub(lambda match: ascii(match.group())[1:-1], text)


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
