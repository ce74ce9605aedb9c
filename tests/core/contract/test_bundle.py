import json
import os
import pickle
import stat

import numpy as np
import pytest
from safetensors.numpy import save_file

from mgf import BundleError
from mgf.contract import bundle


def test_round_trip_keeps_every_tensor_and_metadata(tmp_path):
    original = bundle.random_bundle(12, (8, 6), embedding_dim=5, seed=3)
    original.tensors["repr.codebook"] = np.ones((4, 3), np.float32)
    original.training = {"epochs": 2, "data": "corpus:bach"}
    path = tmp_path / "m.safetensors"
    bundle.write(original, path)
    loaded = bundle.read(path)
    assert loaded.arch == original.arch
    assert loaded.representation == original.representation
    assert loaded.training == original.training
    assert sorted(loaded.tensors) == sorted(original.tensors)
    for name, array in original.tensors.items():
        np.testing.assert_array_equal(loaded.tensors[name], array)
    assert list(loaded.repr_tensors) == ["codebook"]
    assert bundle.read_repr_tensors(path)["codebook"].shape == (4, 3)


def test_shapes_follow_the_keras_layout():
    shapes = bundle.Arch(vocab_size=10, hidden=(8, 4), embedding_dim=3).tensor_shapes()
    assert shapes["embedding"] == (10, 3)
    assert shapes["lstm.0.kernel"] == (3, 32)
    assert shapes["lstm.1.kernel"] == (8, 16)
    assert shapes["lstm.1.recurrent_kernel"] == (4, 16)
    assert shapes["dense.kernel"] == (4, 10)
    one_hot = bundle.Arch(vocab_size=10, hidden=(8,)).tensor_shapes()
    assert "embedding" not in one_hot and one_hot["lstm.0.kernel"] == (10, 32)


def _write_raw(path, tensors, metadata):
    save_file(tensors, str(path), metadata=metadata)
    return path


def _valid(tmp_path):
    b = bundle.random_bundle(6, (4,), seed=0)
    return dict(b.tensors), b.metadata()


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda t, m: t.__setitem__("dense.bias", np.zeros(7, np.float32)), "dense.bias' has shape [7], expected [6]"),
        (lambda t, m: t.__setitem__("dense.bias", np.zeros(6, np.float64)), "is float64, expected float32"),
        (lambda t, m: t["lstm.0.bias"].__setitem__(0, np.nan), "non-finite"),
        (lambda t, m: t.pop("lstm.0.recurrent_kernel"), "missing tensor(s) lstm.0.recurrent_kernel"),
        (lambda t, m: t.__setitem__("extra", np.zeros(1, np.float32)), "unexpected tensor 'extra'"),
        (lambda t, m: m.__setitem__("mgf.format", "2"), "bundle format '2' is not supported"),
        (lambda t, m: m.pop("mgf.format"), "not an mgf bundle"),
        (lambda t, m: m.__setitem__("mgf.arch", "{not json"), "mgf.arch is not JSON"),
        (lambda t, m: m.__setitem__("mgf.arch", json.dumps({"cell": "rnn", "vocab_size": 6, "hidden": [4]})), "cell 'rnn'"),
        (lambda t, m: m.__setitem__("mgf.arch", json.dumps({"cell": "lstm", "vocab_size": 6, "hidden": []})), "hidden must be"),
        (lambda t, m: m.__setitem__("mgf.representation", json.dumps({"config": {}})), "has no name"),
        (lambda t, m: m.pop("mgf.training"), "mgf.training is missing"),
        (lambda t, m: m.__setitem__("mgf.arch", "[" * 100_000), "metadata mgf.arch nests deeper than 32"),
        (lambda t, m: m.__setitem__("mgf.training", json.dumps({"a": "x" * 2_000_000})), "mgf.training is 2000009 bytes"),
        (lambda t, m: t["dense.kernel"].__setitem__((0, 0), 3e38), "'dense.kernel' has values up to 3e+38"),
        (lambda t, m: t["lstm.0.bias"].__setitem__(1, -2e4), "'lstm.0.bias' has values up to 2e+04"),
    ],
)
def test_every_inconsistency_is_a_bundle_error(tmp_path, mutate, message):
    tensors, metadata = _valid(tmp_path)
    mutate(tensors, metadata)
    path = _write_raw(tmp_path / "bad.safetensors", tensors, metadata)
    with pytest.raises(BundleError) as error:
        bundle.read(path)
    assert message in str(error.value)
    assert str(path) in str(error.value)


def test_files_that_are_not_bundles(tmp_path):
    with pytest.raises(BundleError, match="no such bundle file"):
        bundle.read(tmp_path / "absent.safetensors")
    with pytest.raises(BundleError, match="is a directory"):
        bundle.read(tmp_path)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00\x01not a safetensors file at all")
    with pytest.raises(BundleError, match="not a safetensors file"):
        bundle.read(garbage)
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(BundleError):
        bundle.read(empty)


def test_truncated_bundle(tmp_path):
    path = tmp_path / "m.safetensors"
    bundle.write(bundle.random_bundle(6, (4,)), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])
    with pytest.raises(BundleError):
        bundle.read(path)


class Boom:
    def __reduce__(self):
        return (open, ("/tmp/mgf-pickle-ran", "w"))


def test_loading_never_executes_code(tmp_path):
    """A pickle posing as a bundle is rejected without being unpickled."""
    import os

    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps(Boom()))
    marker = "/tmp/mgf-pickle-ran"
    if os.path.exists(marker):
        os.unlink(marker)
    with pytest.raises(BundleError):
        bundle.read(path)
    assert not os.path.exists(marker)


def test_write_is_atomic_and_validates(tmp_path):
    path = tmp_path / "m.safetensors"
    broken = bundle.random_bundle(6, (4,))
    broken.tensors["dense.bias"] = np.zeros(3, np.float32)
    with pytest.raises(BundleError):
        bundle.write(broken, path)
    assert list(tmp_path.iterdir()) == []


def test_weights_at_the_bound_load_and_beyond_it_are_not_written(tmp_path):
    path = tmp_path / "m.safetensors"
    made = bundle.random_bundle(6, (4,))
    made.tensors["dense.bias"][:] = bundle.MAX_WEIGHT
    bundle.write(made, path)
    assert bundle.read(path).tensors["dense.bias"].max() == bundle.MAX_WEIGHT
    made.tensors["dense.bias"][0] = np.nextafter(np.float32(bundle.MAX_WEIGHT), np.float32(np.inf))
    with pytest.raises(BundleError, match="values up to"):
        bundle.write(made, tmp_path / "other.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_repr_tensors_are_read_alone_and_checked(tmp_path):
    tensors, metadata = _valid(tmp_path)
    tensors["repr.codebook"] = np.arange(6, dtype=np.float32).reshape(2, 3)
    path = _write_raw(tmp_path / "m.safetensors", tensors, metadata)
    np.testing.assert_array_equal(bundle.read_repr_tensors(path)["codebook"], tensors["repr.codebook"])
    tensors["repr.codebook"][0, 0] = np.inf
    _write_raw(path, tensors, metadata)
    with pytest.raises(BundleError, match="repr.codebook"):
        bundle.read_repr_tensors(path)


def test_files_written_by_safetensors_read_back_equal(tmp_path):
    """The reader is our own; safetensors' writer (with its padding and order) is the reference."""
    original = bundle.random_bundle(9, (5, 3), embedding_dim=2, seed=4)
    path = _write_raw(tmp_path / "m.safetensors", dict(original.tensors), original.metadata())
    from safetensors.numpy import load_file

    reference = load_file(str(path))
    loaded = bundle.read(path)
    assert sorted(loaded.tensors) == sorted(reference)
    for name, array in reference.items():
        np.testing.assert_array_equal(loaded.tensors[name], array)


def test_one_generate_parses_the_bundle_header_once(make_bundle, tmp_path, monkeypatch):
    from mgf.cli.main import main

    path = make_bundle()
    parses = []
    real = bundle._parse_header
    monkeypatch.setattr(bundle, "_parse_header", lambda *a: parses.append(a) or real(*a))
    assert main(["generate", "--bundle", str(path), "--steps", "3", "--quiet", "-o", str(tmp_path / "x.txt")]) == 0
    assert len(parses) == 1


def test_a_written_bundle_has_the_umask_permissions(tmp_path):
    """Others may read a model as they may read any file this user writes (safetensors alone leaves 0600)."""
    mask = os.umask(0o022)
    os.umask(mask)
    path = tmp_path / "m.safetensors"
    bundle.write(bundle.random_bundle(5, (3,)), path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~mask


def test_a_transformer_bundle_round_trips_and_its_shape_is_checked(tmp_path):
    from mgf.contract.transformer import Transformer

    shape = Transformer(heads=2, context=8, mlp=24, positions="rotary", tied=False, activation="gelu")
    written = bundle.random_bundle(11, (12, 12, 12), seed=3, transformer=shape)
    path = tmp_path / "t.safetensors"
    bundle.write(written, path)
    read = bundle.read(path)
    assert read.arch == written.arch and read.arch.transformer == shape
    assert set(read.tensors) == set(written.tensors) and "positions" not in read.tensors
    fields = json.loads(written.arch.to_json())
    for change, message in (({"heads": 5}, "multiple of the transformer's 5 heads"),
                            ({"context": 0}, "context must be an integer"),
                            ({"positions": "alibi"}, "positions must be one of"),
                            ({"heads": 4, "positions": "rotary"}, "even head width"),
                            ({"extra": 1}, "unknown field"),
                            ({"norm_epsilon": "x"}, "norm_epsilon must be a number")):
        arch = {**fields, "transformer": {**fields["transformer"], **change}}
        with pytest.raises(BundleError, match=message):
            bundle._parse_arch("t", arch)
    with pytest.raises(BundleError, match="hidden width equal"):
        bundle._parse_arch("t", {**fields, "hidden": [12, 16, 12]})
    with pytest.raises(BundleError, match="has a transformer object"):
        bundle._parse_arch("t", {**fields, "cell": "gru"})
