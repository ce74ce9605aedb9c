import json
import subprocess
import sys

import mgf
import mgf.testing
import mgf_sampler_repetition
import numpy as np
import pytest
from mgf_sampler_repetition import penalised


class TestContract(mgf.testing.SamplerContract):
    name = "repetition"
    plugin = mgf_sampler_repetition
    options = {"penalty": 2.0, "window": 4}


@pytest.fixture(autouse=True)
def repetition():
    with mgf.testing.registered(mgf_sampler_repetition):
        yield


def test_penalty_pushes_recent_tokens_down():
    logits = np.array([[2.0, -1.0, 0.5]])
    out = penalised(logits, np.array([[0, 1]]), 2.0)
    assert out.tolist() == [[1.0, -2.0, 0.5]]


def test_fewer_repeats_than_plain_temperature(tmp_path):
    """On a model that loves one token, the penalty makes it rarer."""
    loaded = mgf.contract.bundle.random_bundle(12, (8,), seed=0)
    loaded.tensors["dense.bias"][3] = 3.0
    path = tmp_path / "m.safetensors"
    mgf.contract.bundle.write(loaded, path)
    model = mgf.load_model(path)

    def share_of_3(sampler, **options):
        pieces = mgf.generate(model, 200, sampler=sampler, seed=1, num_outputs=8, **options)
        return (pieces == 3).mean()

    assert share_of_3("repetition", penalty=3.0, window=8) < 0.5 * share_of_3("temperature")


def test_penalty_one_is_plain_temperature(tmp_path):
    path = tmp_path / "m.safetensors"
    mgf.contract.bundle.write(mgf.contract.bundle.random_bundle(12, (8,), seed=2), path)
    model = mgf.load_model(path)
    np.testing.assert_array_equal(mgf.generate(model, 30, sampler="repetition", penalty=1.0, temperature=0.7, seed=4),
                                  mgf.generate(model, 30, sampler="temperature", temperature=0.7, seed=4))


def test_installed_plugin_is_listed_and_usable(tmp_path):
    listing = json.loads(subprocess.run([sys.executable, "-m", "mgf.cli.main", "plugins", "--json"],
                                        capture_output=True, text=True, check=True).stdout)
    row = [r for r in listing["samplers"] if r["name"] == "repetition"][0]
    assert row["distribution"] == "mgf-sampler-repetition"
    out = tmp_path / "o.txt"
    result = subprocess.run([sys.executable, "-m", "mgf.cli.main", "generate", "--repr", "tokens", "--sampler", "repetition",
                             "--penalty", "2", "--steps", "20", "--seed", "0", "-o", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert len(out.read_text().split()) == 20
