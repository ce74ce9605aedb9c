"""``mgf train --infill``'s examples (mgf.training.infill), on chorales from music21's corpus; no TensorFlow."""

import numpy as np
import pytest

import mgf
from mgf import Clock, InfillTokens, UsageError
from mgf.contract.infill import gap_bounds, gap_bounds_seconds
from mgf.music import corpus
from mgf.training.infill import MAX_GAP_BARS, Examples
from mgf.training.windows import windows

LENGTH, CONTEXT = 128, 32


@pytest.fixture(scope="module", params=["notes", "midi"])
def music(request):
    """``(representation, pieces)``: twelve chorales."""
    representation = mgf.get_representation(request.param)
    return representation, [representation.read(path) for path in corpus.resolve("corpus:bach")[:12]]


def _examples(representation, rate=0.5, context=CONTEXT, clock=None):
    return Examples(InfillTokens.after(representation.vocab_size), clock or representation.clock(), rate, context)


def _rows(pieces, length):
    """``(piece, first token)`` of each window, in the order of :func:`mgf.training.windows.windows`."""
    return [(p, first) for p, tokens in enumerate(pieces) for first in range(0, len(tokens), length)]


def _parts(row, ids):
    """``(before, middle, after)`` of an example row (``[start, SUFFIX, *after, PREFIX, *before, MIDDLE, *middle, END]``)."""
    row = row.tolist()
    suffix, prefix, middle, end = (row.index(token) for token in (ids.suffix, ids.prefix, ids.middle, ids.end))
    assert (suffix, row.count(ids.end)) == (0, 1) and suffix < prefix < middle < end
    return row[prefix + 1:middle], row[middle + 1:end], row[suffix + 1:prefix]


def _place(piece, before, middle, after, near):
    """Where ``before + middle + after`` is a slice of ``piece``: the gap's ``(i, j)``, the one nearest ``near``."""
    whole = np.array(before + middle + after)
    found = [o for o in range(len(piece) - len(whole) + 1) if np.array_equal(piece[o:o + len(whole)], whole)]
    assert found, "the example is not a slice of its piece"
    offset = min(found, key=lambda o: abs(o + len(before) - near))
    return offset + len(before), offset + len(before) + len(middle)


def test_every_example_is_its_piece_with_whole_bars_cut_out(music):
    representation, pieces = music
    examples = _examples(representation)
    ids, clock = examples.tokens, representation.clock()
    x, y, w = examples.windows(pieces, representation.start_token, LENGTH, np.random.default_rng(7))
    plain = windows(pieces, representation.start_token, LENGTH)
    framed = (x == ids.suffix).any(axis=1)
    assert framed.sum() >= 0.3 * len(x)
    for row, (piece, first) in enumerate(_rows(pieces, LENGTH)):
        if not framed[row]:
            for got, want in zip((x, y, w), plain):
                np.testing.assert_array_equal(got[row], want[row])
            continue
        n = int(w[row].sum())
        assert x[row, 0] == representation.start_token and np.array_equal(x[row, 1:n], y[row, :n - 1])
        assert not w[row, n:].any() and not y[row, n:].any()
        before, middle, after = _parts(y[row, :n], ids)
        assert len(before) <= CONTEXT and len(after) <= CONTEXT and middle
        tokens = pieces[piece]
        i, j = _place(tokens, before, middle, after, first)
        assert first <= i < first + LENGTH
        steps = clock.steps(tokens)
        bar, bars = steps[i] // clock.steps_per_bar, None
        for count in range(1, MAX_GAP_BARS + 1):
            if gap_bounds(clock, tokens, bar, bar + count - 1) == (i, j):
                bars = count
        assert bars is not None, "the gap is not whole bars"
        assert len(before) == min(i, CONTEXT) or len(before) + len(middle) + len(after) + 4 == LENGTH  # cut only to fit


def test_the_share_of_examples_is_the_rate(music):
    """Over ten epochs of windows of 64 (500 windows of notes, 1,200 of midi): within three standard deviations."""
    representation, pieces = music
    for rate in (0.25, 0.5, 1.0):
        examples = _examples(representation, rate, context=8)
        framed = np.concatenate([(x == representation.vocab_size).any(axis=1) for x, _, _ in (
            examples.windows(pieces, representation.start_token, 64, np.random.default_rng(epoch)) for epoch in range(10))])
        assert framed.mean() == pytest.approx(rate, abs=max(0.03, 3 * np.sqrt(rate * (1 - rate) / len(framed)))), rate


def test_examples_are_the_same_for_a_seed_and_new_for_another(music):
    representation, pieces = music
    examples = _examples(representation)
    start = representation.start_token
    first, again, other = (examples.windows(pieces, start, LENGTH, np.random.default_rng(seed)) for seed in (3, 3, 4))
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])


def test_a_long_gap_keeps_less_context_and_one_too_long_stays_music():
    """Bars of 16 tokens in windows of 24: each gap is one bar with 4 tokens of context in all; windows of 8 hold none."""
    notes = mgf.get_representation("notes")
    piece = notes.read("corpus:bach/bwv66.6")[:64]
    examples = _examples(notes, rate=1.0, context=16)
    x, y, w = examples.windows([piece], notes.start_token, 24, np.random.default_rng(0))
    assert (x == notes.vocab_size).any(axis=1).all()
    for row, weights in zip(y, w):
        before, middle, after = _parts(row[:int(weights.sum())], examples.tokens)
        assert len(middle) == 16 and len(before) + len(after) <= 24 - 4 - 16 and (before or after)
    x, _, _ = examples.windows([piece], notes.start_token, 8, np.random.default_rng(0))
    assert not (x == notes.vocab_size).any()


def test_without_bars_a_gap_is_a_span_of_time():
    """A clock without meter (as ``audio``'s), tokens moving 0 to 2 steps: each gap runs between the first tokens at
    two steps, as ``gap_bounds_seconds`` cuts it."""
    rng = np.random.default_rng(0)
    clock = Clock(np.zeros(20, np.int8), np.full(20, -1), rng.integers(0, 3, 20), 0.02, 0, 0)
    pieces = [rng.integers(0, 19, n).astype(np.int32) for n in (50, 300, 700)]
    examples = Examples(InfillTokens.after(20), clock, 0.6, 16)
    assert examples.gap == "tokens" and examples.metadata()["gap"] == "tokens"
    x, y, w = examples.windows(pieces, 19, 64, rng)
    framed = np.flatnonzero((x == 20).any(axis=1))
    assert len(framed) > 3
    rows = _rows(pieces, 64)
    for row in framed:
        piece, first = rows[row]
        before, middle, after = _parts(y[row, :int(w[row].sum())], examples.tokens)
        i, j = _place(pieces[piece], before, middle, after, first)
        steps = clock.steps(pieces[piece])
        assert steps[j] > steps[i]
        assert gap_bounds_seconds(clock, pieces[piece], steps[i] * 0.02, steps[j] * 0.02) == (i, j)


def test_the_bundle_metadata_and_bad_settings():
    notes = mgf.get_representation("notes")
    assert _examples(notes).metadata() == {"format": "spm", "tokens": InfillTokens.after(notes.vocab_size).as_dict(),
                                           "rate": 0.5, "context": CONTEXT, "gap": "bars"}
    for rate, context, message in ((0, 8, "--infill must be in \\(0, 1\\]"), (1.5, 8, "--infill must be"),
                                   (0.5, 0, "--infill-context must be a positive")):
        with pytest.raises(UsageError, match=message):
            _examples(notes, rate, context)
