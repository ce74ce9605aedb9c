"""`notes` writes MIDI with mido: the file music21's writer made, read back to the same tokens.

Oracle: music21's own MIDI writer, given the notes of ``to_notes`` at their offsets (what ``notes.write`` did
before it stopped importing music21), on corpus melodies and generated token sequences.
"""

import os
import subprocess
import sys
from fractions import Fraction

import mido
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mgf
from mgf import InputError

NOTES = mgf.get_representation("notes")
ON = lambda pitch: pitch - 48 + 2  # noqa: E731  token of a NOTE_ON with the default range


def music21_midi(representation, tokens, path, qpm):
    """``tokens`` written by music21: each note of ``to_notes`` at its offset in quarters, the tempo in the part."""
    from music21 import note, stream, tempo

    step_seconds = 60.0 / (representation.qpm * representation.steps_per_quarter)
    part = stream.Part()
    part.insert(0, tempo.MetronomeMark(number=qpm))
    for pitch, _, start, end in representation.to_notes(tokens):
        first, last = round(start / step_seconds), round(end / step_seconds)
        quarters = Fraction(last - first, representation.steps_per_quarter)
        part.insert(Fraction(first, representation.steps_per_quarter), note.Note(pitch, quarterLength=quarters))
    stream.Score([part]).write("midi", fp=str(path))
    return path


def messages(path):
    """Ticks per quarter and every track's messages, less music21's pitch bend of 0 (it bends nothing)."""
    midi = mido.MidiFile(path)
    return midi.ticks_per_beat, [[m for m in track if m.type != "pitchwheel"] for track in midi.tracks]


def assert_writes_music21s_file(representation, tokens, tmp_path, qpm=None):
    """Message for message the file music21 wrote, and read back to the same tokens."""
    ours = tmp_path / "ours.mid"
    representation.write(tokens, ours, **({} if qpm is None else {"qpm": qpm}))
    theirs = music21_midi(representation, tokens, tmp_path / "theirs.mid", representation.qpm if qpm is None else qpm)
    assert messages(ours) == messages(theirs)
    if not representation.to_notes(tokens):  # rests only: a file without notes, which reading refuses
        for path in (ours, theirs):
            with pytest.raises(InputError, match="no notes"):
                representation.read(path)
        return ours
    np.testing.assert_array_equal(representation.read(ours), representation.read(theirs))
    return ours


@pytest.mark.parametrize("piece", ["corpus:bach/bwv66.6", "corpus:bach/bwv10.7", "corpus:bach/bwv846",
                                   "corpus:essenFolksong/teste.abc"])
def test_corpus_melodies(piece, tmp_path):
    tokens = NOTES.read(piece)
    path = assert_writes_music21s_file(NOTES, tokens, tmp_path)
    np.testing.assert_array_equal(NOTES.read(path), tokens)


@pytest.mark.parametrize("tokens", [
    [1, 0, ON(66), 0, 0, 1, 0, ON(68), ON(67), 0, 0, 0, 0, 1, 1, ON(76), 0],  # leading rest, rests held by NOTE_OFF
    [0, 0, ON(60), 0, 1],  # first tokens hold the silence, the last ends the note
    [ON(60), ON(60), ON(60), 0, 0],  # re-struck notes, the last held to the end
    [ON(60)] + [0] * 70 + [ON(84)],  # a note over four bars, the highest pitch last
    [NOTES.start_token, ON(48), 1, NOTES.start_token, ON(72)],  # start tokens are skipped, wherever they are
])
@pytest.mark.parametrize("qpm", [None, 97.3, 33.333, 1000])
def test_edge_cases_and_the_qpm_option(tokens, qpm, tmp_path):
    assert_writes_music21s_file(NOTES, np.array(tokens, np.int32), tmp_path, qpm)


@pytest.mark.parametrize("config", [{"qpm": 72}, {"steps_per_quarter": 3}, {"steps_per_quarter": 96, "qpm": 200},
                                    {"min_pitch": 60, "max_pitch": 71}])
def test_the_representation_config(config, tmp_path):
    representation = mgf.get_representation("notes", **config)
    tokens = np.random.default_rng(1).integers(0, representation.vocab_size, 300).astype(np.int32)
    assert_writes_music21s_file(representation, tokens, tmp_path)
    assert mido.MidiFile(tmp_path / "ours.mid").tracks[0][0].tempo == mido.bpm2tempo(representation.qpm)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, NOTES.start_token), min_size=1, max_size=50))
def test_random_sequences(tmp_path_factory, tokens):
    tokens = np.array(tokens, np.int32)
    if (tokens == NOTES.start_token).all():
        return  # nothing to write: refused, as test_repr_notes checks
    assert_writes_music21s_file(NOTES, tokens, tmp_path_factory.mktemp("written"))


@pytest.mark.parametrize("steps_per_quarter", [11, 13, 17])
def test_steps_that_divide_no_tick_stay_on_the_grid(steps_per_quarter, tmp_path):
    """music21 rounded such steps to its 10080 ticks, and at 17 steps ended a re-struck note a tick after the next
    began (read back, a different melody); these files take a multiple of the steps per quarter instead."""
    representation = mgf.get_representation("notes", steps_per_quarter=steps_per_quarter)
    tokens = np.tile(np.array([ON(60), ON(60), 0, 1, ON(64), 0, 0], np.int32), 40)
    representation.write(tokens, tmp_path / "ours.mid")
    midi = mido.MidiFile(tmp_path / "ours.mid")
    assert midi.ticks_per_beat % steps_per_quarter == 0 and 10080 - steps_per_quarter < midi.ticks_per_beat < 10080
    notes = [(p, start, end) for p, _, start, end in representation.to_notes(tokens)]
    seconds = 60.0 / (representation.qpm * midi.ticks_per_beat)
    now, sounding, read = 0, {}, []
    for message in midi.tracks[1]:
        now += message.time
        if message.type == "note_on":
            sounding[message.note] = now
        elif message.type == "note_off":
            read.append((message.note, sounding.pop(message.note) * seconds, now * seconds))
    np.testing.assert_allclose(np.array([n[1:] for n in read]), np.array([n[1:] for n in notes]), atol=1e-9)
    assert [n[0] for n in read] == [n[0] for n in notes]
    np.testing.assert_array_equal(representation.read(tmp_path / "ours.mid"), tokens)


def test_a_tempo_too_slow_for_midi_is_refused_and_the_old_file_kept(tmp_path):
    """A MIDI tempo has three bytes (at least 3.58 qpm); music21 wrote slower ones modulo 2**24, a wrong tempo."""
    path = tmp_path / "m.mid"
    NOTES.write(np.array([ON(60)], np.int32), path)
    before = path.read_bytes()
    with pytest.raises(InputError, match=r"m\.mid: qpm 3\.5 is slower than a MIDI file can hold \(at least 3\.58\)"):
        NOTES.write(np.array([ON(62), 0], np.int32), path, qpm=3.5)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["m.mid"]
    NOTES.write(np.array([ON(62), 0], np.int32), tmp_path / "slow.musicxml", qpm=3.5)  # MusicXML holds it


def test_writing_midi_does_not_import_music21(tmp_path):
    code = f"""
import sys, mgf
notes = mgf.get_representation("notes")
notes.write(notes.parse_primer("C4 - r E4 G4"), {str(tmp_path / "m.mid")!r})
print("music21" in sys.modules)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
    assert NOTES.read(tmp_path / "m.mid").tolist() == [ON(60), 0, 1, ON(64), ON(67)]
