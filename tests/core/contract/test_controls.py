"""Attribute controls (mgf.contract.controls): what the built-ins read from music, how their tokens are interleaved and
chosen, and every error a user or a bundle can cause."""

import json
import subprocess
import sys

import numpy as np
import pytest

import mgf
import mgf.music.corpus
from mgf import BundleError, Conditioned, UsageError
from mgf.contract import bundle
from mgf.contract.controls import BarNotes, bar_table, interleave, resolve
from mgf.generation.api import checked_run
from mgf.plugins.controls.harmony import CHORD_LABELS, KEY_LABELS, chord_tones, key_scale
from helpers.controls import conditioned_bundle, conditioned_made, plain_model

NOTES = mgf.get_representation("notes")
MIDI = mgf.get_representation("midi")


def notes_of(*bars):
    """BarNotes of bars given as lists of (pitch, start, end) steps within a 16-step bar."""
    rows = [(p, 90, b * 16 + s, b * 16 + e) for b, bar in enumerate(bars) for p, s, e in bar]
    a = np.array(rows, np.int64).reshape(-1, 4)
    return BarNotes(a[:, 0], a[:, 1], a[:, 2], a[:, 3], len(bars), 16, False)


def chords_of(notes):
    control = mgf.plugin_class("controls", "chord")()
    return [CHORD_LABELS[i] for i in control.extract(notes, CHORD_LABELS)]


def test_chord_is_the_triad_that_covers_most_of_the_bar():
    bars = notes_of([(60, 0, 4), (64, 4, 8), (67, 8, 16)],  # C E G
                    [(69, 0, 8), (72, 8, 12), (76, 12, 16)],  # A C E
                    [(67, 0, 4), (71, 4, 8), (74, 8, 12), (65, 12, 13)],  # G B D, a passing F
                    [])  # silence
    assert chords_of(bars) == ["C", "Am", "G", "N"]
    for label in ("C", "Am", "F#m", "Bb"):  # a bar of just a triad's tones is that triad
        tones = [60 + t for t in chord_tones(label)]
        assert chords_of(notes_of([(p, 4 * i, 4 * i + 4) for i, p in enumerate(tones)])) == [label]


def test_the_key_agrees_with_music21_on_chorales():
    """Krumhansl-Kessler on the soprano line, against music21's analysis of the whole chorale."""
    music21 = pytest.importorskip("music21")
    control = mgf.plugin_class("controls", "key")()
    conditioned = Conditioned(NOTES, [(control, KEY_LABELS)])
    agree = 0
    names = ["bach/bwv66.6", "bach/bwv7.7", "bach/bwv10.7", "bach/bwv26.6", "bach/bwv40.8", "bach/bwv57.8"]
    for name in names:
        tokens = NOTES.read(mgf.music.corpus.resolve(f"corpus:{name}")[0])
        ours = KEY_LABELS[conditioned.extract(tokens)[0, 0] - conditioned.families[0].first]
        theirs = music21.corpus.parse(name).analyze("key")
        tonic = theirs.tonic.pitchClass
        agree += set(key_scale(ours)) == set((tonic + s) % 12 for s in ((0, 2, 4, 5, 7, 9, 11) if theirs.mode == "major"
                                                                        else (0, 2, 3, 5, 7, 8, 10)))
    assert agree >= len(names) - 1, agree  # the soprano alone may mistake one for its relative


def test_density_and_polyphony():
    density = mgf.plugin_class("controls", "density")()
    values = density.values(NOTES.clock())
    bars = notes_of([(60, i, i + 1) for i in range(6)], [(60, 0, 16)])
    assert [values[i] for i in density.extract(bars, values)] == ["6", "1"]
    midi_values = density.values(MIDI.clock())
    assert midi_values[-1] == "64+" and density.parse("14", midi_values) == midi_values.index("13-15")
    with pytest.raises(UsageError, match="past its range"):
        density.parse("17", values)
    polyphony = mgf.plugin_class("controls", "polyphony")()
    assert "monophonic" in polyphony.supports(NOTES.clock())
    chord = BarNotes(np.array([60, 64, 67]), np.full(3, 90), np.zeros(3, np.int64), np.full(3, 200), 1, 200, True)
    assert polyphony.values(MIDI.clock())[polyphony.extract(chord, polyphony.values(MIDI.clock()))[0]] == "3"


@pytest.mark.parametrize("text, label", [("Am", "Am"), ("A#", "Bb"), ("G7", "G"), ("Dm7", "Dm"), ("n", "N"),
                                         ("Ebmin", "Ebm")])
def test_chord_names(text, label):
    assert CHORD_LABELS[mgf.plugin_class("controls", "chord")().parse(text, CHORD_LABELS)] == label


@pytest.mark.parametrize("text, label", [("A minor", "A minor"), ("Am", "A minor"), ("a minor", "A minor"),
                                         ("F# major", "F# major"), ("Gb", "F# major"), ("Bbm", "Bb minor")])
def test_key_names(text, label):
    assert KEY_LABELS[mgf.plugin_class("controls", "key")().parse(text, KEY_LABELS)] == label


def test_interleave_puts_each_bars_controls_before_its_first_token():
    clock = NOTES.clock()
    tokens = NOTES.parse_primer("C4 - - - E4 - - - G4 - - - - - - - A4 - - - - - - - - - - - - - - - C5")
    controls = np.array([[100, 101], [102, 103], [104, 105]])
    out = interleave(clock, tokens, controls)
    assert out.tolist() == [100, 101, *tokens[:16].tolist(), 102, 103, *tokens[16:32].tolist(), 104, 105,
                            *tokens[32:].tolist()]
    # independently: the step of each music token, and a control pair exactly where a new bar's first token falls
    music = out[out < 100]
    assert np.array_equal(music, tokens)


def test_a_progression_repeats_and_lengths_combine():
    assert bar_table([(1, 2), (7,), (3, 4, 5)]).tolist() == [[1, 7, 3], [2, 7, 4], [1, 7, 5], [2, 7, 3], [1, 7, 4],
                                                             [2, 7, 5]]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return mgf.load_model(conditioned_bundle(tmp_path_factory.mktemp("c") / "c.safetensors", scale=2.0))


def raw_rows(model, steps, **settings):
    """A run's tokens with the control ids the model was made to choose."""
    run = checked_run(model, settings.pop("sampler", None), settings.pop("primer", None), settings.pop("seed", 0),
                      settings.pop("num_outputs", None), settings.pop("constraints", None), None, settings, steps=steps)
    return run, run._generate(steps * 2, steps)


def bar_starts(representation, row):
    """The music tokens of ``row`` (controls left out) and the index in it of each bar's first token."""
    music = representation.music(row)
    bars = representation.base.clock().steps(music)[:-1] // 16
    return music, np.flatnonzero(np.diff(np.concatenate([[-1], bars])) > 0)


@pytest.mark.parametrize("sampler", ["temperature", "greedy", "beam"])
def test_generation_chooses_the_progression_at_every_bar(model, sampler):
    representation = model.representation
    chord, key, density = representation.families
    asked = ["Am", "F", "C", "G"]
    run, rows = raw_rows(model, 150, chords=" ".join(asked), key="A minor", sampler=sampler, num_outputs=3)
    for row in rows:
        controls = row[representation.is_control(row)]
        music, starts = bar_starts(representation, row)
        assert len(controls) >= 3 * len(starts)
        triples = controls[: 3 * len(starts)].reshape(-1, 3)
        assert [chord.values[c - chord.first] for c in triples[:, 0]] == [asked[b % 4] for b in range(len(starts))]
        assert set(triples[:, 1]) == {key.first + key.values.index("A minor")} and set(triples[:, 2]) == {density.any}
        # each bar's three ids come right before its first token of music
        positions = np.flatnonzero(representation.is_control(row))
        expected = [start + 3 * b + k for b, start in enumerate(starts) for k in range(3)]
        assert positions[: len(expected)].tolist() == expected
    generated = mgf.generate(model, 150, sampler=sampler, chords=asked, key="A minor", seed=0, num_outputs=3)
    assert generated.shape == (3, 150) and not representation.is_control(generated).any()


def test_a_primer_keeps_its_own_controls_and_the_progression_starts_where_it_stops(model):
    representation = model.representation
    chord = representation.families[0]
    primer = NOTES.parse_primer("C4 - E4 - G4 - - - C4 - E4 - G4 - - - A4 - C5 - E5 - - - A4 - C5 - E5 - - - D4")
    run, rows = raw_rows(model, 40, chords="F", primer=primer, seed=1)
    row = np.concatenate([run.primer, rows[0]])
    controls = row[representation.is_control(row)].reshape(-1, 3)[:, 0]
    labels = [chord.values[c - chord.first] for c in controls]
    assert labels[:3] == ["C", "Am", "F"] and set(labels[2:]) == {"F"}  # bar 3 began in the primer: the asked chord


def test_plain_generation_of_a_conditioned_model_reads_any(model):
    representation = model.representation
    run, rows = raw_rows(model, 80, seed=2)
    anys = {family.any for family in representation.families}
    assert set(rows[0][representation.is_control(rows[0])].tolist()) == anys
    assert mgf.generate(model, 80, seed=2).shape == (80,)


def test_infill_with_controls_ends_exactly_and_keeps_the_outside(tmp_path):
    model = mgf.load_model(conditioned_bundle(tmp_path / "ci.safetensors", infill=True, scale=2.0))
    piece = NOTES.read(mgf.music.corpus.resolve("corpus:bach/bwv66.6")[0])
    i, j = mgf.contract.infill.gap_bounds(NOTES.clock(), piece, 2, 3)
    for seed in range(20):
        filled = mgf.infill_piece(model, piece, bars=(3, 4), seed=seed, chords="D A", key="F# minor", num_outputs=2,
                                  sampler="beam" if seed % 5 == 0 else None)
        for whole in filled:
            assert whole[:i].tolist() == piece[:i].tolist() and whole[len(whole) - (len(piece) - j):].tolist() == \
                piece[j:].tolist()
            assert NOTES.clock().steps(whole)[-1] == NOTES.clock().steps(piece)[-1]
            assert not model.representation.is_control(whole).any()


def test_errors_before_any_work(model, tmp_path):
    with pytest.raises(UsageError, match=r"'Hm' is not a chord it knows \(C, C#"):
        mgf.generate(model, 10, chords="Am Hm")
    with pytest.raises(UsageError, match="past its range"):
        mgf.generate(model, 10, density=40)
    with pytest.raises(UsageError, match="takes no control 'polyphony' .it takes: chord, key, density"):
        mgf.generate(model, 10, polyphony=2)
    plain = plain_model(hidden=(8,))
    with pytest.raises(UsageError, match="takes no controls .*mgf train --controls"):
        mgf.generate(plain, 10, chords="Am")
    assert mgf.generate(plain, 10, constraints=["scale"], key="D minor").shape == (10,)  # key: the scale's option
    path = conditioned_bundle(tmp_path / "c.safetensors")
    for args in (["--chords", "Xm"], ["--density", "99"], ["--control", "loudness=3"], ["--control", "chord"]):
        done = subprocess.run([sys.executable, "-m", "mgf.cli.main", "generate", "--bundle", str(path), "-o",
                               str(tmp_path / "o.mid"), *args], capture_output=True, text=True)
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, (args, done.stderr)
        assert not (tmp_path / "o.mid").exists()


def test_a_bundle_names_only_installed_controls_of_sane_values(tmp_path):
    made = conditioned_made()
    for controls, message in (([{"name": "nope", "values": ["a"]}] + made.controls[1:], "not installed"),
                              ([{"name": "chord", "values": ["a", "a"]}], "unique"),
                              ([{"name": "chord", "values": ["x" * 41]}], "labels"),
                              ("chord", "list")):
        broken = dict(made.metadata(), **{"mgf.controls": json.dumps(controls)})
        path = tmp_path / "b.safetensors"
        from safetensors.numpy import save_file
        save_file(made.tensors, str(path), metadata=broken)
        with pytest.raises(BundleError, match=message):
            mgf.load_model(path)


def test_resolve_without_controls_is_any_per_family(model):
    representation = model.representation
    assert resolve(representation, {}) == tuple((f.any,) for f in representation.families)
    with pytest.raises(UsageError):
        resolve(representation, {"chord": object()})


@pytest.mark.parametrize("gap", [False, True])
def test_a_frame_with_nothing_asked_reads_any_without_reading_the_music(model, monkeypatch, gap):
    """With no control asked every bar reads "any", so the music's notes are not read (0.15 s for 16,000 primer
    tokens); the frame is the one the notes would give with every control set to "any"."""
    from mgf.contract import controls

    piece = NOTES.read(mgf.music.corpus.resolve("corpus:bach/bwv66.6")[0])
    conditioned, clock = model.representation, NOTES.clock()
    before, after = (piece[:100], piece[160:]) if gap else (piece, None)
    end = int(clock.steps(piece[:160])[-1]) if gap else None
    anys = [(family.any,) for family in conditioned.families]
    asked_key = [(conditioned.families[1].first + 3,) if i == 1 else row for i, row in enumerate(anys)]
    full = controls.frame(conditioned, before, asked_key, after, end)  # a control asked: the notes are read
    monkeypatch.setattr(Conditioned, "bar_notes", lambda *a, **k: pytest.fail("the notes were read"))
    framed = controls.frame(conditioned, before, anys, after, end)
    key_ids = set(range(conditioned.families[1].first, conditioned.families[1].any + 1))
    as_any = {i: conditioned.families[1].any for i in key_ids}
    for ours, theirs in ((framed.before, full.before), (framed.after, full.after)):
        assert ours.tolist() == [as_any.get(t, t) for t in theirs.tolist()]
    assert (framed.first, framed.stop) == (full.first, full.stop) and len(framed.before) > len(before)


def test_cross_entropy_of_a_conditioned_model_counts_music_only(model):
    from mgf.training.baselines import model_cross_entropy

    piece = NOTES.read(mgf.music.corpus.resolve("corpus:bach/bwv66.6")[0])
    value = model_cross_entropy(model, [piece])
    # by hand: the model reads "any" at each bar, and only music targets count
    anys = np.array([[f.any for f in model.representation.families]])
    framed = interleave(model.representation.clock(), piece, anys)
    tokens = np.concatenate([[NOTES.start_token], framed])
    logits, state = model.prime(tokens[None, :1].astype(np.int32), model.initial_state(1))
    total, count = 0.0, 0
    for t in range(1, len(tokens)):
        if not model.representation.is_control(tokens[t]):
            total -= mgf.log_softmax(logits)[0, tokens[t]]
            count += 1
        logits, state = model.step(tokens[t:t + 1].astype(np.int32), state)
    assert count == len(piece) and value == pytest.approx(total / count, rel=1e-5)


class _Loud(mgf.Control):
    """A third party's control made in the test: the loudest velocity of the bar, binned."""

    name = "loud"

    def values(self, clock):
        return ("soft", "loud")

    def extract(self, notes, values):
        return np.array([int((notes.velocities[(notes.starts // notes.steps_per_bar) == b] > 80).any())
                         for b in range(notes.bars)], np.int64)


class _Broken(mgf.Control):
    name = "broken"

    def values(self, clock):
        return ("a",)

    def extract(self, notes, values):
        raise ZeroDivisionError("oops")


class _Plugin:
    @staticmethod
    @mgf.hookimpl
    def register_controls(register):
        register(_Loud)
        register(_Broken)
        register(int)  # not a control: skipped with a warning


def test_register_controls_takes_a_third_partys_and_guards_it():
    import mgf.testing

    with pytest.warns(mgf.PluginWarning, match="not a subclass of mgf.Control"), mgf.testing.registered(_Plugin):
        assert {"loud", "broken"} <= set(mgf.installed("controls"))
        loud, broken = mgf.plugin_class("controls", "loud")(), mgf.plugin_class("controls", "broken")()
        conditioned = Conditioned(NOTES, [(loud, ("soft", "loud")), (broken, ("a",))])
        piece = NOTES.parse_primer("C4 - - - - - - - - - - - - - - - D4")
        with pytest.raises(mgf.PluginError, match="oops"):
            conditioned.extract(piece)
        only = Conditioned(NOTES, [(loud, ("soft", "loud"))])
        assert only.extract(piece)[:, 0].tolist() == [only.families[0].first + 1] * 2  # notes write velocity 90


def test_a_stream_of_a_conditioned_model_yields_music_only(model):
    representation = model.representation
    whole = np.concatenate(list(mgf.stream(model, 96, seed=4, chunk=16, chords="C G")))
    assert not representation.is_control(whole).any() and len(whole) > 64
    with mgf.stream(model, 96, seed=4, chunk=16, events=True, chords="C G") as stream:
        events = [e for chunk in stream for e in chunk]
    assert events and all(e.pitch >= 0 for e in events)


def test_tokens_fed_to_a_conditioned_stream_carry_the_controls_of_the_bars_they_enter(model):
    """A player's tokens fed mid-stream get, before the first token of each bar they enter, that bar's controls:
    the progression asked for (it repeats), "any" for a control not asked."""
    representation = model.representation
    chord, others = representation.families[0], representation.families[1:]
    with mgf.stream(model, 200, seed=4, chunk=24, chords="C G") as stream:
        next(stream)
        stream.feed(NOTES.parse_primer(" ".join(["C4 - - - E4 - - - G4 - - -"] * 8)))
        next(stream)
        history = stream._history[0, :stream._length].copy()
    controls = representation.is_control(history)
    steps = NOTES.clock().steps(history[~controls])  # the music's clock; a control waits for the next music token
    music_index = np.cumsum(~controls) - ~controls  # per token: how many music tokens came before it
    seen = set()
    for token, before in zip(history[controls].tolist(), music_index[controls].tolist()):
        bar = int(steps[before]) // 16
        if chord.first <= token < chord.first + len(chord.values):
            assert chord.values[token - chord.first] == ("C" if bar % 2 == 0 else "G"), bar
            seen.add(bar)
        else:
            assert token in {family.any for family in others}
    assert len(seen) >= 8  # the chunks' bars and the fed ones'


def test_follow_chords_leans_any_model_to_the_chords_tones_and_waits_for_them():
    plain = plain_model(seed=3)
    pitches = NOTES.token_pitches()
    free = mgf.generate(plain, 320, seed=1, num_outputs=4)
    assert np.array_equal(mgf.generate(plain, 320, seed=1, num_outputs=4, constraints=["follow-chords"]), free)
    leaned = mgf.generate(plain, 320, seed=1, num_outputs=4, constraints=["follow-chords"], chords="C Am",
                          chord_bonus=20.0)
    for tokens in (free, leaned):
        onsets = np.flatnonzero(pitches[tokens.reshape(-1)] >= 0)
        assert onsets.size > 100
    steps = np.tile(np.arange(320), 4)
    for tokens, most in ((leaned, 0.05), (free, 1.0)):
        flat = tokens.reshape(-1)
        on = pitches[flat] >= 0
        tones = np.where((steps // 16) % 2 == 0, 0, 1)  # bar 0 C, bar 1 Am, ...
        wanted = np.array([{0, 4, 7}, {9, 0, 4}], dtype=object)[tones]
        off = [int(p % 12) not in w for p, w, o in zip(pitches[flat], wanted, on) if o]
        share = float(np.mean(off))
        assert (share < most) if most < 1 else share > 0.3, share  # random weights: most onsets off the chord
    with pytest.raises(UsageError, match="not a chord it knows"):
        mgf.generate(plain, 10, constraints=["follow-chords"], chords="C Hm")


def test_chords_steer_a_conditioned_model_and_follow_chords_at_once(model):
    run, rows = raw_rows(model, 64, chords="G", constraints=["follow-chords"], chord_bonus=20.0)
    chord = model.representation.family("chord")
    controls = rows[0][model.representation.is_control(rows[0])].reshape(-1, 3)
    assert set(controls[:, 0].tolist()) == {chord.first + chord.values.index("G")}
    music = model.representation.music(rows[0])
    started = NOTES.token_pitches()[music]
    assert set((started[started >= 0] % 12).tolist()) <= {7, 11, 2}


@pytest.mark.parametrize("args, message", [
    (["--repr", "audio", "--controls", "chord"], "has no bars"),
    (["--repr", "notes", "--controls", "polyphony"], "monophonic"),
    (["--repr", "notes", "--controls", "chord=2"], "dropout of 'chord' must be in [0, 1)"),
    (["--repr", "notes", "--controls", "nope"], "no control named 'nope'"),
])
def test_train_refuses_controls_it_cannot_use_before_any_work(args, message, tmp_path):
    done = subprocess.run([sys.executable, "-m", "mgf.cli.main", "train", "--data", str(tmp_path), *args, "-o",
                           str(tmp_path / "m.safetensors")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and message in done.stderr and len(done.stderr.splitlines()) == 1, done.stderr
    assert "tensorflow" not in done.stderr.lower() and not (tmp_path / "m.safetensors").exists()


def test_follow_key_leans_to_the_scale_and_waits_for_a_key():
    plain = plain_model(seed=5)
    pitches = NOTES.token_pitches()
    free = mgf.generate(plain, 400, seed=2, num_outputs=4)
    assert np.array_equal(mgf.generate(plain, 400, seed=2, num_outputs=4, constraints=["follow-key"]), free)
    scale = {(3 + step) % 12 for step in (0, 2, 4, 5, 7, 9, 11)}  # Eb major

    def share(tokens):
        started = pitches[tokens.reshape(-1)]
        started = started[started >= 0] % 12
        return float(np.isin(started, sorted(scale)).mean())

    leaned = mgf.generate(plain, 400, seed=2, num_outputs=4, constraints=["follow-key"], key="Eb major", key_bonus=6.0)
    assert share(free) < 0.8 < 0.97 < share(leaned)
    with pytest.raises(UsageError, match="'H' is not a note name"):
        mgf.generate(plain, 10, constraints=["follow-key"], key="H major")


def onsets_per_bar(tokens, pitches, per_bar=16, offset=0):
    """Notes that start in each whole bar of a notes row (one token a step), from step ``offset``."""
    started = pitches[np.asarray(tokens)] >= 0
    started = np.concatenate([np.zeros(offset, bool), started])
    return started[: len(started) // per_bar * per_bar].reshape(-1, per_bar).sum(1).tolist()


def test_follow_density_gives_each_bar_the_notes_asked_and_waits_for_a_density():
    plain = plain_model(seed=4)
    pitches = NOTES.token_pitches()
    free = mgf.generate(plain, 160, seed=2, num_outputs=4)
    assert np.array_equal(mgf.generate(plain, 160, seed=2, num_outputs=4, constraints=["follow-density"]), free)
    assert len({n for row in free for n in onsets_per_bar(row, pitches)}) > 3  # the model alone writes what it likes
    for asked, expected in (("0", [0]), ("16", [16]), ("5", [5]), ("3 9", [3, 9]), ("12, 1, 7", [12, 1, 7])):
        made = mgf.generate(plain, 160, seed=2, num_outputs=4, constraints=["follow-density"], density=asked)
        for row in made:
            assert onsets_per_bar(row, pitches) == [expected[b % len(expected)] for b in range(10)], asked
    # after a primer of a bar and a quarter (one note of bar 1 in it) the progression starts at the bar the first
    # token generated falls in, and counts the primer's notes there
    primer = NOTES.parse_primer("C4 - - - E4 - - - G4 - - - C5 - - - D4 - - -")
    whole = mgf.generate(plain, 140, seed=2, primer=primer, constraints=["follow-density"], density="4 8").reshape(-1)
    assert np.array_equal(whole[:len(primer)], primer)  # the primer, then what was generated
    assert onsets_per_bar(whole, pitches)[1:9] == [4, 8, 4, 8, 4, 8, 4, 8]


def test_follow_density_caps_a_time_shift_representation_and_refuses_bad_counts():
    midi = plain_model("midi", seed=1)
    pitches, clock = MIDI.token_pitches(), MIDI.clock()
    free = mgf.generate(midi, 600, seed=0, num_outputs=2)
    made = mgf.generate(midi, 600, seed=0, num_outputs=2, constraints=["follow-density"], density="3")
    for tokens, most in ((free, None), (made, 3)):
        counts = [np.bincount(clock.steps(row)[:-1][pitches[row] >= 0] // clock.steps_per_bar).max() for row in tokens]
        assert (max(counts) <= most) if most is not None else max(counts) > 3
    for bad, message in (("17", "past its range"), ("x", "not a count it knows"), (" ".join(["1"] * 65), "1 to 64")):
        with pytest.raises(UsageError, match=message):
            mgf.generate(plain_model(), 10, constraints=["follow-density"], density=bad)


def test_follow_density_on_a_fine_grid_keeps_its_table_bounded():
    """96 steps a quarter: bars of 384 steps.  The notes counted per bar stop one past the most a bar asks, so one count
    of 64 is a table of about a million entries (not 384 x 385 states); too many counts is one line."""
    fine = mgf.get_representation("notes", steps_per_quarter=96)
    made = bundle.random_bundle(fine.vocab_size, (16,), representation={"name": "notes", "config": fine.config()},
                                seed=2)
    model, pitches = mgf.load_model(made), fine.token_pitches()
    for asked, expected in (("64", [64, 64]), ("3 40", [3, 40])):
        tokens = mgf.generate(model, 768, seed=1, constraints=["follow-density"], density=asked)
        assert onsets_per_bar(tokens, pitches, per_bar=384) == expected, asked
    with pytest.raises(UsageError, match="give fewer counts"):
        mgf.generate(model, 10, constraints=["follow-density"], density=" ".join(str(64 - n) for n in range(64)))


def test_the_shipped_notes_model_writes_silent_and_full_bars_when_asked():
    shipped = mgf.load_model(mgf.packaged_model("notes.safetensors"))
    pitches = NOTES.token_pitches()
    for asked, count in (("0", 0), ("16", 16)):
        for row in mgf.generate(shipped, 64, seed=1, num_outputs=2, density=asked):  # the bundle's defaults
            assert onsets_per_bar(row, pitches) == [count] * 4
    # from Python a count is a number, a progression a list: the control and follow-density's text alike
    for asked, counts in ((3, [3]), (np.int64(7), [7]), ([2, 6], [2, 6]), (["1", 5], [1, 5])):
        made = mgf.generate(shipped, 64, seed=1, density=asked)
        assert onsets_per_bar(made, pitches) == [counts[b % len(counts)] for b in range(4)], asked


def test_follow_chords_moves_probability_among_notes_only(model):
    """The bonus makes the chord's tones likelier than other notes, not notes likelier than holds and rests: notes per
    bar stay near what the model writes without it (a plain bonus made every step a new note)."""
    counts = {}
    for bonus in (0.0, 4.0):
        made = mgf.generate(model, 256, seed=0, num_outputs=16, chords="C", chord_bonus=bonus, constraints=["follow-chords"])
        counts[bonus] = np.mean([len(NOTES.to_notes(row)) for row in made])
    assert abs(counts[4.0] - counts[0.0]) < 0.25 * counts[0.0], counts


def test_the_readme_call_on_the_shipped_model():
    """README, "Steering the music": a progression as a list reaches the chord control and follow-chords alike."""
    model = mgf.load_model(mgf.packaged_model("notes.safetensors"))
    tokens = mgf.generate(model, 256, chords=["Am", "F"], key="A minor", density=4, seed=1)
    assert tokens.shape == (256,)
    assert np.array_equal(tokens, mgf.generate(model, 256, chords="Am F", key="A minor", density=4, seed=1))
    assert 2.5 < len(NOTES.to_notes(tokens)) / 16 < 5.5  # about the four notes a bar asked
