"""The plugin contract as pytest suites: subclass one, set a few class attributes, run pytest.

mgf's own built-ins run these same suites (``tests/core/contract/test_contract_suites.py``), so a plugin that
passes them keeps the promises the core relies on.  Each suite is a plain class of ``test_*``
methods; name your subclass ``Test...`` so that pytest collects it.  Every suite takes:

``name``
    the registered name of the plugin class under test (``--sampler NAME`` and so on);
``plugin``
    the module (or object) holding its ``@mgf.hookimpl`` functions; it is registered for each
    test with :func:`registered`, whether or not it is also pip-installed.  ``None`` (the
    default) tests what is already registered: a built-in or an installed plugin.

and per kind:

* :class:`RepresentationContract`: ``config`` (keyword config, default ``{}``), ``sequences``
  (token sequences that must survive ``write`` then ``read`` unchanged; none: the suite derives
  them from random tokens, read back once), ``lossless`` (False: a round trip only has to give
  valid tokens, e.g. audio), ``bad_primer`` (text ``parse_primer`` must refuse, or None), and
  the method ``make_representation()`` to override when an instance needs more than its config
  (a learned codebook).
* :class:`BackendContract`: ``options`` (backend options), ``architectures`` (random bundles
  compared against the ``numpy`` reference), ``rtol``/``atol``; a backend with its own file
  format overrides ``model_files(tmp_path)`` and ``reference(path)`` (an independent
  :class:`mgf.Model`, or None to skip the comparison).
* :class:`SamplerContract`: ``options``, ``deterministic`` (True: the seed changes nothing and
  the first row of a batch is what a single run gives), ``representation`` and ``representation_config``
  of the random model that drives it, ``bad_options`` (dicts that must be a ``UsageError``
  besides the generic wrong types and out-of-bounds values).
* :class:`ConstraintContract`: ``options``, ``samplers`` (run under each), ``representation``,
  ``representation_config``, ``refuses`` (representations it must reject with a
  ``UsageError``), ``bad_options``, and the one method an author must write,
  ``assert_obeyed(pieces, representation)``, asserting that generated rows obey the constraint.

Example (a sampler plugin's ``tests/test_contract.py``)::

    import mgf.testing
    import mgf_lowest

    class TestLowest(mgf.testing.SamplerContract):
        name = "lowest"
        plugin = mgf_lowest
        options = {"floor": 2}
        deterministic = True

Other tests of the same plugin register it with the :func:`registered` context manager::

    @pytest.fixture(autouse=True)
    def lowest():
        with mgf.testing.registered(mgf_lowest):
            yield

Importing this module imports pytest (``import mgf`` does not), never TensorFlow or music21.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np
import pytest

from mgf.contract import bundle
from mgf.contract import registry
from mgf.generation.api import generate, get_representation, load_model
from mgf.contract.constraint import Constraint
from mgf.errors import BundleError, InputError, MgfError, UsageError
from mgf.contract.hookspecs import hookimpl
from mgf.contract.model import Model
from mgf.contract.options import Option, resolve
from mgf.contract.representation import Representation

__all__ = [
    "BackendContract",
    "ConstraintContract",
    "RepresentationContract",
    "SamplerContract",
    "bad_values",
    "registered",
]


# -- registration ------------------------------------------------------------------------


@contextmanager
def registered(*plugins: object) -> Iterator[None]:
    """Inside the block ``plugins`` are registered (once: an installed one keeps its entry point); afterwards the registry is as before.

    Works in either order: if the plugin's entry point is already loaded, it is used as is; if
    entry points load later, mgf skips the module already registered here.  Other plugins,
    built-in and installed, stay registered, as in a real run.
    """
    registry.load_plugins()
    names = dict(registry.pm.list_name_plugin())
    broken, distributions = dict(registry.broken), dict(registry._distributions)
    try:
        for plugin in plugins:
            if not registry.pm.is_registered(plugin):
                registry.pm.register(plugin)
        registry.reset()
        yield
    finally:
        for name, plugin in registry.pm.list_name_plugin():
            if names.get(name) is not plugin:
                registry.pm.unregister(plugin, name=name)
        registry.broken.clear()
        registry.broken.update(broken)
        registry._distributions.clear()
        registry._distributions.update(distributions)
        registry.reset()


class _Contract:
    name: ClassVar[str]
    plugin: ClassVar[object] = None
    kind: ClassVar[str]

    @pytest.fixture(autouse=True)
    def _registered(self):
        with registered(*self._plugins()):
            yield

    def _plugins(self) -> list:
        return [] if self.plugin is None else [self.plugin]

    def entry(self) -> registry.Registered:
        return registry.entry(self.kind, self.name)


def bad_values(option: Option) -> list[Any]:
    """Values ``option.check`` must refuse: a wrong type, and numbers just outside its bounds or choices."""
    wrong: dict[type, list[Any]] = {int: ["many"], float: ["many", float("nan")], str: [5], bool: ["maybe"]}
    values = list(wrong[option.type])
    if option.type in (int, float):
        if option.low is not None:
            values.append(option.type(option.low - 1))
        if option.high is not None:
            values.append(option.type(option.high + 1))
    if option.choices is not None and option.type is str:
        values.append("\x00 none of the choices")
    return values


def _declared(cls: Any) -> dict[str, Option]:
    return {option.name: option for option in cls.options}


class _OptionChecks:
    """Option tests shared by the sampler and constraint suites: ``self.run(**options)`` must refuse bad ones."""

    options: ClassVar[Mapping[str, Any]] = {}
    bad_options: ClassVar[tuple[Mapping[str, Any], ...]] = ()

    def test_options_are_declared_with_valid_defaults(self):
        cls = self.entry().cls
        for option in cls.options:
            if option.default is not None:
                assert option.check(option.default, self.name) == option.default, option
        unknown = set(self.options) - set(_declared(cls))
        assert not unknown, f"the suite's options {unknown} are not declared by {self.name!r}"

    def test_unknown_option_is_a_usage_error(self, tmp_path):
        with pytest.raises(UsageError, match="no_such_option"):
            self.run(tmp_path, **{**self.options, "no_such_option": 1})

    def test_bad_option_values_are_usage_errors(self, tmp_path):
        cases = [{option.name: value} for option in self.entry().cls.options for value in bad_values(option)]
        for case in cases + [dict(bad) for bad in self.bad_options]:
            with pytest.raises(UsageError):
                self.run(tmp_path, **{**self.options, **case})
                pytest.fail(f"{self.name!r} accepted the options {case}")


# -- representations ---------------------------------------------------------------------


class RepresentationContract(_Contract):
    """What every representation promises: files round-trip, ids stay in the vocabulary, errors are one line naming the file."""

    kind = "representations"
    config: ClassVar[Mapping[str, Any]] = {}
    sequences: ClassVar[tuple[list[int], ...]] = ()
    lossless: ClassVar[bool] = True
    bad_primer: ClassVar[str | None] = "%%% not music %%%"

    def make_representation(self) -> Representation:
        """The instance under test; override when it needs more than its config (e.g. ``load_tensors``)."""
        return get_representation(self.name, **self.config)

    @pytest.fixture
    def representation(self):
        return self.make_representation()

    def _path(self, representation, folder, stem="piece"):
        return folder / f"{stem}{representation.suffix}"

    def _round_trip(self, representation, tokens, folder, stem="piece"):
        path = self._path(representation, folder, stem)
        representation.write(np.asarray(tokens, dtype=np.int32), path)
        return representation.read(path)

    def _check_tokens(self, representation, tokens, what):
        assert isinstance(tokens, np.ndarray) and tokens.dtype == np.int32 and tokens.ndim == 1, \
            f"{what}: expected int32 [n], got {getattr(tokens, 'dtype', type(tokens))} {getattr(tokens, 'shape', '')}"
        assert ((tokens >= 0) & (tokens < representation.vocab_size)).all(), f"{what}: ids outside the vocabulary"
        assert not (tokens == representation.start_token).any(), f"{what}: contains the start token"

    def canonical_sequences(self, representation, folder) -> list[np.ndarray]:
        """``sequences``, or (none given) random tokens after one ``write``/``read``, which a lossless representation must then keep."""
        if self.sequences:
            return [np.asarray(s, dtype=np.int32) for s in self.sequences]
        rng = np.random.default_rng(0)
        ids = np.setdiff1d(np.arange(representation.vocab_size), [representation.start_token])
        return [self._round_trip(representation, rng.choice(ids, 48), folder, f"derived-{i}") for i in range(3)]

    def test_vocabulary(self, representation):
        vocab, start = representation.vocab_size, representation.start_token
        assert isinstance(vocab, int) and vocab >= 2
        assert isinstance(start, int) and 0 <= start < vocab

    def test_write_then_read_round_trips(self, representation, tmp_path):
        for i, tokens in enumerate(self.canonical_sequences(representation, tmp_path)):
            self._check_tokens(representation, tokens, "sequence")
            back = self._round_trip(representation, tokens, tmp_path, f"trip-{i}")
            self._check_tokens(representation, back, f"read after write of sequence {i}")
            if self.lossless:
                np.testing.assert_array_equal(back, tokens, err_msg=f"sequence {i} changed through write and read")

    def test_start_token_is_never_written(self, representation, tmp_path):
        start = representation.start_token
        for i, tokens in enumerate(self.canonical_sequences(representation, tmp_path)):
            with_start = np.insert(tokens, [0, len(tokens) // 2], start)
            plain = self._round_trip(representation, tokens, tmp_path, f"plain-{i}")
            marked = self._round_trip(representation, with_start, tmp_path, f"marked-{i}")
            np.testing.assert_array_equal(marked, plain, err_msg="start tokens changed what was written")

    def test_out_of_vocabulary_ids_are_refused_and_leave_no_file(self, representation, tmp_path):
        for bad in (representation.vocab_size, -1):
            path = self._path(representation, tmp_path, f"bad{bad}")
            with pytest.raises(MgfError):
                representation.write(np.asarray([0, bad], dtype=np.int32), path)
            assert not path.exists(), f"a failed write left {path.name}"

    def test_unreadable_files_are_input_errors_naming_the_file(self, representation, tmp_path):
        missing = tmp_path / f"missing{representation.suffix}"
        garbage = tmp_path / f"garbage{representation.suffix}"
        garbage.write_bytes(bytes(range(256)) * 4)
        empty = tmp_path / f"empty{representation.suffix}"
        empty.write_bytes(b"")
        for path in (missing, garbage, empty):
            with pytest.raises(InputError) as error:
                representation.read(path)
            assert str(path) in str(error.value), f"the error does not name the file: {error.value}"
            assert "\n" not in str(error.value)

    def test_config_rebuilds_an_equal_representation(self, representation):
        config = representation.config()
        assert json.loads(json.dumps(config)) == config, "config() must be JSON-able"
        undeclared = set(config) - set(_declared(type(representation)))
        assert not undeclared, f"config keys {undeclared} are not declared in options"
        again = get_representation(self.name, **config)
        assert again.config() == config
        assert (again.vocab_size, again.start_token) == (representation.vocab_size, representation.start_token)

    def test_options_are_validated(self):
        cls = self.entry().cls
        with pytest.raises(UsageError, match="no_such_option"):
            get_representation(self.name, **self.config, no_such_option=1)
        for option in cls.options:
            if option.default is not None:
                assert option.check(option.default, self.name) == option.default, option
            for value in bad_values(option):
                with pytest.raises(UsageError):
                    get_representation(self.name, **{**self.config, option.name: value})

    def test_primer_text(self, representation):
        if self.bad_primer is None:
            pytest.skip("no bad_primer given")
        with pytest.raises(InputError):
            representation.parse_primer(self.bad_primer)

    def test_notes_are_valid_and_agree_with_token_pitches(self, representation, tmp_path):
        pitches = representation.token_pitches()
        if pitches is not None:
            pitches = np.asarray(pitches)
            assert pitches.shape == (representation.vocab_size,) and pitches.dtype.kind == "i"
            assert ((pitches >= -1) & (pitches <= 127)).all()
            assert pitches[representation.start_token] == -1
        checked = 0
        for tokens in self.canonical_sequences(representation, tmp_path):
            try:
                notes = representation.to_notes(tokens)
            except InputError:
                break  # this representation has no notes
            checked += 1
            for pitch, velocity, start, end in notes:
                assert 0 <= pitch <= 127 and 1 <= velocity <= 127 and 0 <= start < end, (pitch, velocity, start, end)
            if pitches is not None:
                started = pitches[tokens]
                assert sorted(p for p, *_ in notes) == sorted(started[started >= 0].tolist()), \
                    "to_notes and token_pitches disagree on which pitches start"
        if not checked and pitches is None:
            pytest.skip("neither to_notes nor token_pitches")

    def test_transpose_moves_pitches(self, representation, tmp_path):
        moved_any = False
        pitches = representation.token_pitches()
        for tokens in self.canonical_sequences(representation, tmp_path):
            same = representation.transpose(tokens, 0)
            if same is None:
                continue
            np.testing.assert_array_equal(same, tokens)
            up = representation.transpose(tokens, 1)
            if up is None:
                continue
            moved_any = True
            np.testing.assert_array_equal(representation.transpose(up, -1), tokens)
            if pitches is not None:
                before, after = pitches[tokens], pitches[up]
                np.testing.assert_array_equal(after[before >= 0], before[before >= 0] + 1)
        if not moved_any:
            pytest.skip("transpose is not implemented (or no sequence could move)")


# -- model backends ----------------------------------------------------------------------


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
        return registry.get("models", "numpy")().load(path)

    def load(self, path) -> Model:
        entry = self.entry()
        return entry.cls(**resolve(entry.cls.options, self.options, f"model backend {self.name!r}")).load(path)

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


# -- samplers and constraints ------------------------------------------------------------


class _Forbid(Constraint):
    """Test-only constraint: only token ids that are multiples of ``every`` are allowed."""

    name = "mgf-testing-forbid"
    options = (Option("every", int, 3, "allowed ids are multiples of this", low=1),)

    def apply(self, logits, ctx):
        logits[:, np.arange(logits.shape[1]) % ctx.options["every"] != 0] = -np.inf
        return logits


class _ForbidPlugin:
    @staticmethod
    @hookimpl
    def register_constraints(register):
        register(_Forbid)


_FORBID = _ForbidPlugin()


class _Generating(_Contract):
    """A random model of ``representation`` to drive samplers and constraints."""

    representation: ClassVar[str] = "tokens"
    representation_config: ClassVar[Mapping[str, Any]] = {}
    steps: ClassVar[int] = 24

    def _plugins(self) -> list:
        return [*super()._plugins(), _FORBID]

    def start_token(self) -> int:
        return get_representation(self.representation, **self.representation_config).start_token

    def model(self, folder, favourite: int | None = None, representation: str | None = None) -> Model:
        """A random model (numpy backend) of ``representation`` (default: the suite's) that, given ``favourite``, prefers that token."""
        name = representation or self.representation
        config = self.representation_config if representation is None else {}
        instance = get_representation(name, **config)
        loaded = bundle.random_bundle(instance.vocab_size, (16,), 8, seed=5, scale=2.0,
                                          representation={"name": name, "config": instance.config()})
        if favourite is not None:
            loaded.tensors["dense.bias"][favourite] += 20.0
        path = folder / f"model-{name}-{favourite}.safetensors"
        bundle.write(loaded, path)
        return load_model(path, "numpy")


class SamplerContract(_OptionChecks, _Generating):
    """What every sampler promises: a seed reproduces, batches work, the start token and forbidden tokens are never chosen."""

    kind = "samplers"
    deterministic: ClassVar[bool] = False

    def run(self, folder, model=None, seed=None, num_outputs=None, constraints=(), **options):
        """``generate`` with this sampler and ``options`` over the suite's ``options``."""
        return generate(model or self.model(folder), self.steps, sampler=self.name, seed=seed, num_outputs=num_outputs,
                            constraints=constraints, **{**self.options, **options})

    def test_same_seed_same_output(self, tmp_path):
        model = self.model(tmp_path)
        first = self.run(tmp_path, model, seed=7, num_outputs=3)
        np.testing.assert_array_equal(self.run(tmp_path, model, seed=7, num_outputs=3), first)
        if self.deterministic:
            np.testing.assert_array_equal(self.run(tmp_path, model, seed=8, num_outputs=3), first)

    def test_batches(self, tmp_path):
        model = self.model(tmp_path)
        pieces = self.run(tmp_path, model, seed=1, num_outputs=3)
        assert pieces.dtype == np.int32 and pieces.shape == (3, self.steps)
        assert ((pieces >= 0) & (pieces < model.vocab_size)).all()
        if self.deterministic:
            np.testing.assert_array_equal(pieces[0], self.run(tmp_path, model, seed=1), err_msg="row 0 is not the single run")

    def test_never_the_start_token(self, tmp_path):
        model = self.model(tmp_path, favourite=self.start_token())
        pieces = self.run(tmp_path, model, seed=2, num_outputs=3)
        assert not (pieces == model.representation.start_token).any()

    def test_never_a_forbidden_token(self, tmp_path):
        model = self.model(tmp_path, favourite=1)  # id 1 is forbidden: only multiples of 3 are allowed
        pieces = self.run(tmp_path, model, seed=3, num_outputs=3, constraints=[_Forbid.name])
        assert (pieces % 3 == 0).all()
        assert not (pieces == model.representation.start_token).any()


class ConstraintContract(_OptionChecks, _Generating):
    """What every constraint promises: every sampler obeys it, in every row of a batch, reproducibly."""

    kind = "constraints"
    representation = "notes"
    samplers: ClassVar[tuple[str, ...]] = ("greedy", "temperature", "beam")
    refuses: ClassVar[tuple[str, ...]] = ()

    def assert_obeyed(self, pieces: np.ndarray, representation: Representation) -> None:
        """Assert that every row of ``pieces`` (int32 ``[rows, steps]``) obeys the constraint with ``self.options``."""
        raise NotImplementedError(f"{type(self).__name__} must override assert_obeyed(pieces, representation)")

    def run(self, folder, model=None, sampler="temperature", seed=None, num_outputs=None, **options):
        """``generate`` with this constraint and ``options`` over the suite's ``options``."""
        return generate(model or self.model(folder), self.steps, sampler=sampler, seed=seed, num_outputs=num_outputs,
                            constraints=[self.name], **{**self.options, **options})

    def test_every_sampler_obeys_in_every_row(self, tmp_path):
        model = self.model(tmp_path)
        for sampler in self.samplers:
            pieces = self.run(tmp_path, model, sampler, seed=4, num_outputs=3)
            assert not (pieces == model.representation.start_token).any()
            self.assert_obeyed(pieces, model.representation)

    def test_obeyed_although_the_model_prefers_the_start_token(self, tmp_path):
        model = self.model(tmp_path, favourite=self.start_token())
        pieces = self.run(tmp_path, model, seed=5, num_outputs=3)
        assert not (pieces == model.representation.start_token).any()
        self.assert_obeyed(pieces, model.representation)

    def test_same_seed_same_output(self, tmp_path):
        model = self.model(tmp_path)
        np.testing.assert_array_equal(self.run(tmp_path, model, seed=6, num_outputs=3),
                                      self.run(tmp_path, model, seed=6, num_outputs=3))

    def test_a_greedy_batch_equals_a_single_run(self, tmp_path):
        model = self.model(tmp_path)
        single = self.run(tmp_path, model, "greedy")
        for row in self.run(tmp_path, model, "greedy", num_outputs=3):
            np.testing.assert_array_equal(row, single)

    def test_refuses_representations_it_cannot_serve(self, tmp_path):
        if not self.refuses:
            pytest.skip("refuses is empty")
        for name in self.refuses:
            with pytest.raises(UsageError):
                self.run(tmp_path, self.model(tmp_path, representation=name))
