"""Model cards (issue 12): what a model writes against held-out pieces, stored in the bundle and printed by `mgf card`."""

import json

import numpy as np
import pytest

import mgf
from mgf.contract import bundle
from mgf.training import card
from mgf.music import metrics
from mgf.cli.main import main


@pytest.fixture(scope="module")
def notes_model():
    """The shipped notes model without its sampling defaults: these tests name every setting."""
    model = mgf.load_model(mgf.get_representation("notes").default_bundle)
    model.defaults = {}
    return model


@pytest.fixture(scope="module")
def chorales(notes_model):
    """Soprano lines of real chorales as `notes` tokens: the held-out side of a card."""
    return [notes_model.representation.read(f"corpus:bach/{name}")
            for name in ("bwv66.6", "bwv7.7", "bwv10.7", "bwv11.6", "bwv13.6", "bwv14.5")]


def test_a_card_is_the_comparison_of_generated_pieces_with_the_held_out_ones(notes_model, chorales):
    found = card.measure_model(notes_model, chorales, steps=64, pieces=6, temperature=1.2, top_p=0.95)
    assert found["generation"] == {"sampler": "temperature", "constraints": [], "options": {"temperature": 1.2, "top_p": 0.95},
                                   "seed": card.SEED, "steps": 64, "pieces": 6}
    assert found["held_out_pieces"] == len(chorales)
    # recomputed independently: the same pieces (same seed), the same cut of the corpus
    written = mgf.generate(notes_model, 64, seed=card.SEED, num_outputs=6, temperature=1.2, top_p=0.95)
    mine = [metrics.measure(notes_model.representation.to_notes(p)) for p in written]
    theirs = [metrics.measure(notes_model.representation.to_notes(p[:64])) for p in chorales]
    expected = metrics.compare(mine, theirs)
    assert set(found["metrics"]) == set(metrics.METRICS)
    for name, row in found["metrics"].items():
        for key in ("generated", "reference", "overlap", "kl"):
            assert row[key] == pytest.approx(expected[name][key]), (name, key)
    assert found["meets_marks"] == sum(card.passes(row) for row in found["metrics"].values())
    json.dumps(found, allow_nan=False)  # strict JSON: it goes into a bundle's metadata


def test_a_card_records_the_model_defaults_it_was_measured_with(chorales):
    model = mgf.load_model(mgf.get_representation("notes").default_bundle)
    model.defaults = {"constraints": ["pitch-range"], "options": {"low": "C4", "top_p": 0.9, "beam_size": 3}}
    found = card.measure_model(model, chorales, steps=32, pieces=2, temperature=1.1)
    assert found["generation"]["constraints"] == ["pitch-range"]
    assert found["generation"]["options"] == {"low": "C4", "top_p": 0.9, "temperature": 1.1}  # no beam option


def test_piece_steps_is_the_first_quartile_of_the_held_out_lengths():
    pieces = [np.zeros(n, np.int32) for n in (100, 200, 300, 400, 500)]
    assert card.piece_steps(pieces) == 200
    assert card.piece_steps([np.zeros(5, np.int32)]) == 32 and card.piece_steps([np.zeros(10**5, np.int32)]) == 2000


def test_passes_needs_both_marks():
    assert card.passes({"relative": 0.1, "overlap": 0.7})
    assert not card.passes({"relative": 0.2, "overlap": 0.9})
    assert not card.passes({"relative": 0.0, "overlap": 0.5})
    assert not card.passes({"relative": None, "overlap": 1.0})  # the corpus mean is 0 and the generated one is not


def test_no_held_out_pieces_is_an_input_error(notes_model):
    with pytest.raises(mgf.InputError, match="needs held-out pieces"):
        card.measure_model(notes_model, [])


def test_mgf_card_prints_a_bundles_card(notes_model, chorales, tmp_path, capsys):
    loaded = bundle.read(mgf.get_representation("notes").default_bundle)
    loaded.training["card"] = card.measure_model(notes_model, chorales, steps=64, pieces=4)
    path = tmp_path / "carded.safetensors"
    bundle.write(loaded, path)
    assert main(["card", str(path)]) == 0
    out = capsys.readouterr().out
    assert "notes model, 2 GRU layer(s) of 256/256, embedding 32" in out
    assert f"command: {loaded.training['command']}" in out
    assert "4 pieces of 64 tokens (temperature; seed 0) against 6 held-out pieces" in out
    for name in metrics.METRICS:
        assert f"\n{name} " in out
    assert f"{loaded.training['card']['meets_marks']} of {len(metrics.METRICS)} metrics within 15%" in out
    assert main(["card", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["card"] == loaded.training["card"]


def test_mgf_card_of_each_shipped_model(capsys):
    for name in ("notes", "midi"):
        assert main(["card", "--repr", name]) == 0
        out = capsys.readouterr().out
        assert "held-out cross-entropy (nats/token): model" in out and "metrics within 15% of the corpus mean" in out


@pytest.mark.parametrize("args", [["card"], ["card", "x.safetensors", "--repr", "notes"]])
def test_mgf_card_takes_a_bundle_or_a_representation(args, capsys):
    assert main(args) == 2
    assert capsys.readouterr().err.count("\n") == 1
