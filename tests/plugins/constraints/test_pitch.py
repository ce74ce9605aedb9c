"""Constraints: applied by the core at every step, for every sampler, in batches; checked on real MIDI files."""

import numpy as np
import pytest

import mgf
from mgf import UsageError, hookimpl
from mgf.plugins.constraints.pitch import midi_number, scale_pitch_classes

LOW = 48  # token i of the `pitched` representation starts MIDI pitch LOW + i; the last two tokens start none
D_MINOR = {2, 4, 5, 7, 9, 10, 0}  # pitch classes, by hand: the oracles never ask the implementation
C_MAJOR = {0, 2, 4, 5, 7, 9, 11}


class Pitched(mgf.Representation):
    """A toy representation whose tokens are pitches, so that constraints can be checked token by token."""

    name = "pitched"
    options = (mgf.Option("size", int, 40, "ids", low=4, high=80),)

    def __init__(self, size=40):
        self.size = size

    def config(self):
        return {"size": self.size}

    @property
    def vocab_size(self):
        return self.size

    @property
    def start_token(self):
        return self.size - 1

    def token_pitches(self):
        pitches = LOW + np.arange(self.size)
        pitches[-2:] = -1  # a "rest" token and the start token start no note
        return pitches

    def read(self, path):
        raise mgf.InputError("pitched reads nothing")

    def write(self, tokens, path, **options):
        raise mgf.InputError("pitched writes nothing")

    def parse_primer(self, text):
        return np.array([int(t) for t in text.split()], np.int32)


class PitchedPlugin:
    @hookimpl
    def register_representations(self, register):
        register(Pitched)


@pytest.fixture
def model(register_plugin, make_bundle):
    register_plugin(PitchedPlugin(), "pitched-plugin")
    path = make_bundle(40, (24,), 8, seed=3, scale=2.5)
    loaded = mgf.contract.bundle.read(path)
    loaded.representation = {"name": "pitched", "config": {"size": 40}}
    mgf.contract.bundle.write(loaded, path)
    return mgf.load_model(path)


SAMPLERS = [("temperature", {}), ("greedy", {}), ("beam", {"beam_size": 3}),
            ("beam", {"beam_size": 2, "branch_factor": 2, "steps_per_iteration": 2})]


@pytest.mark.parametrize("sampler, options", SAMPLERS)
def test_every_constraint_holds_with_every_sampler_in_batches(model, sampler, options):
    out = mgf.generate(model, 60, sampler=sampler, seed=1, num_outputs=2,
                       constraints=["scale", "pitch-range", "no-repeat"], key="D minor", low="D3", high="A4",
                       max_repeats=2, **options)
    pitches = model.representation.token_pitches()[out]
    notes = pitches[pitches >= 0]
    assert len(notes) > 10
    assert set(np.unique(notes % 12)) <= D_MINOR
    assert notes.min() >= 50 and notes.max() <= 69
    for row in pitches:
        started = row[row >= 0]
        assert not any(started[i] == started[i + 1] == started[i + 2] for i in range(len(started) - 2))


def test_constraints_apply_in_order_after_the_start_token_and_before_the_sampler(model):
    unconstrained = mgf.generate(model, 200, seed=4)
    assert set(unconstrained) - set(np.flatnonzero(np.isin((LOW + np.arange(38)) % 12, sorted(C_MAJOR))))
    out = mgf.generate(model, 200, seed=4, constraints=["scale"])  # default key: C major
    pitches = model.representation.token_pitches()[out]
    assert set(np.unique(pitches[pitches >= 0] % 12)) <= C_MAJOR


@pytest.fixture
def no_rest(register_plugin):
    """Two third-party constraints that forbid the rest token: one of rules (in order among the rules), one of
    contract 2's ``apply`` (after every rule)."""

    class NoRest(mgf.Constraint):
        name = "no-rest"

        def rules(self, ctx):
            return [mgf.Forbid(np.arange(ctx.representation.vocab_size) == ctx.representation.vocab_size - 2)]

    class NoRestApplied(mgf.Constraint):
        name = "no-rest-applied"

        def apply(self, logits, ctx):
            logits[:, ctx.representation.vocab_size - 2] = -np.inf
            return logits

    class Plugin:
        @hookimpl
        def register_constraints(self, register):
            register(NoRest)
            register(NoRestApplied)

    register_plugin(Plugin(), "no-rest-plugin")


@pytest.mark.parametrize("sampler", ["greedy", "temperature"])
def test_a_constraint_that_leaves_no_token_names_itself_and_the_step(model, no_rest, sampler, monkeypatch):
    """Only C4 is allowed and no rest: the third C4 in a row is impossible, and no-repeat is the one that says so,
    in either loop."""
    for loop in ("C", "Python"):
        monkeypatch.setenv("MGF_PYTHON_LOOP", str(int(loop == "Python")))
        with pytest.raises(mgf.InputError, match=r"^constraint 'no-repeat' leaves no allowed token at step 3$"):
            mgf.generate(model, 10, sampler=sampler, constraints=["no-rest", "pitch-range", "no-repeat"],
                         low="C4", high="C4", max_repeats=2)
        with pytest.raises(mgf.InputError, match=r"^constraint 'no-repeat' leaves no allowed token for output 1 at step 3$"):
            mgf.generate(model, 10, sampler=sampler, num_outputs=2, constraints=["no-rest", "pitch-range", "no-repeat"],
                         low="C4", high="C4", max_repeats=2)


def test_a_constraint_of_apply_runs_after_every_rule(model, no_rest):
    """Contract 3: the rules of all constraints first, then each ``apply``; given first, the applied no-rest still
    meets no-repeat's empty C4 and is the one that leaves nothing."""
    with pytest.raises(mgf.InputError, match=r"^constraint 'no-rest-applied' leaves no allowed token at step 3$"):
        mgf.generate(model, 10, sampler="greedy", constraints=["no-rest-applied", "pitch-range", "no-repeat"],
                     low="C4", high="C4", max_repeats=2)


def test_a_constraint_returning_nan_is_a_plugin_error(model, register_plugin):
    class Bad(mgf.Constraint):
        name = "bad"

        def apply(self, logits, ctx):
            logits[:, 0] = np.nan
            return logits

    class Plugin:
        @hookimpl
        def register_constraints(self, register):
            register(Bad)

    register_plugin(Plugin(), "bad-plugin")
    with pytest.raises(mgf.PluginError, match=r"\(constraint 'bad', apply\): returned NaN or \+inf logits at step 0"):
        mgf.generate(model, 5, constraints=["bad"])


def test_pitch_constraints_refuse_a_representation_without_pitch(make_bundle):
    model = mgf.load_model(make_bundle())
    with pytest.raises(UsageError, match="constraint 'scale' needs to know which tokens start which pitch"):
        mgf.generate(model, 5, constraints=["scale"])


@pytest.mark.parametrize(
    "key, classes",
    [("D minor", {2, 4, 5, 7, 9, 10, 0}), ("C major", {0, 2, 4, 5, 7, 9, 11}), ("F# dorian", {6, 8, 9, 11, 1, 3, 4}),
     ("Eb pentatonic", {3, 5, 7, 10, 0}), ("a minor pentatonic", {9, 0, 2, 4, 7}), ("Bb", {10, 0, 2, 3, 5, 7, 9})],
)
def test_keys(key, classes):
    assert set(scale_pitch_classes(key)) == classes


@pytest.mark.parametrize("text, number", [("C4", 60), ("c-1", 0), ("G9", 127), ("Bb3", 58), ("F#5", 78), ("64", 64)])
def test_note_names(text, number):
    assert midi_number(text, "low") == number


@pytest.mark.parametrize("key", ["H minor", "D moll", ""])
def test_bad_keys_are_usage_errors(model, key):
    with pytest.raises(UsageError, match="option key of constraint 'scale'"):
        mgf.generate(model, 3, constraints=["scale"], key=key)


@pytest.mark.parametrize("low, high, message", [("C9x", None, "neither a note name"), ("C4", "C3", "is above high"),
                                                 ("200", None, "outside MIDI's 0..127")])
def test_bad_ranges_are_usage_errors(model, low, high, message):
    options = {"low": low} if high is None else {"low": low, "high": high}
    with pytest.raises(UsageError, match=message):
        mgf.generate(model, 3, constraints=["pitch-range"], **options)


def _written_pitches(path):
    """MIDI pitches of the notes in a written file, in onset order, as music21 reads them (ties joined, chords unrolled)."""
    import music21

    pitches = []
    for element in music21.converter.parse(str(path)).stripTies().flatten().notes:
        pitches.extend(p.midi for p in element.pitches)
    return pitches


@pytest.mark.parametrize("repr_name, steps", [("notes", 96), ("midi", 400)])
def test_constraints_hold_in_the_written_midi_files(repr_name, steps, tmp_path):
    """Issue 9's acceptance on the shipped models: 20 seeds, checked with music21 on the files `write` produced."""
    representation = mgf.get_representation(repr_name)
    assert representation.token_pitches() is not None  # what pitch constraints need
    model = mgf.load_model(representation.default_bundle)
    cases = [
        (["scale"], {"key": "D minor"}, lambda p: {x % 12 for x in p} <= D_MINOR),
        (["pitch-range"], {"low": "C4", "high": "C5"}, lambda p: all(60 <= x <= 72 for x in p)),
        (["no-repeat"], {"max_repeats": 2}, lambda p: not any(p[i] == p[i + 1] == p[i + 2] for i in range(len(p) - 2))),
    ]
    for constraints, options, holds in cases:
        pieces = mgf.generate(model, steps, seed=0, num_outputs=20, constraints=constraints, **options)
        for index, tokens in enumerate(pieces):
            path = tmp_path / f"{constraints[0]}-{index}.mid"
            model.representation.write(tokens, path)
            pitches = _written_pitches(path)
            assert pitches and holds(pitches), (constraints, index, pitches)
