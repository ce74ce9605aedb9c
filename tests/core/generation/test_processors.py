"""The logits processors against an oracle written from their documented rules (docs/contract.md, mgf.processors).

The oracle below is plain numpy, in float64, written from the rules as the docs state them; it
imports nothing of mgf's implementation.  The kernel's ``Chooser`` (the one routine both
generation loops run) must agree with it, in every order of composition.
"""

import numpy as np
import pytest
from scipy import stats

import mgf
import mgf.testing
from mgf import MinP, RepetitionPenalty, Temperature, TopK, TopP, UsageError
from mgf.kernel._native import Chooser

# -- the oracle: each rule as documented, on float64 logits with -inf for forbidden tokens --------------------


def softmax(z):
    top = z.max(axis=1, keepdims=True)
    e = np.exp(z - top)
    return e / e.sum(axis=1, keepdims=True)


def oracle_temperature(z, value, history):
    return z / value


def oracle_top_k(z, k, history):
    if k == 0 or k >= z.shape[1]:
        return z
    out = np.full_like(z, -np.inf)
    for row in range(len(z)):
        keep = sorted(range(z.shape[1]), key=lambda v: (-z[row, v], v))[:k]  # the k largest, ties to the lowest id
        out[row, keep] = z[row, keep]
    return out


def oracle_top_p(z, p, history):
    prob, out = softmax(z), z.copy()
    for row in range(len(z)):
        before = 0.0
        for v in sorted(range(z.shape[1]), key=lambda v: (-prob[row, v], v)):
            if before >= p:
                out[row, v] = -np.inf
            before += prob[row, v]
    return out


def oracle_min_p(z, p, history):
    prob = softmax(z)
    return np.where(prob >= p * prob.max(axis=1, keepdims=True), z, -np.inf)


def oracle_repetition_penalty(z, penalty, window, history):
    out = z.copy()
    for row in range(len(z)):
        recent = history[row, -window:] if window else history[row]
        for token in set(recent.tolist()):
            out[row, token] = out[row, token] / penalty if out[row, token] > 0 else out[row, token] * penalty
    return out


def oracle(z, steps, history):
    """``steps``: ``(name, *arguments)`` applied in order."""
    z = z.astype(np.float64)
    for name, *arguments in steps:
        z = globals()[f"oracle_{name}"](z, *arguments, history)
    return z


def processor(name, *arguments):
    return {"temperature": Temperature, "top_k": TopK, "top_p": TopP, "min_p": MinP,
            "repetition_penalty": RepetitionPenalty}[name](*arguments)


def logits_and_history(rows=6, vocab=40, seed=0, forbidden=0.1):
    rng = np.random.default_rng(seed)
    z = (rng.normal(size=(rows, vocab)) * 2.5).astype(np.float32)
    z[rng.random((rows, vocab)) < forbidden] = -np.inf
    z[np.arange(rows), rng.integers(0, vocab, rows)] = 3.0 + rng.random(rows).astype(np.float32)  # a finite max per row
    history = rng.integers(0, vocab, size=(rows, 25)).astype(np.int32)
    return z, history


def processed(steps, z, history):
    out = z.copy()
    Chooser([processor(*step) for step in steps], False).process(out, history)
    return out


SINGLE = [("temperature", 0.5), ("temperature", 2.0), ("top_k", 1), ("top_k", 7), ("top_k", 0), ("top_p", 0.3),
          ("top_p", 0.9), ("top_p", 1.0), ("min_p", 0.05), ("min_p", 0.5), ("min_p", 0.0), ("min_p", 1.0),
          ("repetition_penalty", 1.5, 0), ("repetition_penalty", 1.5, 4), ("repetition_penalty", 0.7, 10)]


@pytest.mark.parametrize("step", SINGLE, ids=lambda s: "-".join(map(str, s)))
def test_each_processor_follows_its_documented_rule(step):
    for seed in range(4):
        z, history = logits_and_history(seed=seed)
        want, got = oracle(z, [step], history), processed([step], z, history)
        assert np.array_equal(np.isneginf(got), np.isneginf(want)), f"seed {seed}: another set of tokens kept"
        finite = np.isfinite(want)
        np.testing.assert_allclose(got[finite], want[finite], rtol=1e-6, atol=1e-6)


ORDERS = [
    [("min_p", 0.1), ("temperature", 3.0)],
    [("temperature", 3.0), ("min_p", 0.1)],
    [("repetition_penalty", 1.3, 0), ("min_p", 0.1)],
    [("top_k", 10), ("top_p", 0.8), ("min_p", 0.05), ("temperature", 0.7)],
    [("temperature", 1.5), ("repetition_penalty", 2.0, 6), ("top_p", 0.95), ("top_k", 20)],
]


@pytest.mark.parametrize("steps", ORDERS, ids=lambda s: "+".join(name for name, *_ in s))
def test_processors_compose_in_the_order_given(steps):
    z, history = logits_and_history(seed=5, rows=8)
    want, got = oracle(z, steps, history), processed(steps, z, history)
    assert np.array_equal(np.isneginf(got), np.isneginf(want))
    np.testing.assert_allclose(got[np.isfinite(want)], want[np.isfinite(want)], rtol=1e-5, atol=1e-5)


def test_min_p_before_temperature_is_not_min_p_after_it():
    """Before: keep z >= max z + log p.  After a temperature T: z >= max z + T log p, so T > 1 keeps more tokens."""
    z, history = logits_and_history(seed=1, rows=4, forbidden=0.0)
    before = np.isfinite(processed([("min_p", 0.1), ("temperature", 3.0)], z, history))
    after = np.isfinite(processed([("temperature", 3.0), ("min_p", 0.1)], z, history))
    assert (before <= after).all() and after.sum() > before.sum()
    # top-k commutes with a temperature: it keeps the same tokens, whichever runs first
    np.testing.assert_array_equal(np.isfinite(processed([("top_k", 5), ("temperature", 0.5)], z, history)),
                                  np.isfinite(processed([("temperature", 0.5), ("top_k", 5)], z, history)))


def test_greedy_is_the_argmax_of_the_processed_logits_ties_to_the_lowest_id():
    z, history = logits_and_history(seed=3)
    steps = [("repetition_penalty", 3.0, 0)]
    chosen = Chooser([processor(*s) for s in steps], True).choose(z.copy(), history, np.zeros(len(z)))
    np.testing.assert_array_equal(chosen, np.argmax(oracle(z, steps, history), axis=1))
    tied = np.array([[1.0, 5.0, 5.0, -np.inf, 5.0]], np.float32)
    assert Chooser([], True).choose(tied, np.empty((1, 0), np.int32), np.zeros(1)).tolist() == [1]


def test_top_k_keeps_exactly_k_tokens_ties_to_the_lowest_ids():
    tied = np.array([[0.0, 5.0, 5.0, 5.0, -np.inf, 5.0, 1.0]], np.float32)
    for k in range(1, 7):
        z = tied.copy()
        Chooser([TopK(k)], False).process(z, None)
        want = oracle(tied, [("top_k", k)], None)
        np.testing.assert_array_equal(np.isfinite(z), np.isfinite(want), err_msg=f"k={k}")


def inverse_cdf(prob, uniforms):
    """The documented draw: the first token whose cumulative probability reaches (1 - u) of the total."""
    cdf = np.cumsum(prob, axis=1)
    threshold = (1.0 - uniforms)[:, None] * cdf[:, -1:]
    return (cdf < threshold).sum(axis=1), np.abs(cdf - threshold).min(axis=1)


def test_the_draw_is_the_inverse_cdf_of_the_processed_softmax():
    steps = [("repetition_penalty", 1.3, 0), ("min_p", 0.1), ("temperature", 1.5)]
    rows = 3000
    z, history = logits_and_history(seed=7, rows=rows, vocab=24)
    uniforms = np.random.default_rng(1).random(rows)
    chosen = Chooser([processor(*s) for s in steps], False).choose(z.copy(), history, uniforms)
    want, margin = inverse_cdf(softmax(oracle(z, steps, history)), uniforms)
    clear = margin > 1e-5  # float32 exponentials: a uniform this close to a boundary may fall either side
    assert clear.mean() > 0.99
    np.testing.assert_array_equal(chosen[clear], want[clear])


def test_draw_frequencies_match_the_processed_softmax():
    """Chi-square of 20,000 draws from one row against softmax of the oracle's processed logits."""
    steps = [("min_p", 0.02), ("repetition_penalty", 1.8, 3)]
    z, history = logits_and_history(seed=2, rows=1, vocab=16, forbidden=0.0)
    rows = 20000
    expected = softmax(oracle(z, steps, history))[0] * rows
    chosen = Chooser([processor(*s) for s in steps], False).choose(
        np.repeat(z, rows, 0), np.repeat(history, rows, 0), np.random.default_rng(0).random(rows))
    observed = np.bincount(chosen, minlength=16)
    kept = expected > 0
    assert observed[~kept].sum() == 0
    chi2 = ((observed[kept] - expected[kept]) ** 2 / expected[kept]).sum()
    assert chi2 < stats.chi2.ppf(0.999, df=kept.sum() - 1)


@pytest.mark.parametrize("make, message", [
    (lambda: Temperature(0), "Temperature: value must be in [1e-06, 1e+06], got 0"),
    (lambda: Temperature(float("inf")), "Temperature: value must be a finite number, got inf"),
    (lambda: TopK(-1), "TopK: k must be in [0, 1000000], got -1"),
    (lambda: TopK(2.5), "TopK: k must be an integer, got 2.5"),
    (lambda: TopK(True), "TopK: k must be an integer, got True"),
    (lambda: TopP(0), "TopP: p must be in (0, 1], got 0"),
    (lambda: TopP(1.5), "TopP: p must be in (0, 1], got 1.5"),
    (lambda: MinP(-0.1), "MinP: p must be in [0, 1], got -0.1"),
    (lambda: MinP("0.1"), "MinP: p must be a number, got '0.1'"),
    (lambda: RepetitionPenalty(0), "RepetitionPenalty: penalty must be in [1e-06, 1e+06], got 0"),
    (lambda: RepetitionPenalty(1.2, window=-1), "RepetitionPenalty: window must be in [0, 1000000], got -1"),
])
def test_bad_values_are_one_line_usage_errors(make, message):
    with pytest.raises(UsageError) as raised:
        make()
    assert str(raised.value) == message


def test_processors_are_public_frozen_values():
    assert mgf.processors.MinP is MinP and mgf.MinP(np.float32(0.25)).p == 0.25
    with pytest.raises(AttributeError):
        TopK(3).k = 4  # frozen: a run's processors cannot change under it
    assert TopK(3) == TopK(3) and RepetitionPenalty(1.2) == RepetitionPenalty(1.2, 0)


# -- through mgf.generate: every sampler, in both loops -----------------------------------------------------


@pytest.fixture
def model(make_bundle):
    return mgf.load_model(make_bundle(24, (16, 12), 6, seed=7, scale=2.0))


def test_generate_checks_processors(model):
    for bad in ([0.9], "min_p", [mgf.Option("x", int, 0, "")]):
        with pytest.raises(UsageError, match="processor"):
            mgf.generate(model, 4, processors=bad)


@pytest.mark.parametrize("loop", ["c", "python"])
def test_a_repetition_penalty_changes_greedy_as_the_oracle_says(model, monkeypatch, loop):
    """Greedy under a penalty follows the argmax of the oracle's penalised logits, step by step."""
    if loop == "python":
        monkeypatch.setenv("MGF_PYTHON_LOOP", "1")
    plain = mgf.generate(model, 30, sampler="greedy", primer=[3, 5])
    penalised = mgf.generate(model, 30, sampler="greedy", primer=[3, 5], processors=[RepetitionPenalty(2.0, window=6)])
    assert not np.array_equal(plain, penalised)
    state, start = model.initial_state(1), model.representation.start_token
    for token in [start, 3, 5]:
        logits, state = model.step(np.array([token], np.int32), state)
    for i in range(2, len(penalised)):
        z = logits.astype(np.float64)
        z[0, start] = -np.inf
        z = oracle_repetition_penalty(z, 2.0, 6, penalised[None, :i])
        assert penalised[i] == int(np.argmax(z[0])), f"step {i - 2}"
        logits, state = model.step(penalised[i:i + 1].astype(np.int32), state)


def test_a_python_policy_sees_the_processed_logits(model):
    """A third-party policy (no ``greedy``) is called after the core applied the processors."""
    seen = []

    class Lowest(mgf.Policy):
        name = "lowest-allowed"

        def choose(self, logits, ctx):
            seen.append((logits.copy(), ctx.history.copy()))
            return np.argmax(np.isfinite(logits), axis=1).astype(np.int32)

    class Plugin:
        @staticmethod
        @mgf.hookimpl
        def register_samplers(register):
            register(Lowest)

    with mgf.testing.registered(Plugin()):
        mgf.generate(model, 6, sampler="lowest-allowed", processors=[TopK(3), MinP(0.2)])
    logits, history = seen[0]
    assert 1 <= np.isfinite(logits).sum() <= 3


def test_beam_gets_the_processors_through_ctx_constrain(model):
    plain = mgf.generate(model, 20, sampler="beam", beam_size=3)
    penalised = mgf.generate(model, 20, sampler="beam", beam_size=3, processors=[RepetitionPenalty(3.0)])
    assert not np.array_equal(plain, penalised)
    narrow = mgf.generate(model, 20, sampler="beam", beam_size=3, seed=1, branch_factor=2, processors=[TopK(1)])
    np.testing.assert_array_equal(narrow, mgf.generate(model, 20, sampler="greedy"))  # top-1 leaves one path


def test_the_old_options_are_processors_before_the_callers(model):
    """temperature/top_k/top_p of the temperature sampler are Temperature, TopK, TopP, before ``processors``."""
    for seed in range(3):
        np.testing.assert_array_equal(
            mgf.generate(model, 25, seed=seed, temperature=0.7, top_k=5, processors=[MinP(0.1)]),
            mgf.generate(model, 25, seed=seed, processors=[Temperature(0.7), TopK(5), MinP(0.1)]))


def test_a_processor_replaces_the_bundles_default_option_of_its_kind():
    defaults = {"options": {"temperature": 0.7, "top_p": 0.9}}
    assert mgf.generation_settings(defaults, processors=[TopP(0.99)]) == ("temperature", [], {"temperature": 0.7})
    assert mgf.generation_settings(defaults, processors=[MinP(0.1)]) == ("temperature", [], defaults["options"])


def test_draw_from_logits_keeps_its_signature_and_is_the_kernels_draw():
    z, history = logits_and_history(seed=4, rows=50)
    chosen = mgf.draw_from_logits(z, np.random.default_rng(3), 0.8, 6, 0.9)
    uniforms = np.random.default_rng(3).random(50)
    np.testing.assert_array_equal(chosen, Chooser([Temperature(0.8), TopK(6), TopP(0.9)], False).choose(
        z.copy(), np.empty((50, 0), np.int32), uniforms))
