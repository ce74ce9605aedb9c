"""Public or private, never in between: built-in plugins import only what mgf exports, as a third party would."""

import ast
import os
from pathlib import Path

import pytest

import mgf
import mgf.plugins
from mgf.contract import registry

PLUGINS = os.path.dirname(mgf.plugins.__file__)
#: the compiled kernel is the native backend's own, so that plugin (and the core) may use it
OWN_EXTENSIONS = {"mgf.plugins.backends.native": {"_native"}}


def imports(path):
    """``(module, [names])`` for every ``import``/``from ... import`` in the file at ``path``."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level:
            yield "mgf.plugins" + ("." + node.module if node.module else ""), [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []


@pytest.mark.parametrize("module", sorted(".".join(p.relative_to(PLUGINS).with_suffix("").parts) for p in Path(PLUGINS).rglob("*.py")
                                           if p.name != "__init__.py"))
def test_builtin_plugins_import_only_the_public_api(module):
    qualified = f"mgf.plugins.{module}"
    for imported, names in imports(os.path.join(PLUGINS, *module.split(".")) + ".py"):
        if imported == "mgf":
            for name in names:
                if name in OWN_EXTENSIONS.get(qualified, set()):
                    continue
                assert name in mgf.__all__, f"{qualified} imports mgf.{name}, which is not public (mgf.__all__)"
        elif imported == "mgf.plugins" or imported.startswith("mgf.plugins."):
            helpers = [f"mgf.plugins.{n}" for n in names] if imported == "mgf.plugins" else [imported]
            for helper in helpers:
                assert helper not in registry.DEFAULT_PLUGINS, \
                    f"{qualified} imports the plugin {helper}: shared code belongs in the core's public API"
        elif imported.startswith("mgf."):
            private = [part for part in imported.split(".")[1:] + names if part.startswith("_")]
            assert not set(private) - OWN_EXTENSIONS.get(qualified, set()), f"{qualified} imports {imported}, which is private"
            assert not any(n.startswith("_") and n not in OWN_EXTENSIONS.get(qualified, set()) for n in names), \
                f"{qualified} imports private names {names} of {imported}"


def test_every_public_name_is_importable_and_documented_by_a_docstring():
    for name in mgf.__all__:
        value = getattr(mgf, name)
        if callable(value) or isinstance(value, type(os)):
            assert (value.__doc__ or "").strip(), f"mgf.{name} has no docstring"
