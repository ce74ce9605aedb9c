"""The `midi` representation on MIDI files the tests build with mido, and on corpus chorales."""

import mido
import numpy as np
import pytest

from mgf import InputError, get_representation
from mgf.plugins.repr_midi import read_midi_notes

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
             (1920, on(72, 70)), (2160, on(72, 80)), (2400, off(72))]  # 3.0 s; re-struck at 3.5 s; off at 4.0 s
    strings = [(240, on(48, 40, ch=1)), (1920, off(48, ch=1)),      # 0.25 - 3.0 s
               (0, mido.Message("sysex", data=[1, 2, 3]))]
    drums = [(0, on(36, 120, ch=9)), (120, off(36, ch=9))]
    return build(tmp_path / "perf.mid", [tempo, piano, strings, drums])


EXPECTED = [  # (pitch, velocity, start s, end s)
    (60, 100, 0.0, 0.5), (48, 40, 0.25, 3.0), (67, 90, 0.25, 1.5), (64, 50, 0.5, 2.0),
    (72, 70, 3.0, 3.5), (72, 80, 3.5, 4.0),
]


def test_reading_follows_tempo_pedal_restrike_and_skips_drums(performance):
    notes = read_midi_notes(str(performance))
    assert len(notes) == len(EXPECTED)
    for got, want in zip(sorted(notes, key=lambda n: (n[2], n[0])), sorted(EXPECTED, key=lambda n: (n[2], n[0]))):
        assert got[:2] == want[:2]
        assert got[2] == pytest.approx(want[2], abs=1e-6) and got[3] == pytest.approx(want[3], abs=1e-6)
    with_drums = read_midi_notes(str(performance), drums=True)
    assert (36, 120) in [(p, v) for p, v, _, _ in with_drums]


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


def test_format_0_and_long_gaps(tmp_path):
    path = build(tmp_path / "f0.mid", [[(0, mido.MetaMessage("set_tempo", tempo=500000)), (0, on(60)), (480, off(60)),
                                        (480 * 7, on(62, 127)), (480 * 8, off(62))]], kind=0)
    tokens = midi.read(path)
    shifts = [midi.token_name(t) for t in tokens if 256 <= t < midi.velocity0]
    assert shifts == ["TIME_SHIFT_50", "TIME_SHIFT_100", "TIME_SHIFT_100", "TIME_SHIFT_100", "TIME_SHIFT_50"]
    midi.write(tokens, tmp_path / "out.mid")
    close(read_midi_notes(str(tmp_path / "out.mid")), [(60, 64, 0.0, 0.5), (62, 127, 3.5, 4.0)])


def test_a_chorale_is_rendered_polyphonically(tmp_path):
    tokens = midi.read("corpus:bach/bwv66.6")
    names = [midi.token_name(t) for t in tokens]
    runs = [len(run) for run in " ".join(names).split("TIME_SHIFT") if run]
    assert max(r.count("NOTE_ON") for r in " ".join(names).split("TIME_SHIFT")) >= 3
    assert len(runs) > 20
    midi.write(tokens, tmp_path / "chorale.mid")
    assert 20 < mido.MidiFile(tmp_path / "chorale.mid").length < 40  # about 22 s at 120 qpm


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
        (lambda d: "corpus:bach/no-such-chorale", "no such work or collection"),
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


@pytest.mark.parametrize("config", [{"velocity_bins": 0}, {"max_shift_steps": 0}, {"time_shift_ms": 2.5}, {"drums": "yes"}])
def test_bad_config(config):
    with pytest.raises(InputError):
        get_representation("midi", **config)


def test_vocabulary_is_performance_rnn():
    assert midi.vocab_size == 389 and midi.start_token == 388
    assert get_representation("midi", velocity_bins=16, max_shift_steps=50).vocab_size == 256 + 50 + 16 + 1
