"""GRU bundles (cell "gru", Keras GRU(reset_after=True)): numpy reference and native kernel against Keras, bundle,
backends, export."""

import json

import numpy as np
import pytest
from helpers.side_by_side import Sequence, random_tokens, step_side_by_side

import mgf
from mgf import InputError
from mgf.contract import bundle
from mgf.cli.main import main
from mgf.kernel.reference import NumpyGRU
from mgf.plugins.backends.native import NativeModel

keras = pytest.importorskip("keras")
net = pytest.importorskip("mgf.plugins.keras.net")

SHAPES = [(30, (16,), 8), (20, (12, 10), None), (40, (16, 12, 8), 6)]  # vocab, hidden, embedding


def keras_gru(vocab, hidden, embedding, seed=0, last_sequence=True):
    """A hand-built Keras GRU language model with random weights, biases included (Keras starts them at zero)."""
    keras.utils.set_random_seed(seed)
    first = (keras.layers.Embedding(vocab, embedding) if embedding
             else keras.layers.CategoryEncoding(num_tokens=vocab, output_mode="one_hot"))
    grus = [keras.layers.GRU(units, reset_after=True, return_sequences=last_sequence or i < len(hidden) - 1)
            for i, units in enumerate(hidden)]
    model = keras.Sequential([keras.Input(shape=(None,), dtype="int32"), first, *grus, keras.layers.Dense(vocab)])
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        layer.set_weights([rng.uniform(-0.6, 0.6, w.shape).astype(np.float32) for w in layer.get_weights()])
    return model


def to_bundle(model):
    arch, tensors = net.to_tensors(model)
    return bundle.Bundle(arch, tensors, {"name": "tokens", "config": {"vocab_size": arch.vocab_size}}, {})


@pytest.fixture
def gru_path(tmp_path):
    path = tmp_path / "gru.safetensors"
    bundle.write(to_bundle(keras_gru(24, (16, 12), 6, seed=5)), path)
    return path


@pytest.mark.parametrize("vocab, hidden, embedding", SHAPES)
def test_numpy_gru_equals_the_keras_gru_layer_at_every_step(vocab, hidden, embedding):
    model = keras_gru(vocab, hidden, embedding, seed=vocab)
    tokens = random_tokens(vocab, 3, 40, seed=1)
    keras_layers = Sequence(model(tokens.T))  # [B, T, V]: Keras's GRU layers over the whole sequence
    step_side_by_side(NumpyGRU(to_bundle(model)), keras_layers, tokens, atol=1e-4)


def test_the_bundle_layout_is_the_keras_gru_layout():
    arch = bundle.Arch(vocab_size=10, hidden=(8, 4), embedding_dim=3, cell="gru")
    shapes = arch.tensor_shapes()
    layer = keras.layers.GRU(4, reset_after=True)
    layer.build((None, None, 8))
    assert [tuple(w.shape) for w in layer.get_weights()] == [shapes["gru.1.kernel"], shapes["gru.1.recurrent_kernel"],
                                                              shapes["gru.1.bias"]] == [(8, 12), (4, 12), (2, 12)]
    assert shapes["gru.0.kernel"] == (3, 24) and not any(name.startswith("lstm.") for name in shapes)


def test_gru_bundle_round_trips(tmp_path):
    original = to_bundle(keras_gru(20, (12, 10), None, seed=2))
    path = tmp_path / "m.safetensors"
    bundle.write(original, path)
    loaded = bundle.read(path)
    assert loaded.arch == original.arch and loaded.arch.cell == "gru"
    assert json.loads(bundle.read_metadata(path)["arch"].to_json())["cell"] == "gru"
    assert sorted(loaded.tensors) == sorted(original.tensors)
    for name, array in original.tensors.items():
        np.testing.assert_array_equal(loaded.tensors[name], array)


def test_a_gru_arch_with_lstm_tensors_is_a_bundle_error(tmp_path):
    from safetensors.numpy import save_file

    lstm = bundle.random_bundle(6, (4,))
    metadata = lstm.metadata()
    metadata["mgf.arch"] = json.dumps({"cell": "gru", "vocab_size": 6, "embedding_dim": None, "hidden": [4]})
    save_file(lstm.tensors, str(tmp_path / "bad.safetensors"), metadata=metadata)
    with pytest.raises(mgf.BundleError, match="missing tensor.s. gru.0.bias, gru.0.kernel, gru.0.recurrent_kernel"):
        bundle.read(tmp_path / "bad.safetensors")


def test_numpy_and_keras_backends_agree_on_a_gru_bundle(gru_path):
    numpy_model, keras_model = (mgf.load_model(gru_path, backend=name) for name in ("numpy", "keras"))
    step_side_by_side(numpy_model, keras_model, random_tokens(24, 4, 60), atol=1e-4)


def test_generate_runs_a_gru_bundle(gru_path):
    greedy = {backend: mgf.generate(mgf.load_model(gru_path, backend=backend), 40, sampler="greedy", primer=[1, 2])
              for backend in ("numpy", "keras")}
    np.testing.assert_array_equal(greedy["numpy"], greedy["keras"])
    model = mgf.load_model(gru_path, backend="numpy")
    beams = mgf.generate(model, 30, sampler="beam", primer=[3], seed=1, num_outputs=3)
    sampled = mgf.generate(model, 30, sampler="temperature", seed=1, num_outputs=3)
    assert beams.shape == (3, 31) and (beams[:, 0] == 3).all() and sampled.shape == (3, 30)
    for tokens in (beams, sampled):
        assert 0 <= tokens.min() and tokens.max() < 24


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("vocab, hidden, embedding", SHAPES)
def test_native_gru_equals_the_keras_gru_layer_at_every_step(vocab, hidden, embedding, threads):
    model = keras_gru(vocab, hidden, embedding, seed=vocab + 1)
    tokens = random_tokens(vocab, 3, 40, seed=2)
    native = NativeModel(to_bundle(model), threads)
    assert native.kernel.cell == "gru"
    step_side_by_side(native, Sequence(model(tokens.T)), tokens, atol=1e-4)


def test_mgf_generate_runs_a_gru_bundle_on_the_native_backend(gru_path, tmp_path):
    """The same greedy tokens as the numpy reference, through the CLI and its C loop."""
    out = tmp_path / "g.txt"
    assert main(["generate", "--bundle", str(gru_path), "--model", "native", "--sampler", "greedy", "--steps", "40",
                 "--primer", "1 2", "-o", str(out)]) == 0
    expected = mgf.generate(mgf.load_model(gru_path, backend="numpy"), 40, sampler="greedy", primer=[1, 2])
    written = np.array(out.read_text().split(), np.int32)
    np.testing.assert_array_equal(written, expected)  # the primer, then 40 tokens


def test_export_of_a_keras_gru_model_gives_its_logits(tmp_path, capsys):
    """The tutorial shape: the last GRU returns one vector, so the model's output is the last step's."""
    model = keras_gru(30, (16, 12), 8, seed=4, last_sequence=False)
    model.save(tmp_path / "gru.keras")
    out = tmp_path / "gru.safetensors"
    assert main(["export", str(tmp_path / "gru.keras"), "--repr", "tokens", "--config", "vocab_size=30", "-o", str(out)]) == 0
    assert bundle.read(out).arch == bundle.Arch(vocab_size=30, hidden=(16, 12), embedding_dim=8, cell="gru")
    window = np.array([[29, 3, 17, 4, 4, 9]], np.int32)
    expected = np.asarray(model(window))[0]
    for backend in ("numpy", "keras"):
        exported = mgf.load_model(out, backend=backend)
        state = exported.initial_state(1)
        for token in window[0]:
            logits, state = exported.step([token], state)
        np.testing.assert_allclose(logits[0], expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "layers, message",
    [
        (lambda: [keras.layers.GRU(8, reset_after=False)], "only GRU(reset_after=True)"),
        (lambda: [keras.layers.GRU(8, activation="relu")], "only GRU(activation='tanh'"),
        (lambda: [keras.layers.GRU(8, go_backwards=True)], "go_backwards GRUs"),
        (lambda: [keras.layers.GRU(8, return_sequences=True), keras.layers.LSTM(8)], "cannot be mixed"),
    ],
)
def test_export_refuses_what_the_gru_bundle_cannot_compute(layers, message):
    model = keras.Sequential([keras.Input(shape=(None,), dtype="int32"), keras.layers.Embedding(30, 8), *layers(),
                              keras.layers.Dense(30)])
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")) as error:
        net.to_tensors(model)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("embedding", [8, None])
def test_the_training_network_of_a_gru_arch_is_made_of_keras_grus(embedding):
    """What `mgf train --cell gru` builds: its bundle has the arch it was built from, so --resume can check it."""
    arch = bundle.Arch(vocab_size=20, hidden=(12, 10), embedding_dim=embedding, cell="gru")
    model = net.build(arch, dropout=0.1)
    assert [type(layer).__name__ for layer in model.layers if "GRU" in type(layer).__name__] == ["GRU", "GRU"]
    assert all(layer.get_config()["reset_after"] for layer in model.layers if isinstance(layer, keras.layers.GRU))
    assert net.to_tensors(model)[0] == arch


def test_mgf_train_cell_gru_writes_a_gru_bundle(tmp_path):
    """`mgf train --cell gru`: a GRU bundle, scored with the numpy backend, that generates."""
    import subprocess
    import sys

    output = tmp_path / "g.safetensors"
    result = subprocess.run([sys.executable, "-m", "mgf.cli.main", "train", "--repr", "notes", "--data", "corpus:bach/bwv66.6",
                             "--data", "corpus:bach/bwv7.7", "--data", "corpus:bach/bwv10.7", "--cell", "gru", "--hidden", "16",
                             "--layers", "1", "--epochs", "1", "--quiet", "-o", str(output)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    training = mgf.contract.bundle.read_metadata(output)["training"]
    assert mgf.contract.bundle.read_metadata(output)["arch"].cell == "gru"
    assert "model" in training["validation_cross_entropy"]
    assert set(training["card"]["metrics"]) == set(mgf.music.metrics.METRICS) and training["card"]["generation"]["pieces"] == 50
    model = mgf.load_model(output, backend="numpy")
    assert len(mgf.generate(model, 8, seed=0)) == 8
    shown = subprocess.run([sys.executable, "-m", "mgf.cli.main", "card", str(output)], capture_output=True, text=True)
    assert shown.returncode == 0 and "1 GRU layer(s) of 16" in shown.stdout and "\npitch_range " in shown.stdout
