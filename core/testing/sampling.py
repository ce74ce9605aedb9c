"""The sampler and constraint suites, run on a small random model that can be made to prefer any token."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pytest

from mgf.contract import bundle
from mgf.contract.constraint import Constraint
from mgf.contract.hookspecs import hookimpl
from mgf.contract.model import Model
from mgf.contract.options import Option
from mgf.contract.representation import Representation
from mgf.errors import UsageError
from mgf.contract.transformer import Transformer
from mgf.generation.api import generate, get_representation, load_model
from mgf.testing.suite import _Contract, _declared, bad_values


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
    #: the random model's family: ``"lstm"`` (run by the numpy backend) or ``"transformer"`` (by the native kernel,
    #: with a context shorter than ``steps``, so that a run crosses it)
    model_arch: ClassVar[str] = "lstm"

    def _plugins(self) -> list:
        return [*super()._plugins(), _FORBID]

    def start_token(self) -> int:
        return get_representation(self.representation, **self.representation_config).start_token

    def model(self, folder, favourite: int | None = None, representation: str | None = None) -> Model:
        """A random model (numpy backend) of ``representation`` (default: the suite's) that, given ``favourite``, prefers that token."""
        name = representation or self.representation
        config = self.representation_config if representation is None else {}
        instance = get_representation(name, **config)
        shape = Transformer(heads=2, context=16, mlp=32) if self.model_arch == "transformer" else None
        loaded = bundle.random_bundle(instance.vocab_size, (16,), 8, seed=5, scale=2.0, transformer=shape,
                                      representation={"name": name, "config": instance.config()})
        if favourite is not None:
            loaded.tensors["dense.bias"][favourite] += 20.0
        path = folder / f"model-{name}-{favourite}.safetensors"
        bundle.write(loaded, path)
        return load_model(path, "numpy" if shape is None else "native")


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
