"""Fast by default (issue 24): a bundle declares its preferred weight precision, the native backend loads with it,
and ``--precision fp32`` keeps the numpy backend's tokens."""

import json
import subprocess
import sys

import numpy as np
import pytest

import mgf
from mgf.contract import bundle
from mgf.plugins.backends.native import default_precision

SHIPPED = ("notes", "midi", "audio")


def shipped(name):
    return mgf.get_representation(name).default_bundle


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_models_declare_int8_with_their_measured_cross_entropy(name):
    precision = bundle.read_metadata(shipped(name))["precision"]
    assert precision["preferred"] == "int8"
    scores = precision["held_out_cross_entropy"]
    # int8 costs well under 0.1% of held-out cross-entropy (measured: benchmarks/bench_precision.py --prefer int8)
    assert 0 < scores["fp32"] and abs(scores["int8"] / scores["fp32"] - 1) < 1e-3
    # the figures are the ones the bundle was trained to: fp32 matches the training's own validation score
    assert scores["fp32"] == pytest.approx(bundle.read_metadata(shipped(name))["training"]["validation_cross_entropy"]
                                           ["model"], rel=2e-3)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_models_load_at_their_declared_precision_where_the_cpu_runs_it_fast(name):
    model = mgf.load_model(shipped(name))
    # int8 where the kernel has VNNI products (AVX-512 VNNI), else fp32: emulated int8 is slower than fp32
    assert model.precision == ("int8" if "vnni" in model.kernel.isa else "fp32")
    assert mgf.load_model(shipped(name), precision="fp32").precision == "fp32"
    assert mgf.load_model(shipped(name), precision="int8").precision == "int8"  # asked for: always


@pytest.mark.parametrize("preferred, isa, expected", [
    ("int8", "avx512 (bf16, vnni)", "int8"), ("int8", "avx512 (vnni)", "int8"), ("int8", "avx512 (bf16)", "fp32"),
    ("int8", "avx2", "fp32"), ("int8", "baseline", "fp32"), ("bf16", "avx512 (bf16, vnni)", "bf16"),
    ("bf16", "avx512 (vnni)", "fp32"), ("bf16", "avx2", "fp32"), ("fp32", "avx512 (bf16, vnni)", "fp32"),
    ("fp32", "baseline", "fp32")])
def test_a_preference_is_taken_where_its_products_are_native(preferred, isa, expected):
    """Emulated reduced precision is slower than fp32 (shipped midi, AVX2: 76 us at int8 against 53 us; baseline
    build: 216 against 70), so a bundle's preference is taken only with the instructions that make it fast."""
    assert default_precision(preferred, isa) == expected


def test_the_baseline_instruction_set_stays_at_fp32(monkeypatch):
    monkeypatch.setenv("MGF_ISA", "baseline")
    model = mgf.load_model(shipped("midi"))
    assert model.precision == "fp32" and model.kernel.isa == "baseline"


def test_a_bundle_without_a_preference_loads_at_fp32(make_bundle):
    path = make_bundle(20, (8,))
    assert bundle.read_metadata(path)["precision"] == {}
    assert mgf.load_model(path).precision == "fp32"


@pytest.mark.parametrize("name, steps", [("notes", 256), ("midi", 300)])
def test_fp32_reproduces_the_numpy_backend_tokens(name, steps):
    """The same seed gives the same tokens on the native backend at fp32 (C loop) as on numpy (the reference)."""
    native = mgf.load_model(shipped(name), precision="fp32")
    reference = mgf.load_model(shipped(name), backend="numpy")
    for seed in (0, 1):
        np.testing.assert_array_equal(mgf.generate(native, steps, seed=seed, num_outputs=2),
                                      mgf.generate(reference, steps, seed=seed, num_outputs=2))


def test_cli_precision_fp32_reproduces_the_numpy_backend(tmp_path):
    def cli(*args):
        result = subprocess.run([sys.executable, "-m", "mgf.cli.main", "generate", "--repr", "notes", "--steps", "200",
                                 "--seed", "5", *args], capture_output=True, text=True, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        notes = mgf.get_representation("notes")
        return notes.read(tmp_path / args[-1])

    np.testing.assert_array_equal(cli("--precision", "fp32", "-o", "native.mid"), cli("--model", "numpy", "-o", "numpy.mid"))


def test_precision_metadata_round_trips_and_bad_values_are_refused(make_bundle, tmp_path):
    loaded = bundle.read(make_bundle(20, (8,)))
    loaded.precision = {"preferred": "bf16", "held_out_cross_entropy": {"fp32": 1.25, "bf16": 1.2501}}
    bundle.write(loaded, tmp_path / "pref.safetensors")
    assert bundle.read(tmp_path / "pref.safetensors").precision == loaded.precision
    model = mgf.load_model(tmp_path / "pref.safetensors")
    assert model.precision == default_precision("bf16", model.kernel.isa)
    for bad, message in [({"preferred": "fp16"}, "preferred must be one of fp32, bf16, int8"),
                         ({"preferred": "int8", "speed": 4}, "unknown key 'speed'"),
                         ({"preferred": "int8", "held_out_cross_entropy": {"int8": "low"}}, "must map precisions"),
                         ([], "must be a JSON object")]:
        loaded.precision = bad
        with pytest.raises(mgf.BundleError, match=message):
            bundle.write(loaded, tmp_path / "bad.safetensors")
    assert not (tmp_path / "bad.safetensors").exists()


def test_a_crafted_precision_field_is_one_error(make_bundle, tmp_path):
    from safetensors.numpy import save_file

    loaded = bundle.read(make_bundle(20, (8,)))
    metadata = {**loaded.metadata(), "mgf.precision": json.dumps({"preferred": "int4"})}
    save_file(loaded.tensors, tmp_path / "crafted.safetensors", metadata=metadata)
    with pytest.raises(mgf.BundleError, match="crafted.safetensors: metadata mgf.precision preferred"):
        mgf.load_model(tmp_path / "crafted.safetensors")


def test_card_shows_the_precision_and_its_cost():
    result = subprocess.run([sys.executable, "-m", "mgf.cli.main", "card", "--repr", "midi"], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("precision:"))
    scores = bundle.read_metadata(shipped("midi"))["precision"]["held_out_cross_entropy"]
    assert "prefers int8" in line and "--precision fp32" in line
    assert f"{scores['int8']:.4f} against {scores['fp32']:.4f} at fp32" in line
