"""The built-ins' incremental decoders: fed token by token and closed, they give the notes of the whole sequence.

Oracles: ``to_notes`` of the whole sequence, and for ``notes`` and ``midi`` the MIDI file their writer makes, read
back with mido; on the shipped models' generations, a corpus chorale and random token sequences.
"""

import time

import mido
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mgf
from helpers.decoding import decode, expected_events

NOTES = mgf.get_representation("notes")
MIDI = mgf.get_representation("midi")
CUT_MIDI = mgf.get_representation("midi", max_note_seconds=0.03)  # cuts notes after 3 steps


def assert_decodes(representation, tokens):
    """The events of ``tokens`` fed one by one are those of ``to_notes``, in time order, note-offs first at a time."""
    events = decode(representation.decoder(), tokens)
    assert all(isinstance(event, mgf.Event) for event in events)
    assert sorted(events) == expected_events(representation.to_notes(np.asarray(tokens, dtype=np.int64)))
    times = [(event.seconds, event.kind) for event in events]
    assert times == sorted(times)
    return events


def file_events(path, ticks=False):
    """``(time, kind, pitch, velocity)`` of the note messages of a MIDI file: seconds, or ticks of a 120-qpm file."""
    midi, now, events = mido.MidiFile(path), 0, []
    for message in mido.merge_tracks(midi.tracks) if ticks else midi:
        now += message.time
        if message.type in ("note_on", "note_off"):
            on = message.type == "note_on" and message.velocity > 0
            events.append((now, "note_on" if on else "note_off", message.note, message.velocity if on else 0))
    return sorted(events)


def assert_written_file_agrees(representation, tokens, events, tmp_path):
    """The writer's file holds the same events: ``midi`` to the tick (960 per second), ``notes`` to the microsecond."""
    path = tmp_path / "out.mid"
    representation.write(np.asarray(tokens, dtype=np.int32), path)
    if representation.name == "midi":
        ours = sorted((round(e.seconds * 960), e.kind, e.pitch, e.velocity) for e in events)
        assert file_events(path, ticks=True) == ours
    else:
        ours = sorted((round(e.seconds, 6), e.kind, e.pitch, e.velocity) for e in events)
        assert [(round(t, 6), *rest) for t, *rest in file_events(path)] == ours


def midi_tokens(representation):
    """Token ids of every kind, a few pitches so that re-strikes and unisons happen, and the start token."""
    shift, velocity = representation.shift0, representation.velocity0
    ids = [*range(60, 64), *range(188, 192), shift, shift + 1, shift + 2, shift + 99, velocity, velocity + 20,
           representation.start_token]
    return st.lists(st.sampled_from(ids), max_size=60)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, NOTES.start_token), max_size=60))
def test_notes_random_sequences(tokens):
    assert_decodes(NOTES, tokens)


@settings(max_examples=200, deadline=None)
@given(midi_tokens(MIDI))
def test_midi_random_sequences(tokens):
    assert_decodes(MIDI, tokens)


@settings(max_examples=200, deadline=None)
@given(midi_tokens(CUT_MIDI))
def test_midi_with_max_note_seconds_random_sequences(tokens):
    assert_decodes(CUT_MIDI, tokens)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, MIDI.start_token), max_size=80))
def test_midi_any_token_ids_and_the_default_decoder_agrees(tokens):
    events = assert_decodes(MIDI, tokens)
    assert sorted(decode(mgf.Representation.decoder(MIDI), tokens)) == sorted(events)  # the base class's, from to_notes


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, NOTES.start_token), max_size=40).filter(lambda t: any(1 < i < NOTES.start_token for i in t)))
def test_notes_random_sequences_match_the_written_file(tmp_path_factory, tokens):
    events = assert_decodes(NOTES, tokens)
    assert_written_file_agrees(NOTES, tokens, events, tmp_path_factory.mktemp("written"))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", ["notes", "midi"])
def test_shipped_models_generations(name, seed, tmp_path):
    model = mgf.load_model(mgf.packaged_model(f"{name}.safetensors"))
    tokens = mgf.generate(model, 400, seed=seed)
    representation = model.representation
    events = assert_decodes(representation, [representation.start_token, *tokens])
    assert len(events) >= 20
    if name == "midi":  # the shipped bundle shapes velocities when writing (dynamics="accents"): write them plain
        representation = mgf.get_representation("midi", **{**representation.config(), "dynamics": "none"})
    assert_written_file_agrees(representation, tokens, events, tmp_path)


def test_midi_shipped_dynamics_change_only_the_written_velocities(tmp_path):
    model = mgf.load_model(mgf.packaged_model("midi.safetensors"))
    assert model.representation.dynamics == "accents"
    tokens = mgf.generate(model, 300, seed=3)
    events = decode(model.representation.decoder(), tokens)
    path = tmp_path / "accents.mid"
    model.representation.write(tokens, path)
    assert [e[:3] for e in file_events(path, ticks=True)] == sorted((round(e.seconds * 960), e.kind, e.pitch) for e in events)


@pytest.mark.parametrize("name", ["notes", "midi"])
def test_corpus_chorale(name, tmp_path):
    representation = mgf.get_representation(name)
    tokens = representation.read("corpus:bach/bwv66.6")
    events = assert_decodes(representation, tokens)
    assert len(events) > 60
    assert_written_file_agrees(representation, tokens, events, tmp_path)


def test_miditok_uses_the_default_decoder_on_a_chorale():
    pytest.importorskip("miditok")
    representation = mgf.get_representation("miditok", tokenizer="REMI")
    tokens = representation.read("corpus:bach/bwv66.6")[:250]
    events = decode(representation.decoder(), tokens)
    assert len(events) > 40
    assert sorted(events) == expected_events(representation.to_notes(tokens))


@settings(max_examples=15, deadline=None)
@given(st.data())
def test_miditok_random_sequences(data):
    pytest.importorskip("miditok")
    representation = mgf.get_representation("miditok", tokenizer="TSD")
    tokens = data.draw(st.lists(st.integers(0, representation.vocab_size - 1), max_size=30))
    assert sorted(decode(representation.decoder(), tokens)) == expected_events(representation.to_notes(tokens))


@pytest.mark.parametrize("name", ["notes", "midi"])
def test_bad_token_is_one_line_and_the_decoder_goes_on_as_without_it(name):
    representation = mgf.get_representation(name)
    good = [5, 300, 7, 300, 1, 300] if name == "midi" else [5, 0, 7, 1, 9]
    decoder, events = representation.decoder(), []
    for token in good:
        events += decoder.feed(token)
        for bad in (-1, representation.vocab_size, 2**40):
            with pytest.raises(mgf.InputError, match=rf"^{name}: token id {bad} is outside \[0, {representation.vocab_size}\)$"):
                decoder.feed(bad)
        with pytest.raises(mgf.InputError, match="must be an integer"):
            decoder.feed(2.0)
    assert events + decoder.close() == decode(representation.decoder(), good)
    assert len(events) >= 3


@pytest.mark.parametrize("name", ["audio", "tokens"])
def test_representations_without_notes_have_no_decoder(name):
    with pytest.raises(mgf.UsageError, match=f"representation '{name}' has no note events"):
        mgf.get_representation(name).decoder()


@pytest.mark.parametrize("name", ["notes", "midi"])
def test_feed_is_constant_time_per_token(name):
    """Feeding 40,000 tokens costs no more per token than 2,000 (a decoder that looked back would cost 20 times more)."""
    representation = mgf.get_representation(name)
    model = mgf.load_model(mgf.packaged_model(f"{name}.safetensors"))
    tokens = np.tile(mgf.generate(model, 2000, seed=0), 20).tolist()

    def per_token(count):
        best = float("inf")
        for _ in range(3):
            decoder = representation.decoder()
            start = time.perf_counter()
            for token in tokens[:count]:
                decoder.feed(token)
            best = min(best, (time.perf_counter() - start) / count)
        return best

    assert per_token(40_000) < 3 * per_token(2_000)
