"""The native kernel (LSTM and GRU cells) against the plain numpy references, and its boundary checks."""

import threading

import numpy as np
import pytest
from helpers.side_by_side import SHAPES, random_tokens, step_side_by_side

import mgf
from mgf import InputError
from mgf.contract import bundle
from mgf.kernel.reference import NumpyGRU, NumpyLSTM
from mgf.plugins.backends.native import NativeModel

REFERENCES = {"lstm": NumpyLSTM, "gru": NumpyGRU}


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("vocab, hidden, embedding, batch, threads", SHAPES)
def test_native_matches_reference_over_120_steps(vocab, hidden, embedding, batch, threads, cell):
    loaded = bundle.random_bundle(vocab, hidden, embedding, seed=vocab + batch, cell=cell)
    native = NativeModel(loaded, threads)
    assert native.kernel.cell == cell and native.threads == threads
    state_n, state_r = step_side_by_side(native, REFERENCES[cell](loaded), random_tokens(vocab, batch, 120, seed=batch))
    for layer in range(len(hidden)):
        np.testing.assert_allclose(state_n.h(layer), state_r.h[layer], rtol=1e-4, atol=1e-5)
        if cell == "lstm":
            np.testing.assert_allclose(state_n.c(layer), state_r.c[layer], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_two_threads_splitting_a_batch_by_rows_give_one_threads_logits(cell, precision):
    """From 16 rows a step's two threads split the batch by rows, each running every layer for its rows, so that
    they may be in different layers at once: a narrow layer below a wide one (the thread that is ahead writes wide
    rows of gates), where rows of the gates buffer laid out per layer once overlapped across threads."""
    loaded = bundle.random_bundle(60, (40, 72, 56), 16, seed=3, cell=cell)
    one, two = NativeModel(loaded, 1, precision), NativeModel(loaded, 2, precision)
    state_one, state_two = one.initial_state(37), two.initial_state(37)
    for tokens in random_tokens(60, 37, 150):
        expected, state_one = one.step(tokens, state_one)
        logits, state_two = two.step(tokens, state_two)
        if precision == "int8":  # exact integer products, the same finish: the same numbers
            np.testing.assert_array_equal(logits, expected)
        else:  # fp32 tiles of half the columns may round the last bit differently
            np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_saturated_gates_stay_accurate(cell):
    """Large weights drive the gates into saturation, where a naive exp overflows.

    Few steps: with weights this large the recurrence is chaotic, and after ~20 steps float32
    round-off alone separates any two implementations (float64 too); the GRU's sooner: by its
    fifth step the float32 reference itself is 5e-5 away from a float64 run."""
    loaded = bundle.random_bundle(30, (24, 16), 8, seed=5, scale=12.0, cell=cell)
    step_side_by_side(NativeModel(loaded, 1), REFERENCES[cell](loaded), random_tokens(30, 4, 5 if cell == "lstm" else 3))


def test_reference_follows_the_lstm_equations():
    """The reference itself, checked by hand for one unit and one step from zero state."""
    loaded = bundle.random_bundle(3, (1,), None, seed=2)
    t = loaded.tensors
    model = NumpyLSTM(loaded)
    logits, _ = model.step([2], model.initial_state(1))
    z = t["lstm.0.kernel"][2] + t["lstm.0.bias"]
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    c = sig(z[0]) * np.tanh(z[2])
    h = sig(z[3]) * np.tanh(c)
    np.testing.assert_allclose(logits[0], h * t["dense.kernel"][0] + t["dense.bias"], rtol=1e-6)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_state_take_reorders_and_duplicates_rows(cell):
    loaded = bundle.random_bundle(20, (12, 8), 6, seed=1, cell=cell)
    native, reference = NativeModel(loaded, 2), REFERENCES[cell](loaded)
    state_n, state_r = step_side_by_side(native, reference, random_tokens(20, 3, 10, seed=3))
    order = np.array([2, 2, 0, 1])
    state_n, state_r = state_n.take(order), state_r.take(order)
    assert state_n.batch_size == 4
    step_side_by_side(native, reference, random_tokens(20, 4, 10, seed=4), states=(state_n, state_r))


@pytest.mark.parametrize("backend", ["native", "numpy"])
@pytest.mark.parametrize(
    "tokens, message",
    [
        ([20], "token id 20 is outside the vocabulary [0, 20)"),
        ([-1], "token id -1 is outside"),
        ([1, 2], "expected 1 token id(s)"),
        ([1.5], "must be integers"),
        (np.array([2**31 + 5], np.int64), "outside the vocabulary"),
    ],
)
def test_bad_tokens_are_input_errors(make_bundle, backend, tokens, message):
    model = mgf.load_model(make_bundle(20, (8,)), backend=backend)
    with pytest.raises(InputError) as error:
        model.step(tokens, model.initial_state(1))
    assert message in str(error.value)


def test_state_of_another_model_is_rejected():
    a = NativeModel(bundle.random_bundle(10, (4,)), 1)
    b = NativeModel(bundle.random_bundle(10, (4,)), 1)
    with pytest.raises(InputError, match="another model"):
        a.step([1], b.initial_state(1))
    with pytest.raises(InputError, match="batch size"):
        a.initial_state(0)
    with pytest.raises(InputError, match="indices"):
        a.initial_state(2).take([2])


def test_threads_option_and_environment(make_bundle, monkeypatch):
    path = make_bundle(20, (8,))
    assert mgf.load_model(path, threads=2).threads == 2
    monkeypatch.setenv("MGF_NUM_THREADS", "3")
    assert mgf.load_model(path).threads == 3
    monkeypatch.setenv("MGF_NUM_THREADS", "lots")
    with pytest.raises(InputError, match=r"MGF_NUM_THREADS must be an integer in \[1, 256\], got 'lots'"):
        mgf.load_model(path)
    with pytest.raises(InputError, match=r"option threads of model backend 'native' must be in \[1, 256\], got 0"):
        mgf.load_model(path, threads=0)


def test_threads_sample_one_model_at_once(make_bundle):
    """Several Python threads share one model; each gets what it gets alone."""
    model = mgf.load_model(make_bundle(40, (32, 32), 8))
    expected = {seed: mgf.generate(model, 200, seed=seed) for seed in range(6)}
    results = {}

    def work(seed):
        results[seed] = mgf.generate(model, 200, seed=seed)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for seed in range(6):
        np.testing.assert_array_equal(results[seed], expected[seed])
