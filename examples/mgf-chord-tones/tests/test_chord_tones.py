"""``chord-tones`` and ``max-notes-per-bar``: rules on the musical clock, the same tokens in the C loop and in Python.

Every oracle here reads bars from the tokens' documented layout (docs/tokens.md) or from the MIDI file ``write``
produced (mido), never from the plugin or the core's clock.
"""

import mido
import numpy as np
import pytest

import mgf
import mgf.testing
import mgf_chord_tones
from mgf_chord_tones.chords import chord

PROGRESSION = "C G Am F"
TONES = [{0, 4, 7}, {7, 11, 2}, {9, 0, 4}, {5, 9, 0}]  # of PROGRESSION, by hand
SEEDS = range(20)


@pytest.fixture(autouse=True)
def plugin():
    with mgf.testing.registered(mgf_chord_tones):
        yield


@pytest.mark.parametrize("symbol, classes", [
    ("C", {0, 4, 7}), ("Am", {9, 0, 4}), ("F#dim", {6, 9, 0}), ("Bb+", {10, 2, 6}), ("Ebaug", {3, 7, 11}),
    ("G7", {7, 11, 2, 5}), ("Cmaj7", {0, 4, 7, 11}), ("Dm7", {2, 5, 9, 0}), ("Bm7b5", {11, 2, 5, 9}),
    ("Bø", {11, 2, 5, 9}), ("C#dim7", {1, 4, 7, 10}), ("AmMaj7", {9, 0, 4, 8}), ("Gaug7", {7, 11, 3, 5}),
    ("Cb", {11, 3, 6}), ("E#m", {5, 8, 0}), ("D♭M7", {1, 5, 8, 0}), ("F-7", {5, 8, 0, 3}),
])
def test_chord_symbols(symbol, classes):
    assert chord(symbol) == classes


def notes_starting_by_bar(path):
    """``[(bar, pitch)]`` of every note the MIDI file starts, bars from its ticks and time signature; and its tempi."""
    midi = mido.MidiFile(path)
    numerator, denominator, tempi, starts = 4, 4, set(), []
    for tick, message in _absolute(midi):
        if message.type == "time_signature":
            assert tick == 0, "one time signature, at the start"
            numerator, denominator = message.numerator, message.denominator
        elif message.type == "set_tempo":
            tempi.add(message.tempo)
        elif message.type == "note_on" and message.velocity > 0:
            starts.append((tick, message.note))
    ticks_per_bar = midi.ticks_per_beat * numerator * 4 // denominator
    return [(tick // ticks_per_bar, pitch) for tick, pitch in starts], tempi


def _absolute(midi):
    for track in midi.tracks:
        tick = 0
        for message in track:
            tick += message.time
            yield tick, message


def shipped(name):
    return mgf.load_model(mgf.get_representation(name).default_bundle)


STEPS = {"notes": 128, "midi": 600}  # 8 bars of 16ths; about 10 s (5 bars) of the chorale model's music


@pytest.fixture(scope="module")
def c_calls():
    """Counts the C loop's calls (the kernel's ``generate``), to show where a run went."""
    from mgf.kernel import _native

    calls, generate = [], _native.generate
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_native, "generate", lambda *args: calls.append(1) or generate(*args))
        yield calls


@pytest.mark.parametrize("name", ["notes", "midi"])
def test_the_c_loop_gives_the_python_loops_tokens_and_the_files_hold_only_chord_tones(name, c_calls, monkeypatch,
                                                                                       tmp_path):
    """20 seeds on the shipped model (its own default constraints included): the C loop runs the rules and gives the
    Python loop's tokens; every note the written file starts is a tone of its bar's chord, at 120 qpm."""
    model = shipped(name)
    kwargs = dict(constraints=["chord-tones"], chords=PROGRESSION)
    started = 0
    for seed in SEEDS:
        before = len(c_calls)
        fast = mgf.generate(model, STEPS[name], seed=seed, **kwargs)
        assert len(c_calls) > before, "the loop ran in Python, not in C"
        with monkeypatch.context() as patch:
            patch.setenv("MGF_PYTHON_LOOP", "1")
            slow = mgf.generate(model, STEPS[name], seed=seed, **kwargs)
        np.testing.assert_array_equal(fast, slow, err_msg=f"seed {seed}")
        path = tmp_path / f"{seed}.mid"
        model.representation.write(fast, path)
        notes, tempi = notes_starting_by_bar(path)
        assert tempi == {500_000}  # 120 quarter notes a minute, as both representations write
        wrong = [(bar, pitch) for bar, pitch in notes if pitch % 12 not in TONES[bar % len(TONES)]]
        assert not wrong, f"seed {seed}: notes outside the bar's chord {wrong}"
        assert len({bar for bar, _ in notes}) >= 4, f"seed {seed}: too few bars to show anything"
        started += len(notes)
    assert started >= 20 * 8


@pytest.mark.parametrize("name", ["notes", "midi"])
def test_without_the_constraint_the_models_leave_the_chords(name, tmp_path):
    """What the test above checks can fail: the same seeds without chord-tones start notes outside the chords."""
    model = shipped(name)
    wrong = 0
    for seed in range(3):
        path = tmp_path / f"{seed}.mid"
        model.representation.write(mgf.generate(model, STEPS[name], seed=seed), path)
        notes, _ = notes_starting_by_bar(path)
        wrong += sum(pitch % 12 not in TONES[bar % len(TONES)] for bar, pitch in notes)
    assert wrong > 5


def grid_bars(pieces, representation):
    """The bar each token falls in, by the documented token layouts: ``notes`` one 16th a token (16 a bar), ``midi``
    after the TIME_SHIFTs before it (tokens 256.. move time by 1.. steps of 10 ms; a bar at 120 qpm is 2 s)."""
    if representation.name == "notes":
        return np.broadcast_to(np.arange(pieces.shape[1]) // 16, pieces.shape)
    shifts = np.where((pieces >= 256) & (pieces < 356), pieces - 255, 0)
    return (np.cumsum(shifts, axis=1) - shifts) // 200


def started_pitches(pieces, representation):
    """MIDI pitch each token starts, -1 for none, by the documented layouts."""
    if representation.name == "notes":
        return np.where((pieces >= 2) & (pieces < representation.start_token), pieces - 2 + 48, -1)
    return np.where(pieces < 128, pieces, -1)


class TestChordTones(mgf.testing.ConstraintContract):
    name = "chord-tones"
    plugin = mgf_chord_tones
    representation = "notes"
    options = {"chords": "Dm7 G7 Cmaj7 A7"}
    tones = [{2, 5, 9, 0}, {7, 11, 2, 5}, {0, 4, 7, 11}, {9, 1, 4, 7}]
    refuses = ("tokens",)
    bad_options = ({"chords": ""}, {"chords": "C H"}, {"chords": "Cmaj9"}, {"chords": "c"})

    def assert_obeyed(self, pieces, representation):
        bars, pitches = grid_bars(pieces, representation), started_pitches(pieces, representation)
        for bar, pitch in zip(bars[pitches >= 0], pitches[pitches >= 0]):
            assert pitch % 12 in self.tones[bar % len(self.tones)], (bar, pitch)


class TestChordTonesOnMidi(TestChordTones):
    representation = "midi"


class TestMaxNotesPerBar(mgf.testing.ConstraintContract):
    name = "max-notes-per-bar"
    plugin = mgf_chord_tones
    representation = "notes"
    options = {"max_notes": 3}
    refuses = ("tokens",)
    bad_options = ({"max_notes": -1},)

    def assert_obeyed(self, pieces, representation):
        bars, pitches = grid_bars(pieces, representation), started_pitches(pieces, representation)
        for row_bars, row_pitches in zip(bars, pitches):
            assert np.bincount(row_bars[row_pitches >= 0]).max(initial=0) <= self.options["max_notes"]


class TestMaxNotesPerBarOnMidi(TestMaxNotesPerBar):
    representation = "midi"
    options = {"max_notes": 5}


def test_both_together_in_c_and_in_python(c_calls, monkeypatch, tmp_path):
    model = shipped("midi")
    kwargs = dict(constraints=["chord-tones", "max-notes-per-bar"], chords="Am Dm E7 Am", max_notes=6, num_outputs=4)
    fast = mgf.generate(model, 800, seed=1, **kwargs)
    assert c_calls
    monkeypatch.setenv("MGF_PYTHON_LOOP", "1")
    np.testing.assert_array_equal(fast, mgf.generate(model, 800, seed=1, **kwargs))
    for row, piece in enumerate(fast):
        path = tmp_path / f"{row}.mid"
        model.representation.write(piece, path)
        notes, _ = notes_starting_by_bar(path)
        bars = [bar for bar, _ in notes]
        assert notes and max(bars.count(bar) for bar in set(bars)) <= 6
        assert all(pitch % 12 in [{9, 0, 4}, {2, 5, 9}, {4, 8, 11, 2}, {9, 0, 4}][bar % 4] for bar, pitch in notes)


@pytest.mark.parametrize("chords, message", [("", "is empty"), ("C X", "does not start with a root"),
                                             ("C Csus4", "unknown chord quality 'sus4'")])
def test_a_bad_progression_is_one_usage_error(chords, message):
    model = mgf.load_model(mgf.get_representation("notes").default_bundle)
    model.defaults = {}  # the shipped model's follow-chords reads --chords too, and would name the bad chord first
    with pytest.raises(mgf.UsageError, match=message) as error:
        mgf.generate(model, 4, constraints=["chord-tones"], chords=chords)
    assert "\n" not in str(error.value)


def test_a_representation_without_a_clock_is_refused_in_one_line(tmp_path):
    with pytest.raises(mgf.UsageError, match=r"^constraint 'chord-tones' needs to know where tokens fall in time, "
                                             r"and representation 'tokens' has no clock") as error:
        mgf.generate(shipped("tokens"), 4, constraints=["chord-tones"])
    assert "\n" not in str(error.value)
