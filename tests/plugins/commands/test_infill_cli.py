"""`mgf infill` as a user runs it: the console script, real files read back, exit codes and one-line errors."""

import os
import shutil

import mido
import numpy as np
import pytest

import mgf
from mgf.contract import bundle
from mgf.contract.bundle import random_bundle
from helpers.infill import infill_bundle, note_events
from helpers.cli import mgf_script as mgf_cli  # the console script itself

CHORALE = "corpus:bach/bwv7.7"  # 18 bars


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Bundles of random weights that can infill (notes, midi) and one that cannot; the chorale written by each."""
    folder = tmp_path_factory.mktemp("infill")
    found = {}
    for name in ("notes", "midi"):
        base = mgf.get_representation(name)
        infill_bundle(folder / f"{name}.safetensors", name, seed=1)
        base.write(base.read(CHORALE), folder / f"{name}.mid")
        found[name], found[f"{name} piece"] = folder / f"{name}.safetensors", folder / f"{name}.mid"
    bundle.write(random_bundle(40, (16,), representation={"name": "notes", "config": {}}), folder / "plain.safetensors")
    found["plain"] = folder / "plain.safetensors"
    return found


def test_infill_writes_what_the_api_fills(files, tmp_path):
    result = mgf_cli("infill", files["notes piece"], "--bars", "5-8", "--bundle", files["notes"], "-o", tmp_path / "out.mid",
                     "--seed", "3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(tmp_path / "out.mid")]
    model = mgf.load_model(files["notes"])
    piece = model.representation.read(files["notes piece"])
    expected = mgf.infill_piece(model, piece, bars=(5, 8), seed=3)
    assert model.representation.read(tmp_path / "out.mid").tolist() == expected.tolist()
    assert expected.tolist() != piece.tolist()


def test_several_takes_in_seconds_keep_the_music_before_and_after_the_gap(files, tmp_path):
    result = mgf_cli("infill", files["midi piece"], "--seconds", "10-20", "--bundle", files["midi"], "--num-outputs", "2",
                     "-o", tmp_path / "take.mid", "--temperature", "0.9", "--seed", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    takes = [tmp_path / "take-1.mid", tmp_path / "take-2.mid"]
    assert result.stdout.split() == [str(take) for take in takes]
    original = note_events(files["midi piece"])
    ticks = mido.MidiFile(files["midi piece"]).ticks_per_beat * 2  # 120 qpm: two beats a second
    for take in takes:
        events = note_events(take)
        assert [e for e in events if e[0] < 10 * ticks] == [e for e in original if e[0] < 10 * ticks]
        assert [e for e in events if e[0] > 20 * ticks] == [e for e in original if e[0] > 20 * ticks]
    assert note_events(takes[0]) != note_events(takes[1])


def test_the_default_output_is_named_after_the_piece(files, tmp_path):
    piece = tmp_path / "chorale.mid"
    shutil.copy(files["notes piece"], piece)
    result = mgf_cli("infill", "chorale.mid", "--bars", "2", "--bundle", files["notes"], "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["chorale-infilled.mid"] and (tmp_path / "chorale-infilled.mid").is_file()


@pytest.mark.parametrize("args, message", [
    (["--bars", "17-20"], "bars 17-20 run past the piece, which has 18 bar(s)"),
    (["--bars", "12-9"], "--bars 12-9: the range runs backwards or is empty"),
    (["--bars", "0-2"], "--bars: bars are counted from 1"),
    (["--bars", "nine"], "--bars takes A-B (9-12), got 'nine'"),
    (["--seconds", "3-3"], "--seconds 3-3: the range runs backwards or is empty"),
    (["--seconds", "3"], "--seconds takes A-B (4.5-9)"),
    (["--seconds", "30-90"], "seconds 30.0-90.0 run past the piece"),
    (["--bars", "1-2", "--seconds", "1-2"], "not allowed with argument"),
    ([], "one of the arguments --bars --seconds is required"),
    (["--bars", "5-8", "--bundle", "{plain}"], "cannot infill (it was trained to continue only); train one that can "
                                                "with `mgf train --repr notes --infill 0.5 ...`"),
    (["--bars", "5-8", "--repr", "midi"], "--repr midi disagrees with the bundle, which was trained for 'notes'"),
    (["--bars", "5-8", "--num-outputs", "0"], "--num-outputs must be at least 1"),
    (["--bars", "5-8", "--top-k", "x"], "--top-k must be an integer, got 'x'"),
    (["--bars", "5-8", "--sampler", "beam", "--beam-size", "0"], "--beam-size"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(files, tmp_path, args, message):
    bundle_args = [] if "--bundle" in args else ["--bundle", files["notes"]]
    args = [files["plain"] if a == "{plain}" else a for a in args]
    result = mgf_cli("infill", files["notes piece"], *args, *bundle_args, "-o", tmp_path / "out.mid", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert os.listdir(tmp_path) == []


def test_a_gap_where_no_token_falls_is_one_line(files, tmp_path):
    midi = mgf.get_representation("midi")
    midi.write(np.array([60, midi.shift0 + 99, 128 + 60, midi.shift0 + 99, 62], np.int32), tmp_path / "sparse.mid")
    result = mgf_cli("infill", tmp_path / "sparse.mid", "--seconds", "0.25-0.5", "--bundle", files["midi"], cwd=tmp_path)
    assert result.returncode == 2 and "no music falls in seconds 0.25-0.5 of the piece" in result.stderr
    assert result.stderr.count("\n") == 1


def test_the_shipped_notes_model_fills_bars_of_a_chorale_and_keeps_the_rest(tmp_path):
    """The README's command: the shipped notes model (trained with --infill) rewrites bars 3-4 of a chorale's melody; the
    notes before bar 3 and from bar 5 on are the chorale's own, event for event, and the gap holds new music."""
    result = mgf_cli("infill", "corpus:bach/bwv66.6", "--bars", "3-4", "--repr", "notes", "-o", "filled.mid", "--seed", "2",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    notes = mgf.get_representation("notes")
    notes.write(notes.read("corpus:bach/bwv66.6"), tmp_path / "original.mid")
    original, filled = note_events(tmp_path / "original.mid"), note_events(tmp_path / "filled.mid")
    bar = mido.MidiFile(tmp_path / "original.mid").ticks_per_beat * 4  # 4/4
    assert [e for e in filled if e[0] < 2 * bar] == [e for e in original if e[0] < 2 * bar]
    assert [e for e in filled if e[0] > 4 * bar] == [e for e in original if e[0] > 4 * bar]
    assert [e for e in filled if 2 * bar <= e[0] <= 4 * bar] != [e for e in original if 2 * bar <= e[0] <= 4 * bar]


def test_the_shipped_midi_model_says_how_to_train_one_that_fills(tmp_path):
    midi = mgf.get_representation("midi")
    midi.write(midi.read(CHORALE), tmp_path / "piece.mid")
    result = mgf_cli("infill", "piece.mid", "--bars", "2-3", "--repr", "midi", cwd=tmp_path)
    assert result.returncode == 2 and "cannot infill" in result.stderr and "--infill" in result.stderr
    assert result.stderr.count("\n") == 1 and os.listdir(tmp_path) == ["piece.mid"]
