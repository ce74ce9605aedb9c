"""Samplers against independently computed expectations."""

import numpy as np
import pytest
from scipy import stats

import mgf
from mgf import InputError, UsageError, processors
from mgf.contract import bundle
from mgf.kernel.reference import NumpyLSTM
from mgf import log_softmax
from mgf.kernel._native import Chooser


@pytest.fixture
def model(make_bundle):
    return mgf.load_model(make_bundle(24, (16, 12), 6, seed=7, scale=2.0))


def greedy_path(path, primer, steps):
    """Greedy continuation computed with the numpy reference, independently of any sampler.

    The start token (primer[0]) is never generated."""
    reference = NumpyLSTM(bundle.read(path))
    state = reference.initial_state(1)
    for token in primer:
        logits, state = reference.step([token], state)
    out = []
    for _ in range(steps):
        logits[0, primer[0]] = -np.inf
        out.append(int(np.argmax(logits[0])))
        logits, state = reference.step([out[-1]], state)
    return out


def test_greedy_follows_the_argmax_path(make_bundle):
    path = make_bundle(24, (16, 12), 6, seed=7, scale=2.0)
    model = mgf.load_model(path)
    primer = [3, 5]
    tokens = mgf.generate(model, 40, sampler="greedy", primer=primer)
    start = model.representation.start_token
    assert tokens[:2].tolist() == primer
    assert tokens[2:].tolist() == greedy_path(path, [start] + primer, 40)


def test_temperature_near_zero_equals_greedy(model):
    greedy = mgf.generate(model, 50, sampler="greedy", primer=[1])
    cold = mgf.generate(model, 50, sampler="temperature", primer=[1], seed=4, temperature=1e-6)
    np.testing.assert_array_equal(cold, greedy)


def test_beam_of_one_equals_greedy(model):
    greedy = mgf.generate(model, 50, sampler="greedy")
    np.testing.assert_array_equal(mgf.generate(model, 50, sampler="beam", beam_size=1), greedy)


def test_beam_finds_the_more_probable_sequence(markov):
    """From the start (token 7) greedy takes 1 (p=0.6) and then at best 0.2; 2 (p=0.4) leads to 3 with p=0.9."""
    p = np.full((8, 8), 1e-6)
    p[7, 1], p[7, 2] = 0.6, 0.4
    p[1, 3:7] = 0.25
    p[2, 3] = 0.9
    p[3:7, 3] = 1.0
    p[0, 3] = 1.0
    model = markov(p / p.sum(axis=1, keepdims=True))
    greedy = mgf.generate(model, 2, sampler="greedy")
    beam = mgf.generate(model, 2, sampler="beam", beam_size=2)
    assert greedy.tolist()[0] == 1 and greedy.tolist()[1] in range(3, 7)
    assert beam.tolist() == [2, 3]

    def logp(seq):
        full = [7, *seq]
        return sum(float(model.log_p[a, b]) for a, b in zip(full, full[1:]))

    assert logp(beam) > logp(greedy)


def test_exhaustive_beam_returns_the_n_best_distinct_beams(markov):
    """Three outputs of an exhaustive beam are the three most probable distinct sequences, best first."""
    rng = np.random.default_rng(3)
    p = rng.dirichlet(np.full(6, 0.5), size=6)
    p[:, 5] = 0.0  # the start token (5) is never generated, so the rows are distributions over 0..4
    model = markov(p / p.sum(axis=1, keepdims=True) + 1e-12)
    out = mgf.generate(model, 3, sampler="beam", beam_size=25, num_outputs=3)  # keeps every 2-token prefix
    assert len({tuple(row) for row in out}) == 3

    def logp(seq):
        full = [5, *seq]
        return sum(float(model.log_p[a, b]) for a, b in zip(full, full[1:]))

    import itertools

    ranked = sorted(itertools.product(range(5), repeat=3), key=lambda seq: -logp(seq))  # exhaustive, start excluded
    assert [tuple(row) for row in out] == ranked[:3]


def test_sampled_beam_outputs_are_independent_searches(model):
    out = mgf.generate(model, 16, sampler="beam", seed=2, beam_size=3, branch_factor=3, num_outputs=4)
    assert out.shape == (4, 16) and len({tuple(row) for row in out}) > 1
    with pytest.raises(UsageError, match="cannot return 5 outputs; give --beam-size 5"):
        mgf.generate(model, 4, sampler="beam", beam_size=4, num_outputs=5)


def log_probability(model, tokens):
    """Total log-probability the model gives ``tokens`` after its start token, computed step by step."""
    state = model.initial_state(1)
    total, previous = 0.0, model.representation.start_token
    for token in tokens:
        logits, state = model.step([previous], state)
        total += log_softmax(logits)[0, token]
        previous = token
    return total


def test_beam_never_ranks_below_greedy(model):
    greedy = mgf.generate(model, 12, sampler="greedy")
    beam = mgf.generate(model, 12, sampler="beam", beam_size=8)
    assert log_probability(model, beam) >= log_probability(model, greedy) - 1e-9


@pytest.mark.parametrize("top_k, top_p", [(3, 1.0), (0, 0.5), (5, 0.3)])
def test_top_k_and_top_p_never_leave_the_allowed_set(model, top_k, top_p):
    logits, state = model.step([model.representation.start_token] * 2000, model.initial_state(2000))
    kept = logits[:1].copy()
    Chooser(processors.from_options(1.0, top_k, top_p), False).process(kept)  # what the run applies
    allowed = np.isfinite(kept[0])
    prob = np.exp(log_softmax(logits[:1])[0])
    order = np.argsort(-prob)
    if top_k:
        assert allowed.sum() <= top_k
    # the allowed set is a prefix of the tokens ranked by probability
    assert allowed[order].tolist() == sorted(allowed[order].tolist(), reverse=True)
    if top_p < 1.0:
        if top_k:  # top-p applies to the distribution renormalised over the top k
            prob = np.where(np.isin(np.arange(prob.size), order[:top_k]), prob, 0.0)
            prob /= prob.sum()
        kept = prob[allowed].sum()
        assert kept >= top_p - 1e-12
        assert kept - prob[allowed].min() < top_p
    out = mgf.generate(model, 30, seed=11, num_outputs=200, top_k=top_k, top_p=top_p)
    assert set(np.unique(out[:, 0])) <= set(np.flatnonzero(allowed))
    assert len(np.unique(out[:, 0])) > 1


def test_sampled_frequencies_match_the_softmax(make_bundle, monkeypatch):
    """Chi-square on 20,000 first tokens drawn at temperature 1.5 against softmax(logits / 1.5)."""
    model = mgf.load_model(make_bundle(10, (8,), 4, seed=2, scale=3.0))
    start = np.array([model.representation.start_token], np.int32)
    logits, _ = model.step(start, model.initial_state(1))
    logits = logits[:, :9]  # the start token (9) is never drawn
    expected = np.exp(log_softmax(logits / 1.5)[0]) * 20000
    with pytest.raises(UsageError, match="num_outputs 20000 exceeds the limit 4096 \\(raise it with MGF_MAX_BATCH\\)"):
        mgf.generate(model, 1, num_outputs=20000)
    monkeypatch.setenv("MGF_MAX_BATCH", "20000")
    draws = mgf.generate(model, 1, seed=0, num_outputs=20000, temperature=1.5)
    observed = np.bincount(draws[:, 0], minlength=10)
    assert observed[9] == 0
    chi2 = ((observed[:9] - expected) ** 2 / expected).sum()
    assert chi2 < stats.chi2.ppf(0.999, df=8)
    wrong = np.exp(log_softmax(logits)[0]) * 20000  # the same draws are far from the untempered softmax
    assert ((observed[:9] - wrong) ** 2 / wrong).sum() > stats.chi2.ppf(0.999, df=8)


@pytest.mark.parametrize(
    "name, options",
    [("temperature", {"temperature": 0.8, "top_p": 0.9}), ("beam", {"beam_size": 3, "branch_factor": 2, "steps_per_iteration": 3})],
)
def test_seeded_sampling_is_deterministic(model, name, options):
    a = mgf.generate(model, 60, sampler=name, seed=5, **options)
    b = mgf.generate(model, 60, sampler=name, seed=5, **options)
    c = mgf.generate(model, 60, sampler=name, seed=6, **options)
    np.testing.assert_array_equal(a, b)
    assert len(a) == 60 and not np.array_equal(a, c)


def test_sampled_beam_outranks_its_own_single_branch(model):
    """With more branches the kept sequence is at least as probable on average over seeds."""
    def score(tokens):
        return log_probability(model, tokens)

    wide = np.mean([score(mgf.generate(model, 16, sampler="beam", seed=s, beam_size=4, branch_factor=4)) for s in range(8)])
    plain = np.mean([score(mgf.generate(model, 16, sampler="temperature", seed=s)) for s in range(8)])
    assert wide > plain


def test_batch_outputs_differ_and_have_the_primer(model):
    out = mgf.generate(model, 20, primer=[4, 4], seed=1, num_outputs=5)
    assert out.shape == (5, 22) and (out[:, :2] == 4).all()
    assert len({tuple(row) for row in out}) > 1


@pytest.mark.parametrize(
    "name, options, error, message",
    [
        ("temperature", {"temperature": 0}, UsageError, "option temperature of sampler 'temperature' must be in [1e-06, 100]"),
        ("temperature", {"temperature": float("nan")}, UsageError, "must be a finite number"),
        ("temperature", {"top_p": 1.5}, UsageError, "option top_p of sampler 'temperature' must be in"),
        ("temperature", {"top_k": -1}, UsageError, "option top_k of sampler 'temperature' must be in [0, 1000000]"),
        ("temperature", {"top_k": 2.5}, UsageError, "must be int, got 2.5"),
        ("beam", {"beam_size": 0}, UsageError, "option beam_size of sampler 'beam' must be in [1, 1024]"),
        ("greedy", {"temperature": 0.5}, UsageError, "option temperature is not taken by sampler 'greedy'"),
        ("temperature", {"top_k": "many"}, UsageError, "must be int"),
        ("temperature", {"top_k": "²"}, UsageError, "must be int"),
    ],
)
def test_bad_options(model, name, options, error, message):
    with pytest.raises(error) as raised:
        mgf.generate(model, 5, sampler=name, **options)
    assert message in str(raised.value)


def test_generate_checks_its_arguments(model):
    with pytest.raises(UsageError, match="steps must be a positive integer"):
        mgf.generate(model, 0)
    with pytest.raises(UsageError, match="seed must be a non-negative integer"):
        mgf.generate(model, 5, seed=-1)
    with pytest.raises(InputError, match="must not contain the start token"):
        mgf.generate(model, 5, primer=[model.representation.start_token])
    with pytest.raises(InputError, match=r"primer: token id 99 is outside the vocabulary \[0, 24\)"):
        mgf.generate(model, 5, primer=[99])
    with pytest.raises(UsageError, match="no sampler named 'nope'"):
        mgf.generate(model, 5, sampler="nope")
