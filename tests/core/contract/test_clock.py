"""The musical clock (``mgf.Clock``), checked against the files the representations write.

The oracle never asks the clock where a note is: real tokens are written to a real file by the
representation's own writer, the file is read back with mido (or ``wave``), and each note's onset
in seconds, beats and bars is computed from the file's own tempo, resolution and time signature.
The clock must put every note-on token there, by the rules docs/tokens.md and docs/contract.md give.
"""

import importlib.util
import wave
from pathlib import Path

import mido
import numpy as np
import pytest

import mgf
from mgf import Clock, PluginError, TokenKind

CHORALE = "corpus:bach/bwv66.6"  # 4/4, in music21's corpus: real music offline


def file_onsets(path):
    """``[(seconds, beat, bar, pitch)]`` of every note-on in a MIDI file, from its own tempo and time signature.

    The files the representations write keep one tempo and one time signature (checked here).
    """
    midi = mido.MidiFile(path)
    tempos, signatures, onsets = set(), set(), []
    for track in midi.tracks:
        tick = 0
        for message in track:
            tick += message.time
            if message.type == "set_tempo":
                tempos.add(message.tempo)
            elif message.type == "time_signature":
                signatures.add((message.numerator, message.denominator))
            elif message.type == "note_on" and message.velocity > 0:
                onsets.append((tick, message.note))
    assert len(tempos) <= 1 and len(signatures) <= 1, (tempos, signatures)
    tempo = tempos.pop() if tempos else 500_000  # MIDI's default: 120 quarter notes per minute
    numerator, denominator = signatures.pop() if signatures else (4, 4)
    quarters_per_bar = numerator * 4 / denominator
    per_quarter = midi.ticks_per_beat
    return sorted((tick * tempo / per_quarter / 1e6, tick // per_quarter, int(tick // (per_quarter * quarters_per_bar)), pitch)
                  for tick, pitch in onsets)


def clock_onsets(clock, tokens, steps):
    """``[(step, pitch)]`` of the note-on tokens of ``tokens``, at ``steps`` (where each token falls)."""
    on = clock.kinds[tokens] == TokenKind.NOTE_ON
    return sorted(zip(steps[:-1][on].tolist(), clock.pitches[tokens][on].tolist()))


def cumulative(clock, tokens):
    """Where each token falls, for a clock without BAR/POSITION tokens: the running sum of ``advance``."""
    return np.concatenate([[0], np.cumsum(clock.advance[tokens].astype(np.int64))])


def assert_onsets_agree(clock, tokens, path, tolerance, notes=20):
    """Every note-on token's step, beat and bar is its note's onset in ``path``; ``tolerance`` in steps (the file's ticks round)."""
    steps = clock.steps(tokens)
    ours = clock_onsets(clock, tokens, steps)
    theirs = file_onsets(path)
    assert len(ours) == len(theirs) >= notes
    for (step, pitch), (seconds, beat, bar, file_pitch) in zip(ours, theirs):
        assert pitch == file_pitch
        assert abs(seconds / clock.step_seconds - step) <= tolerance, (step, seconds)
        assert clock.beat_of(step) == beat and clock.bar_of(step) == bar, (step, beat, bar)
        assert clock.seconds_of(step) == pytest.approx(seconds, abs=tolerance * clock.step_seconds)
    return steps


# ---- notes ------------------------------------------------------------------------------------

def test_notes_clock_puts_each_note_where_the_written_file_has_it(tmp_path):
    notes = mgf.get_representation("notes")
    tokens = notes.read(CHORALE)
    clock = notes.clock()
    assert (clock.steps_per_beat, clock.beats_per_bar, clock.step_seconds) == (4, 4, 60 / 120 / 4)
    notes.write(tokens, tmp_path / "chorale.mid")
    steps = assert_onsets_agree(clock, tokens, tmp_path / "chorale.mid", tolerance=1e-9)
    assert np.array_equal(steps, cumulative(clock, tokens))
    assert steps[-1] == len(tokens)  # one step per token
    assert clock.bar_of(steps[-1]) >= 8  # the chorale's bars, not a few


def test_notes_clock_follows_steps_per_quarter_and_qpm(tmp_path):
    notes = mgf.get_representation("notes", steps_per_quarter=3, qpm=90)
    tokens = notes.parse_primer("C4 - r - E4 E4 - - - - G4 - - - r - - - - - - C5 - - B4 - - - - - - - - - - - - - "
                                "D5 - - - - - - - - - - - - - - - - - - - - - - - - - - - A4 " * 2)
    clock = notes.clock()
    assert (clock.steps_per_beat, clock.beats_per_bar, clock.step_seconds) == (3, 4, 60 / 90 / 3)
    notes.write(tokens, tmp_path / "melody.mid")
    # MIDI keeps the tempo in whole microseconds a quarter: 666,666 for 90 qpm, 1e-6 off
    assert_onsets_agree(clock, tokens, tmp_path / "melody.mid", tolerance=1e-4, notes=16)


def test_notes_kinds_and_pitches_are_the_documented_layout():
    notes = mgf.get_representation("notes", min_pitch=50, max_pitch=70)
    clock = notes.clock()
    assert clock.vocab_size == notes.vocab_size == 70 - 50 + 4
    assert clock.kinds[0] == TokenKind.HOLD and clock.kinds[1] == TokenKind.REST
    assert (clock.kinds[2:-1] == TokenKind.NOTE_ON).all() and clock.kinds[-1] == TokenKind.OTHER
    assert clock.pitches.tolist() == [-1, -1, *range(50, 71), -1]
    assert clock.advance.tolist() == [1] * (notes.vocab_size - 1) + [0]  # the start token takes no time


def documented_layout(section):
    """``[(first_id, last_id, kind, advance)]`` of the token table under ``## `section``` in docs/tokens.md.

    ``advance`` is an int, or None where the table says ``n`` (a TIME_SHIFT_n moves n steps).
    """
    text = (Path(__file__).parents[3] / "docs" / "tokens.md").read_text(encoding="utf-8")
    table = text.split(f"## `{section}`", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) >= 4 and cells[0][:1].isdigit() and "," in cells[-1]:
            ids = [int(part) for part in cells[0].split("–")]
            kind, _, advance = cells[-1].partition(",")
            advance = advance.strip()
            rows.append((ids[0], ids[-1], TokenKind[kind.split()[0]], int(advance) if advance.isdigit() else None))
    return rows


@pytest.mark.parametrize("name", ["notes", "midi", "audio"])
def test_kinds_and_advances_are_those_docs_tokens_md_gives(name):
    representation = mgf.get_representation(name)
    if name == "audio":
        representation.load_tensors({"codebook": np.zeros((256, 80), dtype=np.float32)})
    clock = representation.clock()
    rows = documented_layout(name)
    assert rows and rows[-1][1] == clock.vocab_size - 1
    for first, last, kind, advance in rows:
        assert (clock.kinds[first:last + 1] == kind).all(), (first, last, kind)
        expected = np.arange(1, last - first + 2) if advance is None else advance
        assert (clock.advance[first:last + 1] == expected).all(), (first, last)


# ---- midi -------------------------------------------------------------------------------------

def test_midi_clock_puts_each_note_where_the_written_file_has_it(tmp_path):
    midi = mgf.get_representation("midi")
    tokens = midi.read(CHORALE)
    clock = midi.clock()
    assert (clock.steps_per_beat, clock.beats_per_bar, clock.step_seconds) == (50, 4, 0.01)
    midi.write(tokens, tmp_path / "chorale.mid")
    # the writer rounds times to its ticks (480 per quarter at 120 qpm: 9.6 per step), half a tick = 0.052 steps
    steps = assert_onsets_agree(clock, tokens, tmp_path / "chorale.mid", tolerance=0.06)
    assert np.array_equal(steps, cumulative(clock, tokens))
    assert clock.bar_of(steps[-1]) >= 8


def test_midi_clock_of_a_generated_looking_sequence(tmp_path):
    """Tokens a model could write (overlapping notes, long and short shifts, velocities), not only what read gives."""
    midi = mgf.get_representation("midi", time_shift_ms=8, max_shift_steps=50)
    rng = np.random.default_rng(3)
    tokens, sounding = [], set()
    for _ in range(400):
        pitch = int(rng.integers(40, 90))
        if pitch in sounding:
            tokens.append(128 + pitch)
            sounding.discard(pitch)
        else:
            tokens += [midi.velocity0 + int(rng.integers(0, 32)), pitch]
            sounding.add(pitch)
        tokens.append(midi.shift0 + int(rng.integers(0, 50)))  # a shift after every event: no note lasts 0 steps
    tokens = np.asarray(tokens, dtype=np.int32)
    clock = midi.clock()
    assert clock.steps_per_beat == 63  # 62.5 steps per beat: the nearest whole number, halves up
    midi.write(tokens, tmp_path / "generated.mid")
    steps = clock.steps(tokens)
    ours = clock_onsets(clock, tokens, steps)
    theirs = file_onsets(tmp_path / "generated.mid")
    assert len(ours) == len(theirs) > 100
    for (step, pitch), (seconds, _, _, file_pitch) in zip(ours, theirs):
        assert pitch == file_pitch and abs(seconds / 0.008 - step) <= 0.07


@pytest.mark.parametrize(("time_shift_ms", "steps_per_beat"), [(10, 50), (5, 100), (20, 25), (7, 71), (8, 63), (300, 2), (1000, 1)])
def test_midi_steps_per_beat_is_half_a_second_in_steps_or_the_nearest(time_shift_ms, steps_per_beat):
    clock = mgf.get_representation("midi", time_shift_ms=time_shift_ms).clock()
    assert clock.steps_per_beat == steps_per_beat
    assert clock.step_seconds == time_shift_ms / 1000  # seconds stay exact when the beat does not divide


def test_midi_kinds_and_pitches_are_the_documented_layout():
    midi = mgf.get_representation("midi", max_shift_steps=10, velocity_bins=4)
    clock = midi.clock()
    kinds = clock.kinds.tolist()
    assert kinds == [TokenKind.NOTE_ON] * 128 + [TokenKind.NOTE_OFF] * 128 + [TokenKind.TIME_SHIFT] * 10 + \
        [TokenKind.VELOCITY] * 4 + [TokenKind.OTHER]
    assert clock.pitches.tolist() == [*range(128), *range(128)] + [-1] * 15
    assert clock.advance.tolist() == [0] * 256 + list(range(1, 11)) + [0] * 5


# ---- audio, tokens ----------------------------------------------------------------------------

def test_audio_clock_is_one_frame_a_hop_without_bars(tmp_path):
    audio = mgf.get_representation("audio", hop=256, codebook_size=8)
    audio.load_tensors({"codebook": np.random.default_rng(0).normal(-3, 2, (8, 80)).astype(np.float32)})
    tokens = np.random.default_rng(1).integers(0, 8, 200).astype(np.int32)
    audio.write(tokens, tmp_path / "frames.wav")
    with wave.open(str(tmp_path / "frames.wav")) as handle:
        seconds = handle.getnframes() / handle.getframerate()
    clock = audio.clock()
    steps = clock.steps(tokens)
    assert clock.step_seconds == 256 / 22050
    assert clock.seconds_of(steps[len(tokens) - 1]) == pytest.approx(seconds)  # the last frame sounds at the end
    assert len(audio.read(tmp_path / "frames.wav")) == len(tokens)  # read back: a frame every hop, as many as written
    assert (clock.kinds == TokenKind.OTHER).all() and (clock.pitches == -1).all()
    assert clock.advance.tolist() == [1] * 8 + [0]
    assert clock.steps_per_beat == clock.beats_per_bar == 0
    assert clock.bar_of([0, 100]).tolist() == clock.beat_of([0, 100]).tolist() == [-1, -1]


def test_tokens_has_no_clock():
    assert mgf.get_representation("tokens").clock() is None


# ---- miditok ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def chorale_mid(tmp_path_factory):
    """The chorale as a MIDI file written by `midi`'s writer: a real file for MidiTok to read."""
    path = tmp_path_factory.mktemp("chorale") / "chorale.mid"
    midi = mgf.get_representation("midi")
    midi.write(midi.read(CHORALE), path)
    return path


@pytest.mark.parametrize("name", ["REMI", "TSD", "MIDILike", "Structured"])
def test_miditok_clock_puts_each_note_where_midi_tok_writes_it(tmp_path, chorale_mid, name):
    pytest.importorskip("miditok")
    rep = mgf.get_representation("miditok", tokenizer=name)
    tokens = rep.read(chorale_mid)
    clock = rep.clock()
    assert clock is not None and clock.vocab_size == rep.vocab_size and clock.beats_per_bar == 4
    rep.write(tokens, tmp_path / "out.mid")
    steps = assert_onsets_agree(clock, tokens, tmp_path / "out.mid", tolerance=1e-9)
    if name != "REMI":
        assert np.array_equal(steps, cumulative(clock, tokens))
    names = [rep.tokenizer[int(t)] for t in tokens[:-1]]  # the EOS that ends every piece aside
    kinds = clock.kinds[tokens[:-1]]
    for kind, prefixes in ((TokenKind.NOTE_ON, ("Pitch_", "NoteOn_")), (TokenKind.NOTE_OFF, ("NoteOff_",)),
                           (TokenKind.TIME_SHIFT, ("TimeShift_",)), (TokenKind.VELOCITY, ("Velocity_",)),
                           (TokenKind.BAR, ("Bar_",)), (TokenKind.POSITION, ("Position_",))):
        assert [n.startswith(prefixes) for n in names] == (kinds == kind).tolist()


def test_remi_bars_and_positions_follow_midi_toks_rules(tmp_path):
    """Empty bars, a position before any bar: where MidiTok's decoder puts the notes."""
    pytest.importorskip("miditok")
    rep = mgf.get_representation("miditok", tokenizer="REMI")
    text = ("Position_4 Pitch_60 Velocity_63 Duration_1.0.8 Bar_None Position_0 Pitch_62 Velocity_63 Duration_1.0.8 "
            "Bar_None Bar_None Bar_None Position_31 Pitch_64 Velocity_63 Duration_0.4.8 Bar_None Pitch_65 Velocity_63 "
            "Duration_0.4.8 Position_12 Pitch_67 Velocity_63 Duration_0.4.8 Pitch_71 Velocity_63 Duration_0.4.8")
    tokens = rep.parse_primer(text)
    rep.write(tokens, tmp_path / "bars.mid")
    clock = rep.clock()
    steps = clock.steps(tokens)
    assert clock_onsets(clock, tokens, steps) == [(round(s / clock.step_seconds), p) for s, _, _, p in
                                                  file_onsets(tmp_path / "bars.mid")]
    per_bar = clock.steps_per_bar
    assert [s for s, _ in clock_onsets(clock, tokens, steps)] == [8, per_bar, 4 * per_bar + 62, 5 * per_bar,
                                                                  5 * per_bar + 24, 5 * per_bar + 24]


@pytest.mark.parametrize("config", [dict(use_rests=True), dict(use_pitch_intervals=True)])
def test_miditok_without_a_clock_says_none(tmp_path, config):
    """Rests (which start where the last note ended) and pitch intervals: no clock (docs/tokens.md)."""
    miditok = pytest.importorskip("miditok")
    miditok.TSD(miditok.TokenizerConfig(**config)).save(tmp_path / "tokenizer.json")
    assert mgf.get_representation("miditok", params=str(tmp_path / "tokenizer.json")).clock() is None


# ---- the Clock itself -------------------------------------------------------------------------

def simple_clock(**changes):
    fields = dict(kinds=np.array([TokenKind.NOTE_ON, TokenKind.NOTE_OFF, TokenKind.TIME_SHIFT, TokenKind.OTHER]),
                  pitches=np.array([60, 60, -1, -1]), advance=np.array([0, 0, 3, 0]), step_seconds=0.25,
                  steps_per_beat=2, beats_per_bar=3)
    return Clock(**(fields | changes))


def test_token_kinds_are_the_specified_numbers():
    assert [(kind.name, int(kind)) for kind in TokenKind] == [
        ("OTHER", 0), ("NOTE_ON", 1), ("NOTE_OFF", 2), ("TIME_SHIFT", 3), ("VELOCITY", 4), ("HOLD", 5), ("REST", 6),
        ("BAR", 7), ("POSITION", 8)]


def test_clock_arrays_are_typed_and_read_only():
    clock = simple_clock()
    assert (clock.kinds.dtype, clock.pitches.dtype, clock.advance.dtype) == (np.int8, np.int16, np.int32)
    with pytest.raises(ValueError):
        clock.advance[2] = 9
    assert clock.steps([2, 0, 2, 2, 1, 3]).tolist() == [0, 3, 3, 6, 9, 9, 9]
    assert clock.beat_of([0, 1, 2, 5, 6]).tolist() == [0, 0, 1, 2, 3]
    assert clock.bar_of([0, 5, 6, 11, 12]).tolist() == [0, 0, 1, 1, 2]
    assert clock.seconds_of([0, 4]).tolist() == [0.0, 1.0]


def test_bar_and_position_rules():
    kinds = np.array([TokenKind.BAR, TokenKind.POSITION, TokenKind.POSITION, TokenKind.TIME_SHIFT, TokenKind.NOTE_ON])
    clock = Clock(kinds, np.array([-1, -1, -1, -1, 60]), np.array([0, 0, 5, 7, 0]), 0.1, 2, 4)  # 8 steps a bar
    assert clock.steps([0, 4, 0, 4, 0, 0, 2, 4]).tolist() == [0, 0, 0, 8, 8, 16, 24, 29, 29]
    assert clock.steps([2, 4, 0, 4]).tolist() == [0, 5, 5, 8, 8]  # a position before any bar is in bar 0
    assert clock.steps([3, 3, 0, 4]).tolist() == [0, 7, 14, 16, 16]  # time shifts into bar 1: the next bar is 2
    assert clock.steps([0, 3, 3, 0, 4]).tolist() == [0, 0, 7, 14, 16, 16]


@pytest.mark.parametrize(("changes", "message"), [
    (dict(kinds=np.array([0, 1, 2, 9])), "TokenKind"),
    (dict(pitches=np.array([60, 60, -1])), "one per token id"),
    (dict(pitches=np.array([60, -1, -1, -1])), "pitch in 0..127"),
    (dict(pitches=np.array([60, 60, 64, -1])), "pitches must be -1"),
    (dict(advance=np.array([0, 0, -3, 0])), "advance must be >= 0"),
    (dict(advance=np.array([0.0, 0, 3, 0])), "integer array"),
    (dict(advance=np.array([0, 0, 2**40, 0])), "fit int32"),
    (dict(step_seconds=0.0), "step_seconds"),
    (dict(step_seconds=float("nan")), "step_seconds"),
    (dict(steps_per_beat=0), "both 0"),
    (dict(beats_per_bar=-1), "beats_per_bar"),
    (dict(kinds=np.zeros((2, 2), dtype=np.int8)), "1-D"),
])
def test_bad_clocks_are_one_line_plugin_errors(changes, message):
    with pytest.raises(PluginError, match=message) as error:
        simple_clock(**changes)
    assert "\n" not in str(error.value)


def test_a_clock_without_meter_has_no_bar_tokens():
    with pytest.raises(PluginError, match="BAR and POSITION tokens need bars"):
        Clock(np.array([TokenKind.BAR]), np.array([-1]), np.array([0]), 0.1, 0, 0)
    assert Clock(np.array([0]), np.array([-1]), np.array([1]), 0.1, 0, 0).bar_of(5) == -1


def test_steps_refuses_ids_outside_the_vocabulary():
    with pytest.raises(mgf.InputError, match="token id 4 is outside"):
        simple_clock().steps([0, 4])


def test_a_representation_has_no_clock_by_default():
    class Bare(mgf.Representation):
        name = "bare"

        def config(self):
            return {}

        vocab_size, start_token = 3, 2

        def read(self, path):
            raise NotImplementedError

        def write(self, tokens, path, **options):
            raise NotImplementedError

        def parse_primer(self, text):
            raise NotImplementedError

    assert Bare().clock() is None


def test_clock_of_checks_what_a_representation_gives():
    from mgf.contract.clock import clock_of

    assert clock_of(mgf.get_representation("notes")).vocab_size == 40
    assert clock_of(mgf.get_representation("tokens")) is None
    with pytest.raises(mgf.UsageError, match="^bar-budget needs .* representation 'tokens' has no clock"):
        clock_of(mgf.get_representation("tokens"), "bar-budget")

    class Wrong(mgf.get_representation("tokens").__class__):
        def clock(self):
            return simple_clock()  # 4 ids, not 130

    with pytest.raises(PluginError, match="must give an mgf.Clock of its 130 token ids or None, got a Clock of 4 ids"):
        clock_of(Wrong())


def real_pieces():
    """``(representation, tokens)`` of real music through each built-in clock, REMI's bars and positions included."""
    notes, midi = mgf.get_representation("notes"), mgf.get_representation("midi")
    yield notes, notes.read(CHORALE)
    yield midi, midi.read(CHORALE)
    if importlib.util.find_spec("miditok") is not None:
        remi = mgf.get_representation("miditok", tokenizer="REMI")
        yield remi, remi.parse_primer("Position_4 Pitch_60 Velocity_63 Duration_1.0.8 Bar_None Bar_None Position_31 Pitch_64 "
                                      "Velocity_63 Duration_0.4.8 Bar_None Pitch_65 Position_12 Pitch_67 Bar_None Position_40")


@pytest.mark.parametrize("index", range(3))
def test_the_c_loop_keeps_the_same_clock_token_by_token(index):
    """What the rules see (``RuleSet.clock()``, also ``ctx.clock``) is where ``Clock.steps`` puts each next token."""
    from mgf.kernel._native import RuleSet

    pieces = list(real_pieces())
    if index >= len(pieces):
        pytest.skip("MidiTok is not installed")
    representation, tokens = pieces[index]
    clock = representation.clock()
    expected = clock.steps(tokens)
    rules = RuleSet([], clock, representation.vocab_size, representation.start_token, 1, len(tokens) + 1)
    seen = [rules.clock()["step"][0]]
    for token in tokens:
        rules.feed(np.array([[token]], dtype=np.int32))
        where = rules.clock()
        assert (where["beat"][0], where["bar"][0]) == (clock.beat_of(where["step"][0]), clock.bar_of(where["step"][0]))
        seen.append(where["step"][0])
    assert np.array_equal(seen, expected)


@pytest.mark.parametrize(("name", "config"), [("notes", {}), ("midi", {}), ("miditok", {"tokenizer": "REMI"}),
                                              ("miditok", {"tokenizer": "MIDILike"})])
def test_note_ons_are_the_tokens_that_start_a_pitch(name, config):
    """The clock's NOTE_ONs are exactly the tokens ``token_pitches()`` says start a note, with the same pitch."""
    if name == "miditok":
        pytest.importorskip("miditok")
    representation = mgf.get_representation(name, **config)
    clock, pitches = representation.clock(), representation.token_pitches()
    on = clock.kinds == TokenKind.NOTE_ON
    assert on.any() and np.array_equal(on, pitches >= 0)
    assert np.array_equal(clock.pitches[on], pitches[on])


def test_a_run_refuses_a_clock_that_does_not_fit_the_vocabulary_in_one_line(tmp_path):
    """What a third-party ``clock()`` returns is checked before any rule reads it (``clock_of``)."""
    notes = mgf.get_representation("notes")
    model = mgf.load_model(notes.default_bundle)
    wrong = mgf.Clock(kinds=np.zeros(3, np.int8), pitches=np.full(3, -1), advance=np.ones(3, np.int32),
                      step_seconds=0.125, steps_per_beat=4, beats_per_bar=4)
    model.representation.clock = lambda: wrong
    with pytest.raises(mgf.PluginError, match="clock\\(\\) must give an mgf.Clock of its"):
        mgf.generate(model, 8, seed=0)
