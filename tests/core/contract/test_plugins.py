"""The plugin contract: in-process registration, entry-point discovery, clashes, broken plugins."""

import inspect
import json
import os
from pathlib import Path
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import mgf
from mgf import Policy, UsageError, hookimpl
from mgf.contract import hookspecs
from mgf.contract import registry


class Lowest(Policy):
    """Always the lowest token id: trivially checkable output."""

    name = "lowest"

    def choose(self, logits, ctx):
        return np.zeros(len(logits), np.int32)


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


def test_two_plugins_with_one_name_keep_the_first_and_warn_naming_both(register_plugin):
    register_plugin(LowestPlugin(), "first-plugin")
    register_plugin(LowestPlugin(), "second-plugin")
    with pytest.warns(registry.PluginWarning) as warned:
        found = registry.registry("samplers")
    assert found["lowest"].plugin == "first-plugin"
    message = str(next(w.message for w in warned if issubclass(w.category, registry.PluginWarning)))
    assert "'second-plugin'" in message and "first-plugin" in message and "'lowest'" in message
    assert "MGF_LOAD_PLUGINS" in message


def test_unknown_names_list_what_is_installed():
    with pytest.raises(UsageError, match=r"no model named 'keras2' \(installed: .*keras, native, numpy"):
        registry.get("models", "keras2")


def test_every_hook_is_documented_and_exercised():
    """Each hook spec has a docstring naming its arguments, and this suite calls each one."""
    specs = {name: fn for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("register_")}
    assert set(specs) == {"register_representations", "register_models", "register_samplers", "register_constraints",
                          "register_controls", "register_commands"}
    for name, fn in specs.items():
        doc = inspect.getdoc(fn) or ""
        for argument in inspect.signature(fn).parameters:
            assert f":param {argument}:" in doc, f"{name} does not document {argument}"
    source = "".join(open(path).read() for path in _test_files())
    for name in specs:
        assert name in source, f"no test exercises {name}"


def _test_files():
    tests = Path(__file__).resolve().parents[2]
    return sorted(str(path) for path in tests.rglob("test_*.py"))


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
    """``mgf ARGS`` in a subprocess; with ``path``, the demo distribution there is the only third-party plugin."""
    environment = {**os.environ, **(env or {})}
    if path:
        environment["PYTHONPATH"] = str(path)
        environment.setdefault("MGF_LOAD_PLUGINS", "demo")
    return subprocess.run([sys.executable, "-m", "mgf.cli.main", *args], capture_output=True, text=True, env=environment)


DEMO = """
    import numpy as np
    import mgf

    class Zeros(mgf.Policy):
        name = "zeros"
        options = (mgf.Option("level", int, 0, "the token to repeat"),)

        def choose(self, logits, ctx):
            return np.full(len(logits), ctx.options["level"], np.int32)

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


def test_a_plugin_clashing_with_a_builtin_keeps_the_builtin_with_one_warning(installed_plugin, make_bundle, tmp_path):
    path = installed_plugin(DEMO.replace('name = "zeros"', 'name = "greedy"'))
    result = run_mgf("plugins", path=path)
    assert result.returncode == 0
    assert result.stderr.count("\n") == 1 and "also registers the sampler 'greedy'" in result.stderr
    assert "kept the one from mgf.plugins.samplers.greedy (mgf)" in result.stderr
    out = tmp_path / "g.txt"
    result = run_mgf("generate", "--bundle", str(make_bundle()), "--sampler", "greedy", "--steps", "3", "-o", str(out),
                     path=path)
    assert result.returncode == 0 and len(out.read_text().split()) == 3


BROKEN = {
    "a raising hook": """
        import mgf

        @mgf.hookimpl
        def register_samplers(register):
            raise RuntimeError("cannot start")
    """,
    "not a subclass": """
        import mgf

        @mgf.hookimpl
        def register_samplers(register):
            register(dict)
    """,
    "an abstract class": """
        import mgf

        class Half(mgf.Constraint):
            name = "half"

        @mgf.hookimpl
        def register_constraints(register):
            register(Half)
    """,
    "a raising command hook": """
        import mgf

        @mgf.hookimpl
        def register_commands(cli):
            cli.command("half", "Half a command.")
            raise ValueError("no more")
    """,
    "a command clashing with a built-in": """
        import mgf

        @mgf.hookimpl
        def register_commands(cli):
            cli.command("generate", "Mine.")
    """,
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_plugin_is_one_warning_and_everything_else_works(installed_plugin, make_bundle, tmp_path, case):
    path = installed_plugin(BROKEN[case])
    for args in (["--help"], ["plugins"], ["generate", "--bundle", str(make_bundle()), "--steps", "3",
                                            "-o", str(tmp_path / "x.txt")]):
        result = run_mgf(*args, path=path)
        assert result.returncode == 0, (case, args, result.stderr)
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("mgf: warning: plugin 'demo' (mgf-demo)"), \
            (case, result.stderr)
        assert "Traceback" not in result.stderr


PLUGIN_BUGS = """
    import numpy as np
    import mgf

    class Spiky(mgf.Representation):
        name = "spiky"
        read_suffixes = (".spiky",)
        options = (mgf.Option("vocab", int, 20, "ids", low=2, high=1000),)

        def __init__(self, vocab=20):
            self.vocab = vocab

        def config(self):
            return {"vocab": self.vocab}

        @property
        def vocab_size(self):
            return self.vocab

        @property
        def start_token(self):
            return self.vocab - 1

        def read(self, path):
            raise OSError("disk on fire")

        def write(self, tokens, path, **options):
            with mgf.atomic_path(path) as tmp, open(tmp, "w") as handle:
                handle.write(" ".join(map(str, tokens)))

        def parse_primer(self, text):
            return np.array([int(t) for t in text.split()], np.int32)

    class Broken(mgf.ModelBackend):
        name = "broken"
        options = (mgf.Option("fault", str, "nan", "what goes wrong", choices=("nan", "width", "state")),)

        def load(self, bundle):
            return BrokenModel(self.options["fault"])

    class BrokenState(mgf.State):
        def __init__(self, rows):
            self.rows = rows

        @property
        def batch_size(self):
            return self.rows

        def take(self, indices):
            return BrokenState(len(indices))

    class BrokenModel(mgf.Model):
        def __init__(self, fault):
            self.fault = fault

        @property
        def vocab_size(self):
            return 20

        def initial_state(self, rows):
            return BrokenState(rows)

        def step(self, tokens, state):
            logits = np.zeros((len(tokens), 20), np.float32)
            if self.fault == "nan":
                logits[:, 3] = np.nan
            if self.fault == "width":
                logits = logits[:, :7]
            if self.fault == "state":
                state = BrokenState(state.rows + 1)
            return logits, state

    class Wild(mgf.Policy):
        name = "wild"
        options = (mgf.Option("pick", int, 0, "token to pick", low=-5, high=100),)

        def choose(self, logits, ctx):
            return np.full(len(logits), ctx.options["pick"], np.int32)

    @mgf.hookimpl
    def register_representations(register):
        register(Spiky)

    @mgf.hookimpl
    def register_models(register):
        register(Broken)

    @mgf.hookimpl
    def register_samplers(register):
        register(Wild)
"""


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--primer", "5 x 9"], 1,
         "mgf: error: plugin mgf-demo 1.2.3 (representation 'spiky', parse_primer): ValueError: invalid literal for int() "
         "with base 10: 'x'"),
        (["--primer", "{file}"], 1, "plugin mgf-demo 1.2.3 (representation 'spiky', read): OSError: disk on fire"),
        (["--model", "broken"], 1, "plugin mgf-demo 1.2.3 (model 'broken', step): returned non-finite logits"),
        (["--model", "broken", "--fault", "width"], 1, "(model 'broken', step): returned logits float32 [1, 7], "
                                                      "expected float32 [1, 20]"),
        (["--model", "broken", "--fault", "state"], 1, "(model 'broken', step): returned a state of 2 rows, expected 1"),
        (["--model", "broken", "--fault", "oops"], 2, "option --fault of model backend 'broken' must be one of nan, width"),
        (["--sampler", "wild", "--pick", "19"], 1, "(sampler 'wild', choose) at step 1: chose the start token 19"),
        (["--sampler", "wild", "--pick", "-1"], 1, "(sampler 'wild', choose) at step 1: chose a token outside [0, 20)"),
        (["--sampler", "wild", "--beam-size", "2"], 2, "option --beam-size is not taken by model backend 'native', "
                                                       "sampler 'wild'"),
    ],
)
def test_plugin_failures_are_one_line_naming_the_plugin(installed_plugin, tmp_path, args, code, message):
    """Whatever third-party code raises or returns, the user sees one line and no file is written."""
    path = installed_plugin(PLUGIN_BUGS)
    model = tmp_path / "spiky.safetensors"
    bundles = mgf.contract.bundle
    bundles.write(bundles.random_bundle(20, [8], 4, representation={"name": "spiky", "config": {"vocab": 20}}), model)
    (tmp_path / "primer.spiky").write_text("1 2")
    args = [str(tmp_path / "primer.spiky") if a == "{file}" else a for a in args]
    out = tmp_path / "out.txt"
    result = run_mgf("generate", "--bundle", str(model), "--steps", "5", "-o", str(out), *args, path=path)
    assert (result.returncode, result.stderr.count("\n")) == (code, 1), result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()
    debug = run_mgf("generate", "--bundle", str(model), "--steps", "5", "-o", str(out), *args, path=path,
                    env={"MGF_DEBUG": "1"})
    assert debug.returncode == code and (code == 2 or "Traceback" in debug.stderr)


LOWEST = """
    import numpy as np
    import mgf

    class Lowest(mgf.Policy):
        name = "lowest"
        options = (mgf.Option("offset", int, 0, "token to repeat", low=0),)

        def choose(self, logits, ctx):
            return np.full(len(logits), ctx.options["offset"], np.int32)

    @mgf.hookimpl
    def register_samplers(register):
        register(Lowest)
"""


def test_a_sampler_given_an_option_it_does_not_take_exits_2_naming_it(installed_plugin, tmp_path):
    """Issue 9: `mgf generate --repr notes --sampler lowest --beam-size 2` is one line, exit 2.

    (``--temperature`` is a processor since contract 3: it applies under every sampler, ``lowest`` included.)"""
    path = installed_plugin(LOWEST)
    result = run_mgf("generate", "--repr", "notes", "--sampler", "lowest", "--beam-size", "2",
                     "-o", str(tmp_path / "x.mid"), path=path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "option --beam-size is not taken by model backend 'native', sampler 'lowest'" in result.stderr
    result = run_mgf("generate", "--repr", "notes", "--sampler", "lowest", "--offset", "3", "--steps", "8",
                     "-o", str(tmp_path / "x.mid"), path=path)
    assert result.returncode == 0, result.stderr


def test_a_constraint_with_neither_rules_nor_apply_is_refused(register_plugin):
    """Contract 3: a constraint implements rules or apply; one with neither is a one-line warning, not registered."""

    class Idle(mgf.Constraint):
        name = "idle-test"

    class Ruled(mgf.Constraint):
        name = "ruled-test"

        def rules(self, ctx):
            return [mgf.Forbid(np.zeros(ctx.representation.vocab_size, bool))]

    class IdlePlugin:
        @mgf.hookimpl
        def register_constraints(self, register):
            register(Idle)
            register(Ruled)

    register_plugin(IdlePlugin(), "idle-plugin")
    with pytest.warns(registry.PluginWarning, match="Idle.* as a constraint, skipped: it implements neither rules nor apply"):
        found = registry.registry("constraints")
    assert "idle-test" not in found and "ruled-test" in found


def test_a_contract_2_plugin_is_told_on_the_command_line_what_to_change(installed_plugin, tmp_path):
    """The registration's DeprecationWarning reaches a user of `mgf`, in one line, and the plugin still works."""
    path = installed_plugin("""
        import numpy as np
        import mgf

        class Oldest(mgf.Sampler):
            name = "oldest"

            def choose(self, logits, ctx):
                return np.argmax(logits, axis=1).astype(np.int32)

        @mgf.hookimpl
        def register_samplers(register):
            register(Oldest)
    """)
    out = tmp_path / "x.txt"
    result = run_mgf("generate", "--repr", "tokens", "--sampler", "oldest", "--steps", "4", "-o", str(out), path=path)
    assert result.returncode == 0, result.stderr
    (line,) = [line for line in result.stderr.splitlines() if "contract 2" in line]
    assert line.startswith("mgf: warning:") and "mgf.Policy" in line, line
    assert out.exists()
