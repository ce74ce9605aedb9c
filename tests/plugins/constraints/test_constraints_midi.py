"""``close-notes`` on the ``midi`` representation: notes end in time, polyphony stays bounded, under every sampler."""

import numpy as np
import pytest

import mgf
import mgf.testing
from mgf.plugins.constraints import close_notes as constraints_midi


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
    plugin = constraints_midi
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
    with mgf.testing.registered(constraints_midi):
        kept = mgf.generate(chorale_model, 400, seed=0, num_outputs=8, constraints=["close-notes"], max_polyphony=4,
                            max_note_seconds=3.0)
    for row in kept:
        notes = representation.to_notes(row)
        assert most_sounding(notes) <= 4
        assert max(end - start for _, _, start, end in notes) <= 3.0 + 1e-9
