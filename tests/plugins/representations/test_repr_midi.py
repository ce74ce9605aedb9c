"""The `midi` representation on MIDI files the tests build with mido, and on corpus chorales."""

import subprocess
import sys
from collections import Counter

import mido
import numpy as np
import pytest

from mgf import BundleError, InputError, UsageError, get_representation, load_model
from mgf.contract import bundle
from mgf.plugins.representations.midi import read_midi_notes

midi = get_representation("midi")


def build(path, tracks, ticks_per_beat=480, kind=1):
    """tracks: lists of (absolute_tick, message) -> a MIDI file."""
    out = mido.MidiFile(type=kind, ticks_per_beat=ticks_per_beat)
    for events in tracks:
        track, last = mido.MidiTrack(), 0
        for tick, message in sorted(events, key=lambda e: e[0]):
            track.append(message.copy(time=tick - last))
            last = tick
        out.tracks.append(track)
    out.save(path)
    return path


def on(p, v=64, ch=0):
    return mido.Message("note_on", note=p, velocity=v, channel=ch)


def off(p, ch=0, zero=False):
    return mido.Message("note_on", note=p, velocity=0, channel=ch) if zero else mido.Message("note_off", note=p, channel=ch)


def pedal(value, ch=0):
    return mido.Message("control_change", control=64, value=value, channel=ch)


@pytest.fixture
def performance(tmp_path):
    """Tempo 120 for 2 beats, then 60; notes on several tracks and channels, pedal, drums, re-strike."""
    tempo = [(0, mido.MetaMessage("set_tempo", tempo=500000)), (960, mido.MetaMessage("set_tempo", tempo=1000000)),
             (0, mido.MetaMessage("track_name", name="tempo"))]
    piano = [(0, on(60, 100)), (480, off(60)),                      # 0.0 - 0.5 s
             (480, on(64, 50)), (1440, off(64, zero=True)),         # 0.5 - 2.0 s (crosses the tempo change)
             (0, pedal(127, ch=2)), (240, on(67, 90, ch=2)),         # released at 0.5 s, held by the pedal
             (480, off(67, ch=2)), (1200, pedal(0, ch=2)),           # pedal up at 1.5 s
             (1920, on(72, 70)), (2160, on(72, 80)), (2400, off(72)),  # 3.0 s; re-struck at 3.5 s; off at 4.0 s
             (2640, off(72)), (2880, off(72))]                        # ends the second (first in, first out); a third
                                                                      # finds nothing to end
    strings = [(240, on(48, 40, ch=1)), (1920, off(48, ch=1)),      # 0.25 - 3.0 s
               (0, mido.Message("sysex", data=[1, 2, 3]))]
    drums = [(0, on(36, 120, ch=9)), (120, off(36, ch=9))]
    return build(tmp_path / "perf.mid", [tempo, piano, strings, drums])


EXPECTED = [  # (pitch, velocity, start s, end s)
    (60, 100, 0.0, 0.5), (48, 40, 0.25, 3.0), (67, 90, 0.25, 1.5), (64, 50, 0.5, 2.0),
    (72, 70, 3.0, 3.5), (72, 80, 3.5, 4.5),
]
READ = [note if note[:3] != (72, 70, 3.0) else (72, 70, 3.0, 4.0) for note in EXPECTED]  # the encoding ends it at 3.5


def test_reading_follows_tempo_pedal_restrike_and_skips_drums(performance):
    notes = read_midi_notes(str(performance))
    assert len(notes) == len(READ)
    for got, want in zip(sorted(notes, key=lambda n: (n[2], n[0])), sorted(READ, key=lambda n: (n[2], n[0]))):
        assert got[:2] == want[:2]
        assert got[2] == pytest.approx(want[2], abs=1e-6) and got[3] == pytest.approx(want[3], abs=1e-6)
    with_drums = read_midi_notes(str(performance), drums=True)
    assert (36, 120) in [(p, v) for p, v, _, _ in with_drums]
    close(midi.to_notes(midi.read(performance)), EXPECTED)


def close(a, b, representation=midi):
    """Same notes: onsets and offsets within 10 ms, velocity in the same bin."""
    assert len(a) == len(b)
    for x, y in zip(sorted(a, key=lambda n: (n[2], n[0])), sorted(b, key=lambda n: (n[2], n[0]))):
        assert x[0] == y[0]
        assert abs(x[2] - y[2]) <= 0.010 + 1e-9 and abs(x[3] - y[3]) <= 0.010 + 1e-9
        assert representation.velocity_bin(x[1]) == representation.velocity_bin(y[1])


def test_round_trip_keeps_every_note(performance, tmp_path):
    tokens = midi.read(performance)
    midi.write(tokens, tmp_path / "out.mid")
    close(read_midi_notes(str(tmp_path / "out.mid")), EXPECTED)
    np.testing.assert_array_equal(midi.read(tmp_path / "out.mid"), tokens)


def test_written_file_is_standard(performance, tmp_path):
    midi.write(midi.read(performance), tmp_path / "out.mid")
    written = mido.MidiFile(tmp_path / "out.mid")
    assert written.type == 1 and len(written.tracks) == 2
    assert [m.tempo for m in written.tracks[0] if m.type == "set_tempo"] == [500000]
    assert sum(1 for m in written.tracks[1] if m.type == "note_on" and m.velocity > 0) == len(EXPECTED)
    from music21 import converter

    assert len(converter.parse(str(tmp_path / "out.mid")).flatten().notes) >= 5


def test_one_pitch_on_two_channels_sounds_once(tmp_path):
    path = build(tmp_path / "two.mid", [[(0, on(60, ch=0)), (960, off(60, ch=0)), (480, on(60, ch=1)), (1440, off(60, ch=1)),
                                         (0, on(64, 50, ch=0)), (480, off(64, ch=0)), (0, on(64, 90, ch=1)), (960, off(64, ch=1))]])
    # the later 60 ends the earlier one; the unison 64s merge into one note (the later end, the higher velocity)
    close(midi.to_notes(midi.read(path)), [(60, 64, 0.0, 0.5), (60, 64, 0.5, 1.5), (64, 90, 0.0, 1.0)])


def test_format_0_and_long_gaps(tmp_path):
    path = build(tmp_path / "f0.mid", [[(0, mido.MetaMessage("set_tempo", tempo=500000)), (0, on(60)), (480, off(60)),
                                        (480 * 7, on(62, 127)), (480 * 8, off(62)), (480 * 8, on(64, 126)), (480 * 9, off(64))]],
                 kind=0)
    tokens = midi.read(path)
    assert " ".join(midi.token_name(t) for t in tokens) == (  # 126 is in 127's bin: no new VELOCITY
        "VELOCITY_15 NOTE_ON_60 TIME_SHIFT_50 NOTE_OFF_60 TIME_SHIFT_100 TIME_SHIFT_100 TIME_SHIFT_100 "
        "VELOCITY_31 NOTE_ON_62 TIME_SHIFT_50 NOTE_OFF_62 NOTE_ON_64 TIME_SHIFT_50 NOTE_OFF_64")
    midi.write(tokens, tmp_path / "out.mid")
    close(read_midi_notes(str(tmp_path / "out.mid")), [(60, 64, 0.0, 0.5), (62, 127, 3.5, 4.0), (64, 126, 4.0, 4.5)])


def test_a_chorale_is_rendered_polyphonically(tmp_path):
    tokens = midi.read("corpus:bach/bwv66.6")
    chords = " ".join(midi.token_name(t) for t in tokens).split("TIME_SHIFT")  # the events of one instant each
    assert sum(chord.count("NOTE_ON") >= 3 for chord in chords) > 10
    assert sum(chord.count("VELOCITY") for chord in chords) == 1  # unmarked: every note at 80
    midi.write(tokens, tmp_path / "chorale.mid")
    assert mido.MidiFile(tmp_path / "chorale.mid").length == pytest.approx(22.5, abs=0.01)  # 36 quarters at its ♩ = 96


TUNES = 'X:1\nT:a\nM:4/4\nL:1/4\n{tempo}K:C\n"Am"C D [EG] c|\n\nX:2\nT:b\nM:4/4\nL:1/4\nK:C\nG4|\n'


@pytest.mark.parametrize("tempo, config, beat", [("Q:1/4=60\n", {}, 1.0), ("", {}, 0.5), ("", {"qpm": 60}, 1.0)])
def test_scores_play_at_their_first_metronome_mark_else_at_qpm(tmp_path, tempo, config, beat):
    path = tmp_path / "tunes.abc"
    path.write_text(TUNES.format(tempo=tempo))
    representation = get_representation("midi", **config)
    pieces = list(representation.read_pieces(path))
    assert [name for name, _ in pieces] == [f"{path}#1", f"{path}#2"]
    got = representation.to_notes(pieces[0][1])
    want = [(60, 0, 1), (62, 1, 2), (64, 2, 3), (67, 2, 3), (72, 3, 4)]  # the chord symbol "Am" is not played
    assert [(p, round(s / beat, 2), round(e / beat, 2)) for p, _, s, e in got] == want


def test_to_notes_drops_empty_notes_and_closes_hanging_ones(tmp_path):
    tokens = midi.parse_primer("NOTE_ON_60 NOTE_OFF_60 VELOCITY_31 NOTE_ON_62 TIME_SHIFT_20 NOTE_ON_64")
    assert midi.to_notes(tokens) == [(62, 126, 0.0, 0.2), (64, 126, 0.2, 0.21)]  # bin 31 is 125..127
    assert midi.to_notes(midi.parse_primer("NOTE_ON_60 TIME_SHIFT_1"))[0][1] == 100  # no VELOCITY yet
    midi.write(tokens, tmp_path / "out.mid")
    messages = [m for m in mido.MidiFile(tmp_path / "out.mid").tracks[1] if m.type.startswith("note")]
    assert [(m.note, m.velocity > 0) for m in messages] == [(62, True), (62, False), (64, True), (64, False)]
    with pytest.raises(InputError, match="token id 389"):
        midi.write(np.array([60, 389]), tmp_path / "bad.mid")
    assert not (tmp_path / "bad.mid").exists()


def test_importing_and_constructing_load_neither_music21_nor_mido():
    code = ("import sys; from mgf.plugins.representations.midi import Midi; Midi().parse_primer('NOTE_ON_60');"
            " print(sorted(m for m in ('music21', 'mido') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_primer_and_names():
    tokens = midi.parse_primer("VELOCITY_20 NOTE_ON_60 TIME_SHIFT_50 NOTE_OFF_60 64")
    assert [midi.token_name(t) for t in tokens] == ["VELOCITY_20", "NOTE_ON_60", "TIME_SHIFT_50", "NOTE_OFF_60", "NOTE_ON_64"]
    for bad, quoted in [("NOTE_ON_200", "'NOTE_ON_200'"), ("TIME_SHIFT_0", "'TIME_SHIFT_0'"), ("chord", "'chord'"), ("388", "'388'")]:
        with pytest.raises(InputError) as error:
            midi.parse_primer(bad)
        assert quoted in str(error.value)


def test_transpose():
    tokens = midi.parse_primer("NOTE_ON_60 TIME_SHIFT_10 NOTE_OFF_60")
    assert [midi.token_name(t) for t in midi.transpose(tokens, 3)] == ["NOTE_ON_63", "TIME_SHIFT_10", "NOTE_OFF_63"]
    assert midi.transpose(midi.parse_primer("NOTE_ON_126"), 2) is None


def _file(path, content):
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "absent.mid", "no such file"),
        (lambda d: _file(d / "empty.mid", b""), "empty file"),
        (lambda d: _file(d / "noise.mid", bytes(range(256)) * 4), "not a readable MIDI file"),
        (lambda d: _file(d / "text.mid", b"just some text\n"), "not a readable MIDI file"),
        (lambda d: build(d / "silent.mid", [[(0, mido.MetaMessage("set_tempo", tempo=400000))]]), "no notes"),
        (lambda d: build(d / "drums.mid", [[(0, on(36, ch=9)), (10, off(36, ch=9))]]), "no notes"),
        (lambda d: build(d / "division.mid", [[(0, on(60)), (10, off(60))]], ticks_per_beat=0), "time division 0"),
        (lambda d: "corpus:bach/no-such-chorale", "no such work or collection"),
        (lambda d: _file(d / "junk.musicxml", b"<score-partwise><part"), "not a readable score"),
    ],
)
def test_bad_input_is_an_input_error_naming_the_file(tmp_path, make, message):
    target = make(tmp_path)
    with pytest.raises(InputError) as error:
        midi.read(target)
    assert message in str(error.value) and str(target) in str(error.value)


def test_truncated_file(performance, tmp_path):
    data = performance.read_bytes()
    cut = _file(tmp_path / "cut.mid", data[: len(data) // 2])
    with pytest.raises(InputError, match="cut.mid: not a readable MIDI file"):
        midi.read(cut)


def test_write_rejects_other_suffixes(tmp_path):
    with pytest.raises(InputError, match="midi writes .mid"):
        midi.write(np.array([60]), tmp_path / "x.musicxml")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("config", [{"velocity_bins": 0}, {"max_shift_steps": 0}, {"time_shift_ms": 2.5}, {"drums": "maybe"}])
def test_bad_config(config):
    with pytest.raises(InputError):
        get_representation("midi", **config)


def test_vocabulary_is_performance_rnn():
    assert midi.vocab_size == 389 and midi.start_token == 388
    assert get_representation("midi", velocity_bins=16, max_shift_steps=50).vocab_size == 256 + 50 + 16 + 1


def test_max_note_seconds_caps_forgotten_notes():
    capped = get_representation("midi", max_note_seconds=2.0)
    tokens = capped.parse_primer("NOTE_ON_60 TIME_SHIFT_100 TIME_SHIFT_100 TIME_SHIFT_100 NOTE_OFF_60 NOTE_ON_62 TIME_SHIFT_50")
    assert [(p, round(s, 2), round(e, 2)) for p, _, s, e in capped.to_notes(tokens)] == [(60, 0.0, 2.0), (62, 3.0, 3.5)]
    assert [(p, round(e, 2)) for p, _, _, e in midi.to_notes(tokens)] == [(60, 3.0), (62, 3.5)]
    assert capped.config()["max_note_seconds"] == 2.0 and "max_note_seconds" not in midi.config()
    long_note = capped.encode([(60, 80, 0.0, 4.0)])
    assert [capped.token_name(t) for t in long_note][-1] == "NOTE_OFF_60"
    assert capped.to_notes(long_note)[0][3] == pytest.approx(2.0)
    with pytest.raises(InputError):
        get_representation("midi", max_note_seconds=0)


@pytest.mark.parametrize("piece", ["corpus:bach/bwv66.6", "corpus:bach/bwv7.7", "corpus:bach/bwv846"])
def test_token_pitches_name_the_token_that_starts_each_note(piece):
    """Every note of ``to_notes`` was started, at its onset, by a token whose ``token_pitches`` entry is its pitch."""
    pitches = midi.token_pitches()
    assert pitches.shape == (midi.vocab_size,)
    for token in range(midi.vocab_size):  # by the token names: NOTE_ON_p starts p, every other token nothing
        name = midi.token_name(token)
        assert pitches[token] == (int(name[len("NOTE_ON_"):]) if name.startswith("NOTE_ON_") else -1)
    tokens = midi.read(piece)
    now, started = 0, []
    for token in tokens.tolist():
        if midi.token_name(token).startswith("TIME_SHIFT_"):
            now += int(midi.token_name(token)[len("TIME_SHIFT_"):])
        elif pitches[token] >= 0:
            started.append((now, int(pitches[token])))
    onsets = sorted((round(start / 0.01), pitch) for pitch, _, start, _ in midi.to_notes(tokens))
    assert len(onsets) > 20 and not Counter(onsets) - Counter(started)


@pytest.mark.parametrize("config, key", [({"max_note_seconds": 1e308}, "max_note_seconds"), ({"qpm": float("nan")}, "qpm"),
                                         ({"time_shift_ms": 10**12}, "time_shift_ms"), ({"max_silence_seconds": 0}, "max_silence_seconds")])
def test_config_out_of_bounds_is_a_usage_error_here_and_a_bundle_error_from_a_bundle(tmp_path, config, key):
    with pytest.raises(UsageError) as error:
        get_representation("midi", **config)
    assert f"option {key} of representation 'midi'" in str(error.value) and "\n" not in str(error.value)
    spec = {"name": "midi", "config": {**midi.config(), **config}}
    bundle.write(bundle.random_bundle(midi.vocab_size, (8,), 8, representation=spec), tmp_path / "bad.safetensors")
    with pytest.raises(BundleError, match=f"bad.safetensors: bad representation config: option {key} "):
        load_model(tmp_path / "bad.safetensors")
