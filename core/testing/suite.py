"""What every suite shares: the plugin under test registered for each test, its registry entry, bad option values."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import pytest

from mgf.contract import registry
from mgf.contract.options import Option


@contextmanager
def registered(*plugins: object) -> Iterator[None]:
    """Inside the block ``plugins`` are registered (once: an installed one keeps its entry point); afterwards the registry is as before.

    Works in either order: if the plugin's entry point is already loaded, it is used as is; if
    entry points load later, mgf skips the module already registered here.  Other plugins,
    built-in and installed, stay registered, as in a real run.
    """
    registry.load_plugins()
    names = dict(registry.pm.list_name_plugin())
    broken, distributions = dict(registry.broken), dict(registry._distributions)
    try:
        for plugin in plugins:
            if not registry.pm.is_registered(plugin):
                registry.pm.register(plugin)
        registry.reset()
        yield
    finally:
        for name, plugin in registry.pm.list_name_plugin():
            if names.get(name) is not plugin:
                registry.pm.unregister(plugin, name=name)
        registry.broken.clear()
        registry.broken.update(broken)
        registry._distributions.clear()
        registry._distributions.update(distributions)
        registry.reset()


class _Contract:
    name: ClassVar[str]
    plugin: ClassVar[object] = None
    kind: ClassVar[str]

    @pytest.fixture(autouse=True)
    def _registered(self):
        with registered(*self._plugins()):
            yield

    def _plugins(self) -> list:
        return [] if self.plugin is None else [self.plugin]

    def entry(self) -> registry.Registered:
        return registry.entry(self.kind, self.name)


def bad_values(option: Option) -> list[Any]:
    """Values ``option.check`` must refuse: a wrong type, and numbers just outside its bounds or choices."""
    wrong: dict[type, list[Any]] = {int: ["many"], float: ["many", float("nan")], str: [5], bool: ["maybe"]}
    values = list(wrong[option.type])
    if option.type in (int, float):
        if option.low is not None:
            values.append(option.type(option.low - 1))
        if option.high is not None:
            values.append(option.type(option.high + 1))
    if option.choices is not None and option.type is str:
        values.append("\x00 none of the choices")
    return values


def _declared(cls: Any) -> dict[str, Option]:
    return {option.name: option for option in cls.options}
