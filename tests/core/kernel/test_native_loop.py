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
    if "no-repeat" in constraints:  # the notes defaults' hold-limit is no-repeat's rule, which the C loop holds once
        model.defaults = {**model.defaults, "constraints": [c for c in model.defaults.get("constraints", [])
                                                            if c != "hold-limit"]}
    primer = model.representation.parse_primer("C4 E4 G4") if repr_name == "notes" else None
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


def test_motifs_favours_what_followed_the_last_earlier_passage():
    from mgf.plugins.constraints.motifs import _after_last_match

    history = np.array([5, 6, 7, 1, 5, 6, 8, 2, 5, 6], np.int32)
    assert _after_last_match(history, 2) == 8  # [5, 6] last occurred before [8]
    assert _after_last_match(history, 3) is None  # [2, 5, 6] never occurred before
    assert _after_last_match(np.array([3, 3, 3], np.int32), 2) is None  # [3, 3] overlapping itself does not count
    assert _after_last_match(np.array([3, 3, 3, 3, 4], np.int32), 1) is None  # [4] never occurred before
    assert _after_last_match(np.array([3, 3, 3, 3], np.int32), 2) == 3  # [3, 3] at 0 ends before the last two begin
    model = mgf.load_model(mgf.get_representation("tokens").default_bundle)
    tokens = mgf.generate(model, 1, sampler="greedy", primer=history, constraints=["motifs"], length=2, bonus=50.0)
    assert tokens[-1] == 8  # 50 nats outweigh whatever the model prefers


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


def test_draw_rows_matches_the_numpy_reference():
    from mgf.kernel import _native
    from mgf.contract.sampler import allowed_probabilities

    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (4000, 50)).astype(np.float32)
    logits[:, 7] = -np.inf
    uniforms = rng.random(4000)
    for temperature, top_k, top_p in ((1.0, 0, 1.0), (0.5, 5, 1.0), (2.0, 0, 0.6), (1.0, 10, 0.5)):
        chosen = _native.draw_rows(logits, uniforms, temperature, top_k, top_p)
        prob = allowed_probabilities(logits, temperature, top_k, top_p)
        reference = (np.cumsum(prob, axis=1) < (1.0 - uniforms)[:, None] * prob.sum(axis=1, keepdims=True)).sum(axis=1)
        assert (prob[np.arange(4000), chosen] > 0).all()
        assert (chosen != reference).mean() < 1e-3  # only rounding at a boundary may differ


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("top_k, top_p", [(0, 1.0), (5, 1.0), (0, 0.9), (5, 0.9)])
def test_draw_refuses_nan_and_plus_infinity(bad, top_k, top_p):
    """NaN or +inf logits are one InputError from the public draw, never a wrong token or a read out of bounds."""
    logits = np.random.default_rng(0).normal(0, 3, (64, 300)).astype(np.float32)
    logits[7, 150] = bad
    with pytest.raises(mgf.InputError, match="NaN or \\+inf"):
        mgf.draw_from_logits(logits, np.random.default_rng(0), 1.0, top_k, top_p)


def test_top_k_keeps_exactly_the_k_largest_ties_to_the_lower_id():
    """Logits with many ties: the draw's selection keeps the k largest by (value, then lower id), never another."""
    from mgf.kernel import _native

    rng = np.random.default_rng(0)
    uniforms = np.linspace(0, 1, 2000, endpoint=False)
    for _ in range(300):
        vocab = int(rng.integers(2, 60))
        k = int(rng.integers(1, vocab + 1))
        logits = rng.integers(0, 4, vocab).astype(np.float32)
        logits[rng.random(vocab) < 0.2] = -np.inf
        logits[rng.integers(vocab)] = 0.0  # at least one allowed token
        ranked = sorted(range(vocab), key=lambda i: (-logits[i], i))
        expected = {i for i in ranked[:k] if np.isfinite(logits[i])}
        drawn = set(_native.draw_rows(np.repeat(logits[None], len(uniforms), 0), uniforms, 1.0, k, 1.0).tolist())
        assert drawn == expected
