"""Options: declared once, checked centrally, never coerced across plugins."""

import numpy as np
import pytest

import mgf
from mgf import Option, UsageError
from mgf.contract.options import resolve, split


@pytest.mark.parametrize(
    "option, value, expected",
    [
        (Option("n", int, 0, ""), "12", 12),
        (Option("n", int, 0, ""), np.int64(5), 5),
        (Option("x", float, 1.0, ""), "0.25", 0.25),
        (Option("x", float, 1.0, ""), 2, 2.0),
        (Option("b", bool, False, ""), "yes", True),
        (Option("b", bool, False, ""), "0", False),
        (Option("s", str, "a", "", choices=("a", "b")), "b", "b"),
        (Option("n", int, None, "", low=1), None, None),
    ],
)
def test_values_are_converted_to_the_declared_type(option, value, expected):
    assert option.check(value, "sampler 'x'") == expected


@pytest.mark.parametrize(
    "option, value, message",
    [
        (Option("n", int, 0, ""), "²", "option n of sampler 'x' must be int, got '²'"),
        (Option("n", int, 0, ""), "9" * 5000, "must be int, got '9999"),
        (Option("n", int, 0, ""), 2.5, "must be int, got 2.5"),
        (Option("n", int, 0, ""), True, "must be int, got True"),
        (Option("x", float, 1.0, ""), "nan", "must be a finite number"),
        (Option("x", float, 1.0, "", low=0, high=1), 1e308, "must be in [0, 1], got 1e+308"),
        (Option("n", int, 0, "", low=1, high=10), 11, "must be in [1, 10], got 11"),
        (Option("b", bool, False, ""), "maybe", "must be bool"),
        (Option("b", bool, False, ""), 1, "must be bool"),
        (Option("s", str, "a", "", choices=("a", "b")), "c", "must be one of a, b; got 'c'"),
        (Option("s", str, "a", ""), 3, "must be str, got 3"),
    ],
)
def test_bad_values_are_one_line_usage_errors_naming_plugin_and_option(option, value, message):
    with pytest.raises(UsageError) as error:
        option.check(value, "sampler 'x'")
    assert message in str(error.value) and "\n" not in str(error.value)


def test_resolve_fills_defaults_and_refuses_unknown_names():
    options = (Option("a", int, 1, ""), Option("b", str, "x", ""))
    assert resolve(options, {"a": "4"}, "sampler 's'") == {"a": 4, "b": "x"}
    with pytest.raises(UsageError, match=r"sampler 's' takes no option c \(its options: a, b\)"):
        resolve(options, {"c": 1}, "sampler 's'")


def test_one_name_in_two_plugins_is_checked_by_each_with_its_own_type():
    """A value typed on the command line is parsed by each owner; a Python value is never coerced across types."""
    owners = {"sampler 's'": (Option("offset", int, 0, ""),), "constraint 'c'": (Option("offset", str, "", ""),)}
    shares = split({"offset": "3"}, owners)
    assert resolve(owners["sampler 's'"], shares["sampler 's'"], "sampler 's'") == {"offset": 3}
    assert resolve(owners["constraint 'c'"], shares["constraint 'c'"], "constraint 'c'") == {"offset": "3"}
    shares = split({"offset": 3}, owners)
    with pytest.raises(UsageError, match="option offset of constraint 'c' must be str, got 3"):
        resolve(owners["constraint 'c'"], shares["constraint 'c'"], "constraint 'c'")
    with pytest.raises(UsageError, match="option colour is not taken by sampler 's', constraint 'c'"):
        split({"colour": 1}, owners)


def test_declarations_are_checked_when_written():
    with pytest.raises(TypeError, match="type must be one of"):
        Option("n", list, [], "")
    with pytest.raises(TypeError, match="must be a Python identifier"):
        Option("top-k", int, 0, "")


def test_backend_and_representation_options_are_checked_before_any_work(tmp_path):
    with pytest.raises(UsageError, match=r"option threads of model backend 'native' must be in \[1, 256\], got 0"):
        mgf.load_model(tmp_path / "does-not-exist.safetensors", threads=0)
    with pytest.raises(UsageError, match="model backend 'numpy' takes no option threads"):
        mgf.load_model(tmp_path / "does-not-exist.safetensors", backend="numpy", threads=2)
    with pytest.raises(UsageError, match="option vocab_size of representation 'tokens' must be in"):
        mgf.get_representation("tokens", vocab_size=1)
