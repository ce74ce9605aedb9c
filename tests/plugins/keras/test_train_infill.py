"""`mgf train --infill`: one tiny real run on chorales from music21's corpus, shared by the tests of this module."""

import os
import shutil
import types

import numpy as np
import pytest

import mgf
from mgf import InfillTokens, Infilling
from mgf.contract import bundle
from mgf.music import corpus
from helpers.cli import mgf_cli

keras = pytest.importorskip("keras")
pytest.importorskip("mgf.plugins.keras.net")

NOTES = mgf.get_representation("notes")


@pytest.fixture(scope="module")
def infill_run(tmp_path_factory):
    """``mgf train --repr notes --infill 0.5`` on ten chorales: hidden 32, one layer, one epoch, windows holding whole
    pieces (so Keras's validation loss and the native scoring of the held-out pieces see the same sequences)."""
    root = tmp_path_factory.mktemp("infill")
    data = root / "data"
    data.mkdir()
    for path in corpus.resolve("corpus:bach")[:10]:
        shutil.copy(path, data)
    out = root / "m.safetensors"
    run = mgf_cli("train", "--repr", "notes", "--data", data, "--hidden", "32", "--layers", "1", "--embedding", "8",
                  "--seq-len", "1000", "--epochs", "1", "--val-split", "0.2", "--infill", "0.5", "--workers", "1", "--quiet",
                  "-o", out, env={**os.environ, "MGF_CACHE_DIR": str(root / "cache")})
    assert run.returncode == 0, run.stderr
    return types.SimpleNamespace(root=root, data=data, out=out, run=run)


def test_the_bundle_can_infill_and_is_scored_on_plain_music(infill_run):
    loaded = bundle.read(infill_run.out)
    size = NOTES.vocab_size
    assert loaded.arch.vocab_size == size + 4
    seq_len = loaded.training["seq_len"]
    assert loaded.infill == {"format": "spm", "tokens": InfillTokens.after(size).as_dict(), "rate": 0.5,
                             "context": seq_len // 4, "gap": "bars"}
    assert loaded.representation == {"name": "notes", "config": NOTES.config()}
    model = mgf.load_model(infill_run.out)
    assert isinstance(model.representation, Infilling) and model.vocab_size == model.representation.vocab_size == size + 4
    scores = loaded.training["validation_cross_entropy"]
    assert set(scores) == {"model", "unigram", "5-gram"}
    # Keras's validation loss is over the held-out windows as they are: the same number as the held-out pieces scored
    # natively, so no validation window was made a gap to fill
    assert scores["model"] == pytest.approx(loaded.training["best_val_loss"], abs=2e-3)
    assert "metrics" in loaded.training["card"], loaded.training["card"]
    shown = mgf_cli("card", infill_run.out)
    assert shown.returncode == 0 and "infilling: yes (mgf infill): 50% of its training windows were gaps of whole bars" \
        in shown.stdout, shown.stderr


def test_generate_with_an_infilling_model_writes_music(infill_run, tmp_path):
    result = mgf_cli("generate", "--bundle", infill_run.out, "--steps", "300", "--seed", "3", "--quiet", "-o", tmp_path / "g.mid")
    assert result.returncode == 0, result.stderr
    assert NOTES.to_notes(NOTES.read(tmp_path / "g.mid"))
    tokens = mgf.generate(mgf.load_model(infill_run.out), 300, seed=1, num_outputs=16)
    assert tokens.max() < NOTES.vocab_size  # plain generation never writes the infilling ids


def test_export_keeps_what_the_bundle_beside_says(infill_run, tmp_path):
    """`mgf export` of the run's Keras model: the bundle beside it says the four extra ids are infilling ones."""
    copy = tmp_path / "copy.safetensors"
    result = mgf_cli("export", infill_run.out.with_suffix(".keras"), "--repr", "notes", "-o", copy)
    assert result.returncode == 0 and "warning" not in result.stderr, result.stderr
    exported, trained = bundle.read(copy), bundle.read(infill_run.out)
    assert exported.infill == trained.infill and exported.arch == trained.arch
    assert isinstance(mgf.load_model(copy).representation, Infilling)


@pytest.mark.parametrize("args, message", [
    (["--repr", "tokens", "--config", "vocab_size=41", "--infill", "0.5"],
     "--infill needs to know where tokens fall in time, and representation 'tokens' has no clock"),
    (["--repr", "notes", "--infill", "1.5"], "--infill must be in [0, 1]"),
    (["--repr", "notes", "--infill-context", "16"], "--infill-context takes a positive number of tokens, with --infill"),
    (["--repr", "notes", "--infill", "0.5", "--infill-context", "0"], "--infill-context takes a positive number"),
])
def test_bad_infill_options_are_one_line(tmp_path, args, message):
    result = mgf_cli("train", "--data", tmp_path, *args, "-o", tmp_path / "m.safetensors")
    assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1, result.stderr


def test_a_dataset_without_a_clock_is_refused_before_training(tmp_path):
    """A dataset directory names its representation only when train reads it: the same one line, nothing written."""
    data = tmp_path / "data"
    data.mkdir()
    for k in range(4):
        (data / f"p{k}.txt").write_text(" ".join(str(t) for t in np.arange(30) % 7))
    made = mgf_cli("dataset", data, "--repr", "tokens", "--config", "vocab_size=8", "--quiet", "-o", tmp_path / "set")
    assert made.returncode == 0, made.stderr
    result = mgf_cli("train", "--data", tmp_path / "set", "--infill", "0.5", "--quiet", "-o", tmp_path / "m.safetensors")
    assert result.returncode == 2 and "has no clock" in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert not (tmp_path / "m.safetensors").exists()
