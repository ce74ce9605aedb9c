"""Priming: ``Model.prime`` gives what stepping gives, and the constraints prepare over a primer in linear time."""

import timeit
import types
from pathlib import Path

import numpy as np
import pytest

import mgf
from mgf import Model
from mgf.contract import registry
from mgf.kernel import _native

MODELS = Path(mgf.__file__).parent / "models"
ISAS = _native.ISAS[:_native.ISAS.index(_native.best_isa()) + 1]  # every build this CPU can run


def _piece(model, length, seed=0):
    """``length`` random tokens of the model's vocabulary, the start token left out (it is never in a primer)."""
    tokens = np.random.default_rng(seed).integers(0, model.vocab_size - 1, length).astype(np.int32)
    start = model.representation.start_token
    return np.where(tokens >= start, tokens + 1, tokens).astype(np.int32)


def _stepped(model, tokens):
    return Model.prime(model, tokens, model.initial_state(len(tokens)))


@pytest.mark.parametrize("name, cell", [("midi", "gru"), ("audio", "lstm")])  # two layers each
@pytest.mark.parametrize("precision", ["fp32", "int8", "bf16"])
@pytest.mark.parametrize("rows, threads", [(1, 1), (3, 2)])
@pytest.mark.parametrize("isa", ISAS)
def test_native_prime_gives_the_logits_and_state_of_stepping(name, cell, precision, rows, threads, isa, monkeypatch):
    monkeypatch.setenv("MGF_ISA", isa)
    model = mgf.load_model(MODELS / f"{name}.safetensors", precision=precision, threads=threads)
    assert model.kernel.cell == cell
    tokens = np.stack([_piece(model, 700, seed=row) for row in range(rows)])  # several blocks of the prefill
    stepped, stepped_state = _stepped(model, tokens)
    primed, primed_state = model.prime(tokens, model.initial_state(rows))
    assert np.array_equal(primed, stepped)  # bit for bit: the same products, added in the same order
    for layer in range(model.kernel.n_layers):
        assert np.array_equal(primed_state.h(layer), stepped_state.h(layer))
        if model.kernel.cell == "lstm":
            assert np.array_equal(primed_state.c(layer), stepped_state.c(layer))
    after = tokens[:, -1].copy()
    assert np.array_equal(model.step(after, primed_state)[0], model.step(after, stepped_state)[0])


def test_native_prime_refuses_bad_tokens():
    model = mgf.load_model(MODELS / "midi.safetensors")
    state = model.initial_state(2)
    with pytest.raises(mgf.InputError, match=r"expected token ids \[2, T\]"):
        model.prime(np.zeros((2, 0), np.int32), state)
    with pytest.raises(mgf.InputError, match="outside the vocabulary"):
        model.prime(np.full((2, 4), model.vocab_size), state)
    with pytest.raises(mgf.InputError, match="integers"):
        model.prime(np.zeros((2, 4), np.float32), state)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_generate_with_prefill_gives_todays_tokens(precision, monkeypatch):
    """generate feeds the primer through Model.prime; stepping it (the contract's default) gives the same tokens."""
    model = mgf.load_model(MODELS / "midi.safetensors", precision=precision)
    primer = _piece(model, 600)
    for seed in range(3):
        primed = mgf.generate(model, 40, primer=primer, seed=seed)
        with monkeypatch.context() as patch:
            patch.setattr(type(model), "prime", Model.prime)
            assert np.array_equal(mgf.generate(model, 40, primer=primer, seed=seed), primed)


@pytest.mark.parametrize("constraint", ["motifs", "close-notes"])
def test_constraints_prepare_in_linear_time(constraint):
    """Four times the primer takes about four times as long to feed to the constraint's rules (quadratic: sixteen).
    From 16,000 tokens up: smaller primers fit the L2 cache, larger ones do not, which alone doubled the ratio."""
    model = mgf.load_model(MODELS / "midi.safetensors")
    representation = model.representation
    cls = registry.entry("constraints", constraint).cls
    options = {"motifs": {"length": 8, "bonus": 3.0, "max_run": 32},
               "close-notes": {"max_note_seconds": 3.0, "max_polyphony": 4}}[constraint]
    piece = np.tile(_piece(model, 4_000), 16)  # repeats: motifs finds matches everywhere

    def prepare(length):
        ctx = types.SimpleNamespace(options=options, history=piece[None, :length], representation=representation)
        rules = _native.RuleSet(list(cls().rules(ctx)), representation.clock(), representation.vocab_size,
                                representation.start_token, 1, length + 1)
        rules.feed(piece[None, :length])  # what both loops start from

    # milliseconds each: the fastest of many runs, so that a busy machine's preemption does not count
    short = min(timeit.repeat(lambda: prepare(16_000), number=1, repeat=15))
    long = min(timeit.repeat(lambda: prepare(64_000), number=1, repeat=15))
    assert long / short < 8, (short, long)  # linear: 4, quadratic: 16; 8 is halfway on a log scale (6 failed at load 4)
