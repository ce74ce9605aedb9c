"""The model backend suite: the numpy reference's logits, batches, ``State.take``, threads, clear errors."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pytest

from mgf.contract import bundle, registry
from mgf.contract.model import Model, takes_path
from mgf.contract.options import resolve
from mgf.errors import BundleError, InputError, UsageError
from mgf.generation.api import load_model
from mgf.testing.suite import _Contract, bad_values


class BackendContract(_Contract):
    """What every model backend promises: the reference's logits, batches, ``State.take``, threads, clear errors."""

    kind = "models"
    options: ClassVar[Mapping[str, Any]] = {}
    #: ``(vocab_size, hidden, embedding_dim)`` of the random bundles the default ``model_files`` writes
    architectures: ClassVar[tuple[tuple[int, tuple[int, ...], int | None], ...]] = ((23, (16,), None), (41, (24, 12), 8))
    rtol: ClassVar[float] = 1e-4
    atol: ClassVar[float] = 1e-5
    steps: ClassVar[int] = 12

    def model_files(self, folder) -> list:
        """Paths of the models to test: random bundles of ``architectures``; override for another file format."""
        paths = []
        for i, (vocab, hidden, embedding) in enumerate(self.architectures):
            path = folder / f"random-{i}.safetensors"
            bundle.write(bundle.random_bundle(vocab, hidden, embedding, seed=i), path)
            paths.append(path)
        return paths

    def reference(self, path) -> Model | None:
        """An independent model of the same file whose logits the backend must match; None: no comparison."""
        return registry.get("models", "numpy")().load(bundle.read(path))

    def load(self, path) -> Model:
        """The backend's model of the file at ``path``, its ``load`` handed what it takes: the bundle read and checked
        (a backend with its own file format, or contract 2's ``load(path)``: the path)."""
        entry = self.entry()
        backend = entry.cls(**resolve(entry.cls.options, self.options, f"model backend {self.name!r}"))
        return backend.load(path if takes_path(entry.cls) else bundle.read(path))

    @pytest.fixture
    def models(self, tmp_path):
        return [(path, self.load(path)) for path in self.model_files(tmp_path)]

    def _tokens(self, model, rows, seed):
        return np.random.default_rng(seed).integers(0, model.vocab_size, (rows, self.steps)).astype(np.int32)

    def _run(self, model, tokens, state=None):
        """Logits ``[T, B, V]`` of feeding ``tokens`` ``[B, T]``, and the final state."""
        state = model.initial_state(len(tokens)) if state is None else state
        out = []
        for column in tokens.T:
            logits, state = model.step(np.ascontiguousarray(column), state)
            out.append(logits.copy())
        return np.stack(out), state

    def _close(self, actual, expected, what):
        np.testing.assert_allclose(actual, expected, rtol=self.rtol, atol=self.atol, err_msg=what)

    def test_step_returns_float32_logits_and_a_state_per_row(self, models):
        for path, model in models:
            assert isinstance(model, Model)
            state = model.initial_state(3)
            assert state.batch_size == 3
            logits, state = model.step(np.zeros(3, np.int32), state)
            assert logits.dtype == np.float32 and logits.shape == (3, model.vocab_size), path
            assert np.isfinite(logits).all() and state.batch_size == 3

    def test_logits_match_the_reference(self, models):
        for path, model in models:
            reference = self.reference(path)
            if reference is None:
                pytest.skip("no reference model")
            assert model.vocab_size == reference.vocab_size
            tokens = self._tokens(model, 3, 1)
            self._close(self._run(model, tokens)[0], self._run(reference, tokens)[0], f"{path}: logits differ from the reference")

    def test_a_batch_equals_its_rows_run_alone(self, models):
        for path, model in models:
            tokens = self._tokens(model, 4, 2)
            together = self._run(model, tokens)[0]
            for row in range(len(tokens)):
                self._close(together[:, row], self._run(model, tokens[row:row + 1])[0][:, 0], f"{path}: row {row}")

    def test_take_copies_rows_and_leaves_the_source_intact(self, models):
        for path, model in models:
            tokens = self._tokens(model, 3, 3)
            half = self.steps // 2
            _, state = self._run(model, tokens[:, :half])
            order = np.array([2, 0, 0, 1])
            taken = state.take(order)
            assert taken.batch_size == len(order)
            after_take = self._run(model, tokens[order, half:], taken)[0]
            source = self._run(model, tokens[:, half:], state)[0]  # the source state is still the one before take
            full = self._run(model, tokens)[0][half:]
            self._close(source, full, f"{path}: stepping a taken state changed its source")
            self._close(after_take, full[:, order], f"{path}: a taken row does not continue its source row")

    def test_threads_share_one_model(self, models):
        for path, model in models:
            inputs = [self._tokens(model, 2, 10 + i) for i in range(4)]
            expected = [self._run(model, tokens)[0] for tokens in inputs]
            results: list[Any] = [None] * len(inputs)

            def work(i, model=model, inputs=inputs, results=results):
                try:
                    results[i] = self._run(model, inputs[i])[0]
                except Exception as error:  # noqa: BLE001 - reported below, in the test's thread
                    results[i] = error

            threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            for i, (got, want) in enumerate(zip(results, expected)):
                assert not isinstance(got, Exception), f"thread {i} raised {got!r}"
                self._close(got, want, f"{path}: thread {i}")

    def test_out_of_vocabulary_tokens_are_input_errors(self, models):
        for _, model in models:
            for bad in (model.vocab_size, -1):
                with pytest.raises(InputError):
                    model.step(np.array([0, bad], np.int32), model.initial_state(2))

    def test_unusable_files_are_bundle_errors_naming_the_file(self, models, tmp_path):
        suffix = os.path.splitext(str(models[0][0]))[1]
        missing, garbage = tmp_path / f"missing{suffix}", tmp_path / f"garbage{suffix}"
        garbage.write_bytes(bytes(range(256)) * 4)
        for path in (missing, garbage):
            with pytest.raises(BundleError) as error:
                self.load(path)
            assert str(path) in str(error.value) and "\n" not in str(error.value)

    def test_options_are_validated(self, models):
        path = models[0][0]
        with pytest.raises(UsageError, match="no_such_option"):
            load_model(path, self.name, **self.options, no_such_option=1)
        for option in self.entry().cls.options:
            for value in bad_values(option):
                with pytest.raises(UsageError):
                    load_model(path, self.name, **{**self.options, option.name: value})
