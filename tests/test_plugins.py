"""The plugin contract: in-process registration, entry-point discovery, clashes, broken plugins."""

import inspect
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import mgf
from mgf import PluginError, Sampler, hookimpl, hookspecs, registry


class Lowest(Sampler):
    """Always the lowest token id: trivially checkable output."""

    name = "lowest"

    def sample(self, model, primer, steps, rng, **options):
        return np.zeros(steps, np.int32)


class LowestPlugin:
    @hookimpl
    def register_samplers(self, register):
        register(Lowest)


def test_builtins_register_through_the_hooks():
    assert {"tokens"} <= set(registry.registry("representations"))
    assert {"native", "numpy"} <= set(registry.registry("models"))
    assert {"greedy", "temperature", "beam"} <= set(registry.registry("samplers"))
    for module in registry.DEFAULT_PLUGINS:
        assert registry.pm.get_plugin(module) is not None
    registry.pm.check_pending()


def test_registered_plugin_is_usable(register_plugin, make_bundle):
    register_plugin(LowestPlugin(), "lowest-plugin")
    entry = registry.registry("samplers")["lowest"]
    assert entry.plugin == "lowest-plugin"
    model = mgf.load_model(make_bundle())
    assert mgf.generate(model, 5, sampler="lowest", primer=[3]).tolist() == [3, 0, 0, 0, 0, 0]


def test_two_plugins_with_one_name_is_an_error_naming_both(register_plugin):
    register_plugin(LowestPlugin(), "first-plugin")
    register_plugin(LowestPlugin(), "second-plugin")
    with pytest.raises(PluginError) as error:
        registry.registry("samplers")
    assert "first-plugin" in str(error.value) and "second-plugin" in str(error.value)
    assert "'lowest'" in str(error.value)


def test_unknown_names_list_what_is_installed():
    with pytest.raises(PluginError, match=r"no model named 'keras2' \(installed: keras, native, numpy"):
        registry.get("models", "keras2")


def test_every_hook_is_documented_and_exercised():
    """Each hook spec has a docstring naming its arguments, and this suite calls each one."""
    specs = {name: fn for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("register_")}
    assert set(specs) == {"register_representations", "register_models", "register_samplers", "register_commands"}
    for name, fn in specs.items():
        doc = inspect.getdoc(fn) or ""
        for argument in inspect.signature(fn).parameters:
            assert f":param {argument}:" in doc, f"{name} does not document {argument}"
    source = "".join(open(path).read() for path in _test_files())
    for name in specs:
        assert name in source, f"no test exercises {name}"


def _test_files():
    here = os.path.dirname(__file__)
    return [os.path.join(here, f) for f in os.listdir(here) if f.startswith("test_") and f.endswith(".py")]


@pytest.fixture
def installed_plugin(tmp_path):
    """A real distribution on sys.path (dist-info + entry point), as `pip install` leaves it."""

    def install(module_source, name="mgf-demo", entry="demo", module="mgf_demo"):
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(module_source))
        info = tmp_path / f"{name.replace('-', '_')}-1.2.3.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n")
        (info / "entry_points.txt").write_text(f"[mgf]\n{entry} = {module}\n")
        return tmp_path

    return install


def run_mgf(*args, path=None, env=None):
    environment = {**os.environ, **(env or {})}
    if path:
        environment["PYTHONPATH"] = str(path)
    return subprocess.run([sys.executable, "-m", "mgf.cli.main", *args], capture_output=True, text=True, env=environment)


DEMO = """
    import numpy as np
    import mgf

    class Zeros(mgf.Sampler):
        name = "zeros"
        options = (mgf.Option("level", int, 0, "the token to repeat"),)

        def sample(self, model, primer, steps, rng, level=0):
            return np.full(steps, level, np.int32)

    @mgf.hookimpl
    def register_samplers(register):
        register(Zeros)

    @mgf.hookimpl
    def register_commands(cli):
        parser = cli.command("hello", "Say hello.")
        parser.add_argument("--name", default="world")
        parser.set_defaults(run=lambda args: print(f"hello {args.name}"))
"""


def test_entry_point_plugins_are_discovered(installed_plugin, make_bundle, tmp_path):
    path = installed_plugin(DEMO)
    listing = json.loads(run_mgf("plugins", "--json", path=path).stdout)
    zeros = [row for row in listing["samplers"] if row["name"] == "zeros"][0]
    assert (zeros["distribution"], zeros["version"], zeros["plugin"]) == ("mgf-demo", "1.2.3", "demo")
    assert zeros["options"][0]["name"] == "level"
    assert run_mgf("hello", "--name", "mgf", path=path).stdout == "hello mgf\n"
    out = tmp_path / "z.txt"
    result = run_mgf("generate", "--bundle", str(make_bundle()), "--sampler", "zeros", "--level", "7", "--steps", "4",
                     "-o", str(out), path=path)
    assert result.returncode == 0, result.stderr
    assert out.read_text() == "7 7 7 7\n"


def test_mgf_load_plugins_limits_third_party_plugins(installed_plugin):
    path = installed_plugin(DEMO)
    for value, present in [("", False), ("other", False), ("demo", True), ("other,demo", True)]:
        listing = json.loads(run_mgf("plugins", "--json", path=path, env={"MGF_LOAD_PLUGINS": value}).stdout)
        names = {row["name"] for row in listing["samplers"]}
        assert ("zeros" in names) is present, value
        assert "temperature" in names


def test_a_broken_plugin_warns_in_one_line_and_mgf_keeps_working(installed_plugin):
    path = installed_plugin("import not_a_module_anywhere\n")
    result = run_mgf("plugins", path=path, env={"PYTHONWARNINGS": "default"})
    assert result.returncode == 0
    assert result.stderr.startswith("mgf: warning: plugin 'demo' (mgf-demo) failed to load: ModuleNotFoundError")
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
    assert "temperature" in result.stdout


def test_a_plugin_clashing_with_a_builtin_is_one_line(installed_plugin):
    path = installed_plugin(DEMO.replace('name = "zeros"', 'name = "greedy"'))
    result = run_mgf("plugins", path=path)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "two plugins register the sampler 'greedy'" in result.stderr and "demo (mgf-demo)" in result.stderr


def test_every_hook_and_argument_is_in_the_plugin_guide():
    guide = open(os.path.join(os.path.dirname(__file__), "..", "docs", "plugins.md")).read()
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction):
        if name.startswith("register_"):
            signature = f"### `{name}({', '.join(inspect.signature(fn).parameters)})`"
            assert signature in guide, f"docs/plugins.md does not document {signature}"
