"""``mgf import-hf``: a GPT-2 checkpoint in Hugging Face's layout, written by the test, becomes a bundle whose
logits are those of an independent numpy GPT-2 (tests/helpers/gpt2.py), on every backend that runs it."""

import json
import os

import numpy as np
import pytest
from helpers.cli import mgf_cli
from helpers.gpt2 import forward, random_checkpoint, windowed

import mgf
from mgf.contract import bundle

VOCAB = 40


def _imported(tmp_path, name="gpt2", **kwargs):
    weights, config = random_checkpoint(tmp_path / name, vocab=VOCAB, **kwargs)
    out = tmp_path / f"{name}.safetensors"
    result = mgf_cli("import-hf", tmp_path / name, "--repr", "tokens", "--config", f"vocab_size={VOCAB}", "-o", out)
    assert result.returncode == 0, result.stderr
    return out, weights, config


def _logits(model, tokens):
    state, rows = model.initial_state(1), []
    for token in tokens:
        logits, state = model.step(np.array([token]), state)
        rows.append(logits[0])
    return np.array(rows)


@pytest.mark.parametrize("kwargs", [{}, {"prefix": "", "activation_function": "gelu", "layer_norm_epsilon": 1e-3},
                                    {"tie_word_embeddings": False, "n_inner": 48, "dtype": np.float16}])
def test_imported_gpt2_scores_as_an_independent_gpt2(tmp_path, kwargs):
    out, weights, config = _imported(tmp_path, **kwargs)
    model = mgf.load_model(out, backend="numpy")
    tokens = np.random.default_rng(1).integers(0, VOCAB, 12)
    expected = forward(weights, config, tokens)
    np.testing.assert_allclose(_logits(model, tokens), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    card = mgf_cli("card", out)
    assert "TRANSFORMER" in card.stdout and "context 16" in card.stdout, card.stdout


def test_past_the_context_the_window_slides(tmp_path):
    out, weights, config = _imported(tmp_path, context=8)
    model = mgf.load_model(out, backend="numpy")
    tokens = np.random.default_rng(2).integers(0, VOCAB, 30)
    expected = windowed(weights, config, tokens)
    np.testing.assert_allclose(_logits(model, tokens), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize("backend", ["numpy", "native"])
def test_an_imported_model_generates_past_its_context(tmp_path, backend):
    out, _, _ = _imported(tmp_path)
    target = tmp_path / "out.txt"
    result = mgf_cli("generate", "--bundle", out, "--model", backend, "--steps", "40", "--seed", "3",
                     "--sampler", "beam", "--num-outputs", "2", "-o", target)
    assert result.returncode == 0, result.stderr
    written = sorted(tmp_path.glob("out*.txt"))
    assert len(written) == 2 and all(len(path.read_text().split()) >= 40 for path in written), written


def _write(directory, config=None, files=()):
    os.makedirs(directory, exist_ok=True)
    if config is not None:
        (directory / "config.json").write_text(json.dumps(config))
    for name in files:
        (directory / name).write_bytes(b"\x80\x04K\x01.")


@pytest.mark.parametrize("setup, message", [
    (lambda d: _write(d), "no config.json"),
    (lambda d: _write(d, {"model_type": "llama"}), "model_type 'llama' is not gpt2"),
    (lambda d: _write(d, {"model_type": "gpt2", "scale_attn_by_inverse_layer_idx": True}),
     "scale_attn_by_inverse_layer_idx=True is not supported"),
    (lambda d: _write(d, {"model_type": "gpt2", "activation_function": "relu"}), "activation_function 'relu'"),
    (lambda d: _write(d, {"model_type": "gpt2"}, ["pytorch_model.bin"]), "pytorch_model.bin is a pickle"),
    (lambda d: random_checkpoint(d, vocab=41), "scores 41 tokens but representation 'tokens' has 40"),
    (lambda d: random_checkpoint(d, vocab=VOCAB, n_inner=3 * 32) and _patch(d, n_inner=4 * 32), "has shape"),
    (lambda d: random_checkpoint(d, vocab=VOCAB) and _patch(d, n_layer=3), "no tensor 'transformer.h.2.ln_1.weight'"),
    (lambda d: random_checkpoint(d, vocab=VOCAB) and _patch(d, n_layer=1), "does not have: transformer.h.1."),
    (lambda d: random_checkpoint(d, vocab=VOCAB) and _patch(d, n_head=5), "not a multiple of n_head"),
    (lambda d: random_checkpoint(d, vocab=VOCAB) and _patch(d, n_positions=10**9), "n_positions must be an integer"),
])
def test_bad_checkpoints_are_one_line(tmp_path, setup, message):
    setup(tmp_path / "hf")
    out = tmp_path / "out.safetensors"
    result = mgf_cli("import-hf", tmp_path / "hf", "--repr", "tokens", "--config", f"vocab_size={VOCAB}", "-o", out)
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not out.exists()


def _patch(directory, **changes):
    path = directory / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
    return True


def test_bf16_tensors_read_as_float32(tmp_path):
    """A safetensors file of bf16 (numpy has no such dtype, so the bytes are written by hand) reads as float32."""
    values = np.array([1.5, -2.25, 3.0e-3], np.float32)
    raw = (values.view(np.uint32) >> 16).astype("<u2").tobytes()
    header = json.dumps({"w": {"dtype": "BF16", "shape": [3], "data_offsets": [0, len(raw)]}}).encode()
    path = tmp_path / "bf16.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + raw)
    read = bundle.read_safetensors(path)["w"]
    assert read.dtype == np.float32
    np.testing.assert_allclose(read, values, rtol=1e-2)
