"""`mgf export`: never overwrites a bundle unless asked, never drops training metadata silently."""


import numpy as np
import pytest

import mgf
from mgf.contract import bundle
from helpers.cli import mgf_cli

keras = pytest.importorskip("keras")
pytest.importorskip("mgf.plugins.keras.net")


@pytest.fixture
def trained_bundle(trained):
    """A tiny trained model (conftest's session run, copied): m.safetensors (with training metadata), m.keras beside it."""
    return trained.out / "m.safetensors"


def test_export_refuses_to_overwrite_the_trained_bundle(trained_bundle):
    before = trained_bundle.read_bytes()
    result = mgf_cli("export", trained_bundle.with_suffix(".keras"), "--repr", "tokens", "--config", "vocab_size=41")
    assert result.returncode == 2 and "--force" in result.stderr and result.stderr.count("\n") == 1
    assert trained_bundle.read_bytes() == before


def test_re_export_of_the_trained_model_keeps_its_training_metadata(trained_bundle, tmp_path):
    original = bundle.read(trained_bundle)
    copy = tmp_path / "copy.safetensors"
    result = mgf_cli("export", trained_bundle.with_suffix(".keras"), "--repr", "tokens", "--config", "vocab_size=41", "-o", copy)
    assert result.returncode == 0 and "warning" not in result.stderr, result.stderr
    exported = bundle.read(copy)
    assert {k: v for k, v in exported.training.items() if k != "exported_from"} == original.training
    assert exported.training["exported_from"] == "m.keras"
    for name, array in original.tensors.items():
        np.testing.assert_array_equal(exported.tensors[name], array)
    forced = mgf_cli("export", trained_bundle.with_suffix(".keras"), "--repr", "tokens", "--config", "vocab_size=41", "--force")
    assert forced.returncode == 0 and bundle.read(trained_bundle).training["epochs"] == original.training["epochs"]


def test_export_says_which_training_metadata_it_drops(trained_bundle, tmp_path):
    model = keras.models.load_model(trained_bundle.with_suffix(".keras"), compile=False)
    model.get_layer("dense").set_weights([w + 0.5 for w in model.get_layer("dense").get_weights()])
    target, moved = tmp_path / "m.safetensors", tmp_path / "m.keras"  # fine-tuned beside a copy of the trained bundle
    target.write_bytes(trained_bundle.read_bytes())
    model.save(moved)
    result = mgf_cli("export", moved, "--repr", "tokens", "--config", "vocab_size=41", "--force")
    assert result.returncode == 0, result.stderr
    assert "drops its training metadata" in result.stderr and result.stderr.count("\n") == 1
    exported = bundle.read(target)
    assert exported.training == {"exported_from": "m.keras"}
    assert mgf.load_model(target).vocab_size == 41
