"""The embedding API: light imports, bundles tied to their representation."""

import json
import subprocess
import sys

import numpy as np
import pytest

import mgf
from mgf import BundleError
from mgf.contract import bundle


def test_import_and_native_generation_stay_light(make_bundle):
    code = f"""
import sys, mgf
model = mgf.load_model({str(make_bundle())!r})
tokens = mgf.generate(model, 50, seed=1)
heavy = sorted(m for m in ("tensorflow", "keras", "music21", "torch") if m in sys.modules)
print(len(tokens), heavy)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[0] == "50 []"


def test_load_model_attaches_the_representation(make_bundle):
    model = mgf.load_model(make_bundle(25, (8,)))
    assert model.representation.name == "tokens"
    assert model.representation.config() == {"vocab_size": 25}
    assert model.vocab_size == 25


def test_start_token_is_never_generated(tmp_path):
    """Even when the model strongly prefers the start token."""
    loaded = bundle.random_bundle(12, (8,), seed=0)
    loaded.tensors["dense.bias"][11] = 50.0
    path = tmp_path / "m.safetensors"
    bundle.write(loaded, path)
    model = mgf.load_model(path)
    for sampler, options in [("greedy", {}), ("temperature", {}), ("beam", {"beam_size": 3})]:
        out = mgf.generate(model, 40, sampler=sampler, seed=0, **options)
        assert 11 not in out.tolist()


def _rewrite(path, representation):
    loaded = bundle.read(path)
    loaded.representation = representation
    bundle.write(loaded, path)


def test_bundle_for_a_missing_representation(make_bundle):
    path = make_bundle()
    _rewrite(path, {"name": "theremin", "config": {}})
    with pytest.raises(BundleError, match="needs the representation 'theremin', which is not installed"):
        mgf.load_model(path)


def test_bundle_whose_representation_disagrees_with_the_model(make_bundle):
    path = make_bundle(20)
    _rewrite(path, {"name": "tokens", "config": {"vocab_size": 30}})
    with pytest.raises(BundleError, match="scores 20 tokens but its representation 'tokens' has 30"):
        mgf.load_model(path)
    _rewrite(path, {"name": "tokens", "config": {"vocab_size": "big"}})
    with pytest.raises(BundleError, match="bad representation config"):
        mgf.load_model(path)
    _rewrite(path, {"name": "tokens", "config": {"colour": "red"}})
    with pytest.raises(BundleError, match="takes no option colour"):
        mgf.load_model(path)


def test_tokens_representation_round_trip(tmp_path):
    representation = mgf.get_representation("tokens", vocab_size=50)
    tokens = np.array([49, 3, 0, 48, 7], np.int32)  # 49 is the start token: write skips it
    representation.write(tokens, tmp_path / "t.txt")
    np.testing.assert_array_equal(representation.read(tmp_path / "t.txt"), [3, 0, 48, 7])
    np.testing.assert_array_equal(representation.parse_primer("1, 2 3"), [1, 2, 3])
    for bad, message in [("1 -2", "'-2' is not a token id"), ("49", r"outside \[0, 49\)")]:
        with pytest.raises(mgf.InputError, match=message):
            representation.parse_primer(bad)
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(mgf.InputError, match="no tokens"):
        representation.read(tmp_path / "empty.txt")
    with pytest.raises(mgf.InputError, match="cannot read"):
        representation.read(tmp_path / "absent.txt")
    assert json.dumps(representation.config()) == '{"vocab_size": 50}'
