"""``mgf train --arch transformer``: the Keras network's logits are the native kernel's (and the reference's) once
exported, and a run learns, writes a usable bundle and resumes; run where the ``keras`` extra is installed."""

import numpy as np
import pytest
from helpers.cli import mgf_cli

import mgf
from mgf.contract import bundle
from mgf.contract.transformer import Transformer

keras = pytest.importorskip("keras")
net = pytest.importorskip("mgf.plugins.keras.net")


@pytest.mark.parametrize("vocab, width, layers, heads, mlp, context", [(41, 32, 2, 4, 64, 24), (130, 48, 1, 3, 96, 40)])
def test_native_equals_keras_on_a_trained_shape(vocab, width, layers, heads, mlp, context):
    arch = bundle.Arch.of_transformer(vocab, width, layers, heads=heads, context=context, mlp=mlp, tied=False,
                                      activation="gelu")
    model = net.build(arch)
    rng = np.random.default_rng(vocab)
    for layer in model.layers:  # past Keras's initialisation (zero biases, unit norms): every weight matters
        layer.set_weights([w + rng.normal(0, 0.1, w.shape).astype(np.float32) for w in layer.get_weights()])
    got_arch, tensors = net.to_tensors(model)
    assert got_arch == arch
    loaded = bundle.Bundle(arch, tensors, {"name": "tokens", "config": {"vocab_size": vocab}})
    bundle.validate(loaded)
    tokens = rng.integers(0, vocab, (3, context))
    expected = keras.ops.convert_to_numpy(model(tokens))  # [B, T, V]: every position of a causal window
    for backend in ("native", "numpy"):
        runner = mgf.load_model(loaded, backend=backend)
        state, rows = runner.initial_state(3), []
        for column in tokens.T:
            logits, state = runner.step(column, state)
            rows.append(logits)
        got = np.stack(rows, axis=1)
        assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max(), backend


def test_train_a_transformer_learns_and_resumes(progressions, tmp_path, monkeypatch):
    monkeypatch.setenv("MGF_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "t.safetensors"
    common = ["train", "--repr", "tokens", "--config", "vocab_size=41", "--data", progressions, "--arch", "transformer",
              "--d-model", "32", "--layers", "2", "--heads", "2", "--seq-len", "30", "--context", "32",
              "--batch-size", "16", "--lr", "0.005", "--val-split", "0.2", "--seed", "1", "-o", out]
    result = mgf_cli(*common, "--epochs", "4")
    assert result.returncode == 0, result.stderr
    loaded = bundle.read(out)
    assert loaded.arch.transformer == Transformer(heads=2, context=32, mlp=128, tied=False, activation="gelu")
    scores = loaded.training["validation_cross_entropy"]
    assert scores["model"] < scores["unigram"], scores
    resumed = mgf_cli(*common, "--epochs", "5", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert bundle.read(out).training["epochs"] == 5
    exported = mgf_cli("export", tmp_path / "t.keras", "--repr", "tokens", "--config", "vocab_size=41",
                       "-o", tmp_path / "e.safetensors")
    assert exported.returncode == 0, exported.stderr
    again, trained = bundle.read(tmp_path / "e.safetensors"), bundle.read(out)
    assert again.arch == trained.arch and all(np.array_equal(again.tensors[k], v) for k, v in trained.tensors.items())
    written = tmp_path / "out.txt"
    generated = mgf_cli("generate", "--bundle", out, "--steps", "80", "--seed", "2", "-o", written)
    assert generated.returncode == 0, generated.stderr
    assert len(written.read_text().split()) >= 80


@pytest.mark.parametrize("flags, message", [
    (["--heads", "3"], "multiple of the transformer's 3 heads"),
    (["--context", "16"], "longer than the Transformer's context"),
    (["--arch", "gru", "--heads", "2"], "are for --arch transformer"),
])
def test_bad_transformer_settings_are_one_line(progressions, tmp_path, flags, message):
    args = ["train", "--repr", "tokens", "--config", "vocab_size=41", "--data", progressions, "--arch", "transformer",
            "--d-model", "32", "--seq-len", "30", "--epochs", "1", "-o", tmp_path / "t.safetensors", *flags]
    result = mgf_cli(*args)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
