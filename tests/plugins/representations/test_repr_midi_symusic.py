"""MIDI read through symusic gives exactly what mido gives: the same notes and tokens, real-world-like files included.

The files are built here with mido (no downloads): a 21-minute piano performance with the pedal,
a multitrack song with drums, program changes, lyrics, sysex and odd ticks per beat, type 0 and 1.
"""

import glob
import hashlib
import random
import subprocess
import sys

import mido
import numpy as np
import pytest

from mgf import InputError, get_representation
from mgf.plugins.representations.midi_read import _notes, _with_mido, _with_symusic, read_midi_notes
from mgf.music.scores import read_midi

pytest.importorskip("symusic")
midi = get_representation("midi")
M, Meta = mido.Message, mido.MetaMessage


def save(path, tracks, ticks_per_beat=480, kind=1):
    """tracks: lists of (absolute tick, message) -> a MIDI file (mido writes running status).  As ``build`` in
    test_repr_midi.py, which test modules cannot import from each other (--import-mode=importlib)."""
    out = mido.MidiFile(type=kind, ticks_per_beat=ticks_per_beat)
    for events in tracks:
        ticks = [tick for tick, _ in sorted(events, key=lambda e: e[0])]  # stable: file order kept within a tick
        messages = [message for _, message in sorted(events, key=lambda e: e[0])]
        out.tracks.append(mido.MidiTrack(m.copy(time=t - s) for m, t, s in zip(messages, ticks, [0] + ticks)))
    out.save(path)
    return path


def piano(path, minutes=21, seed=0):
    """A performance: 384 ticks per beat, uneven timing, the pedal's continuous values, overlapping re-strikes."""
    rng, ticks = random.Random(seed), 384
    events, tick, end = [], 0, minutes * 120 * ticks
    while tick < end:
        tick += int(rng.expovariate(1 / 60)) + 1
        pitch, length = rng.randint(21, 108), int(rng.expovariate(1 / 250))  # 0: a zero-length note
        events += [(tick, M("note_on", note=pitch, velocity=rng.randint(15, 120))),
                   (tick + length, M("note_on", note=pitch, velocity=0) if rng.random() < 0.7 else M("note_off", note=pitch))]
        if rng.random() < 0.08:
            events += [(tick + 5 * k, M("control_change", control=64, value=rng.randint(0, 127))) for k in range(8)]
    tempo = [(0, Meta("set_tempo", tempo=500_000)), (0, Meta("time_signature", numerator=4, denominator=4))]
    return save(path, [tempo, [(0, M("program_change", program=0))] + events], ticks_per_beat=ticks)


def clean_performance(path, minutes=6, seed=4):
    """A performance the old reader (mido alone) read by the same rules: no re-strike of a sounding pitch, the
    pedal's events on odd ticks and the notes' on even ones (no release at a pedal change's tick)."""
    rng, ticks = random.Random(seed), 384
    events, tick, end, free = [], 0, minutes * 120 * ticks, {}
    while tick < end:
        tick += 2 * int(rng.expovariate(1 / 30)) + 2
        pitch, length = rng.randint(21, 108), 2 * int(rng.expovariate(1 / 125)) + 2
        if free.get(pitch, 0) <= tick:
            free[pitch] = tick + length + 2
            events += [(tick, M("note_on", note=pitch, velocity=rng.randint(15, 120))), (tick + length, M("note_off", note=pitch))]
        if rng.random() < 0.05:
            events += [(tick + 1 + 6 * k, M("control_change", control=64, value=rng.randint(0, 127))) for k in range(8)]
    return save(path, [[(0, Meta("set_tempo", tempo=500_000))], [(0, M("program_change", program=0))] + events], 384)


def song(path, ticks_per_beat=96, kind=1, seed=1):
    """A multitrack song: tempo changes, drums, bass, chords on a shared channel, program changes, pedal in its own
    track, lyrics, sysex, text; note_off and velocity-0 endings; quantized, so notes fall on half steps."""
    rng, q = random.Random(seed), ticks_per_beat
    bars = 64
    meta = [(0, Meta("track_name", name="song")), (0, M("sysex", data=[0x7E, 0x7F, 9, 1]))]
    meta += [(bar * 4 * q, Meta("set_tempo", tempo=rng.choice([500_000, 461_538, 600_000, 428_571])))
             for bar in range(0, bars, 8)]
    drums = [(0, Meta("track_name", name="drums"))]
    bass, chords, lead, pedal = [(0, M("program_change", channel=1, program=33))], [], [], []
    for bar in range(bars):
        at = bar * 4 * q
        for eighth in range(8):
            t = at + eighth * q // 2
            drums += [(t, M("note_on", channel=9, note=42, velocity=70)), (t + q // 4, M("note_off", channel=9, note=42))]
            if eighth % 4 == 0:
                drums += [(t, M("note_on", channel=9, note=36, velocity=110)), (t, M("note_on", channel=9, note=36, velocity=0))]
        root = rng.choice([36, 38, 41, 43])
        for beat in range(4):  # repeated notes that touch: the next one starts where the last ends
            bass += [(at + beat * q, M("note_on", channel=1, note=root, velocity=90)),
                     (at + (beat + 1) * q, M("note_on", channel=1, note=root, velocity=0))]
        if bar == bars // 2:
            chords.append((at, M("program_change", channel=0, program=4)))
        for pitch in (root + 24, root + 28, root + 31):
            chords += [(at, M("note_on", channel=0, note=pitch, velocity=60)), (at + 4 * q, M("note_off", channel=0, note=pitch))]
        pedal += [(at, M("control_change", channel=0, control=64, value=127)),
                  (at + 4 * q - 1, M("control_change", channel=0, control=64, value=0))]
        t = at
        while t < at + 4 * q:
            length = rng.choice([q // 4, q // 2, q, 3 * q // 2])
            pitch = rng.randint(60, 84)
            lead += [(t, M("note_on", channel=2, note=pitch, velocity=rng.randint(50, 110))),
                     (t + length, M("note_off", channel=2, note=pitch))]
            if rng.random() < 0.2:
                lead.append((t, Meta("lyrics", text="la")))
            t += length
    tracks = [meta, drums, bass, chords, lead, pedal]
    if kind == 0:
        tracks = [sum(tracks, [])]
    return save(path, tracks, ticks_per_beat=ticks_per_beat, kind=kind)


def both(path, drums=False):
    """Notes through symusic (which must accept the file) and through mido."""
    data = open(path, "rb").read()
    parsed = _with_symusic(data)
    assert parsed is not None, "symusic's reading should have been used"
    return _notes(parsed, drums), _notes(_with_mido(read_midi(str(path), 16, 256)), drums)


def same_tokens(a, b):
    assert np.array_equal(midi.encode(a), midi.encode(b))


@pytest.mark.parametrize("make", [
    lambda d: piano(d / "piano.mid"),
    lambda d: song(d / "song.mid"),
    lambda d: song(d / "type0.mid", kind=0),
    lambda d: song(d / "odd.mid", ticks_per_beat=217, seed=2),
    lambda d: song(d / "fine.mid", ticks_per_beat=1001, seed=3),
], ids=["piano-21-minutes", "song-format1", "song-format0", "ticks-217", "ticks-1001"])
def test_symusic_and_mido_read_the_same_notes_and_tokens(tmp_path, make):
    path = make(tmp_path)
    for drums in (False, True):
        fast, slow = both(path, drums)
        assert len(fast) > 100 and np.array_equal(fast, slow)
        same_tokens(fast, slow)
    assert np.array_equal(np.array(read_midi_notes(path, drums=True)), fast)


def test_a_clean_performance_reads_to_the_old_readers_tokens(tmp_path):
    """The digest is of the tokens the reader before symusic (mido alone, float seconds summed event by event)
    gave for this file; 67 of its note times lie on exact half steps of the grid, where the sum's rounding decides."""
    path = clean_performance(tmp_path / "clean.mid")
    assert _with_symusic(path.read_bytes()) is not None
    tokens = midi.read(path)
    assert len(tokens) == 18950
    assert hashlib.sha256(tokens.astype("<i4").tobytes()).hexdigest() == \
        "d17e18629c969b722180913e3d25919a7e994bbcc506015f467bfa8b9a791fc4"


def test_the_piano_performance_is_long_and_uses_the_pedal(tmp_path):
    path = piano(tmp_path / "piano.mid")
    assert mido.MidiFile(path).length > 20 * 60
    pedalled = _notes(_with_symusic(open(path, "rb").read()), False)
    unpedalled = _notes(_with_symusic(open(save(tmp_path / "dry.mid", [[(t, m) for t, m in _events(path)
                                                                          if m.type != "control_change"]], 384), "rb").read()), False)
    assert (pedalled[:, 3] - pedalled[:, 2]).sum() > 1.1 * (unpedalled[:, 3] - unpedalled[:, 2]).sum()


def _events(path):
    """(absolute tick, message) of every track of a file, merged."""
    out = []
    for track in mido.MidiFile(path).tracks:
        tick = 0
        for message in track:
            tick += message.time
            if not message.is_meta:
                out.append((tick, message))
    return out


def test_every_midi_seed_and_crash_case_reads_the_same(tmp_path):
    files = glob.glob("tests/fuzz/seeds/midi_read/*.mid") + glob.glob("tests/fuzz/crashes/midi_read/*")
    assert len(files) >= 3
    for path in files:
        data = open(path, "rb").read()
        parsed = _with_symusic(data)
        try:
            slow = _notes(_with_mido(read_midi(path, 16, 256)), True)
        except InputError:
            assert parsed is None, f"{path}: symusic reads a file mido refuses"
            continue
        if parsed is not None:
            assert np.array_equal(_notes(parsed, True), slow), path


def test_a_note_s_time_does_not_depend_on_unrelated_events(tmp_path):
    """At 120 qpm and 480 ticks per beat a 16th note is 12.5 steps of 10 ms: rounding meets a tie.  Mido's old
    reader summed float seconds event by event, so a sysex or program change elsewhere moved notes by a step."""
    notes = [(k * 120, M("note_on", note=60 + k % 12, velocity=80)) for k in range(64)]
    notes += [(k * 120 + 60, M("note_off", note=60 + k % 12)) for k in range(64)]
    plain = read_midi_notes(save(tmp_path / "plain.mid", [notes]))
    extras = [(k * 7 + 1, M("program_change", program=k % 128)) for k in range(1000)]
    extras += [(k * 13 + 2, M("sysex", data=[1, 2])) for k in range(500)]
    busy = read_midi_notes(save(tmp_path / "busy.mid", [notes, extras]))
    assert plain == busy
    assert [round(s / 0.01) for _, _, s, _ in plain][:4] == [0, 12, 25, 38]  # 12.5 -> 12, 37.5 -> 38: half to even


def test_two_tempos_at_one_tick_go_to_mido_and_the_last_wins(tmp_path):
    path = save(tmp_path / "tempos.mid", [[(0, Meta("set_tempo", tempo=1_000_000))],
                                          [(0, Meta("set_tempo", tempo=250_000)), (0, M("note_on", note=60, velocity=64)),
                                           (480, M("note_off", note=60))]])
    assert _with_symusic(open(path, "rb").read()) is None
    assert read_midi_notes(path) == [(60, 64, 0.0, 0.25)]


def test_a_file_symusic_refuses_is_read_or_refused_by_mido_in_one_line(tmp_path):
    good = open(save(tmp_path / "ok.mid", [[(0, M("note_on", note=60, velocity=64)), (480, M("note_off", note=60))]]), "rb").read()
    bad = good.replace(bytes([0x90, 60, 64]), bytes([0x90, 60, 0xC0]))  # a velocity byte with the high bit
    assert bad != good
    (tmp_path / "bad.mid").write_bytes(bad)
    assert _with_symusic(bad) is None
    with pytest.raises(InputError, match=r"bad\.mid: not a readable MIDI file") as caught:
        midi.read(tmp_path / "bad.mid")
    assert "\n" not in str(caught.value)


def test_without_symusic_mido_reads_every_file(tmp_path):
    path = song(tmp_path / "song.mid")
    code = ("import sys; sys.modules['symusic'] = None; import numpy as np; from mgf import get_representation; "
            f"np.save(sys.argv[1], get_representation('midi').read({str(path)!r}))")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "t.npy")], check=True)
    assert np.array_equal(np.load(tmp_path / "t.npy"), midi.read(path))


def test_a_tick_past_2_31_goes_to_mido(tmp_path):
    """symusic's ticks are 32-bit: nine of the longest delta times (2^28 - 1 ticks) overflow them."""
    waits = [(k * (2**28 - 1), M("control_change", control=1, value=k)) for k in range(1, 10)]
    last = 9 * (2**28 - 1)
    path = save(tmp_path / "far.mid", [waits + [(last, M("note_on", note=60, velocity=64)), (last + 480, M("note_off", note=60))]])
    assert _with_symusic(open(path, "rb").read()) is None
    (note,) = read_midi_notes(path)
    assert note[:2] == (60, 64) and note[2] == pytest.approx(last / 960, rel=1e-12)
