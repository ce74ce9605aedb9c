"""Options: declared once by a plugin (sampler, constraint, backend, representation config), checked here.

Every value a user gives reaches a plugin through :meth:`Option.check`, so a wrong type, an
out-of-range number or an unknown name is one :class:`UsageError` naming the plugin and the
option, raised before any work starts.  Values typed on the command line arrive as strings
and are parsed by each declaring plugin's own type, so two plugins that declare the same
name with different types never coerce each other's values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mgf.errors import UsageError

TYPES = (int, float, str, bool)
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Option:
    """One option a plugin takes; the CLI offers it as ``--name-with-dashes``.

    ``low``/``high`` bound numbers (inclusive; ``None``: unbounded), ``choices`` lists the
    allowed values.  ``default`` may be ``None`` for "not given" (the plugin decides).
    """

    name: str
    type: type
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] | None = None

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise TypeError(f"option {self.name!r}: type must be one of int, float, str, bool, not {self.type!r}")
        if not self.name.isidentifier():
            raise TypeError(f"option name {self.name!r} must be a Python identifier")

    @property
    def flag(self) -> str:
        return _called(self.name, True)

    def check(self, value: Any, owner: str) -> Any:
        """``value`` converted to this option's type and checked against its bounds; ``UsageError`` otherwise.

        ``owner`` names the plugin in the message, e.g. ``"sampler 'temperature'"``.
        """
        return self._check(value, owner, self.name)

    def _check(self, value: Any, owner: str, called: str) -> Any:
        """:meth:`check`, with the option ``called`` in messages as the user spelled it (``top_p`` or ``--top-p``)."""
        if value is None and self.default is None:
            return None
        converted = self._convert(value, owner, called)
        if self.type in (int, float):
            if self.type is float and not math.isfinite(converted):
                raise UsageError(f"option {called} of {owner} must be a finite number, got {value!r}")
            if (self.low is not None and converted < self.low) or (self.high is not None and converted > self.high):
                raise UsageError(f"option {called} of {owner} must be in {self.bounds()}, got {value!r}")
        if self.choices is not None and converted not in self.choices:
            allowed = ", ".join(map(str, self.choices))
            raise UsageError(f"option {called} of {owner} must be one of {allowed}; got {value!r}")
        return converted

    def bounds(self) -> str:
        """The allowed range as text, e.g. ``[1, 4096]`` or ``> 0``."""
        low = "-inf" if self.low is None else _number(self.low)
        high = "inf" if self.high is None else _number(self.high)
        return f"[{low}, {high}]"

    def describe(self) -> dict[str, Any]:
        """A JSON-able description (``mgf plugins --json``)."""
        row: dict[str, Any] = {"name": self.name, "type": self.type.__name__, "default": self.default, "help": self.help}
        if self.low is not None:
            row["low"] = self.low
        if self.high is not None:
            row["high"] = self.high
        if self.choices is not None:
            row["choices"] = list(self.choices)
        return row

    def _convert(self, value: Any, owner: str, called: str) -> Any:
        kind = self.type.__name__
        wrong = UsageError(f"option {called} of {owner} must be {kind}, got {_short(value)}")
        if isinstance(value, str) and self.type is not str:
            text = value.strip().lower()
            if self.type is bool:
                if text in _TRUE | _FALSE:
                    return text in _TRUE
                raise wrong
            if len(text) > 100 or not text.isascii():  # int('²') fails, and 5,000 digits is not a setting
                raise wrong
            try:
                number = float(text) if self.type is float else int(text, 10)
            except ValueError:
                raise wrong from None
            return number
        if self.type is bool:
            if isinstance(value, bool):
                return value
            raise wrong
        if self.type is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return int(value)
            if _is_numpy_integer(value):
                return int(value)
            raise wrong
        if self.type is float:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
            if _is_numpy_number(value):
                return float(value)
            raise wrong
        if not isinstance(value, str):
            raise wrong
        return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_numpy_integer(value: Any) -> bool:
    import numpy as np

    return isinstance(value, np.integer)


def _is_numpy_number(value: Any) -> bool:
    import numpy as np

    return isinstance(value, (np.integer, np.floating))


def resolve(options: Iterable[Option], given: Mapping[str, Any], owner: str, *, flags: bool = False) -> dict[str, Any]:
    """Defaults of ``options`` updated with the checked values of ``given``; unknown names are a ``UsageError``.

    ``flags``: messages name options as the command line spells them (``--top-p``, not ``top_p``).
    """
    declared = {option.name: option for option in options}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        known = ", ".join(_called(name, flags) for name in declared) or "none"
        raise UsageError(f"{owner} takes no option {', '.join(_called(name, flags) for name in unknown)} "
                         f"(its options: {known})")
    resolved = {name: option.default for name, option in declared.items()}
    for name, value in given.items():
        resolved[name] = declared[name]._check(value, owner, _called(name, flags))
    return resolved


def _called(name: str, flag: bool) -> str:
    return "--" + name.replace("_", "-") if flag else name


def split(given: Mapping[str, Any], owners: Mapping[str, Iterable[Option]], *,
          flags: bool = False) -> dict[str, dict[str, Any]]:
    """Route each given option to every plugin of ``owners`` (``{label: options}``) that declares it.

    An option that none of them declares is a ``UsageError`` naming the option (as a flag with
    ``flags``) and the plugins.  Each plugin then checks its share with :func:`resolve`.
    """
    shares: dict[str, dict[str, Any]] = {label: {} for label in owners}
    names = {label: {option.name for option in options} for label, options in owners.items()}
    for key, value in given.items():
        takers = [label for label in owners if key in names[label]]
        if not takers:
            chosen = ", ".join(owners) or "no plugin"
            raise UsageError(f"option {_called(key, flags)} is not taken by {chosen}")
        for label in takers:
            shares[label][key] = value
    return shares


def _number(bound: float) -> str:
    """A bound as written: ``1000000`` for an int (``:g`` would say ``1e+06``), ``0.5`` for a float."""
    return str(bound) if isinstance(bound, int) else f"{bound:g}"
