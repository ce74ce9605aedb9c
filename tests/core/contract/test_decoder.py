"""``Representation.decoder()``: tokens in, timed note events out, for a third-party representation.

The oracle is the documented promise: every event fed token by token, plus ``close()``, are the note-ons
and note-offs of ``to_notes`` of the whole sequence (a note-off has velocity 0), in time order for a
representation whose tokens come in time order.
"""

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mgf
from helpers.decoding import decode, expected_events

STEP = 0.25
START = 26
LOUD = 25
ADVANCE = 24


class Chords(mgf.Representation):
    """A third party's representation: 0..11 a one-step note of pitch 60+id, 12..23 a three-step one (notes of a
    pitch may overlap), 24 moves time one step, 25 makes the notes that follow loud, 26 starts a sequence."""

    name = "chords-test"

    def config(self):
        return {}

    @property
    def vocab_size(self):
        return 27

    @property
    def start_token(self):
        return START

    def read(self, path):
        raise mgf.InputError("chords-test: reads nothing")

    def write(self, tokens, path, **options):
        raise mgf.InputError("chords-test: writes nothing")

    def parse_primer(self, text):
        return np.asarray([int(part) for part in text.split()], dtype=np.int32)

    def to_notes(self, tokens):
        now, velocity, notes = 0, 60, []
        for token in np.asarray(tokens).tolist():
            if not 0 <= token < self.vocab_size:
                raise mgf.InputError(f"chords-test: token id {token} is outside [0, {self.vocab_size})")
            if token < ADVANCE:
                notes.append((60 + token % 12, velocity, now * STEP, (now + 1 + 2 * (token // 12)) * STEP))
            elif token == ADVANCE:
                now += 1
            elif token == LOUD:
                velocity = 100
        return notes


class Rewriting(Chords):
    """Breaks the property the default decoder needs: LOUD makes every note loud, the earlier ones too."""

    name = "rewriting-test"

    def to_notes(self, tokens):
        loud = LOUD in np.asarray(tokens).tolist()
        return [(p, 100 if loud else v, s, e) for p, v, s, e in super().to_notes(tokens)]


class Silent(Chords):
    """A representation without notes: the base class's to_notes."""

    name = "silent-test"
    to_notes = mgf.Representation.to_notes


def test_event_is_a_named_tuple_that_orders_note_offs_first():
    on, off = mgf.Event(0.5, "note_on", 60, 90), mgf.Event(0.5, "note_off", 60, 0)
    assert (on.seconds, on.kind, on.pitch, on.velocity) == (0.5, "note_on", 60, 90)
    assert sorted([on, off]) == [off, on]
    assert on == (0.5, "note_on", 60, 90)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, START), max_size=40))
def test_default_decoder_gives_the_events_of_to_notes_in_time_order(tokens):
    representation = Chords()
    events = decode(representation.decoder(), tokens)
    assert all(isinstance(event, mgf.Event) for event in events)
    assert sorted(events) == expected_events(representation.to_notes(tokens))
    times = [(event.seconds, event.kind) for event in events]
    assert times == sorted(times)


def test_default_decoder_gives_an_event_once_later_tokens_cannot_change_it():
    decoder = Chords().decoder()
    assert decoder.feed(START) == []
    assert decoder.feed(12) == []  # a note at 0: a LOUD or another note at 0 may still come
    assert decoder.feed(ADVANCE) == []
    assert decoder.feed(0) == [(0.0, "note_on", 60, 60)]  # a note-on at 0.25: nothing before it can change
    assert decoder.feed(ADVANCE) == []
    assert decoder.feed(ADVANCE) == []
    assert decoder.feed(START) == []  # the start token again: nothing
    assert decoder.feed(1) == [(0.25, "note_on", 60, 60), (0.5, "note_off", 60, 0)]  # not what falls at 0.75 yet
    assert decoder.close() == [(0.75, "note_off", 60, 0), (0.75, "note_on", 61, 60), (1.0, "note_off", 61, 0)]
    assert decoder.close() == []


def test_a_representation_that_rewrites_the_past_gets_a_one_line_plugin_error():
    decoder = Rewriting().decoder()
    for token in (0, ADVANCE, 1):
        decoder.feed(token)
    with pytest.raises(mgf.PluginError, match=r"'rewriting-test'.*needs its own decoder\(\)") as error:
        decoder.feed(LOUD)
    assert "\n" not in str(error.value)


class Backward(Chords):
    """Token 25 moves time one step back (as a REMI Position may): a note can land before notes already given."""

    name = "backward-test"

    def to_notes(self, tokens):
        now, notes = 0, []
        for token in np.asarray(tokens).tolist():
            if token < ADVANCE:
                notes.append((60 + token % 12, 60, now * STEP, (now + 1) * STEP))
            now += {ADVANCE: 1, LOUD: -1}.get(token, 0)
        return notes


def test_default_decoder_gives_a_note_placed_before_the_horizon_late():
    decoder = Backward().decoder()
    given = [decoder.feed(token) for token in (0, ADVANCE, ADVANCE, 1, LOUD, 2)]
    assert given[3] == [(0.0, "note_on", 60, 60), (0.25, "note_off", 60, 0)]
    assert given[5] == [(0.25, "note_on", 62, 60)]  # before the horizon (0.5): given at once, out of time order
    assert sorted(sum(given, []) + decoder.close()) == expected_events(Backward().to_notes([0, ADVANCE, ADVANCE, 1, LOUD, 2]))


def test_a_representation_without_notes_has_no_decoder():
    with pytest.raises(mgf.UsageError, match="'silent-test' has no note events"):
        Silent().decoder()


@pytest.mark.parametrize("bad", [-1, 27, 2**70, 1.0, "3", True, None])
def test_a_bad_token_is_a_one_line_input_error_and_the_decoder_goes_on(bad):
    decoder = Chords().decoder()
    decoder.feed(0)
    with pytest.raises(mgf.InputError, match="chords-test: ") as error:
        decoder.feed(bad)
    assert "\n" not in str(error.value)
    assert decoder.feed(np.int64(ADVANCE)) == []
    assert decoder.feed(np.int32(1)) == [(0.0, "note_on", 60, 60)]


class Picky(Chords):
    """Its to_notes refuses token 23 (an id its vocabulary has but its music does not allow)."""

    name = "picky-test"

    def to_notes(self, tokens):
        if 23 in np.asarray(tokens).tolist():
            raise mgf.InputError("picky-test: token 23 makes no music")
        return super().to_notes(tokens)


def test_a_token_that_to_notes_refuses_is_its_error_and_the_default_decoder_goes_on():
    decoder = Picky().decoder()
    decoder.feed(0)
    decoder.feed(ADVANCE)
    with pytest.raises(mgf.InputError, match="token 23 makes no music"):
        decoder.feed(23)
    assert decoder.feed(1) == [(0.0, "note_on", 60, 60)]
    assert decoder.close() == [(0.25, "note_off", 60, 0), (0.25, "note_on", 61, 60), (0.5, "note_off", 61, 0)]


def test_feeding_a_closed_decoder_is_a_usage_error():
    decoder = Chords().decoder()
    decoder.close()
    with pytest.raises(mgf.UsageError, match="decoder is closed"):
        decoder.feed(0)


def test_a_third_party_decoder_subclasses_mgf_decoder():
    """A representation may give its own exact decoder; ``check`` gives it the standard token errors."""

    class Counting(mgf.Decoder):
        def __init__(self, representation):
            super().__init__(representation)
            self.now = 0

        def feed(self, token):
            token = self.check(token)
            self.now += token == ADVANCE
            return [mgf.Event(self.now * STEP, "note_on", 60 + token, 60)] if token < 12 else []

        def close(self):
            return []

    class Own(Chords):
        def decoder(self):
            return Counting(self)

    decoder = Own().decoder()
    assert [decoder.feed(t) for t in (ADVANCE, 3)] == [[], [(0.25, "note_on", 63, 60)]]
    with pytest.raises(mgf.InputError, match=r"token id 99 is outside \[0, 27\)"):
        decoder.feed(99)


def test_default_decoder_costs_one_to_notes_per_token():
    """The documented cost of the default: it decodes the whole prefix again at each token."""
    calls = Counter()

    class Counted(Chords):
        def to_notes(self, tokens):
            calls[len(tokens)] += 1
            return super().to_notes(tokens)

    decode(Counted().decoder(), [0, ADVANCE] * 5)
    assert calls == Counter({**{n: 1 for n in range(1, 10)}, 10: 2})  # ten feeds, and close


class ChordsPlugin:
    @mgf.hookimpl
    def register_representations(self, register):
        register(Chords)
        register(Broken)


class Broken(Chords):
    name = "broken-decoder-test"

    def decoder(self):
        return {}["no decoder"]


def test_registered_representation_decodes_and_a_failing_decoder_is_one_plugin_error(register_plugin):
    register_plugin(ChordsPlugin(), "chords-plugin")
    chords = mgf.get_representation("chords-test")  # the registry's guarded class
    assert sorted(decode(chords.decoder(), [0, ADVANCE, 1])) == expected_events(chords.to_notes([0, ADVANCE, 1]))
    with pytest.raises(mgf.PluginError, match=r"\(representation 'broken-decoder-test', decoder\)") as error:
        mgf.get_representation("broken-decoder-test").decoder()
    assert "\n" not in str(error.value)
