"""The `notes` representation on real scores: the music21 corpus and files the tests write."""

import subprocess
import sys

import mido
import numpy as np
import pytest

from mgf import InputError, UsageError, get_representation

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
        (lambda d: _file(d / "noise.mid", bytes(range(256)) * 4), "not a readable MIDI file"),
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


def test_a_range_under_an_octave_is_a_usage_error_naming_both_keys():
    with pytest.raises(UsageError, match="^representation 'notes': min_pitch 80 and max_pitch 70 must span at least 12 pitches$"):
        get_representation("notes", min_pitch=80, max_pitch=70)


# A hand-written two-part score: the top part has a 64th note (too short for the grid), a chord,
# and a tie across the barline; the lower part must be ignored.
MUSICXML = """<?xml version="1.0" encoding="UTF-8"?>
<score-partwise version="3.1">
  <part-list>
    <score-part id="P1"><part-name>Top</part-name></score-part>
    <score-part id="P2"><part-name>Low</part-name></score-part>
  </part-list>
  <part id="P1">
    <measure number="1">
      <attributes><divisions>16</divisions><time><beats>4</beats><beat-type>4</beat-type></time></attributes>
      <note><pitch><step>C</step><octave>5</octave></pitch><duration>1</duration></note>
      <note><rest/><duration>15</duration></note>
      <note><pitch><step>E</step><octave>4</octave></pitch><duration>16</duration></note>
      <note><chord/><pitch><step>G</step><octave>4</octave></pitch><duration>16</duration></note>
      <note><pitch><step>F</step><alter>1</alter><octave>4</octave></pitch><duration>32</duration><tie type="start"/></note>
    </measure>
    <measure number="2">
      <note><pitch><step>F</step><alter>1</alter><octave>4</octave></pitch><duration>8</duration><tie type="stop"/></note>
      <note><pitch><step>A</step><octave>4</octave></pitch><duration>8</duration></note>
    </measure>
  </part>
  <part id="P2">
    <measure number="1">
      <attributes><divisions>16</divisions></attributes>
      <note><pitch><step>C</step><octave>3</octave></pitch><duration>64</duration></note>
    </measure>
  </part>
</score-partwise>
"""
MUSICXML_TOKENS = [ON(72), 1, 0, 0, ON(67), 0, 0, 0, ON(66)] + [0] * 9 + [ON(69), 0]

# Humdrum lists the lowest spine first; the melody is the top (right) one.
KERN = "**kern\t**kern\n*M4/4\t*M4/4\n4C\t4e\n4D\t8f\n.\t8g\n2E\t2cc\n*-\t*-\n"
KERN_TOKENS = [ON(64), 0, 0, 0, ON(65), 0, ON(67), 0, ON(72)] + [0] * 7


@pytest.mark.parametrize("name, text, expected", [("hand.musicxml", MUSICXML, MUSICXML_TOKENS),
                                                  ("two.krn", KERN, KERN_TOKENS)])
def test_hand_written_scores_read_exactly_and_round_trip(tmp_path, name, text, expected):
    (tmp_path / name).write_text(text)
    tokens = notes.read(tmp_path / name)
    assert tokens.dtype == np.int32 and tokens.tolist() == expected
    for suffix in (".mid", ".xml"):
        notes.write(tokens, tmp_path / f"again{suffix}")
        assert notes.read(tmp_path / f"again{suffix}").tolist() == expected


def test_abc_tunes_round_trip_and_read_gives_the_first(tmp_path):
    (tmp_path / "tunes.abc").write_text(ABC)
    pieces = list(notes.read_pieces(tmp_path / "tunes.abc"))
    assert notes.read(tmp_path / "tunes.abc").tolist() == pieces[0][1].tolist()
    for _, tokens in pieces:
        notes.write(tokens, tmp_path / "tune.musicxml")
        assert notes.read(tmp_path / "tune.musicxml").tolist() == tokens.tolist()


def test_midi_off_the_grid_is_quantized(tmp_path):
    """A performance-like file written with mido: a short note keeps one step, a spread chord gives its top."""
    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    for delta, kind, pitch in [(0, "note_on", 60), (470, "note_off", 60), (10, "note_on", 62), (17, "note_off", 62),
                               (500, "note_on", 64), (13, "note_on", 67), (240, "note_off", 64), (0, "note_off", 67)]:
        track.append(mido.Message(kind, note=pitch, velocity=64 if kind == "note_on" else 0, time=delta))
    midi.save(tmp_path / "played.mid")
    assert notes.read(tmp_path / "played.mid").tolist() == [ON(60), 0, 0, 0, ON(62), 1, 0, 0, ON(67), 0]


def test_notes_still_outside_after_the_octave_shift_move_one_by_one(tmp_path):
    narrow = get_representation("notes", min_pitch=60, max_pitch=71)
    path = _score([(60, 1), (64, 1), (79, 1), (50, 1)], tmp_path / "wide.musicxml")
    assert [t - 2 + 60 for t in narrow.read(path).tolist() if t >= 2] == [60, 64, 67, 62]


def test_written_files_have_the_tempo_and_skip_the_start_token(tmp_path):
    from music21 import converter, tempo

    tokens = np.array([notes.start_token, ON(60), 0, 1, ON(62)], np.int32)
    notes.write(tokens, tmp_path / "m.mid")
    notes.write(tokens, tmp_path / "m.musicxml", qpm=72)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.mid", "m.musicxml"]  # nothing left beside them
    midi = mido.MidiFile(tmp_path / "m.mid")
    assert [m.tempo for track in midi.tracks for m in track if m.type == "set_tempo"] == [500000]
    marks = converter.parse(tmp_path / "m.musicxml").recurse().getElementsByClass(tempo.MetronomeMark)
    assert [m.number for m in marks] == [72]
    assert notes.read(tmp_path / "m.mid").tolist() == [ON(60), 0, 1, ON(62)]


def test_write_rejects_bad_tokens(tmp_path):
    for bad in (np.array([ON(60), notes.vocab_size]), np.array([[ON(60)]]), np.array([0.5]), np.array([], np.int32)):
        with pytest.raises(InputError):
            notes.write(bad, tmp_path / "bad.mid")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".mxl", ".musicxml"])
def test_truncated_scores(tmp_path, suffix):
    from mgf.music import corpus

    whole = corpus.resolve("corpus:bach/bwv66.6")[0]
    if suffix == ".musicxml":
        notes.write(notes.read(whole), tmp_path / "whole.musicxml")
        whole = tmp_path / "whole.musicxml"
    data = open(whole, "rb").read()
    (tmp_path / f"cut{suffix}").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=f"cut\\{suffix}"):
        notes.read(tmp_path / f"cut{suffix}")


def test_vocabulary_and_config():
    assert (notes.vocab_size, notes.start_token) == (40, 39)
    assert notes.config() == {"steps_per_quarter": 4, "min_pitch": 48, "max_pitch": 84, "qpm": 120}
    assert get_representation("notes", **notes.config()).config() == notes.config()
    assert set(notes.read_suffixes) == {".mxl", ".xml", ".musicxml", ".krn", ".abc", ".mid", ".midi"}
    for bad in ({"min_pitch": 60, "max_pitch": 70}, {"max_pitch": 128}, {"min_pitch": True}, {"qpm": "fast"}):
        with pytest.raises(InputError):
            get_representation("notes", **bad)


def test_more_primers():
    assert notes.parse_primer("_ rest bb3 G##4").tolist() == [0, 1, ON(58), ON(69)]
    for bad in ("", "C4 ,, x7", "C#"):
        with pytest.raises(InputError):
            notes.parse_primer(bad)
    assert notes.parse_primer("corpus:bach/bwv66.6").tolist() == notes.read("corpus:bach/bwv66.6").tolist()


def test_constructing_and_priming_do_not_import_music21():
    code = """
import sys, mgf, mgf.plugins.representations.notes
notes = mgf.get_representation("notes")
notes.transpose(notes.parse_primer("C4 - r E4"), 2)
print("music21" in sys.modules)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_to_notes_times_the_steps_at_the_tempo():
    fast = get_representation("notes", qpm=60, steps_per_quarter=2)  # a step is half a second
    assert fast.to_notes(np.array([fast.start_token, 0, ON(60), 0, 1, ON(62), ON(62)])) == [
        (60, 90, 0.5, 1.5), (62, 90, 2.0, 2.5), (62, 90, 2.5, 3.0)]


@pytest.mark.parametrize("piece", ["corpus:bach/bwv66.6", "corpus:bach/bwv7.7", "corpus:bach/bwv846"])
def test_token_pitches_name_the_token_that_starts_each_note(piece):
    """Every note of ``to_notes`` starts at a step whose token's ``token_pitches`` entry is its pitch, and back."""
    pitches = notes.token_pitches()
    assert pitches.shape == (notes.vocab_size,) and pitches[[0, 1, notes.start_token]].tolist() == [-1, -1, -1]
    tokens = notes.read(piece)
    step = 60.0 / (notes.qpm * notes.steps_per_quarter)
    started = sorted((index, int(pitches[token])) for index, token in enumerate(tokens.tolist()) if pitches[token] >= 0)
    assert sorted((round(start / step), pitch) for pitch, _, start, _ in notes.to_notes(tokens)) == started
    assert len(started) > 20


def test_token_pitches_follow_the_range():
    narrow = get_representation("notes", min_pitch=60, max_pitch=71)
    assert narrow.token_pitches().tolist() == [-1, -1, *range(60, 72), -1]


@pytest.mark.parametrize("work", ["bach/bwv66.6", "bach/bwv10.7", "bach/bwv846"])
def test_midi_read_with_mido_gives_music21s_melody(work, tmp_path):
    """MIDI files are read with mido; the melody is the one music21's parse gives by the same rules."""
    import music21

    notes = get_representation("notes")
    path = tmp_path / "piece.mid"
    music21.corpus.parse(work).write("midi", fp=str(path))
    through_music21 = notes._melody(music21.converter.parse(str(path), quantizePost=False), str(path))
    np.testing.assert_array_equal(notes.read(path), through_music21)
