"""Sampler contract 3: Policy and Search, contract 2's Sampler warned at registration, a Context of data only."""

import warnings

import numpy as np
import pytest

import mgf
import mgf.testing
from mgf.generation.plan import plan
from mgf.generation.run import Run


def _plugin(*classes):
    class Plugin:
        @staticmethod
        @mgf.hookimpl
        def register_samplers(register):
            for cls in classes:
                register(cls)

    return Plugin()


class Lowest(mgf.Sampler):  # contract 2: subclasses Sampler itself
    name = "old-lowest"

    def choose(self, logits, ctx):
        return np.argmax(np.isfinite(logits), axis=1).astype(np.int32)


class NewLowest(mgf.Policy):
    name = "new-lowest"
    choose = Lowest.choose


class Argmax(mgf.Policy):
    name = "argmax-by-flag"
    greedy = True


class Copy(mgf.Search):
    name = "search-first-row"

    def search(self, model, ctx, steps):
        logits, state = ctx.prime(1)
        return np.repeat(np.argmax(logits, axis=1)[:, None], steps, axis=1).astype(np.int32)


def registration_warnings(*classes):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with mgf.testing.registered(_plugin(*classes)):
            found = mgf.installed("samplers")
    return found, [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)
                   and any(cls.name in str(w.message) for cls in classes)]


def test_a_contract_2_sampler_still_registers_with_one_line_that_says_what_to_subclass():
    found, messages = registration_warnings(Lowest)
    assert "old-lowest" in found
    assert messages == [f"sampler 'old-lowest' ({Lowest.__module__}) subclasses mgf.Sampler, contract 2: "
                        "subclass mgf.Policy (it implements choose)"]


def test_policies_and_searches_register_without_a_warning(make_bundle):
    found, messages = registration_warnings(NewLowest, Argmax, Copy)
    assert messages == [] and {"new-lowest", "argmax-by-flag", "search-first-row"} <= set(found)
    model = mgf.load_model(make_bundle(20, (8,), seed=3))
    with mgf.testing.registered(_plugin(Argmax, Copy)):  # greedy = True is the argmax, with no code
        np.testing.assert_array_equal(mgf.generate(model, 12, sampler="argmax-by-flag"),
                                      mgf.generate(model, 12, sampler="greedy"))
        assert mgf.generate(model, 5, sampler="search-first-row").shape == (5,)


@pytest.mark.parametrize("cls, problem", [
    (type("Empty", (mgf.Policy,), {"name": "empty-policy"}), "it implements no choose and sets no greedy"),
    (type("NoSearch", (mgf.Search,), {"name": "empty-search"}), "it does not implement search"),
    (type("Odd", (mgf.Policy,), {"name": "odd-greedy", "greedy": "yes"}), "greedy must be True, False or None"),
])
def test_a_sampler_that_decides_nothing_is_skipped_with_the_reason(cls, problem):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with mgf.testing.registered(_plugin(cls)):
            assert cls.name not in mgf.installed("samplers")
    assert any(problem in str(w.message) for w in caught), [str(w.message) for w in caught]


def test_the_context_holds_data_and_the_two_search_calls_not_the_run(make_bundle):
    model = mgf.load_model(make_bundle(20, (8,), seed=3))
    run = Run(model, plan({}, None, primer=[1, 2], representation=model.representation, seed=0, num_outputs=2))
    ctx = run.ctx
    assert not hasattr(ctx, "_run") and not hasattr(ctx, "__dict__")
    for name in ctx.__slots__:
        assert not isinstance(getattr(ctx, name), Run), name
    assert (ctx.num_outputs, ctx.step, ctx.history.tolist(), ctx.clock) == (2, 0, [[1, 2]], None)
    bare = mgf.Context(rng=ctx.rng, options={}, representation=ctx.representation, num_outputs=1, history=ctx.history)
    with pytest.raises(mgf.UsageError, match="for a sampler's search"):
        bare.prime(1)


def test_what_a_samplers_processors_returns_is_checked(make_bundle):
    class Odd(mgf.Policy):
        name = "odd-processors"
        greedy = False

        def processors(self, ctx):
            return [0.5]

    model = mgf.load_model(make_bundle(20, (8,), seed=3))
    with mgf.testing.registered(_plugin(Odd)):
        with pytest.raises(mgf.PluginError, match=r"\(sampler 'odd-processors', processors\): processors: 0.5 is not an mgf"):
            mgf.generate(model, 4, sampler="odd-processors")
