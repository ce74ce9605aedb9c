"""docs/contract.md is the contract third parties build on: these tests keep it in step with the code.

Everything is found by introspection (the public base classes, the hook specs, ``mgf.__all__``,
``mgf.testing``, the built-in plugins' options), so a new member, hook, export or option that is
not documented fails here.  The "Writing a plugin" snippet is run as written: its module and
``pyproject.toml`` become a distribution on ``sys.path`` (what ``pip install -e`` leaves), and
its ``mgf`` commands run in a subprocess.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
import re
import shlex
import subprocess
import sys
import tomllib

import pytest

import mgf
from mgf.contract import hookspecs
from mgf.contract import registry

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
#: the classes plugins subclass; every public member is part of the contract
BASES = (mgf.Representation, mgf.ModelBackend, mgf.Model, mgf.State, mgf.Sampler, mgf.Policy, mgf.Search, mgf.Constraint)
#: public classes plugins use but never subclass or construct (no ``__init__`` in the contract)
USED = (mgf.Context, mgf.Option)


def read(name: str) -> str:
    with open(os.path.join(ROOT, name), encoding="utf-8") as handle:
        return handle.read()


def signature(function, name: str | None = None) -> str:
    """``def name(params) -> ret`` as the source spells it (annotations are strings under ``from __future__``)."""
    sig = inspect.signature(function)
    params = []
    for p in sig.parameters.values():
        text = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "") + p.name
        if p.annotation is not p.empty:
            text += f": {p.annotation}"
        if p.default is not p.empty:
            text += (" = " if p.annotation is not p.empty else "=") + repr(p.default)
        params.append(text)
    ret = "" if sig.return_annotation is sig.empty else f" -> {sig.return_annotation}"
    return f"def {name or function.__name__}({', '.join(params)}){ret}"


def member_lines(cls: type) -> list[str]:
    """The lines of ``cls``'s stub in contract.md: every public attribute and method, with its exact signature."""
    lines = []
    annotations = cls.__dict__.get("__annotations__", {})
    if dataclasses.is_dataclass(cls):
        for field in dataclasses.fields(cls):
            default = "" if field.default is dataclasses.MISSING else f" = {field.default!r}"
            lines.append(f"{field.name}: {field.type}{default}")
    else:
        for name, annotation in annotations.items():
            default = f" = {cls.__dict__[name]!r}" if name in cls.__dict__ else ""
            lines.append(f"{name}: {annotation}{default}")
    for name in getattr(cls, "__slots__", ()):
        if not name.startswith("_"):
            lines.append(f"{name}: ")
    for name, value in cls.__dict__.items():
        public = not name.startswith("_") or (name == "__init__" and cls in BASES)
        if not public or name in annotations or (dataclasses.is_dataclass(cls) and name in cls.__dataclass_fields__):
            continue
        if isinstance(value, property):
            lines.append(signature(value.fget, name))
        elif isinstance(value, classmethod):
            lines.append(signature(value.__func__, name))
        elif inspect.isfunction(value):
            lines.append(signature(value, name))
        elif not hasattr(type(value), "__get__") or value is None:  # a plain class attribute, e.g. ``search = None``
            lines.append(f"{name} = {value!r}")
    return lines


def option_row(plugin: str, option: mgf.Option) -> str:
    """The start of an option's row in the built-in option tables: plugin, option, type, default, allowed values."""
    if option.choices is not None:
        allowed = "one of " + ", ".join(f"`{c!r}`" for c in option.choices)
    elif option.type in (int, float):
        allowed = f"`{option.bounds()}`"
    else:
        allowed = "any" if option.type is str else "true/false"
    return f"| `{plugin}` | `{option.name}` | {option.type.__name__} | `{option.default!r}` | {allowed} |"


def builtin_options():
    """``(kind, name, Option)`` of every option a built-in plugin declares."""
    for kind in registry.KINDS:
        for name, entry in sorted(registry.registry(kind).items()):
            if registry.builtin(entry.plugin):
                for option in entry.cls.options:
                    yield kind, name, option


CONTRACT = read("docs/contract.md")


@pytest.mark.parametrize("cls", BASES + USED, ids=lambda cls: cls.__name__)
def test_every_public_member_is_in_the_contract_with_its_signature(cls):
    missing = [line for line in member_lines(cls) if line not in CONTRACT]
    assert not missing, f"docs/contract.md lacks these members of mgf.{cls.__name__}: {missing}"


def test_every_abstract_member_is_marked_abstract():
    for cls in BASES:
        for name in getattr(cls, "__abstractmethods__", ()):
            value = cls.__dict__[name]
            function = value.fget if isinstance(value, property) else value
            assert f"{signature(function, name)}: ...  # abstract" in CONTRACT, f"{cls.__name__}.{name}"


def test_every_hook_and_argument_is_in_the_contract():
    specs = {name: fn for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("register_")}
    assert specs
    for name, fn in specs.items():
        heading = f"### `{name}({', '.join(inspect.signature(fn).parameters)})`"
        assert heading in CONTRACT, f"docs/contract.md does not document {heading}"


def test_every_public_name_is_in_the_contract():
    for name in mgf.__all__:
        assert f"`mgf.{name}" in CONTRACT, f"docs/contract.md does not document mgf.{name}"
        value = getattr(mgf, name)
        if inspect.isfunction(value):
            assert signature(value) in CONTRACT, f"docs/contract.md lacks the signature of mgf.{name}"
    modules = [getattr(mgf, name) for name in mgf.__all__ if inspect.ismodule(getattr(mgf, name))]
    for module in modules:
        for name, value in vars(module).items():
            if not name.startswith("_") and getattr(value, "__module__", None) == module.__name__ and callable(value):
                assert f"{module.__name__}.{name}" in CONTRACT, f"docs/contract.md does not document {module.__name__}.{name}"


def test_mgf_testing_is_in_the_contract_and_the_guide():
    testing = importlib.import_module("mgf.testing")
    names = getattr(testing, "__all__", None) or [
        name for name, value in vars(testing).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == "mgf.testing"
    ]
    guide = read("docs/plugins.md")
    for name in names:
        assert f"mgf.testing.{name}" in CONTRACT, f"docs/contract.md does not document mgf.testing.{name}"
        assert name in guide, f"docs/plugins.md does not show mgf.testing.{name}"


def test_every_setting_and_method_of_the_mgf_testing_suites_is_in_the_contract():
    testing = importlib.import_module("mgf.testing")
    suites = [value for value in vars(testing).values()
              if isinstance(value, type) and value.__module__ == "mgf.testing" and value.__name__.endswith("Contract")
              and not value.__name__.startswith("_")]
    assert suites
    for suite in suites:
        lines = []
        for base in reversed(suite.__mro__[:-1]):
            for name, annotation in base.__dict__.get("__annotations__", {}).items():
                default = f" = {getattr(suite, name)!r}" if hasattr(suite, name) else ""
                lines.append(f"{name}: {annotation}{default}")
        for name, value in suite.__dict__.items():
            if inspect.isfunction(value) and not name.startswith(("_", "test_")):
                lines.append(signature(value, name))
        missing = [line for line in dict.fromkeys(lines) if line not in CONTRACT]
        assert not missing, f"docs/contract.md lacks these settings of mgf.testing.{suite.__name__}: {missing}"


def test_every_error_class_is_in_the_contract_with_its_exit_code():
    for name in mgf.__all__:
        value = getattr(mgf, name)
        if isinstance(value, type) and issubclass(value, mgf.MgfError):
            assert f"| `mgf.{name}` | {value.exit_code} |" in CONTRACT, f"mgf.{name} (exit {value.exit_code})"


def test_every_builtin_option_is_in_the_contract_with_its_default():
    rows = [(kind, name, option) for kind, name, option in builtin_options()]
    assert {kind for kind, _, _ in rows} == {"representations", "models", "samplers", "constraints"}
    for kind, name, option in rows:
        assert option_row(name, option) in CONTRACT, f"{kind} {name}: {option_row(name, option)}"


# -- the guide's examples and the "Writing a plugin" snippet, run as written -------------------


def section(text: str, heading: str) -> str:
    """The lines under ``heading``, up to the next heading of the same or a higher level outside code blocks."""
    match = re.search(rf"^{re.escape(heading)}$", text, re.M)
    assert match, f"no heading {heading!r}"
    lines = text[match.start():].splitlines(keepends=True)
    level, fenced = len(heading.split(" ")[0]), False
    for i, line in enumerate(lines[1:], 1):
        fenced ^= line.startswith("```")
        if not fenced and re.match(rf"#{{1,{level}}} ", line):
            return "".join(lines[:i])
    return "".join(lines)


def code_blocks(text: str) -> dict[str, list[str]]:
    """The fenced code blocks of ``text``: ``{language: [block, ...]}``."""
    blocks: dict[str, list[str]] = {}
    for language, body in re.findall(r"^```(\w+)\n(.*?)^```", text, re.S | re.M):
        blocks.setdefault(language, []).append(body)
    return blocks


def test_the_guides_examples_pass_their_contract_suites(tmp_path):
    """Every Python block of docs/plugins.md that starts with ``# path.py`` is a file: plugins and their tests."""
    files = [block for block in code_blocks(read("docs/plugins.md"))["python"] if re.match(r"# [\w/]+\.py\n", block)]
    tests = 0
    for block in files:
        path = tmp_path / block.split("\n", 1)[0][2:]
        path.parent.mkdir(exist_ok=True)
        path.write_text(block)
        tests += path.name.startswith("test_")
    assert tests >= 5, "each plugin kind's example comes with its test"
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "MGF_LOAD_PLUGINS": ""}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "tests")],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


@pytest.mark.parametrize("document,heading", [("docs/plugins.md", "## Quick start"), ("README.md", "## Writing a plugin")])
def test_the_writing_a_plugin_snippet_works_as_written(document, heading, tmp_path):
    """The package of the snippet, installed as ``pip install -e`` leaves it (a dist-info on the path), then its commands."""
    blocks = code_blocks(section(read(document), heading))
    (python,), (toml,), (shell,) = blocks["python"], blocks["toml"], blocks["sh"]
    project = tomllib.loads(toml)["project"]
    ((entry, module),) = project["entry-points"]["mgf"].items()
    assert python.startswith(f"# {module.replace('.', '/')}.py\n"), "the Python block names the file it is"
    (tmp_path / f"{module}.py").write_text(python)
    info = tmp_path / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    (info / "entry_points.txt").write_text(f"[mgf]\n{entry} = {module}\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "MGF_LOAD_PLUGINS": entry}
    commands = [line.split(" #")[0].strip() for line in shell.splitlines()]
    commands = [command for command in commands if command.startswith("mgf ")]
    assert any(command.startswith("mgf generate") for command in commands)
    for command in commands:
        argv = shlex.split(command)
        result = subprocess.run([sys.executable, "-m", "mgf.cli.main", *argv[1:]], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"{command}: {result.stderr}"
        assert "warning" not in result.stderr, f"{command}: {result.stderr}"
        if argv[1] == "plugins":
            assert entry in result.stdout
        if "-o" in argv:
            assert (tmp_path / argv[argv.index("-o") + 1]).stat().st_size > 0


#: where a user is told what to install: documents, examples, and every message of the code
INSTALL_TEXTS = ("README.md", "docs", "examples", "core", "plugins", "cli", "pyproject.toml")
_PIP = re.compile(r"pip3? install\b([^\n|;&#`)]*)")
_BARE = re.compile(r"""(?<![\w.-])['"]?mgf(\[[^\]]*\])?\s*([<>=~!]=?[^\s'"]*)?['"]?(?![\w.-])""")
_QUOTED = re.compile(r"""["']mgf(\[[^\]'"]*\]\s*)?([<>=~!]=[^'"]*)?["']""")
_REQUIREMENTS = re.compile(r"""(?:dependencies|requires|install_requires)\s*=\s*\[([^\]]*)\]""")


def bare_mgf_installs(text: str) -> list[str]:
    """Where ``text`` tells someone to install the PyPI name ``mgf`` (another project's) instead of ``mgf-music``."""
    found = [m.group(0) for m in _PIP.finditer(text) if any(_BARE.fullmatch(word) for word in m.group(1).split())]
    found += [m.group(0) for m in re.finditer(r"""["']mgf(\[|\s*[<>=~!]=)""", text)]
    for listing in _REQUIREMENTS.finditer(text):
        found += [m.group(0) for m in _QUOTED.finditer(listing.group(1))]
    found += [line for line in text.splitlines() if re.fullmatch(r"\s*mgf(\[[^\]]*\])?\s*([<>=~!]=\S*)?\s*", line)]
    return found


@pytest.mark.parametrize("text", ["pip install mgf", "pip install -U 'mgf[keras]'", 'pip install "mgf>=0.2"',
                                  'dependencies = ["numpy", "mgf"]', 'dependencies = [\n  "mgf>=0.2",\n]',
                                  "requires = ['mgf[plot]']", "hint: pip install mgf[plot] to draw", "mgf>=0.2\n"])
def test_the_bare_name_check_finds_an_install_of_mgf(text):
    assert bare_mgf_installs(text)


@pytest.mark.parametrize("text", ["pip install mgf-music", "pip install 'mgf-music[keras]'", 'pip install ".[keras]"',
                                  'dependencies = ["mgf-music"]', 'PluginManager("mgf")', "pip install -e . && mgf plugins",
                                  '[project.entry-points.mgf]\nlowest = "mgf_lowest"'])
def test_the_bare_name_check_leaves_the_right_name_alone(text):
    assert not bare_mgf_installs(text)


def test_nothing_tells_a_user_to_install_the_bare_pypi_name_mgf():
    """The PyPI name ``mgf`` belongs to an unrelated package; the distribution is ``mgf-music`` (issue 24)."""
    found = {}
    for top in INSTALL_TEXTS:
        paths = [top] if os.path.isfile(os.path.join(ROOT, top)) else [
            os.path.relpath(os.path.join(folder, name), ROOT) for folder, _, names in os.walk(os.path.join(ROOT, top))
            for name in names if name.endswith((".md", ".py", ".pyx", ".toml", ".txt", ".cfg", ".rst"))]
        for path in paths:
            if hits := bare_mgf_installs(read(path)):
                found[path] = hits
    assert not found, f"these tell a user to install the unrelated PyPI package mgf: {found}"
