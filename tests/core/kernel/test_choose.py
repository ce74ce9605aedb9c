"""The processors and the choice as the kernel runs them (Chooser) against a numpy oracle written from the docs of
mgf.processors (temperature, top-k, top-p, min-p, repetition penalty; greedy and the inverse-CDF draw)."""

import numpy as np
import pytest

import mgf
from mgf import InputError, MinP, RepetitionPenalty, Temperature, TopK, TopP
from mgf.kernel._native import Chooser


def softmax(z):
    z = z.astype(np.float64)
    top = z.max()
    e = np.exp(z - top) if np.isfinite(top) else np.zeros_like(z)
    return e / e.sum()


def oracle_process(processors, z, history):
    """One row's logits after ``processors``, in order, in float64."""
    z = z.astype(np.float64).copy()
    for p in processors:
        if isinstance(p, Temperature):
            z = z / p.value
        elif isinstance(p, TopK) and 0 < p.k < len(z):
            ranked = sorted(range(len(z)), key=lambda i: (-z[i], i))
            z[ranked[p.k:]] = -np.inf
        elif isinstance(p, TopP):
            prob = softmax(z)
            ranked = sorted(range(len(z)), key=lambda i: (-prob[i], i))
            before = 0.0
            for i in ranked:
                if before >= p.p:
                    z[i] = -np.inf
                before += prob[i]
        elif isinstance(p, MinP):
            prob = softmax(z)
            z[prob < p.p * prob.max()] = -np.inf
        elif isinstance(p, RepetitionPenalty):
            recent = history[-p.window:] if p.window else history
            for token in set(int(t) for t in recent):
                z[token] = z[token] / p.penalty if z[token] > 0 else z[token] * p.penalty
    return z


def oracle_draw(z, u):
    prob = softmax(z)
    cdf = np.cumsum(prob)
    return int(np.flatnonzero((cdf >= (1.0 - u) * cdf[-1]) & (prob > 0))[0])


PIPELINES = [
    [], [Temperature(0.5)], [TopK(5)], [TopP(0.6)], [MinP(0.1)], [Temperature(2.0), TopP(0.6)],
    [TopP(0.9), Temperature(0.3)], [Temperature(0.7), TopK(12), TopP(0.9)], [MinP(0.05), Temperature(1.5)],
    [RepetitionPenalty(1.8)], [RepetitionPenalty(1.3, window=4), TopK(8)], [TopK(10), MinP(0.2), Temperature(0.8)],
]


@pytest.mark.parametrize("processors", PIPELINES, ids=repr)
def test_process_and_draw_match_the_oracle(processors):
    rng = np.random.default_rng(len(processors))
    rows, vocab = 500, 40
    logits = rng.normal(0, 3, (rows, vocab)).astype(np.float32)
    logits[:, 7] = -np.inf
    history = rng.integers(0, vocab, (rows, 12)).astype(np.int32)
    uniforms = rng.random(rows)
    processed = logits.copy()
    Chooser(processors, False).process(processed, history)
    drawn = Chooser(processors, False).choose(logits.copy(), history, uniforms)
    greedy = Chooser(processors, True).choose(logits.copy(), history)
    differ = 0
    for b in range(rows):
        z = oracle_process(processors, logits[b], history[b])
        np.testing.assert_array_equal(np.isneginf(processed[b]), np.isneginf(z))
        np.testing.assert_allclose(processed[b][np.isfinite(z)], z[np.isfinite(z)], rtol=1e-5)
        assert greedy[b] == int(np.argmax(z))
        assert np.isfinite(z[drawn[b]])
        differ += drawn[b] != oracle_draw(z, uniforms[b])
    assert differ <= 1  # float32 probabilities: only a uniform within ~1e-7 of a boundary may land elsewhere


def test_top_k_keeps_exactly_the_k_largest_ties_to_the_lower_id():
    """Logits with many ties: the selection keeps the k largest by (value, then lower id), never another."""
    rng = np.random.default_rng(0)
    uniforms = np.linspace(0, 1, 2000, endpoint=False)
    for _ in range(300):
        vocab = int(rng.integers(2, 60))
        k = int(rng.integers(1, vocab + 1))
        logits = rng.integers(0, 4, vocab).astype(np.float32)
        logits[rng.random(vocab) < 0.2] = -np.inf
        logits[rng.integers(vocab)] = 0.0  # at least one allowed token
        ranked = sorted(range(vocab), key=lambda i: (-logits[i], i))
        expected = {i for i in ranked[:k] if np.isfinite(logits[i])}
        drawn = set(Chooser([TopK(k)], False).choose(np.repeat(logits[None], len(uniforms), 0), None, uniforms).tolist())
        assert drawn == expected


def test_top_k_over_a_large_vocabulary_keeps_the_k_largest_ties_to_the_lower_id():
    """Vocabularies of 8 blocks of 8 per kept token and more, where the k-th is looked for among the logits not below
    a floor taken from the blocks' maxima: many ties (at the floor too), -inf, blocks of equal maxima."""
    rng = np.random.default_rng(1)
    for _ in range(400):
        vocab, k = int(rng.integers(128, 900)), int(rng.integers(1, 33))
        logits = rng.integers(0, int(rng.choice([2, 5, 50])), vocab).astype(np.float32)
        logits[rng.random(vocab) < rng.choice([0.0, 0.3, 0.9])] = -np.inf
        logits[rng.integers(vocab)] = 0.0
        ranked = sorted(range(vocab), key=lambda i: (-logits[i], i))
        expected = {i for i in ranked[:k] if np.isfinite(logits[i])}
        processed = logits[None].copy()
        Chooser([TopK(k)], False).process(processed, None)
        assert set(np.flatnonzero(np.isfinite(processed[0])).tolist()) == expected


def test_greedy_takes_the_lowest_id_among_equals():
    logits = np.array([[0.0, 2.0, 2.0, -np.inf], [-np.inf, -1.0, -1.0, -1.0]], np.float32)
    assert Chooser([], True).choose(logits).tolist() == [1, 1]


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("top_k, top_p", [(0, 1.0), (5, 1.0), (0, 0.9), (5, 0.9)])
def test_draw_refuses_nan_and_plus_infinity(bad, top_k, top_p):
    """NaN or +inf logits are one InputError from the public draw, never a wrong token or a read out of bounds."""
    logits = np.random.default_rng(0).normal(0, 3, (64, 300)).astype(np.float32)
    logits[7, 150] = bad
    with pytest.raises(mgf.InputError, match="NaN or \\+inf"):
        mgf.draw_from_logits(logits, np.random.default_rng(0), 1.0, top_k, top_p)


def test_the_boundary_checks_before_any_work():
    logits = np.zeros((2, 5), np.float32)
    with pytest.raises(InputError, match="uniforms"):
        Chooser([], False).choose(logits, None, np.array([0.5]))
    with pytest.raises(InputError, match="uniforms"):
        Chooser([], False).choose(logits, None, np.array([0.5, 1.0]))
    with pytest.raises(InputError, match="history tokens"):
        Chooser([RepetitionPenalty(1.2)], True).choose(logits, np.array([[0], [5]]))
    with pytest.raises(InputError, match="float32"):
        Chooser([], True).choose(logits.astype(np.float64))
    with pytest.raises(InputError, match="no allowed token"):
        Chooser([], True).choose(np.full((1, 3), -np.inf, np.float32))
    with pytest.raises(InputError, match="not a processor"):
        Chooser([object()], True)
