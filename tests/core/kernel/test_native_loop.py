"""The generation loop in C gives exactly the tokens of the Python loop, for built-in policies and constraints."""

import numpy as np
import pytest

import mgf


@pytest.fixture
def python_loop(monkeypatch):
    def run(*args, **kwargs):
        with monkeypatch.context() as patch:
            patch.setenv("MGF_PYTHON_LOOP", "1")
            return mgf.generate(*args, **kwargs)

    return run


CASES = [
    ("greedy", [], {}),
    ("temperature", [], {}),
    ("temperature", [], {"temperature": 0.7, "top_k": 12}),
    ("temperature", [], {"temperature": 1.3, "top_p": 0.8}),
    ("temperature", [], {"top_k": 20, "top_p": 0.9}),
    ("temperature", ["scale", "no-repeat"], {"key": "D minor", "max_repeats": 2}),
    ("greedy", ["pitch-range", "no-repeat"], {"low": "C4", "high": "G4", "max_repeats": 1}),
    ("temperature", ["no-repeat", "scale", "pitch-range"], {"key": "Eb pentatonic", "low": "C3", "high": "C6"}),
]


@pytest.mark.parametrize("sampler, constraints, options", CASES)
@pytest.mark.parametrize("repr_name", ["notes", "midi"])
def test_c_loop_equals_python_loop(repr_name, sampler, constraints, options, python_loop, monkeypatch):
    from mgf.kernel import _native

    calls, generate = [], _native.generate
    monkeypatch.setattr(_native, "generate", lambda *args: calls.append(1) or generate(*args))
    model = mgf.load_model(mgf.get_representation(repr_name).default_bundle)
    primer = model.representation.parse_primer("C4 E4 G4") if repr_name == "notes" else None
    _loops_agree(model, primer, sampler, constraints, options, calls, python_loop)


def _loops_agree(model, primer, sampler, constraints, options, calls, python_loop):
    """300 tokens, one row and five, in C (``calls`` records that it ran) and in Python: the same tokens."""
    for seed, outputs in ((0, None), (3, 5)):
        kwargs = dict(sampler=sampler, primer=primer, seed=seed, num_outputs=outputs, constraints=constraints, **options)
        fast = mgf.generate(model, 300, **kwargs)
        assert calls, "the loop ran in Python, not in C"
        slow = python_loop(model, 300, **kwargs)
        np.testing.assert_array_equal(fast, slow)


#: close-notes (midi), where the C loop keeps each row's sounding notes itself: the shipped defaults, a short
#: note limit (overdue notes: only their NOTE_OFFs may follow), a thin texture (voice stealing at every chord),
#: and with the other constraints and policies around it
CLOSE_NOTES = [
    ("temperature", ["close-notes"], {"max_polyphony": 4, "max_note_seconds": 3.0, "top_p": 0.85}),
    ("temperature", ["close-notes"], {"max_note_seconds": 0.25}),
    ("temperature", ["close-notes"], {"max_polyphony": 2, "temperature": 1.3}),
    ("greedy", ["close-notes"], {"max_polyphony": 1, "max_note_seconds": 0.5}),
    ("temperature", ["scale", "close-notes", "no-repeat"], {"key": "D minor", "max_polyphony": 3, "max_repeats": 2,
                                                             "top_k": 30}),
    ("temperature", ["close-notes", "pitch-range"], {"low": "C4", "high": "C5", "max_polyphony": 3}),
]


@pytest.mark.parametrize("sampler, constraints, options", CLOSE_NOTES)
@pytest.mark.parametrize("primer", [None, "NOTE_ON_60 NOTE_ON_64 TIME_SHIFT_100 NOTE_ON_67 TIME_SHIFT_100 NOTE_OFF_64"])
def test_close_notes_in_c_equals_python_loop(sampler, constraints, options, primer, python_loop, monkeypatch):
    from mgf.kernel import _native

    calls, generate = [], _native.generate
    monkeypatch.setattr(_native, "generate", lambda *args: calls.append(1) or generate(*args))
    model = mgf.load_model(mgf.get_representation("midi").default_bundle)
    model.defaults = {}
    primer = None if primer is None else model.representation.parse_primer(primer)
    for seed, outputs in ((0, None), (5, 6)):
        kwargs = dict(sampler=sampler, primer=primer, seed=seed, num_outputs=outputs, constraints=constraints, **options)
        fast = mgf.generate(model, 600, **kwargs)
        assert calls, "the loop ran in Python, not in C"
        slow = python_loop(model, 600, **kwargs)
        np.testing.assert_array_equal(fast, slow)


#: motifs (any representation), where the C loop finds earlier passages through a hash table per row
MOTIFS = [
    ("notes", "temperature", ["motifs"], {"temperature": 1.1, "top_p": 0.9}),
    ("notes", "temperature", ["motifs"], {"length": 2, "bonus": 4.0}),
    ("notes", "temperature", ["motifs"], {"length": 2, "bonus": 30.0, "max_run": 3}),
    ("notes", "greedy", ["motifs", "scale"], {"length": 3, "bonus": 1.0, "key": "D minor"}),
    ("notes", "temperature", ["no-repeat", "motifs"], {"length": 16, "bonus": 8.0, "max_repeats": 2, "top_k": 10}),
    ("midi", "temperature", ["close-notes", "motifs"], {"max_polyphony": 4, "length": 4, "bonus": 3.0}),
]


@pytest.mark.parametrize("repr_name, sampler, constraints, options", MOTIFS)
def test_motifs_in_c_equals_python_loop(repr_name, sampler, constraints, options, python_loop, monkeypatch):
    from mgf.kernel import _native

    calls, generate = [], _native.generate
    monkeypatch.setattr(_native, "generate", lambda *args: calls.append(1) or generate(*args))
    model = mgf.load_model(mgf.get_representation(repr_name).default_bundle)
    model.defaults = {}
    primer = model.representation.parse_primer("C4 - D4 - E4 - C4 - D4 - E4 -") if repr_name == "notes" else None
    for seed, outputs in ((0, None), (7, 5)):
        kwargs = dict(sampler=sampler, primer=primer, seed=seed, num_outputs=outputs, constraints=constraints, **options)
        fast = mgf.generate(model, 700, **kwargs)  # more than one call of the C loop (256 steps each)
        assert calls, "the loop ran in Python, not in C"
        slow = python_loop(model, 700, **kwargs)
        np.testing.assert_array_equal(fast, slow)


class AllPitches(mgf.Representation):
    """Every token but the start token starts a note, so that built-in constraints can leave a row nothing."""

    name = "all-pitches"

    def config(self):
        return {}

    @property
    def vocab_size(self):
        return 20

    @property
    def start_token(self):
        return 19

    def token_pitches(self):
        return np.concatenate([60 + np.arange(19), [-1]])

    def read(self, path):
        raise mgf.InputError("reads nothing")

    def write(self, tokens, path, **options):
        raise mgf.InputError("writes nothing")

    def parse_primer(self, text):
        return np.array([], np.int32)


class AllPitchesPlugin:
    @mgf.hookimpl
    def register_representations(self, register):
        register(AllPitches)


def test_an_empty_row_is_reported_alike_on_both_paths(register_plugin, make_bundle, python_loop):
    register_plugin(AllPitchesPlugin(), "all-pitches-plugin")
    path = make_bundle(20, (16,), 4)
    loaded = mgf.contract.bundle.read(path)
    loaded.representation = {"name": "all-pitches", "config": {}}
    mgf.contract.bundle.write(loaded, path)
    model = mgf.load_model(path)
    kwargs = dict(sampler="greedy", constraints=["pitch-range", "no-repeat"], low="C4", high="C4", max_repeats=1,
                  num_outputs=2)
    messages = []
    for run in (mgf.generate, python_loop):
        with pytest.raises(mgf.InputError) as error:
            run(model, 50, **kwargs)
        messages.append(str(error.value))
    assert messages[0] == messages[1] == "constraint 'no-repeat' leaves no allowed token for output 1 at step 2"


class NotesPerBar(mgf.Constraint):
    """A third-party constraint from the public rules: at most 3 NOTE_ONs a bar, nothing past bar 4, no pitch 3 times."""

    name = "notes-per-bar-test"

    def rules(self, ctx):
        clock = ctx.representation.clock()
        note_ons = clock.kinds == mgf.TokenKind.NOTE_ON
        return [mgf.BarBudget(note_ons, 3), mgf.TimeLimit(4 * clock.steps_per_bar),
                mgf.RunLimit(np.where(note_ons, clock.pitches, -1), 2)]


class StepsSeen(mgf.Constraint):
    """Python only (apply): records where each step's token falls, from ctx.clock."""

    name = "steps-seen-test"
    seen = []

    def apply(self, logits, ctx):
        StepsSeen.seen.append(ctx.clock["step"].copy())
        return logits


class RulesPlugin:
    @mgf.hookimpl
    def register_constraints(self, register):
        register(NotesPerBar)
        register(StepsSeen)


def test_a_third_party_constraint_from_rules_runs_in_c(register_plugin, python_loop, monkeypatch):
    """Built from mgf.rules, a plugin's constraint runs inside the C loop, with the Python loop's tokens."""
    from mgf.kernel import _native

    register_plugin(RulesPlugin(), "rules-plugin")
    calls, generate = [], _native.generate
    monkeypatch.setattr(_native, "generate", lambda *args: calls.append(1) or generate(*args))
    model = mgf.load_model(mgf.get_representation("midi").default_bundle)
    model.defaults = {}
    clock = model.representation.clock()
    for seed in range(8):
        kwargs = dict(seed=seed, num_outputs=3, constraints=["notes-per-bar-test"], temperature=1.2)
        fast = mgf.generate(model, 250, **kwargs)
        assert calls, "the loop ran in Python, not in C"
        np.testing.assert_array_equal(fast, python_loop(model, 250, **kwargs))
        for row in fast:
            steps = clock.steps(row)[:-1]
            ons = clock.kinds[row] == mgf.TokenKind.NOTE_ON
            assert np.bincount(steps[ons] // clock.steps_per_bar).max(initial=0) <= 3
            assert steps.max() <= 4 * clock.steps_per_bar


def test_a_python_constraint_sees_the_clock(register_plugin):
    register_plugin(RulesPlugin(), "rules-plugin")
    model = mgf.load_model(mgf.get_representation("midi").default_bundle)
    model.defaults = {}
    primer = model.representation.parse_primer("NOTE_ON_60 TIME_SHIFT_100 NOTE_OFF_60")
    StepsSeen.seen = []
    tokens = mgf.generate(model, 60, primer=primer, seed=1, num_outputs=2, constraints=["steps-seen-test"])
    clock = model.representation.clock()
    for row in range(2):
        expected = clock.steps(tokens[row])[len(primer):-1]
        np.testing.assert_array_equal([seen[row] for seen in StepsSeen.seen], expected)


@pytest.mark.parametrize("repr_name", ["notes", "midi"])
def test_rows_on_two_threads_and_every_processor_give_the_python_loops_tokens(repr_name, python_loop, monkeypatch):
    """Rows chosen on the kernel's threads, with the processors that read the history (repetition penalty) and the
    model's default constraints: the same tokens as the Python loop."""
    from mgf.kernel import _native

    calls, generate = [], _native.generate
    monkeypatch.setattr(_native, "generate", lambda *args: calls.append(1) or generate(*args))
    model = mgf.load_model(mgf.get_representation(repr_name).default_bundle, threads=2)
    processors = [mgf.MinP(0.05), mgf.RepetitionPenalty(1.3, window=16), mgf.Temperature(0.9), mgf.TopP(0.95)]
    for sampler in ("temperature", "greedy"):
        kwargs = dict(sampler=sampler, seed=4, num_outputs=9, processors=processors)
        fast = mgf.generate(model, 300, **kwargs)
        assert calls, "the loop ran in Python, not in C"
        np.testing.assert_array_equal(fast, python_loop(model, 300, **kwargs))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_the_c_loop_stops_at_non_finite_logits(bad):
    """A model whose logits turn non-finite: the loop reports (step, row, -2) before any rule or draw reads them."""
    from mgf.contract import bundle
    from mgf.kernel import _native

    tensors = dict(bundle.random_bundle(20, (8,), 4, seed=0).tensors)
    tensors["dense.bias"] = tensors["dense.bias"].copy()
    tensors["dense.bias"][5] = bad
    kernel = _native.Kernel(tensors, 20, (8,), 1)
    logits, history = np.zeros((2, 20), np.float32), np.zeros((2, 8), np.int32)
    rules = _native.RuleSet([mgf.NgramBonus(2, 1.0, 2)], None, 20, 19, 2, 8)
    failure = _native.generate(kernel, kernel.initial_state(2), logits, rules, _native.Chooser([mgf.TopP(0.9)], False),
                               np.full((3, 2), 0.5), history, 0, 3, True)
    assert failure == (1, 0, -2)  # the first step's logits were the zeros given; the model's next ones are not finite


@pytest.mark.parametrize("sampler, constraints, options", CASES[:6])
@pytest.mark.parametrize("threads", [1, 2])
def test_a_transformer_in_the_c_loop_gives_the_python_loops_tokens(sampler, constraints, options, threads, python_loop,
                                                                     monkeypatch, tmp_path):
    """A Transformer bundle of notes with a context of 40, so that 300 tokens slide it seven times, in the loop."""
    from mgf.contract import bundle
    from mgf.contract.transformer import Transformer
    from mgf.kernel import _native

    calls, generate = [], _native.generate
    monkeypatch.setattr(_native, "generate", lambda *args: calls.append(1) or generate(*args))
    notes = mgf.get_representation("notes")
    loaded = bundle.random_bundle(notes.vocab_size, (32, 32), seed=2, scale=2.0,
                                  transformer=Transformer(heads=2, context=40, mlp=64),
                                  representation={"name": "notes", "config": notes.config()})
    path = tmp_path / "t.safetensors"
    bundle.write(loaded, path)
    model = mgf.load_model(path, threads=threads)
    _loops_agree(model, notes.parse_primer("C4 E4 G4"), sampler, constraints, options, calls, python_loop)
