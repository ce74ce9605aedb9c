"""``close-notes`` on the clock of any representation: notes end in time, polyphony stays bounded, under every sampler."""

import numpy as np
import pytest

import mgf
import mgf.testing
from mgf.plugins.constraints import close_notes


def most_sounding(notes) -> int:
    """The most notes sounding at once, each over ``[start, end)``: an independent sweep over the decoded notes."""
    events = sorted([(start, 1) for _, _, start, _ in notes] + [(end, -1) for _, _, _, end in notes])
    count = peak = 0
    for _, change in events:  # at equal times -1 sorts first: a note ending where another starts is not counted twice
        count += change
        peak = max(peak, count)
    return peak


class TestCloseNotes(mgf.testing.ConstraintContract):
    name = "close-notes"
    plugin = close_notes
    representation = "midi"
    steps = 200
    options = {"max_note_seconds": 0.3, "max_polyphony": 2}
    refuses = ("notes", "tokens")
    bad_options = ({"max_note_seconds": 0.0}, {"max_polyphony": 0})

    def assert_obeyed(self, pieces, representation):
        for row in pieces:
            notes = representation.to_notes(row)
            assert max(end - start for _, _, start, end in notes) <= self.options["max_note_seconds"] + 1e-9
            assert most_sounding(notes) <= self.options["max_polyphony"]

    def test_the_constraint_bites_on_this_model(self, tmp_path):
        with mgf.testing.registered(self.plugin):
            free = mgf.generate(self.model(tmp_path), self.steps, seed=4, num_outputs=3)
        representation = mgf.get_representation("midi")
        notes = [n for row in free for n in representation.to_notes(row)]
        assert max(end - start for _, _, start, end in notes) > self.options["max_note_seconds"]
        assert max(most_sounding(representation.to_notes(row)) for row in free) > self.options["max_polyphony"]

    def test_sampled_beam_search_obeys(self, tmp_path):
        with mgf.testing.registered(self.plugin):
            model = self.model(tmp_path)
            pieces = self.run(tmp_path, model, "beam", seed=3, num_outputs=2, branch_factor=3, steps_per_iteration=5)
        self.assert_obeyed(pieces, model.representation)

    def test_a_primer_note_held_too_long_is_ended_first(self, tmp_path):
        with mgf.testing.registered(self.plugin):
            model = self.model(tmp_path, favourite=300)  # a model that wants to let time pass
            primer = model.representation.parse_primer("NOTE_ON_60 NOTE_ON_64 TIME_SHIFT_100 NOTE_OFF_64 TIME_SHIFT_50")
            pieces = mgf.generate(model, 3, sampler="greedy", primer=primer, constraints=[self.name],
                                  max_note_seconds=1.5)
        assert pieces[len(primer)] == 128 + 60  # NOTE_OFF_60: C4 has sounded 1.5 s
        assert pieces[len(primer) + 1] == 300  # then time goes on, as the model wants

    def test_time_shifts_stop_at_the_limit(self, tmp_path):
        representation = mgf.get_representation("midi")
        loaded = mgf.contract.bundle.random_bundle(representation.vocab_size, (16,), 8, seed=5,
                                          representation={"name": "midi", "config": representation.config()})
        loaded.tensors["dense.bias"][256:356] += 20.0 + np.arange(100)  # time shifts, the longer the likelier
        mgf.contract.bundle.write(loaded, tmp_path / "waits.safetensors")
        with mgf.testing.registered(self.plugin):
            model = mgf.load_model(tmp_path / "waits.safetensors", "numpy")
            primer = model.representation.parse_primer("NOTE_ON_60 TIME_SHIFT_30")
            pieces = mgf.generate(model, 2, sampler="greedy", primer=primer, constraints=[self.name],
                                  max_note_seconds=1.0)
        assert model.representation.token_name(int(pieces[len(primer)])) == "TIME_SHIFT_70"  # the most time left
        assert pieces[len(primer) + 1] == 128 + 60


@pytest.fixture(scope="module")
def chorale_model():
    """The shipped chorale model without its sampling defaults (which are close-notes): the tests name the constraint."""
    model = mgf.load_model(mgf.packaged_model("midi.safetensors"))
    model.defaults = {}
    return model


def test_the_shipped_chorale_model_keeps_bachs_four_voices(chorale_model):
    """Unconstrained, the shipped model piles up notes (issue 12); with the constraint it never sounds more than 4."""
    representation = chorale_model.representation
    free = mgf.generate(chorale_model, 400, seed=0, num_outputs=8)
    assert max(most_sounding(representation.to_notes(row)) for row in free) > 4
    with mgf.testing.registered(close_notes):
        kept = mgf.generate(chorale_model, 400, seed=0, num_outputs=8, constraints=["close-notes"], max_polyphony=4,
                            max_note_seconds=3.0)
    for row in kept:
        notes = representation.to_notes(row)
        assert most_sounding(notes) <= 4
        assert max(end - start for _, _, start, end in notes) <= 3.0 + 1e-9


class Events(mgf.Representation):
    """A toy event layout unlike midi's ids, with a clock: 0-3 TIME_SHIFT of 1-4 steps (50 ms each), 4-15 NOTE_ON of
    pitches 60-71, 16-27 NOTE_OFF of them, 28 START; close-notes must find them through the clock alone."""

    name = "events"

    def config(self):
        return {}

    @property
    def vocab_size(self):
        return 29

    @property
    def start_token(self):
        return 28

    def clock(self):
        kinds = np.array([mgf.TokenKind.TIME_SHIFT] * 4 + [mgf.TokenKind.NOTE_ON] * 12 + [mgf.TokenKind.NOTE_OFF] * 12
                         + [mgf.TokenKind.OTHER], np.int8)
        pitches = np.array([-1] * 4 + list(range(60, 72)) * 2 + [-1], np.int16)
        advance = np.array([1, 2, 3, 4] + [0] * 25, np.int32)
        return mgf.Clock(kinds=kinds, pitches=pitches, advance=advance, step_seconds=0.05, steps_per_beat=10,
                         beats_per_bar=4)

    def read(self, path):
        raise mgf.InputError("events reads nothing")

    def write(self, tokens, path, **options):
        raise mgf.InputError("events writes nothing")

    def parse_primer(self, text):
        return np.array([int(t) for t in text.split()], np.int32)


def event_notes(tokens):
    """``[(pitch, start_step, end_step)]`` of a toy events piece, from its documented layout (unended: to the end)."""
    now, sounding, notes = 0, {}, []
    for token in tokens.tolist():
        if token < 4:
            now += token + 1
        elif token < 16:
            if token + 56 in sounding:
                notes.append((token + 56, sounding.pop(token + 56), now))
            sounding[token + 56] = now
        elif token < 28 and token + 44 in sounding:
            notes.append((token + 44, sounding.pop(token + 44), now))
    return notes + [(pitch, start, now) for pitch, start in sounding.items()]


@pytest.fixture
def events_model(register_plugin, make_bundle):
    class Plugin:
        @mgf.hookimpl
        def register_representations(self, register):
            register(Events)

    register_plugin(Plugin(), "events-plugin")
    path = make_bundle(29, (16,), 8, seed=2, scale=2.0)
    loaded = mgf.bundle.read(path)
    loaded.representation = {"name": "events", "config": {}}
    loaded.tensors["dense.bias"][4:16] += 3.0  # a model that would rather start notes than end them
    mgf.bundle.write(loaded, path)
    return mgf.load_model(path)


def test_close_notes_reads_any_layout_from_the_clock(events_model, monkeypatch):
    """On a layout with other ids than midi's: notes end within 0.5 s (10 steps), at most 2 sound at once, and the
    C loop gives the Python loop's tokens."""
    kwargs = dict(constraints=["close-notes"], max_note_seconds=0.5, max_polyphony=2, num_outputs=4, seed=0)
    free = mgf.generate(events_model, 300, seed=0, num_outputs=4)
    assert max(most_sounding([(0, 0, s, e) for _, s, e in event_notes(row)]) for row in free) > 2
    from mgf.kernel import _native

    calls, generate = [], _native.generate
    monkeypatch.setattr(_native, "generate", lambda *args: calls.append(1) or generate(*args))
    pieces = mgf.generate(events_model, 300, **kwargs)
    assert calls, "the loop ran in Python, not in C"
    monkeypatch.setenv("MGF_PYTHON_LOOP", "1")
    np.testing.assert_array_equal(pieces, mgf.generate(events_model, 300, **kwargs))
    for row in pieces:
        notes = event_notes(row)
        assert len(notes) > 20
        assert max(end - start for _, start, end in notes) <= 10
        assert most_sounding([(0, 0, start, end) for _, start, end in notes]) <= 2


@pytest.mark.parametrize("name, reason", [("tokens", r"representation 'tokens' has no clock \(Representation.clock\)$"),
                                          ("notes", r"representation 'notes' has none for some pitch it starts$"),
                                          ("audio", r"representation 'audio' starts none \(no NOTE_ON in its clock\)$")])
def test_a_representation_it_cannot_serve_is_refused_in_one_line(name, reason):
    model = mgf.load_model(mgf.get_representation(name).default_bundle)
    with pytest.raises(mgf.UsageError, match=r"^constraint 'close-notes' .*" + reason) as error:
        mgf.generate(model, 4, constraints=["close-notes"])
    assert "\n" not in str(error.value)
