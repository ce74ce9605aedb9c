"""`mgf train --controls`: one tiny real run on chorales, with the built-in controls and a third party's (the example
package mgf-register), shared by the tests of this module."""

import os
import shutil
import types

import numpy as np
import pytest

import mgf
from mgf import Conditioned
from mgf.contract import bundle
from mgf.generation.api import checked_run
from mgf.music import corpus
from helpers.cli import mgf_cli

keras = pytest.importorskip("keras")
pytest.importorskip("mgf.plugins.keras.net")
pytest.importorskip("mgf_register")

NOTES = mgf.get_representation("notes")


@pytest.fixture(scope="module", params=[[], ["--arch", "transformer", "--heads", "2"]], ids=["lstm", "transformer"])
def run(tmp_path_factory, request):
    """The run, of an LSTM and of a Transformer: infilling and every control work on both."""
    root = tmp_path_factory.mktemp("controls")
    data = root / "data"
    data.mkdir()
    for path in corpus.resolve("corpus:bach")[:10]:
        shutil.copy(path, data)
    out = root / "m.safetensors"
    done = mgf_cli("train", "--repr", "notes", "--data", data, "--hidden", "32", "--layers", "1", "--embedding", "8",
                   "--seq-len", "1000", "--epochs", "1", "--val-split", "0.2", "--infill", "0.5",
                   "--controls", "chord,key=0.25,density,register", "--workers", "1", "--quiet", "-o", out, *request.param,
                   env={**os.environ, "MGF_CACHE_DIR": str(root / "cache")})
    assert done.returncode == 0, done.stderr
    return types.SimpleNamespace(root=root, out=out)


def test_the_bundle_declares_its_controls_and_is_scored_on_plain_music(run):
    loaded = bundle.read(run.out)
    assert [entry["name"] for entry in loaded.controls] == ["chord", "key", "density", "register"]
    assert loaded.controls[3]["values"] == ["silent", "low", "middle", "high"]
    assert loaded.training["controls"] == {"chord": 0.5, "key": 0.25, "density": 0.5, "register": 0.5}
    model = mgf.load_model(run.out)
    representation = model.representation
    assert isinstance(representation, Conditioned) and model.vocab_size == NOTES.vocab_size + 4 + 26 + 25 + 18 + 5
    scores = loaded.training["validation_cross_entropy"]
    assert 0 < scores["model"] < 5 and "metrics" in loaded.training["card"], loaded.training
    shown = mgf_cli("card", run.out)
    assert shown.returncode == 0 and "controls: chord, key, density, register" in shown.stdout
    assert "register: silent, low, middle, high, left out of 50% of training windows" in shown.stdout


def test_the_third_party_control_steers_generation(run, tmp_path):
    model = mgf.load_model(run.out)
    representation = model.representation
    register = representation.family("register")
    steered = checked_run(model, None, None, 0, 2, None, None, {"register": "high", "chords": "C G"}, steps=64)
    rows = steered._generate(128, 64)
    chosen = rows[representation.is_control(rows)]
    assert (chosen == register.first + 3).sum() >= 2 * 4  # every bar of both rows read "high"
    result = mgf_cli("generate", "--bundle", run.out, "--control", "register=high", "--chords", "Am F C G", "--key",
                     "A minor", "--density", "4", "--steps", "128", "--seed", "1", "--quiet", "-o", tmp_path / "g.mid")
    assert result.returncode == 0, result.stderr
    assert NOTES.to_notes(NOTES.read(tmp_path / "g.mid"))
    wrong = mgf_cli("generate", "--bundle", run.out, "--control", "register=sky", "-o", tmp_path / "w.mid")
    assert wrong.returncode == 2 and "silent, low, middle, high" in wrong.stderr and not (tmp_path / "w.mid").exists()


def test_it_infills_under_controls_and_export_keeps_them(run, tmp_path):
    piece = corpus.resolve("corpus:bach/bwv66.6")[0]
    result = mgf_cli("infill", piece, "--bundle", run.out, "--bars", "3-4", "--chords", "D A", "--control",
                     "register=low", "--num-outputs", "2", "--seed", "4", "--quiet", "-o", tmp_path / "f.mid")
    assert result.returncode == 0, result.stderr
    original = NOTES.read(piece)
    for name in ("f-1.mid", "f-2.mid"):
        filled = NOTES.read(tmp_path / name)
        assert NOTES.clock().steps(filled)[-1] == NOTES.clock().steps(original)[-1]
    copy = tmp_path / "copy.safetensors"
    exported = mgf_cli("export", run.out.with_suffix(".keras"), "--repr", "notes", "-o", copy)
    assert exported.returncode == 0, exported.stderr
    assert bundle.read(copy).controls == bundle.read(run.out).controls
    assert np.array_equal(mgf.generate(mgf.load_model(copy), 40, seed=3, chords="Em"),
                          mgf.generate(mgf.load_model(run.out), 40, seed=3, chords="Em"))
