"""mgf.infill and mgf.infill_piece: the clock's guarantees hold for any weights (random ones here), on real pieces.

The middle ends exactly where the gap ends, the music outside the gap is written back event for event (read back
from the written files with mido), no note of the middle sounds on across the gap's end unless the piece held one
there, and none of this depends on the sampler: temperature, beam search, batches, constraints.
"""

import collections
import dataclasses
import warnings

import mido
import numpy as np
import pytest

import mgf
from mgf.contract.bundle import random_bundle
from mgf.contract.infill import InfillTokens, gap_bounds

from helpers.infill import infill_made, note_events

CHORALE = "corpus:bach/bwv7.7"  # 18 bars of notes, 45 s of midi


def infill_model(name, hidden=(32,), seed=0, context=64):
    """A model of random weights over ``name``'s vocabulary and the four infilling ids, as mgf train --infill writes."""
    return mgf.load_model(infill_made(name, hidden, seed, context))


@pytest.fixture(scope="module")
def pieces():
    return {name: mgf.get_representation(name).read(CHORALE) for name in ("notes", "midi")}


def sounding(clock, tokens):
    """The pitches sounding after ``tokens`` (NOTE_ON, NOTE_OFF, REST), by the clock alone."""
    now = set()
    for kind, pitch in zip(clock.kinds[tokens].tolist(), clock.pitches[tokens].tolist()):
        if kind == mgf.TokenKind.NOTE_ON:
            now.add(pitch)
        elif kind == mgf.TokenKind.NOTE_OFF:
            now.discard(pitch)
        elif kind == mgf.TokenKind.REST:
            now.clear()
    return now


def check_filled(model, piece, filled, i, j):
    """``filled`` is ``piece`` with ``piece[i:j]`` replaced by a middle of music that advances exactly as far."""
    clock, V = model.representation.clock(), model.representation.base.vocab_size
    m = len(filled) - (len(piece) - (j - i))
    middle = filled[i:i + m]
    assert (filled[:i] == piece[:i]).all() and (filled[i + m:] == piece[j:]).all()
    assert middle.size and middle.max() < V and (middle != model.representation.start_token).all()
    steps, new = clock.steps(piece), clock.steps(filled)
    assert new[i + m] == steps[j] and new[-1] == steps[-1]  # the gap's end, and every bar after it, where they were
    assert not (new[i:i + m] > steps[j]).any()
    return middle


@pytest.mark.parametrize("name", ["notes", "midi"])
def test_the_middle_ends_exactly_at_the_gaps_end_for_100_seeds(name, pieces):
    model, piece = infill_model(name), pieces[name]
    clock = model.representation.clock()
    i, j = gap_bounds(clock, piece, 4, 7)
    held = sounding(clock, piece[:j])  # what the piece holds across the gap's end
    for seed in range(100):
        filled = mgf.infill_piece(model, piece, bars=(5, 8), seed=seed)
        middle = check_filled(model, piece, filled, i, j)
        if name == "midi":  # notes: a pitch ends the note before it, which the clock does not say
            assert sounding(clock, np.concatenate([piece[:i], middle])) <= held, seed


def test_audio_frames_fill_a_gap_in_seconds_exactly_for_100_seeds():
    model = infill_model("audio")
    clock = model.representation.clock()
    piece = np.random.default_rng(0).integers(0, 256, 300).astype(np.int32)  # 7 s of frames
    i, j = mgf.contract.infill.gap_bounds_seconds(clock, piece, 2.0, 4.5)
    for seed in range(100):
        check_filled(model, piece, mgf.infill_piece(model, piece, seconds=(2.0, 4.5), seed=seed), i, j)


def test_a_gap_in_seconds_ends_on_its_grid_step_in_one_batch(pieces):
    model, piece = infill_model("midi", seed=3), pieces["midi"]
    clock = model.representation.clock()
    i, j = mgf.contract.infill.gap_bounds_seconds(clock, piece, 10.0, 20.0)
    takes = mgf.infill_piece(model, piece, seconds=(10.0, 20.0), seed=1, num_outputs=8)
    assert len(takes) == 8 and len({take.tobytes() for take in takes}) == 8
    for take in takes:
        check_filled(model, piece, take, i, j)


def events(path):
    """``{tick: Counter of (type, note, velocity)}`` of a MIDI file's notes."""
    found = collections.defaultdict(collections.Counter)
    for tick, *event in note_events(path):
        found[tick][tuple(event)] += 1
    return found


@pytest.mark.parametrize("name", ["notes", "midi"])
def test_outside_the_gap_the_written_file_has_the_pieces_events(name, pieces, tmp_path):
    model, piece = infill_model(name, seed=5), pieces[name]
    representation = model.representation
    clock = representation.clock()
    i, j = gap_bounds(clock, piece, 4, 7)
    steps = clock.steps(piece)
    representation.write(piece, tmp_path / "piece.mid")
    original = events(tmp_path / "piece.mid")
    per_step = mido.MidiFile(tmp_path / "piece.mid").ticks_per_beat / clock.steps_per_beat  # ticks, rounded when written
    start, end = (round(steps[k] * per_step) for k in (i, j))
    for seed in range(5):
        infilled = mgf.infill_piece(model, piece, bars=(5, 8), seed=seed)
        representation.write(infilled, tmp_path / "filled.mid")
        filled = events(tmp_path / "filled.mid")
        for tick in set(original) | set(filled):
            if tick < start or tick > end:
                assert original.get(tick) == filled.get(tick), (seed, tick)
        # at the gap's end: the piece's notes start, and the middle's end; a note the piece held across it ends
        # there too, unless the middle did not leave it sounding (notes: the piece's first token ends any note)
        assert onsets(original[end]) == onsets(filled[end]), seed
        if name == "midi":
            m = len(infilled) - (len(piece) - (j - i))
            silent = sounding(clock, piece[:j]) - sounding(clock, infilled[:i + m])
            assert {pitch for kind, pitch, _ in original[end] - filled[end]} <= silent, seed


def onsets(counter):
    return collections.Counter({event: count for event, count in counter.items() if event[0] == "on"})


def test_beam_search_and_batches_end_exactly_too(pieces):
    """Exhaustive and sampled beams: the most probable path of random weights may never move time on its own."""
    for name, gap in (("notes", (5, 8)), ("midi", (5, 5))):
        model, piece = infill_model(name, hidden=(16,)), pieces[name]
        i, j = gap_bounds(model.representation.clock(), piece, gap[0] - 1, gap[1] - 1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # beam search may say that a take repeats a token: an ended one is END, END...
            takes = mgf.infill_piece(model, piece, bars=gap, sampler="beam", beam_size=3, num_outputs=2)
            assert len(takes) == 2 and takes[0].tobytes() != takes[1].tobytes()
            for take in takes:
                check_filled(model, piece, take, i, j)
            sampled = mgf.infill_piece(model, piece, bars=gap, sampler="beam", beam_size=2, branch_factor=2, seed=4,
                                       num_outputs=3)
        assert len(sampled) == 3
        for take in sampled:
            check_filled(model, piece, take, i, j)


def test_constraints_and_processors_reach_the_middle(pieces):
    model, piece = infill_model("notes", seed=2), pieces["notes"]
    clock = model.representation.clock()
    i, j = gap_bounds(clock, piece, 4, 7)
    for seed in range(10):
        filled = mgf.infill_piece(model, piece, bars=(5, 8), seed=seed, constraints=["pitch-range"], low="C4", high="G4",
                                  processors=[mgf.TopK(5)])
        middle = check_filled(model, piece, filled, i, j)
        pitches = clock.pitches[middle]
        assert ((pitches == -1) | ((pitches >= 60) & (pitches <= 67))).all()


def test_a_middle_that_ended_waits_for_the_others_whatever_the_constraints(pieces):
    """hold-limit (the shipped notes model's default) forbids a token after a few in a row: END's padding too."""
    model, piece = infill_model("midi", seed=9), pieces["midi"]
    i, j = gap_bounds(model.representation.clock(), piece, 4, 5)
    for take in mgf.infill_piece(model, piece, bars=(5, 6), seed=0, num_outputs=8, constraints=["hold-limit"],
                                 max_holds=2):
        check_filled(model, piece, take, i, j)


def test_the_api_fills_between_before_and_after_and_gives_the_middle():
    model = infill_model("notes", seed=4)
    rng = np.random.default_rng(0)
    before, after = rng.integers(0, 39, 40).astype(np.int32), rng.integers(0, 39, 24).astype(np.int32)
    middle = mgf.infill(model, before, after, length=32, seed=1)
    assert middle.dtype == np.int32 and len(middle) == 32  # notes: one token, one step
    assert mgf.infill(model, before, after, length=32, seed=1).tolist() == middle.tolist()  # equal seeds, equal middles
    middles = mgf.infill(model, before, after, length=7, seed=1, num_outputs=3)
    assert isinstance(middles, list) and [len(m) for m in middles] == [7, 7, 7]


def test_a_middle_that_cannot_end_in_its_tokens_is_one_line():
    model = infill_model("notes")
    with pytest.raises(mgf.InputError, match="did not reach the gap's end within 10 tokens; raise max_tokens"):
        mgf.infill(model, [1, 2, 3], [4, 5], length=32, max_tokens=10, seed=0)


def test_without_a_clock_the_middle_ends_where_the_model_chooses():
    base = mgf.get_representation("tokens", vocab_size=12)
    made = random_bundle(16, (16,), representation={"name": "tokens", "config": base.config()}, seed=1, scale=3.0)
    made = dataclasses.replace(made, infill={"format": "spm", "tokens": InfillTokens.after(12).as_dict(), "rate": 0.5,
                                             "context": 8, "gap": "tokens"})
    model = mgf.load_model(made)
    middles = mgf.infill(model, [1, 2, 3], [4, 5], length=10, seed=0, num_outputs=20)
    assert all(m.size == 0 or m.max() < 12 for m in middles) and len({len(m) for m in middles}) > 1


def test_a_model_that_cannot_infill_says_how_to_train_one(pieces, make_bundle):
    model = mgf.load_model(make_bundle(vocab_size=20))
    for call in (lambda: mgf.infill(model, [1], [2], length=4), lambda: mgf.infill_piece(model, [1, 2], bars=(1, 1))):
        with pytest.raises(mgf.UsageError, match=r"cannot infill.*`mgf train --repr tokens --infill 0\.5"):
            call()


@pytest.mark.parametrize("gap, message", [
    (dict(bars=(17, 19)), "bars 17-19 run past the piece, which has 18 bar"),
    (dict(bars=(20, 21)), "run past the piece"),
    (dict(bars=(8, 5)), "first no later than the last"),
    (dict(bars=(0, 2)), "bars run from 1"),
    (dict(seconds=(10.0, 5.0)), "0 <= A < B"),
    (dict(seconds=(10.0, 99.0)), "run past the piece, which lasts"),
    (dict(), "as bars or as seconds"),
    (dict(bars=(1, 2), seconds=(1.0, 2.0)), "as bars or as seconds"),
])
def test_a_gap_outside_the_piece_is_one_line(gap, message, pieces):
    model = infill_model("notes")
    with pytest.raises(mgf.UsageError, match=message) as error:
        mgf.infill_piece(model, pieces["notes"], **gap)
    assert "\n" not in str(error.value)


def test_a_gap_where_no_token_falls_is_one_line():
    model = infill_model("midi")
    representation = model.representation.base
    shift = representation.shift0 + 99  # one second of silence: no token falls between 0.25 s and 0.5 s
    piece = np.array([60, shift, 128 + 60, shift, 62], np.int32)
    with pytest.raises(mgf.UsageError, match="no music falls in seconds 0.25-0.5 of the piece"):
        mgf.infill_piece(model, piece, seconds=(0.25, 0.5))


@pytest.mark.parametrize("python_loop", [False, True])
def test_plain_generation_with_an_infill_model_never_writes_the_framing_ids(python_loop, monkeypatch):
    if python_loop:
        monkeypatch.setenv("MGF_PYTHON_LOOP", "1")
    model = infill_model("notes", seed=6)
    V = model.representation.base.vocab_size
    tokens = mgf.generate(model, 2000, seed=0, num_outputs=4, temperature=2.0)
    assert tokens.max() < V
    streamed = np.concatenate(list(mgf.stream(model, steps=300, seed=0, temperature=2.0)))
    assert streamed.max() < V


def test_both_loops_fill_alike(pieces, monkeypatch):
    """The C loop and the Python loop (a step, then the same rules) give the same middles for a seed."""
    model, piece = infill_model("midi", seed=8), pieces["midi"]
    fast = mgf.infill_piece(model, piece, bars=(5, 6), seed=3, num_outputs=3, top_k=20)
    monkeypatch.setenv("MGF_PYTHON_LOOP", "1")
    slow = mgf.infill_piece(model, piece, bars=(5, 6), seed=3, num_outputs=3, top_k=20)
    assert [take.tolist() for take in fast] == [take.tolist() for take in slow]
