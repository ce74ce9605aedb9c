"""The keras backend, `mgf train` and `mgf export`; run where the `keras` extra is installed (CI installs it)."""

import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers.cli import mgf_cli
from helpers.side_by_side import random_tokens, step_side_by_side

import mgf
from mgf.contract import bundle

keras = pytest.importorskip("keras")
net = pytest.importorskip("mgf.plugins.keras.net")
from mgf.plugins.backends.native import NativeModel  # noqa: E402

SHAPES = [(130, (64,), 16, 1), (40, (32, 24), None, 4), (388, (48, 32, 16), 24, 3)]


@pytest.mark.parametrize("vocab, hidden, embedding, batch", SHAPES)
def test_native_equals_keras_over_200_steps(vocab, hidden, embedding, batch):
    loaded = bundle.random_bundle(vocab, hidden, embedding, seed=vocab)
    native, reference = NativeModel(loaded, 1), net.KerasStepModel(loaded.arch, loaded.tensors)
    step_side_by_side(native, reference, random_tokens(vocab, batch, 200), atol=1e-4)


def test_greedy_generation_is_the_same_on_both_backends(make_bundle):
    path = make_bundle(50, (32, 32), 8, seed=3, scale=2.0)
    tokens = {backend: mgf.generate(mgf.load_model(path, backend=backend), 100, sampler="greedy", primer=[1, 2])
              for backend in ("native", "keras")}
    np.testing.assert_array_equal(tokens["native"], tokens["keras"])


def test_train_learns_and_writes_a_usable_bundle(progressions, tmp_path, monkeypatch):
    monkeypatch.setenv("MGF_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "m.safetensors"
    result = mgf_cli("train", "--repr", "tokens", "--config", "vocab_size=41", "--data", progressions, "--hidden", "48",
                     "--layers", "1", "--embedding", "16", "--seq-len", "30", "--batch-size", "16", "--epochs", "6",
                     "--lr", "0.02", "--val-split", "0.2", "-o", out)
    assert result.returncode == 0, result.stderr
    epoch_lines = [line for line in result.stderr.splitlines() if line.startswith("epoch ")]
    assert len(epoch_lines) == 6
    losses = [float(line.split("val_loss ")[1].split(",")[0]) for line in epoch_lines]
    assert losses[-1] < 0.6 * losses[0]
    loaded = bundle.read(out)
    assert loaded.training["epochs"] == 6 and loaded.training["best_val_loss"] == pytest.approx(min(losses), abs=1e-3)
    assert loaded.training["command"].startswith("mgf train --repr tokens")
    scores = loaded.training["validation_cross_entropy"]
    assert scores["model"] < scores["unigram"] and set(scores) == {"model", "unigram", "5-gram"}
    assert loaded.training["card"] == {"skipped": "representation 'tokens' has no notes to render or measure"}
    assert "nats per validation token" in result.stdout
    assert (tmp_path / "m.keras").exists()
    from mgf.training.baselines import model_cross_entropy

    unseen = [np.array([(5 + 2 * j) % 40 for j in range(60)]), np.array([(1 + 3 * j) % 40 for j in range(60)])]
    assert model_cross_entropy(mgf.load_model(out), unseen) < 0.5 * np.log(40)


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(trained, tmp_path, monkeypatch):
    """--resume goes on from the last checkpoint and restores the optimizer too: Adam's step count and moments go
    on, so 2 + 1 epochs (conftest's session run, resumed) give the weights of 3 epochs in one run (a fresh Adam
    would restart its bias correction and forget its moments)."""
    monkeypatch.setenv("MGF_CACHE_DIR", str(tmp_path / "cache"))
    whole, parted = tmp_path / "whole" / "m.safetensors", trained.out / "m.safetensors"
    (tmp_path / "whole").mkdir()
    assert json.loads((trained.out / "m.ckpt.json").read_text())["checkpoints"][0]["epoch"] == 2
    first = keras.models.load_model(trained.out / "m.ckpt-1.keras", compile=True)
    batches = int(first.optimizer.iterations.numpy())
    assert batches > 0
    assert mgf_cli(*trained.args, "--epochs", "3", "-o", whole).returncode == 0
    without_lr = [a for a in trained.args if a not in ("--lr", "0.01")]
    result = mgf_cli(*without_lr, "--epochs", "3", "--resume", "-o", parted)
    assert result.returncode == 0, result.stderr
    assert [line.split(",")[0] for line in result.stderr.splitlines() if line.startswith("epoch")] == ["epoch 3/3"]
    assert bundle.read(parted).training["epochs"] == 3
    resumed = keras.models.load_model(trained.out / "m.keras", compile=True)
    assert int(resumed.optimizer.iterations.numpy()) == 3 * batches
    for name, tensor in bundle.read(whole).tensors.items():
        np.testing.assert_allclose(bundle.read(parted).tensors[name], tensor, rtol=1e-5, atol=1e-6, err_msg=name)
    assert bundle.read(parted).training["lr"] == 0.01  # the checkpoint's: --lr was not given again


@pytest.mark.parametrize("size", [["--hidden", "100000000"], ["--embedding", "100000000"], ["--hidden", "40000", "--layers", "64"]])
def test_train_refuses_a_model_this_machine_cannot_hold(progressions, tmp_path, size):
    """Checked before the model is built: Keras took 54 s and 17 GB to fail on --embedding 100000000."""
    started = time.perf_counter()
    result = mgf_cli("train", "--repr", "tokens", "--config", "vocab_size=41", "--data", progressions, *size,
                     "-o", tmp_path / "m.safetensors")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "parameters and batches of" in result.stderr and "GiB to train" in result.stderr
    assert not list(tmp_path.glob("m*")) and time.perf_counter() - started < 60


def test_windows_too_long_for_this_machine_are_refused():
    """Backpropagation through a window keeps every step's activations: 64 windows of 10^8 tokens cannot fit."""
    from mgf import UsageError
    from mgf.contract.bundle import Arch
    from mgf.plugins.keras.train import _check_fits

    arch = Arch(vocab_size=389, hidden=(256, 256), embedding_dim=64, cell="gru")
    _check_fits(arch, 64, 256)  # the shipped midi model's run
    with pytest.raises(UsageError, match=r"batches of 64 windows of 100000000 tokens need about [\d,.]+ GiB to train"):
        _check_fits(arch, 64, 10**8)


def test_a_seq_len_beyond_the_longest_piece_is_cut_to_it(progressions, tmp_path, monkeypatch):
    """Windows are padded to --seq-len: a billion made a segfault, after trying to allocate 12 GB per piece.
    Cut to the longest piece (60 tokens), a window holds the same predictions without the padding."""
    monkeypatch.setenv("MGF_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "m.safetensors"
    result = mgf_cli("train", "--repr", "tokens", "--config", "vocab_size=41", "--data", progressions, "--hidden", "8",
                     "--layers", "1", "--epochs", "1", "--seq-len", "1000000000", "-o", out)
    assert result.returncode == 0, result.stderr
    assert bundle.read(out).training["seq_len"] == 60


def test_train_checks_its_output_before_training(progressions, tmp_path):
    started = time.perf_counter()
    result = mgf_cli("train", "--repr", "tokens", "--data", progressions, "-o", tmp_path / "missing" / "m.safetensors")
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "directory" in result.stderr and "does not exist" in result.stderr
    assert not list(tmp_path.glob("**/*.keras")) and time.perf_counter() - started < 60


@pytest.mark.parametrize(
    "make_data, message",
    [
        (lambda d: None, "no files with suffix .txt"),
        (lambda d: (d / "a.txt").write_text("1 x"), "no piece could be read"),
    ],
)
def test_train_on_unusable_data_is_one_line(tmp_path, make_data, message, monkeypatch):
    monkeypatch.setenv("MGF_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "d"
    folder.mkdir()
    make_data(folder)
    result = mgf_cli("train", "--repr", "tokens", "--data", folder, "--epochs", "1", "-o", tmp_path / "m.safetensors")
    assert result.returncode == 1 and message in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "m.safetensors").exists()


def test_three_pieces_are_enough_for_a_validation_split(tmp_path, monkeypatch):
    monkeypatch.setenv("MGF_CACHE_DIR", str(tmp_path / "cache"))
    for i in range(3):
        (tmp_path / f"{i}.txt").write_text(" ".join(str((i + j) % 10) for j in range(20)))
    out = tmp_path / "m.safetensors"
    result = mgf_cli("train", "--repr", "tokens", "--config", "vocab_size=11", "--data", tmp_path, "--hidden", "4",
                     "--layers", "1", "--epochs", "1", "--quiet", "-o", out)
    assert result.returncode == 0, result.stderr
    assert bundle.read(out).training["pieces"] == {"train": 2, "validation": 1, "skipped_files": 0}


def test_progress_lines_when_stderr_is_not_a_terminal(progressions, tmp_path, monkeypatch):
    monkeypatch.setenv("MGF_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "m.safetensors"
    args = ["train", "--repr", "tokens", "--config", "vocab_size=41", "--data", progressions, "--hidden", "8",
            "--layers", "1", "--seq-len", "30", "--batch-size", "8", "--epochs", "2", "--log-every", "3", "-o", out]
    result = mgf_cli(*args)
    assert result.returncode == 0, result.stderr
    number = r"\d+(\.\d+)?"
    epochs = [line for line in result.stderr.splitlines() if line.startswith("epoch ")]
    assert len(epochs) == 2
    for line in epochs:
        assert re.fullmatch(rf"epoch \d/2, loss {number}, val_loss {number}, {number} tokens/s, \d+ s, ETA .+", line), line
    windows = 2 * bundle.read(out).training["pieces"]["train"]  # 60 tokens and a start token: two windows of 30
    batches = -(-windows // 8)
    progress = [re.fullmatch(rf"batch (\d+)/(\d+) \(epoch (\d)/2\), loss {number}, {number} tokens/s, ETA .+", line)
                for line in result.stderr.splitlines() if line.startswith("batch ")]
    assert all(progress), result.stderr
    for epoch in ("1", "2"):
        assert [int(m[1]) for m in progress if m[3] == epoch] == list(range(3, batches, 3))
        assert {int(m[2]) for m in progress} == {batches}


def test_quiet_training_prints_nothing_on_stderr(trained):
    assert trained.run.returncode == 0 and "--quiet" in trained.run.args and trained.run.stderr == ""


def test_keras_backend_takes_no_options_and_fails_in_one_line(make_bundle, tmp_path):
    path = make_bundle(30, (8,), 4)
    assert mgf.load_model(path, backend="keras").vocab_size == 30
    with pytest.raises(mgf.UsageError, match="threads") as error:
        mgf.load_model(path, backend="keras", threads=2)
    assert "\n" not in str(error.value)
    (tmp_path / "bad.safetensors").write_bytes(b"not a bundle")
    with pytest.raises(mgf.BundleError) as error:
        mgf.load_model(tmp_path / "bad.safetensors", backend="keras")
    assert "\n" not in str(error.value)


def test_export_of_a_hand_built_model_runs_natively(tmp_path):
    """A model built by hand the tutorial way (last LSTM returns one vector, softmax output)."""
    keras.utils.set_random_seed(1)
    model = keras.Sequential([
        keras.Input(shape=(None,), dtype="int32"),
        keras.layers.Embedding(30, 8),
        keras.layers.LSTM(16, return_sequences=True),
        keras.layers.Dropout(0.3),
        keras.layers.LSTM(12),
        keras.layers.Dense(30, activation="softmax"),
    ])
    path = tmp_path / "hand.keras"
    model.save(path)
    result = mgf_cli("export", path, "--repr", "tokens", "--config", "vocab_size=30", "-o", tmp_path / "hand.safetensors")
    assert result.returncode == 0, result.stderr
    window = np.array([[29, 3, 17, 4, 4, 9]], np.int32)
    expected = np.asarray(model(window))[0]
    native = mgf.load_model(tmp_path / "hand.safetensors")
    state = native.initial_state(1)
    for token in window[0]:
        logits, state = native.step([token], state)
    probs = np.exp(logits[0] - logits[0].max())
    np.testing.assert_allclose(probs / probs.sum(), expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "layers, message",
    [
        (lambda: [keras.layers.Embedding(30, 8), keras.layers.Conv1D(4, 3), keras.layers.Dense(30)], "'conv1d' (Conv1D)"),
        (lambda: [keras.layers.Embedding(30, 8), keras.layers.SimpleRNN(8), keras.layers.Dense(30)], "(SimpleRNN)"),
        (lambda: [keras.layers.Embedding(30, 8), keras.layers.LSTM(8, activation="relu"), keras.layers.Dense(30)], "activation='tanh'"),
        (lambda: [keras.layers.Embedding(30, 8, mask_zero=True), keras.layers.LSTM(8), keras.layers.Dense(30)], "mask_zero"),
    ],
)
def test_export_rejects_unsupported_layers_in_one_line(tmp_path, layers, message):
    model = keras.Sequential([keras.Input(shape=(None,), dtype="int32"), *layers()])
    model.save(tmp_path / "bad.keras")
    result = mgf_cli("export", tmp_path / "bad.keras", "--repr", "tokens", "--config", "vocab_size=30")
    assert result.returncode == 1 and message in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "bad.safetensors").exists()


def test_export_of_a_file_that_is_not_keras(tmp_path):
    (tmp_path / "x.keras").write_text("nope")
    result = mgf_cli("export", tmp_path / "x.keras", "--repr", "tokens")
    assert result.returncode == 1 and "not a loadable Keras model" in result.stderr


def test_keras_backend_without_tensorflow_says_how_to_install(make_bundle):
    code = (f"import sys; sys.modules['keras'] = None\n"
            f"import mgf\n"
            f"try:\n    mgf.load_model({str(make_bundle())!r}, backend='keras')\n"
            f"except mgf.PluginError as e:\n    print(e)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "pip install 'mgf-music[keras]'" in result.stdout


def test_wrong_tensor_shape_bundle_is_one_line(make_bundle, tmp_path):
    from safetensors.numpy import save_file

    loaded = bundle.read(make_bundle(20, (8,)))
    tensors = dict(loaded.tensors)
    tensors["lstm.0.kernel"] = np.zeros((20, 31), np.float32)
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata=loaded.metadata())
    for backend in ("native", "keras"):
        result = mgf_cli("generate", "--bundle", tmp_path / "bad.safetensors", "--model", backend, "-o", tmp_path / "o.txt")
        assert result.returncode == 1 and result.stderr.count("\n") == 1
        assert "'lstm.0.kernel' has shape [20, 31], expected [20, 32]" in result.stderr
    assert not os.path.exists(tmp_path / "o.txt")
