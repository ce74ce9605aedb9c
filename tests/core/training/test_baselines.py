import math

import numpy as np
import pytest

import mgf
from mgf.training.baselines import NGram, model_cross_entropy
from mgf.kernel.reference import NumpyLSTM


def test_ngram_probabilities_sum_to_one():
    rng = np.random.default_rng(0)
    data = [rng.integers(0, 6, 30) for _ in range(20)]
    model = NGram(3, vocab_size=7, start=6).fit(data)
    for context in [(6, 6), (1, 2), (5, 5), (0, 3)]:
        assert sum(model.probability(context, t) for t in range(7)) == pytest.approx(1.0)


def test_ngram_learns_a_deterministic_pattern_and_beats_lower_orders():
    cycle = [[0, 1, 2, 3] * 20 for _ in range(10)]
    unigram, trigram = NGram(1, 5, 4).fit(cycle), NGram(3, 5, 4).fit(cycle)
    assert unigram.cross_entropy(cycle) == pytest.approx(math.log(4), abs=0.05)
    assert trigram.cross_entropy(cycle) < 0.05


def test_model_cross_entropy_matches_a_direct_computation(make_bundle):
    model = mgf.load_model(make_bundle(12, (8,), 4, seed=3))
    reference = NumpyLSTM(mgf.contract.bundle.read(make_bundle(12, (8,), 4, seed=3)))
    sequences = [np.array([1, 2, 3]), np.array([4, 5]), np.array([7, 7, 7, 7, 1])]
    expected, count = 0.0, 0
    for sequence in sequences:
        state, previous = reference.initial_state(1), 11
        for token in sequence:
            logits, state = reference.step([previous], state)
            z = logits[0].astype(np.float64)
            expected -= z[token] - np.log(np.exp(z - z.max()).sum()) - z.max()
            count += 1
            previous = token
    assert model_cross_entropy(model, sequences, batch_size=2) == pytest.approx(expected / count, rel=1e-5)
