"""A run's settings are resolved once, into a :class:`Plan` that the CLI, the API and the workers run as it is."""

import dataclasses
import pickle

import numpy as np
import pytest

import mgf
from mgf.contract import options
from mgf.generation.plan import Plan, plan
from mgf.plugins.commands import generate as generate_command


@pytest.fixture
def resolutions(monkeypatch):
    """The owners of every resolution of plugin options (``mgf.contract.options.resolve``) from now on."""
    calls = []
    real = options.resolve

    def counted(declared, given, owner, **kwargs):
        calls.append(owner)
        return real(declared, given, owner, **kwargs)

    monkeypatch.setattr(options, "resolve", counted)
    return calls


def test_mgf_generate_resolves_the_options_once_whatever_the_number_of_batches(make_bundle, tmp_path, resolutions,
                                                                               monkeypatch):
    from mgf.cli.main import main

    path = make_bundle()
    monkeypatch.setattr(generate_command, "BATCH", 2)
    counts = []
    for outputs in (1, 5):  # one batch, then three
        args = ["generate", "--bundle", str(path), "--steps", "3", "--seed", "4", "--top-k", "5", "--quiet",
                "--num-outputs", str(outputs), "-o", str(tmp_path / f"out{outputs}.txt")]
        assert main(args) == 0
        counts.append(len(resolutions))
        resolutions.clear()
    assert counts[0] > 0 and counts[0] == counts[1], counts  # once, in the parent: not again for each batch
    assert len(list(tmp_path.glob("out5-*.txt"))) == 5


def test_a_plan_runs_as_made_without_resolving_again(make_bundle, resolutions):
    model = mgf.load_model(make_bundle(seed=2))
    made = plan(model.defaults, 12, sampler="temperature", options={"temperature": 0.9, "top_k": 6},
                primer=[1, 2, 3], representation=model.representation, seed=7, num_outputs=3)
    resolved = len(resolutions)
    assert resolved > 0
    first = mgf.generate(model, plan=made)
    again = mgf.generate(model, plan=pickle.loads(pickle.dumps(made)))  # as a worker receives it
    assert len(resolutions) == resolved  # running a plan resolves nothing
    direct = mgf.generate(model, 12, sampler="temperature", primer=[1, 2, 3], seed=7, num_outputs=3,
                          temperature=0.9, top_k=6)
    assert first.shape == (3, 15) and np.array_equal(first, again) and np.array_equal(first, direct)


def test_a_plan_is_plain_frozen_data(make_bundle):
    model = mgf.load_model(make_bundle())
    made = plan({}, 4, options={"top_p": 0.9}, primer=np.array([3, 4]), representation=model.representation, seed=1)
    assert isinstance(made, Plan) and pickle.loads(pickle.dumps(made)) == made
    assert (made.sampler, made.constraints, made.primer, made.steps, made.num_outputs, made.rows) == (
        "temperature", (), (3, 4), 4, None, 1)
    assert dict(made.options[0])["top_p"] == 0.9
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.steps = 5  # type: ignore[misc]
    assert mgf.generate(model, plan=made).shape == (6,)


def test_a_plan_is_checked_as_generate_checks(make_bundle, monkeypatch):
    model = mgf.load_model(make_bundle())
    with pytest.raises(mgf.UsageError, match="takes no option|is not taken by"):
        plan({}, 4, options={"no_such_option": 1})
    monkeypatch.setenv("MGF_MAX_STEPS", "10")
    with pytest.raises(mgf.UsageError, match=r"^steps 11 exceeds the limit 10 \(raise it with MGF_MAX_STEPS\)$"):
        plan({}, 11)
    with pytest.raises(mgf.InputError, match="outside the vocabulary"):
        plan({}, 4, primer=[99], representation=model.representation)
    with pytest.raises(mgf.UsageError, match="either a plan or the settings"):
        mgf.generate(model, 4, plan=plan({}, 4))
