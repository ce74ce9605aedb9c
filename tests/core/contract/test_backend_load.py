"""Contract 3: ``mgf.load_model`` reads and checks a bundle once and hands the backend the parsed Bundle.

No thread-local copy: a backend that loads another model inside its own ``load`` (an ensemble,
a draft model) gets each bundle right, and a Bundle in memory loads without a file.  Backends
written for contract 2 (``load(path)``) keep working, with one DeprecationWarning.
"""

import warnings

import numpy as np
import pytest

import mgf
import mgf.testing
from mgf.contract import bundle
from mgf.plugins.backends.numpy_reference import NumpyBackend


class Recording(NumpyBackend):
    """The numpy backend, recording what ``load`` was handed."""

    name = "recording"
    handed: list = []

    def load(self, loaded):
        self.handed.append(loaded)
        return super().load(loaded)


class Ensemble(NumpyBackend):
    """Loads a second model (``inner_path``) inside its own ``load``, as an ensemble or a draft model would."""

    name = "ensemble"
    inner_path = None
    inner = None

    def load(self, loaded):
        Ensemble.inner = mgf.load_model(self.inner_path, backend="recording")
        return super().load(loaded)


class Contract2(NumpyBackend):
    """A backend as contract 2 documented it: ``load(path)`` reads the bundle itself."""

    name = "contract-2"

    def load(self, path):
        return super().load(bundle.read(path))


class Backends:
    @staticmethod
    @mgf.hookimpl
    def register_models(register):
        register(Recording)
        register(Ensemble)
        register(Contract2)


@pytest.fixture
def backends():
    Recording.handed = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with mgf.testing.registered(Backends()):
            mgf.installed("models")  # registration: where a contract-2 backend is told what to change
            yield [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]


def _logits(model, tokens=(0, 3, 5)):
    state = model.initial_state(1)
    out = []
    for token in tokens:
        logits, state = model.step(np.array([token], np.int32), state)
        out.append(logits.copy())
    return np.stack(out)


def test_load_is_handed_the_parsed_bundle(backends, make_bundle):
    path = make_bundle(20, (8,), seed=1)
    model = mgf.load_model(path, backend="recording")
    (handed,) = Recording.handed
    assert isinstance(handed, bundle.Bundle)
    on_disk = bundle.read(path)
    assert handed.arch == on_disk.arch and handed.representation == on_disk.representation
    assert all(np.array_equal(handed.tensors[k], v) for k, v in on_disk.tensors.items())
    assert model.representation.name == "tokens" and model.vocab_size == 20


def test_a_model_loaded_inside_load_gets_its_own_bundle(backends, make_bundle):
    outer, inner = make_bundle(20, (8,), seed=1, name="outer"), make_bundle(31, (6,), seed=2, name="inner")
    Ensemble.inner_path = inner
    model = mgf.load_model(outer, backend="ensemble")
    assert model.vocab_size == 20 and model.representation.vocab_size == 20
    assert Ensemble.inner.vocab_size == 31 and Ensemble.inner.representation.vocab_size == 31
    np.testing.assert_array_equal(_logits(model), _logits(mgf.load_model(outer, backend="numpy")))
    np.testing.assert_array_equal(_logits(Ensemble.inner), _logits(mgf.load_model(inner, backend="numpy")))


def test_a_bundle_in_memory_loads_without_a_file(backends, tmp_path):
    loaded = bundle.random_bundle(24, (12,), 4, seed=3)
    in_memory = mgf.load_model(loaded, backend="recording")
    assert Recording.handed == [loaded]
    assert list(tmp_path.iterdir()) == []
    bundle.write(loaded, tmp_path / "m.safetensors")
    for backend in ("native", "numpy"):
        from_file = mgf.load_model(tmp_path / "m.safetensors", backend=backend)
        np.testing.assert_allclose(_logits(mgf.load_model(loaded, backend=backend)), _logits(from_file), rtol=1e-6)
    np.testing.assert_array_equal(mgf.generate(in_memory, 30, seed=4), mgf.generate(from_file, 30, seed=4))


def test_a_bundle_in_memory_is_checked_like_a_file(backends):
    loaded = bundle.random_bundle(24, (12,), seed=3)
    loaded.tensors["dense.bias"][0] = np.nan
    with pytest.raises(mgf.BundleError, match="tensor 'dense.bias' has non-finite values"):
        mgf.load_model(loaded, backend="recording")
    assert Recording.handed == []


def test_a_contract_2_backend_works_and_is_told_what_to_change(backends, make_bundle):
    (message,) = [m for m in backends if "'contract-2'" in m]
    assert "load(path) is contract 2" in message and "def load(self, bundle)" in message and "\n" not in message
    assert not [m for m in backends if "'recording'" in m or "'ensemble'" in m]
    path = make_bundle(20, (8,), seed=1)
    np.testing.assert_array_equal(_logits(mgf.load_model(path, backend="contract-2")),
                                  _logits(mgf.load_model(path, backend="numpy")))
    # a Bundle read from a file (as `mgf generate` reads it) reaches load(path) as that file; one made in memory cannot
    np.testing.assert_array_equal(_logits(mgf.load_model(bundle.read(path), backend="contract-2")),
                                  _logits(mgf.load_model(path, backend="numpy")))
    with pytest.raises(mgf.UsageError, match="model backend 'contract-2' loads from a file; give load_model the "
                                             "bundle's path"):
        mgf.load_model(bundle.random_bundle(20, (8,), seed=1), backend="contract-2")


def test_no_builtin_backend_is_contract_2():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mgf.contract.registry.reset()
        mgf.installed("models")
    assert not [w for w in caught if issubclass(w.category, DeprecationWarning)]
    assert not hasattr(bundle, "reading")  # the thread-local copy is gone: nothing to clobber
