"""The infilling contract: the wrapper representation, the example layout, gaps by bars and seconds, ``mgf.infill`` in bundles."""

import json

import numpy as np
import pytest
from safetensors.numpy import save_file

import mgf
from mgf import BundleError, Clock, InfillTokens, Infilling, InputError, TokenKind, UsageError
from mgf.contract import bundle
from mgf.contract.infill import gap_bounds, gap_bounds_seconds, sequence
from mgf.generation.api import representation_of

CHORALES = ["corpus:bach/bwv66.6", "corpus:bach/bwv10.7", "corpus:bach/bwv101.7"]


@pytest.fixture(scope="module")
def notes():
    return mgf.get_representation("notes")


@pytest.fixture(scope="module")
def chorale(notes):
    return notes.read(CHORALES[0])


def test_the_four_ids_follow_the_vocabulary_and_frame_an_example():
    ids = InfillTokens.after(40)
    assert (ids.suffix, ids.prefix, ids.middle, ids.end) == (40, 41, 42, 43)
    assert ids.as_dict() == {"suffix": 40, "prefix": 41, "middle": 42, "end": 43}
    example = sequence(ids, before=[1, 2], after=[3], middle=[4, 5])
    assert example.dtype == np.int32 and example.tolist() == [40, 3, 41, 1, 2, 42, 4, 5, 43]
    assert sequence(ids, before=[1, 2], after=[]).tolist() == [40, 41, 1, 2, 42]  # a prompt ends at MIDDLE
    with pytest.raises(InputError, match="after must be token ids of music \\(below 40"):
        sequence(ids, before=[1], after=[41])


def test_the_wrapper_is_the_base_with_four_ids_that_are_not_music(notes, chorale, tmp_path):
    wrapped = Infilling(notes)
    size = notes.vocab_size
    assert wrapped.vocab_size == size + 4 and wrapped.base is notes and wrapped.infill == InfillTokens.after(size)
    assert (wrapped.name, wrapped.config(), wrapped.start_token, wrapped.suffix) == (
        notes.name, notes.config(), notes.start_token, notes.suffix)
    np.testing.assert_array_equal(wrapped.read(CHORALES[0]), chorale)
    np.testing.assert_array_equal(wrapped.token_pitches(), np.r_[notes.token_pitches(), [-1] * 4])
    clock, base = wrapped.clock(), notes.clock()
    assert clock.vocab_size == size + 4 and clock.steps_per_bar == base.steps_per_bar
    assert (clock.kinds[size:] == TokenKind.OTHER).all() and (clock.pitches[size:] == -1).all() and (clock.advance[size:] == 0).all()
    np.testing.assert_array_equal(clock.steps(chorale), base.steps(chorale))
    framed = np.r_[chorale[:20], [size + 3]]
    for refused in (lambda: wrapped.write(framed, tmp_path / "x.mid"), lambda: wrapped.to_notes(framed)):
        with pytest.raises(InputError, match=f"token {size + 3} is an infilling token \\(end\\)"):
            refused()
    assert not (tmp_path / "x.mid").exists()
    wrapped.write(chorale, tmp_path / "same.mid")
    notes.write(chorale, tmp_path / "base.mid")
    assert (tmp_path / "same.mid").read_bytes() == (tmp_path / "base.mid").read_bytes()
    assert wrapped.to_notes(chorale) == notes.to_notes(chorale)
    with pytest.raises(UsageError, match="already has infilling tokens"):
        Infilling(wrapped)


def test_the_decoder_gives_the_base_events_and_refuses_the_ids(notes, chorale):
    wrapped, base = Infilling(notes).decoder(), notes.decoder()
    events = [e for token in chorale[:64] for e in wrapped.feed(token)] + wrapped.close()
    assert events and events == [e for token in chorale[:64] for e in base.feed(token)] + base.close()
    decoder = Infilling(notes).decoder()
    with pytest.raises(InputError, match="infilling token \\(suffix\\)"):
        decoder.feed(notes.vocab_size)
    with pytest.raises(InputError, match="outside"):
        decoder.feed(notes.vocab_size + 4)


def test_transposition_moves_the_music_and_keeps_the_ids(notes, chorale):
    wrapped = Infilling(notes)
    ids = wrapped.infill
    example = sequence(ids, chorale[:10], chorale[20:30], chorale[10:20])
    moved = wrapped.transpose(example, 2)
    framing = example >= ids.suffix
    np.testing.assert_array_equal(moved[framing], example[framing])
    np.testing.assert_array_equal(moved[~framing], notes.transpose(example[~framing], 2))
    assert wrapped.transpose(example, 200) is None


def _infill_metadata(size):
    return {"format": "spm", "tokens": InfillTokens.after(size).as_dict(), "rate": 0.5, "context": 32, "gap": "bars"}


def test_a_bundle_that_can_infill_round_trips_and_loads_wrapped(notes, tmp_path):
    size = notes.vocab_size
    made = bundle.random_bundle(size + 4, (8,), 4, representation={"name": "notes", "config": notes.config()})
    made.infill = _infill_metadata(size)
    path = tmp_path / "m.safetensors"
    bundle.write(made, path)
    assert bundle.read(path).infill == made.infill == bundle.read(path, weights=False).infill
    assert json.loads(bundle.read(path).metadata()["mgf.infill"]) == made.infill
    model = mgf.load_model(path)
    assert isinstance(model.representation, Infilling) and model.representation.vocab_size == model.vocab_size == size + 4
    assert isinstance(representation_of(path), Infilling)
    plain = bundle.random_bundle(size, (8,), 4, representation={"name": "notes", "config": notes.config()})
    bundle.write(plain, tmp_path / "plain.safetensors")
    assert bundle.read(tmp_path / "plain.safetensors").infill is None
    assert "mgf.infill" not in plain.metadata()
    assert not isinstance(mgf.load_model(tmp_path / "plain.safetensors").representation, Infilling)


@pytest.mark.parametrize("change, message", [
    (lambda m: m.update(tokens={"suffix": 40, "prefix": 41, "middle": 43, "end": 42}), "tokens must be "),
    (lambda m: m.update(rate=0), "rate must be a number in (0, 1], got 0"),
    (lambda m: m.update(rate="half"), "rate must be a number"),
    (lambda m: m.update(context=0), "context must be a positive integer"),
    (lambda m: m.update(gap="beats"), "gap must be one of bars, tokens, got 'beats'"),
    (lambda m: m.update(format="psm"), "format 'psm' is not supported"),
    (lambda m: m.update(order=1), "has an unknown key 'order'"),
    (lambda m: m.pop("gap"), "lacks the key 'gap'"),
])
def test_a_malformed_mgf_infill_is_one_line(tmp_path, change, message):
    made = bundle.random_bundle(44, (4,), seed=0)
    infill = _infill_metadata(40)
    change(infill)
    path = tmp_path / "bad.safetensors"
    save_file(made.tensors, str(path), metadata={**made.metadata(), "mgf.infill": json.dumps(infill)})
    for read in (lambda: bundle.read(path), lambda: bundle.read(path, weights=False)):
        with pytest.raises(BundleError) as error:
            read()
        assert message in str(error.value) and str(path) in str(error.value) and "\n" not in str(error.value)
    made.infill = infill
    with pytest.raises(BundleError, match="mgf.infill"):  # never written either
        bundle.write(made, tmp_path / "never.safetensors")
    assert not (tmp_path / "never.safetensors").exists()


def test_tokens_that_do_not_fit_the_model_are_refused(tmp_path):
    made = bundle.random_bundle(44, (4,), seed=0)
    path = tmp_path / "bad.safetensors"
    save_file(made.tensors, str(path), metadata={**made.metadata(), "mgf.infill": json.dumps(_infill_metadata(44))})
    with pytest.raises(BundleError, match='must be {"suffix": 40, "prefix": 41, "middle": 42, "end": 43} for a model of 44 ids'):
        bundle.read(path)


# A hand-built clock: 4 steps a bar; 0 rests a step, 1 holds two, 2 starts a note (moving none), 3 is a BAR, 4 moves
# to the third step of the bar.
HAND = Clock(kinds=[TokenKind.REST, TokenKind.HOLD, TokenKind.NOTE_ON, TokenKind.BAR, TokenKind.POSITION],
             pitches=[-1, -1, 60, -1, -1], advance=[1, 2, 0, 0, 2], step_seconds=0.25, steps_per_beat=1, beats_per_bar=4)


def test_gaps_by_bars_on_a_hand_built_clock():
    tokens = [2, 1, 0, 0, 2, 1, 2, 1, 1, 1]
    # falls at steps 0 0 2 3 4 4 6 6 8 10, ends at 12: bar 0 is tokens 0-3, bar 1 tokens 4-7, bar 2 tokens 8-9
    assert gap_bounds(HAND, tokens, 1, 1) == (4, 8)
    assert gap_bounds(HAND, tokens, 0, 1) == (0, 8)
    assert gap_bounds(HAND, tokens, 2, 2) == (8, 10)
    assert gap_bounds(HAND, tokens, 3, 5) == (10, 10)  # beyond the music: an empty gap
    remi = [3, 2, 4, 2, 3, 2, 3, 3, 4, 2]
    # falls at 0 0 0 2 2 4 4 8 12 14: a BAR falls where the row is before it moves, so the BAR that opens bar 1
    # (token 4, at step 2) is the music before its gap, and the one that opens bar 2 (token 6, at 4) is in it
    assert gap_bounds(HAND, remi, 1, 1) == (5, 7)
    assert gap_bounds(HAND, remi, 1, 2) == (5, 8)
    assert gap_bounds(HAND, remi, 3, 3) == (8, 10)
    with pytest.raises(UsageError, match="from 0 up"):
        gap_bounds(HAND, tokens, 2, 1)
    meterless = Clock([0, 0], [-1, -1], [1, 0], 0.01, 0, 0)
    with pytest.raises(UsageError, match="no bars; give the gap in seconds"):
        gap_bounds(meterless, [0, 0], 0, 0)


def test_gaps_by_seconds_on_a_hand_built_clock():
    tokens = [2, 1, 0, 0, 2, 1, 2, 1, 1, 1]
    assert gap_bounds_seconds(HAND, tokens, 0.75, 1.5) == (3, 6)  # steps 3 to 6
    assert gap_bounds_seconds(HAND, tokens, 0.7, 1.5) == (3, 6)  # 2.8 steps: the first grid step after
    hundredths = Clock([0], [-1], [1], 0.01, 0, 0)
    assert gap_bounds_seconds(hundredths, [0] * 100, 0.07, 0.6) == (7, 60)  # 0.07 / 0.01 == 7.000000000000001
    with pytest.raises(UsageError, match="0 <= A < B"):
        gap_bounds_seconds(HAND, tokens, 1.0, 1.0)


@pytest.mark.parametrize("name", ["notes", "midi"])
@pytest.mark.parametrize("source", CHORALES)
def test_gaps_of_real_music_cover_their_bars_and_hold_their_notes(name, source):
    """On chorales from music21's corpus: the gap of bars 2-4 starts at the first token of bar 2 and ends at that of
    bar 5, and the notes its tokens start are those ``to_notes`` (the representation's own decoding) puts in them."""
    representation = mgf.get_representation(name)
    clock, tokens = representation.clock(), representation.read(source)
    steps, per_bar = clock.steps(tokens), clock.steps_per_bar
    i, j = gap_bounds(clock, tokens, 2, 4)
    assert 0 < i < j < len(tokens)
    assert steps[i - 1] < 2 * per_bar <= steps[i] and steps[j - 1] < 5 * per_bar <= steps[j]
    if name == "notes":  # one token a step: the gap is the bars' steps exactly
        assert (steps[i], steps[j]) == (2 * per_bar, 5 * per_bar) and j - i == 3 * per_bar
    seconds = per_bar * clock.step_seconds
    inside = sorted(p for p, _, start, _ in representation.to_notes(tokens) if 2 * seconds - 1e-9 <= start < 5 * seconds - 1e-9)
    started = sorted(int(clock.pitches[t]) for t in tokens[i:j] if clock.kinds[t] == TokenKind.NOTE_ON)
    assert inside and started == inside
    assert gap_bounds_seconds(clock, tokens, 2 * seconds, 5 * seconds) == (i, j)
