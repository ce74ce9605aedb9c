"""Property tests (hypothesis): representations round-trip valid tokens; any text in is a clean result or a one-line error.

Valid sequences are built to the grammar of each representation (see the docstrings of
``plugins/representations/notes.py`` and ``plugins/representations/midi.py``).  The "any text" properties reuse the
fuzz harnesses' contract check, so that the fuzzers and these tests judge inputs alike.
"""

import sys
from pathlib import Path

import mgf
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mgf.plugins.representations.notes import FIRST_PITCH, NO_EVENT, NOTE_OFF

sys.path.insert(0, str(Path(__file__).parents[1] / "fuzz"))
import harnesses

# an input must finish within the fuzzers' 5 s too; the same examples every run (the fuzzers explore),
# and no example database written into the tree
BOUNDED = settings(max_examples=40, deadline=5000, derandomize=True, database=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module", autouse=True)
def _warm():
    """Import music21 and mido before timing any example."""
    import mido  # noqa: F401
    from music21 import converter  # noqa: F401


# ---- notes: a melody is notes and rests; it starts and ends with a note, and a rest never follows a rest

@st.composite
def melodies(draw):
    notes = mgf.get_representation("notes")
    tokens = []
    for index in range(draw(st.integers(1, 12))):
        if index and draw(st.booleans()):  # a rest, then the next note
            tokens += [NOTE_OFF] + [NO_EVENT] * draw(st.integers(0, 6))
        pitch = draw(st.integers(notes.min_pitch, notes.max_pitch))
        tokens += [FIRST_PITCH + pitch - notes.min_pitch] + [NO_EVENT] * draw(st.integers(0, 8))
    return np.asarray(tokens, np.int32)


@BOUNDED
@given(tokens=melodies(), suffix=st.sampled_from([".mid", ".musicxml"]))
def test_notes_round_trip(tokens, suffix, tmp_path):
    notes = mgf.get_representation("notes")
    path = tmp_path / f"melody{suffix}"
    notes.write(tokens, path)
    np.testing.assert_array_equal(notes.read(path), tokens)


# ---- midi: tokens are what encode makes of notes on the grid; any tokens normalise to encode(to_notes(tokens))

@st.composite
def performances(draw):
    midi = mgf.get_representation("midi")
    step = midi.time_shift_ms / 1000
    notes = []
    for _ in range(draw(st.integers(1, 16))):
        start, length = draw(st.integers(0, 400)), draw(st.integers(1, 250))
        notes.append((draw(st.integers(0, 127)), draw(st.integers(1, 127)), start * step, (start + length) * step))
    return midi.encode(notes)


@BOUNDED
@given(tokens=performances())
def test_midi_round_trip(tokens, tmp_path):
    midi = mgf.get_representation("midi")
    midi.write(tokens, tmp_path / "performance.mid")
    np.testing.assert_array_equal(midi.read(tmp_path / "performance.mid"), tokens)


@BOUNDED
@given(tokens=st.lists(st.integers(0, 387), max_size=80))  # 388 is START
def test_midi_any_tokens_read_back_as_their_notes(tokens, tmp_path):
    midi = mgf.get_representation("midi")
    path = tmp_path / "any.mid"
    midi.write(np.asarray(tokens, np.int32), path)
    expected = midi.encode(midi.to_notes(np.asarray(tokens, np.int32)))
    if expected.size == 0:
        with pytest.raises(mgf.InputError, match="no notes"):
            midi.read(path)
    else:
        np.testing.assert_array_equal(midi.read(path), expected)


# ---- tokens: any ids below the start token, one sequence per file

@BOUNDED
@given(tokens=st.lists(st.integers(0, 128), min_size=1, max_size=200))  # 129 is START
def test_tokens_round_trip(tokens, tmp_path):
    representation = mgf.get_representation("tokens")
    representation.write(np.asarray(tokens, np.int32), tmp_path / "tokens.txt")
    np.testing.assert_array_equal(representation.read(tmp_path / "tokens.txt"), tokens)


# ---- any text: a clean result or a one-line MgfError (and decode leaves a whole file or none)

def _token_texts():
    """Token-id-like text: numbers of any size and sign between separators, with stray characters."""
    number = st.one_of(st.integers(-5, 400).map(str), st.integers(-(2**80), 2**80).map(str),
                       st.sampled_from(["", "-", "+1", "1e3", "٣", "0x10", "2147483648", "9223372036854775808", "1" * 5000]))
    separator = st.sampled_from([" ", ",", "\n", "\t", ", ", "  ", ";"])
    return st.lists(st.tuples(number, separator), max_size=30).map(lambda parts: "".join(a + b for a, b in parts))


ANY_TEXT = st.one_of(st.text(max_size=200), _token_texts())


@settings(BOUNDED, max_examples=60)
@given(text=ANY_TEXT, name=st.sampled_from(["notes", "midi", "audio", "tokens"]))
def test_decode_of_any_text_is_clean(text, name):
    harnesses.decode(name, text)


@settings(BOUNDED, max_examples=100)
@given(text=st.one_of(ANY_TEXT, st.lists(st.sampled_from(
    ["C4", "F#4", "Bb3", "E-4", "c##9", "B#-1", "-", "_", "r", "rest", "NOTE_ON_60", "TIME_SHIFT_0", "VELOCITY_31",
     "note_off_127", "60", "388", "99999999999999999999", ",", " "]), max_size=20).map(" ".join)),
       name=st.sampled_from(["notes", "midi", "audio", "tokens"]))
def test_parse_primer_of_any_text_is_clean(text, name):
    harnesses.parse_primer(name, text)
