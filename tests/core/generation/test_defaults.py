"""A bundle's sampling defaults (``mgf.defaults``): what generation uses when the caller leaves something out."""

import json

import numpy as np
import pytest

import mgf
from mgf.contract import bundle
from mgf.cli.main import main

DEFAULTS = {"constraints": ["scale"], "options": {"temperature": 0.7, "top_p": 0.9, "key": "D minor"}}


@pytest.fixture
def notes_paths(tmp_path):
    """The shipped notes model twice: without defaults, and with DEFAULTS."""
    loaded = bundle.read(mgf.get_representation("notes").default_bundle)
    plain, carded = tmp_path / "plain.safetensors", tmp_path / "defaults.safetensors"
    loaded.defaults = {}
    bundle.write(loaded, plain)
    loaded.defaults = DEFAULTS
    bundle.write(loaded, carded)
    return plain, carded


def test_defaults_round_trip_and_reach_the_model(notes_paths):
    plain, carded = notes_paths
    assert bundle.read(carded).defaults == DEFAULTS and bundle.read_metadata(carded)["defaults"] == DEFAULTS
    assert mgf.load_model(carded).defaults == DEFAULTS and mgf.load_model(plain).defaults == {}


@pytest.mark.filterwarnings("ignore:beam search collapsed")
def test_generation_uses_the_defaults_for_what_the_caller_leaves_out(notes_paths):
    plain, carded = (mgf.load_model(p) for p in notes_paths)
    explicit = mgf.generate(plain, 96, seed=3, constraints=["scale"], temperature=0.7, top_p=0.9, key="D minor")
    np.testing.assert_array_equal(mgf.generate(carded, 96, seed=3), explicit)
    # a given option wins; given constraints come after the default ones
    np.testing.assert_array_equal(mgf.generate(carded, 96, seed=3, temperature=1.3),
                                  mgf.generate(plain, 96, seed=3, constraints=["scale"], temperature=1.3, top_p=0.9,
                                               key="D minor"))
    np.testing.assert_array_equal(mgf.generate(carded, 96, seed=3, constraints=["pitch-range", "scale"], low="C4"),
                                  mgf.generate(plain, 96, seed=3, constraints=["scale", "pitch-range"], low="C4",
                                               temperature=0.7, top_p=0.9, key="D minor"))
    # a default option no plugin of the run declares stays out: beam takes temperature, not top_p
    np.testing.assert_array_equal(mgf.generate(carded, 32, sampler="beam", seed=3),
                                  mgf.generate(plain, 32, sampler="beam", seed=3, temperature=0.7, constraints=["scale"],
                                               key="D minor"))
    # without defaults, exactly what is named
    carded.defaults = {}
    np.testing.assert_array_equal(mgf.generate(carded, 96, seed=3), mgf.generate(plain, 96, seed=3))


def test_generation_settings_resolves_in_one_place():
    assert mgf.generation_settings({}) == ("temperature", [], {})
    assert mgf.generation_settings(DEFAULTS, options={"top_p": 0.5}) == (
        "temperature", ["scale"], {"temperature": 0.7, "top_p": 0.5, "key": "D minor"})
    assert mgf.generation_settings(DEFAULTS, sampler="greedy", constraints=["no-repeat", "scale"]) == (
        "greedy", ["scale", "no-repeat"], {"key": "D minor"})


def test_a_sampler_of_its_own_replaces_the_general_defaults():
    own = {**DEFAULTS, "samplers": {"beam": {"constraints": [], "options": {"branch_factor": 2}}}}
    assert mgf.generation_settings(own) == ("temperature", ["scale"], {"temperature": 0.7, "top_p": 0.9, "key": "D minor"})
    assert mgf.generation_settings(own, sampler="beam") == ("beam", [], {"temperature": 0.7, "branch_factor": 2})
    assert mgf.generation_settings(own, sampler="beam", constraints=["no-repeat"], options={"beam_size": 2}) == (
        "beam", ["no-repeat"], {"temperature": 0.7, "branch_factor": 2, "beam_size": 2})
    only_options = {**DEFAULTS, "samplers": {"greedy": {"options": {"key": "E minor"}}}}
    assert mgf.generation_settings(only_options, sampler="greedy") == ("greedy", ["scale"], {"key": "E minor"})


@pytest.mark.filterwarnings("ignore:beam search collapsed")
def test_a_bundle_can_be_searched_with_other_settings_than_it_is_sampled_with(notes_paths, tmp_path):
    loaded = bundle.read(notes_paths[0])
    loaded.defaults = {**DEFAULTS, "samplers": {"beam": {"options": {"branch_factor": 2, "steps_per_iteration": 8}}}}
    path = tmp_path / "own.safetensors"
    bundle.write(loaded, path)
    assert bundle.read(path).defaults == loaded.defaults
    plain, own = mgf.load_model(notes_paths[0]), mgf.load_model(path)
    np.testing.assert_array_equal(mgf.generate(own, 32, sampler="beam", seed=3),
                                  mgf.generate(plain, 32, sampler="beam", seed=3, constraints=["scale"], key="D minor",
                                               temperature=0.7, branch_factor=2, steps_per_iteration=8))
    np.testing.assert_array_equal(mgf.generate(own, 64, seed=3), mgf.generate(mgf.load_model(notes_paths[1]), 64, seed=3))


def test_the_cli_uses_the_defaults_unless_told_not_to(notes_paths, tmp_path):
    plain, carded = notes_paths
    outputs = {}
    for label, args in {"defaults": [str(carded)], "explicit": [str(plain), "--constrain", "scale", "--key", "D minor",
                                                                "--temperature", "0.7", "--top-p", "0.9"],
                        "ignored": [str(carded), "--no-defaults"], "plain": [str(plain)]}.items():
        out = tmp_path / f"{label}.musicxml"
        assert main(["generate", "--bundle", *args, "--steps", "64", "--seed", "5", "--quiet", "-o", str(out)]) == 0
        outputs[label] = mgf.get_representation("notes").read(out)
    np.testing.assert_array_equal(outputs["defaults"], outputs["explicit"])
    np.testing.assert_array_equal(outputs["ignored"], outputs["plain"])
    assert not np.array_equal(outputs["defaults"], outputs["plain"])


def test_a_bad_default_value_is_refused_before_any_work(notes_paths, tmp_path, capsys):
    loaded = bundle.read(notes_paths[0])
    loaded.defaults = {"options": {"temperature": -1.0}}
    path = tmp_path / "bad.safetensors"
    bundle.write(loaded, path)
    assert main(["generate", "--bundle", str(path), "-o", str(tmp_path / "x.mid")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "option temperature of sampler 'temperature'" in err
    assert not (tmp_path / "x.mid").exists()


@pytest.mark.parametrize("defaults, message", [
    ({"sampler": 3}, "mgf.defaults sampler must be a JSON str"),
    ({"constraints": "scale"}, "mgf.defaults constraints must be a JSON list of names"),
    ({"constraints": [1]}, "mgf.defaults constraints must be a JSON list of names"),
    ({"options": {"key": ["D", "minor"]}}, "mgf.defaults options must be numbers, strings or booleans"),
    ({"seed": 1}, "mgf.defaults has an unknown key 'seed'"),
    ({"samplers": []}, "mgf.defaults samplers must be a JSON dict"),
    ({"samplers": {"beam": {"sampler": "greedy"}}}, "mgf.defaults samplers entry has an unknown key 'sampler'"),
    ({"samplers": {"beam": {"options": {"top_p": [1]}}}}, "samplers entry options must be numbers, strings or booleans"),
])
def test_malformed_defaults_are_a_bundle_error(notes_paths, tmp_path, defaults, message):
    path = tmp_path / "bad.safetensors"
    with pytest.raises(mgf.BundleError, match=message):  # the writer refuses what a reader would
        bundle.write(bundle.Bundle(**{**vars(bundle.read(notes_paths[0])), "defaults": defaults}), path)
    loaded = bundle.read(notes_paths[0])
    metadata = {**loaded.metadata(), "mgf.defaults": json.dumps(defaults)}
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v) for k, v in loaded.tensors.items()}, str(path), metadata=metadata)
    with pytest.raises(mgf.BundleError, match=message) as error:
        bundle.read(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_mgf_card_shows_the_defaults(notes_paths, capsys):
    assert main(["card", str(notes_paths[1])]) == 0
    assert ("sampling defaults (mgf generate without --no-defaults): --constrain scale --temperature 0.7 --top-p 0.9 "
            "--key D minor") in capsys.readouterr().out
