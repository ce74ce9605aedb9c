"""The `notes` representation on real scores: the music21 corpus and files the tests write."""

import mido
import numpy as np
import pytest

from mgf import InputError, get_representation

notes = get_representation("notes")
ON = lambda pitch: pitch - 48 + 2  # noqa: E731  token of a NOTE_ON with the default range


@pytest.mark.parametrize("piece", ["corpus:bach/bwv66.6", "corpus:bach/bwv10.7", "corpus:essenFolksong/teste.abc"])
@pytest.mark.parametrize("suffix", [".mid", ".musicxml"])
def test_round_trip_of_corpus_pieces(piece, suffix, tmp_path):
    tokens = notes.read(piece)
    assert len(tokens) > 16 and (tokens >= 2).sum() > 8
    notes.write(tokens, tmp_path / f"out{suffix}")
    np.testing.assert_array_equal(notes.read(tmp_path / f"out{suffix}"), tokens)


ABC = """X:1
T:First
M:4/4
L:1/8
K:C
C2 D E [CEG]2 z2 | c4- c2 G2 |]

X:2
T:Second
M:4/4
L:1/4
K:G
G A B d | g4 |]
"""


def test_abc_chords_ties_rests_and_several_tunes(tmp_path):
    path = tmp_path / "tunes.abc"
    path.write_text(ABC)
    pieces = list(notes.read_pieces(path))
    assert [name.split("#")[1] for name, _ in pieces] == ["1 First", "2 Second"]
    first = pieces[0][1].tolist()
    expected = [ON(60), 0, 0, 0, ON(62), 0, ON(64), 0, ON(67), 0, 0, 0, 1, 0, 0, 0] + [ON(72)] + [0] * 11 + [ON(67), 0, 0, 0]
    assert first == expected
    second = pieces[1][1].tolist()
    assert second == [ON(67), 0, 0, 0, ON(69), 0, 0, 0, ON(71), 0, 0, 0, ON(74), 0, 0, 0, ON(79)] + [0] * 15


def _score(pitches_and_lengths, path, offset_rest=0.0):
    from music21 import note, stream

    part = stream.Part()
    if offset_rest:
        part.append(note.Rest(quarterLength=offset_rest))
    for pitch, length in pitches_and_lengths:
        part.append(note.Note(pitch, quarterLength=length) if pitch else note.Rest(quarterLength=length))
    stream.Score([part]).write("musicxml", fp=str(path))
    return path


def test_off_grid_notes_are_quantized_not_dropped(tmp_path):
    path = _score([(60, 1 / 3), (62, 1 / 3), (64, 1 / 3), (65, 1.0)], tmp_path / "triplets.musicxml")
    tokens = notes.read(path).tolist()
    assert [t for t in tokens if t >= 2] == [ON(60), ON(62), ON(64), ON(65)]
    assert tokens[:4] == [ON(60), ON(62), 0, ON(64)]


def test_melody_outside_the_range_moves_by_octaves(tmp_path):
    path = _score([(96, 1), (100, 1), (103, 1), (40, 1)], tmp_path / "high.musicxml", offset_rest=2)
    tokens = notes.read(path)
    assert [t for t in tokens.tolist() if t >= 2] == [ON(72), ON(76), ON(79), ON(52)]
    assert tokens[0] == ON(72)  # leading rest dropped


def test_primers():
    assert notes.parse_primer("C4 D4 E4").tolist() == [ON(60), ON(62), ON(64)]
    assert notes.parse_primer("60 62, 64 - r F#4 Bb3 E-4").tolist() == [ON(60), ON(62), ON(64), 0, 1, ON(66), ON(58), ON(63)]
    for bad, quoted in [("C4 H4", "'H4'"), ("C4 C9", "'C9'"), ("200", "'200'")]:
        with pytest.raises(InputError) as error:
            notes.parse_primer(bad)
        assert quoted in str(error.value)


def test_written_midi_has_the_tempo_and_the_notes(tmp_path):
    slow = get_representation("notes", qpm=90)
    slow.write(np.array([ON(60), 0, ON(64), 1, 0, ON(67)], np.int32), tmp_path / "m.mid")
    midi = mido.MidiFile(tmp_path / "m.mid")
    tempos = [m.tempo for track in midi.tracks for m in track if m.type == "set_tempo"]
    assert tempos and tempos[0] == mido.bpm2tempo(90)
    pitches = [m.note for track in midi.tracks for m in track if m.type == "note_on" and m.velocity > 0]
    assert pitches == [60, 64, 67]


def test_transpose():
    tokens = notes.parse_primer("C4 - r E4")
    assert notes.transpose(tokens, 2).tolist() == [ON(62), 0, 1, ON(66)]
    assert notes.transpose(notes.parse_primer("C6"), 1) is None
    assert notes.transpose(notes.parse_primer("C3"), -1) is None


def _file(path, content):
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "absent.mid", "no such file"),
        (lambda d: _file(d / "empty.mid", b""), "empty file"),
        (lambda d: _file(d / "noise.mid", bytes(range(256)) * 4), "not a readable score"),
        (lambda d: _file(d / "text.xml", b"hello, not a score"), "not a readable score"),
        (lambda d: _score([(None, 4)], d / "rests.musicxml"), "no notes in the score"),
        (lambda d: "corpus:bach/no-such-chorale", "no such work or collection"),
        (lambda d: "corpus:bach", "read one work at a time"),
    ],
)
def test_bad_input_is_an_input_error_naming_the_file(tmp_path, make, message):
    target = make(tmp_path)
    with pytest.raises(InputError) as error:
        notes.read(target)
    assert message in str(error.value) and str(target) in str(error.value)


def test_truncated_file(tmp_path):
    notes.write(notes.read("corpus:bach/bwv66.6"), tmp_path / "whole.mid")
    data = (tmp_path / "whole.mid").read_bytes()
    (tmp_path / "cut.mid").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cut.mid"):
        notes.read(tmp_path / "cut.mid")


def test_write_rejects_unknown_suffixes_and_leaves_nothing(tmp_path):
    with pytest.raises(InputError, match=r"notes writes \.mid"):
        notes.write(np.array([ON(60)]), tmp_path / "out.wav")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("config", [{"steps_per_quarter": 0}, {"min_pitch": 80, "max_pitch": 70}, {"qpm": -1},
                                    {"steps_per_quarter": 2.5}])
def test_bad_config(config):
    with pytest.raises(InputError):
        get_representation("notes", **config)
