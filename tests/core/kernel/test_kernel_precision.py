"""Reduced-precision weights (issue 11) and every instruction-set build, against numpy simulations.

Each step starts the simulation from the kernel's own state, so that the comparison checks one
step's arithmetic and never the chaotic drift of two recurrences apart.  The simulation
quantises exactly as documented in dispatch.h and computes in float64 (bf16: products of
bf16 values are exact, only the fp32 summation order differs) or in exact integers (int8).
"""

import numpy as np
import pytest
from helpers.side_by_side import random_tokens, step_side_by_side
from mgf import InputError
from mgf.kernel import _native
from mgf.contract import bundle
from mgf.kernel.reference import GRUState, NumpyGRU, NumpyLSTM, NumpyState, sigmoid
from mgf.plugins.backends.native import NativeModel

ISAS = _native.ISAS[:_native.ISAS.index(_native.best_isa()) + 1]  # every build this CPU can run
SHAPES = [
    # vocab, hidden, embedding, batch, threads: odd and non-multiple-of-4 k, partial panels, row remainders
    (37, (20, 30), 8, 7, 2),
    (130, (96,), 16, 1, 1),
    (200, (33, 17), None, 5, 1),
    # enough rows for AMX tiles: two row tiles then a partial one (37 = 16 + 16 + 5), k with whole tile blocks and a
    # remainder (72 = 64 + 8: 18 quads, 36 pairs), a dense layer too short for the tiles (40: 10 quads)
    (130, (72, 40), 24, 37, 2),
]


def bf16(a):
    """float32 -> nearest bf16 (ties to even), as float64."""
    bits = np.asarray(a, np.float32).view(np.uint32).astype(np.uint64)
    bits = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
    return bits.astype(np.uint32).view(np.float32).astype(np.float64)


def int8(a, axis):
    """Symmetric int8 along `axis` (max |a| / 127 per slice): integer values and float32 scales."""
    a = np.asarray(a, np.float32)
    top = np.abs(a).max(axis=axis, keepdims=True)
    inverse = np.divide(np.float32(127), top, out=np.zeros_like(top), where=top > 0)
    return np.clip(np.rint(a * inverse), -127, 127).astype(np.int64), (top / np.float32(127)).astype(np.float32)


def product(x, w, precision):
    """x [B, k] @ w [k, n] as the kernel computes it, as float32."""
    if precision == "fp32":
        return (x.astype(np.float64) @ w).astype(np.float32)
    if precision == "bf16":
        return (bf16(x) @ bf16(w)).astype(np.float32)
    xq, xs = int8(x, 1)
    wq, ws = int8(w, 0)
    return (xq @ wq).astype(np.float32) * (xs * ws)


def input_table(t, cell):
    """Layer 0's input projection of every token, plus its input bias, as the kernel tabulates it."""
    kernel = t[f"{cell}.0.kernel"]
    table = kernel if "embedding" not in t else t["embedding"].astype(np.float64) @ kernel
    return (table + (t["lstm.0.bias"] if cell == "lstm" else t["gru.0.bias"][0])).astype(np.float32)


def simulated_step(t, hidden, precision, tokens, hs, cs, outputs):
    """Logits and new (h, c) per layer from state (hs, cs); gates and cells in float64.

    Each layer above the first, and the dense layer, reads the kernel's own new h of the layer
    below (`outputs`), so that both quantise bit-identical activations."""
    table = input_table(t, "lstm")
    new_h, new_c = [], []
    for layer in range(len(hidden)):
        if layer == 0:
            z = table[tokens] + product(hs[0], t["lstm.0.recurrent_kernel"], precision)
        else:
            stacked = np.vstack([t[f"lstm.{layer}.kernel"], t[f"lstm.{layer}.recurrent_kernel"]])
            z = t[f"lstm.{layer}.bias"] + product(np.hstack([outputs[layer - 1], hs[layer]]), stacked, precision)
        i, f, g, o = np.split(z.astype(np.float64), 4, axis=1)
        c = sigmoid(f) * cs[layer] + sigmoid(i) * np.tanh(g)
        new_h.append(sigmoid(o) * np.tanh(c))
        new_c.append(c)
    return t["dense.bias"] + product(outputs[-1], t["dense.kernel"], precision), new_h, new_c


def simulated_gru_step(t, hidden, precision, tokens, hs, outputs):
    """Logits and new h per layer, as simulated_step for a GRU: the input and recurrent products are apart,
    each quantising its own activations (the kernel's x part and h part of a row)."""
    table = input_table(t, "gru")
    new_h = []
    for layer in range(len(hidden)):
        bias = t[f"gru.{layer}.bias"]
        if layer == 0:
            x = table[tokens]
        else:
            x = bias[0] + product(outputs[layer - 1], t[f"gru.{layer}.kernel"], precision)
        h = bias[1] + product(hs[layer], t[f"gru.{layer}.recurrent_kernel"], precision)
        x_z, x_r, x_h = np.split(x.astype(np.float64), 3, axis=1)
        h_z, h_r, h_h = np.split(h.astype(np.float64), 3, axis=1)
        z, r = sigmoid(x_z + h_z), sigmoid(x_r + h_r)
        new_h.append(z * hs[layer] + (1 - z) * np.tanh(x_h + r * h_h))
    return t["dense.bias"] + product(outputs[-1], t["dense.kernel"], precision), new_h, None


def simulate(cell, t, hidden, precision, tokens, hs, cs, outputs):
    if cell == "lstm":
        return simulated_step(t, hidden, precision, tokens, hs, cs, outputs)
    return simulated_gru_step(t, hidden, precision, tokens, hs, outputs)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
@pytest.mark.parametrize("vocab, hidden, embedding, batch, threads", SHAPES)
def test_each_precision_and_isa_matches_its_simulation(monkeypatch, isa, precision, vocab, hidden, embedding, batch,
                                                       threads, cell):
    monkeypatch.setenv("MGF_ISA", isa)
    loaded = bundle.random_bundle(vocab, hidden, embedding, seed=vocab, cell=cell)
    model = NativeModel(loaded, threads, precision)
    assert model.kernel.isa.startswith(isa) and model.kernel.precision == precision
    rng = np.random.default_rng(batch)
    state, worst_gap = model.initial_state(batch), 0.0
    for _ in range(25):
        hs = [state.h(layer) for layer in range(len(hidden))]
        cs = [state.c(layer) for layer in range(len(hidden))] if cell == "lstm" else None
        tokens = rng.integers(0, vocab, batch).astype(np.int32)
        logits, state = model.step(tokens, state)
        outputs = [state.h(layer) for layer in range(len(hidden))]
        expected, new_h, new_c = simulate(cell, loaded.tensors, hidden, precision, tokens, hs, cs, outputs)
        exact, _, _ = simulate(cell, loaded.tensors, hidden, "fp32", tokens, hs, cs, outputs)
        np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-6)
        for layer in range(len(hidden)):
            np.testing.assert_allclose(outputs[layer], new_h[layer], rtol=1e-5, atol=1e-6)
            if cell == "lstm":
                np.testing.assert_allclose(state.c(layer), new_c[layer], rtol=1e-5, atol=1e-6)
        worst_gap = max(worst_gap, np.abs(expected - exact).max())
    if precision != "fp32":  # the simulation is sharp enough to tell the precisions apart
        assert worst_gap > 50 * 1e-6


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("hidden, batch", [((32, 48, 16), 9),
                                           ((300, 40), 11)])  # k = 300: two chunks of the fp32 tiles' k (isa.h)
def test_fp32_of_each_isa_matches_the_reference(monkeypatch, isa, hidden, batch):
    monkeypatch.setenv("MGF_ISA", isa)
    loaded = bundle.random_bundle(50, hidden, None, seed=4)
    step_side_by_side(NativeModel(loaded, 1), NumpyLSTM(loaded), random_tokens(50, batch, 60))


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_saturated_gates_match_the_reference(monkeypatch, isa, cell):
    """Weights 60x Keras's: gates of hundreds, where sigmoid and tanh saturate (the AVX-512 cells clamp there, so
    that no subnormal float is made) and where an exp or 1 / (1 + e) done carelessly gives inf or NaN.  Each step
    starts the reference from the kernel's state: a network this steep amplifies rounding from step to step."""
    monkeypatch.setenv("MGF_ISA", isa)
    loaded = bundle.random_bundle(30, (33, 20), 8, seed=5, scale=60.0, cell=cell)
    model, reference = NativeModel(loaded, 1), (NumpyLSTM if cell == "lstm" else NumpyGRU)(loaded)
    state = model.initial_state(6)
    for tokens in random_tokens(30, 6, 12):
        hs = [state.h(layer) for layer in range(2)]
        start = NumpyState(hs, [state.c(layer) for layer in range(2)]) if cell == "lstm" else GRUState(hs)
        expected, expected_state = reference.step(tokens, start)
        logits, state = model.step(tokens, state)
        np.testing.assert_allclose(logits, expected, rtol=1e-3, atol=1e-2)  # rounding of gates of hundreds
        for layer in range(2):
            np.testing.assert_allclose(state.h(layer), expected_state.h[layer], rtol=1e-4, atol=1e-4)
    assert (np.abs(input_table(loaded.tensors, cell)) > 40).mean() > 0.3  # past the cells' clamp, often


@pytest.mark.parametrize("rows", [1, 6, 40])  # AMX build: 1 row on VNNI, more on the tiles; 18 quads of k
def test_int8_integer_products_agree_across_isas(monkeypatch, rows):
    """int8 sums are exact integers: the builds may differ only by float rounding of the dequantisation, and the
    AMX build finishes its tiles' sums with the AVX-512 build's arithmetic, so those two agree bit for bit."""
    loaded = bundle.random_bundle(40, (72,), 8, seed=2)
    tokens = np.arange(rows, dtype=np.int32) % 40
    logits = {}
    for isa in ISAS:
        monkeypatch.setenv("MGF_ISA", isa)
        model = NativeModel(loaded, 1, "int8")
        logits[isa], _ = model.step(tokens, model.initial_state(rows))
        logits[isa], _ = model.step(tokens, _)
    for isa in ISAS:
        np.testing.assert_allclose(logits[isa], logits[ISAS[0]], rtol=1e-6, atol=1e-6)
    if "amx" in ISAS:
        assert np.array_equal(logits["amx"], logits["avx512"])


@pytest.mark.parametrize("value, message", [("avx1024", "MGF_ISA must be one of baseline, avx2, avx512, amx; got 'avx1024'")])
def test_unknown_isa_is_an_input_error(monkeypatch, value, message):
    monkeypatch.setenv("MGF_ISA", value)
    with pytest.raises(InputError) as error:
        NativeModel(bundle.random_bundle(5, (4,)), 1)
    assert message in str(error.value)


def test_precision_option_of_the_backend(make_bundle):
    import mgf

    path = make_bundle(20, (8,))
    assert mgf.load_model(path, precision="int8").kernel.precision == "int8"
    assert mgf.load_model(path).kernel.precision == "fp32"
    with pytest.raises(mgf.UsageError, match="option precision of model backend 'native' must be one of fp32, bf16, int8"):
        mgf.load_model(path, precision="fp16")
