"""``hold-limit`` (issue 24): no token more than N times in a row, so that a `notes` melody never holds one note for
bars on end; the shipped notes model samples with it, and the README's example is a tune."""

import re

import numpy as np
import pytest

import mgf
from mgf.plugins.representations.notes import NO_EVENT, NOTE_OFF

README = open(__file__.rsplit("/tests/", 1)[0] + "/README.md").read()


def lengths(tokens):
    """Steps each note (or rest) of a notes melody lasts: its NOTE_ON (NOTE_OFF) and the holds after it."""
    starts = np.flatnonzero(np.asarray(tokens) != NO_EVENT)
    return np.diff(np.append(starts, len(tokens))), np.asarray(tokens)[starts]


def longest_run(tokens):
    """The most times one token occurs in a row."""
    best, current = 1, 1
    for a, b in zip(tokens[:-1], tokens[1:]):
        current = current + 1 if a == b else 1
        best = max(best, current)
    return best


@pytest.fixture
def c_calls(monkeypatch):
    from mgf.kernel import _native

    calls, generate = [], _native.generate
    monkeypatch.setattr(_native, "generate", lambda *args: calls.append(1) or generate(*args))
    return calls


@pytest.mark.parametrize("repr_name, options", [("notes", {"max_holds": 7}), ("notes", {"max_holds": 2, "top_k": 5}),
                                                ("midi", {"max_holds": 2, "temperature": 1.2})])
def test_hold_limit_in_c_equals_the_python_loop_and_holds(repr_name, options, c_calls, monkeypatch):
    model = mgf.load_model(mgf.get_representation(repr_name).default_bundle, precision="fp32")
    model.defaults = {}
    primer = model.representation.parse_primer("C4 - - - - - - - - -") if repr_name == "notes" else None
    for seed, outputs in ((0, None), (3, 6)):
        kwargs = dict(primer=primer, seed=seed, num_outputs=outputs, constraints=["hold-limit"], **options)
        fast = np.atleast_2d(mgf.generate(model, 600, **kwargs))
        assert c_calls, "the loop ran in Python, not in C"
        with monkeypatch.context() as patch:
            patch.setenv("MGF_PYTHON_LOOP", "1")
            np.testing.assert_array_equal(fast, np.atleast_2d(mgf.generate(model, 600, **kwargs)))
        skip = 0 if primer is None else len(primer)  # the primer's own hold of 10 steps is given, not generated
        assert max(longest_run(row[skip:]) for row in fast) <= options["max_holds"] + (primer is not None)


def test_with_no_repeat_both_rules_run_in_c_and_hold(c_calls, monkeypatch):
    """Both are RunLimit rules, each with its own state in C (contract 2's loop held one, and fell back to Python):
    together they run in C, give the Python loop's tokens and both hold."""
    model = mgf.load_model(mgf.get_representation("notes").default_bundle)
    model.defaults = {}
    kwargs = dict(seed=1, num_outputs=4, constraints=["no-repeat", "hold-limit"], max_repeats=1, max_holds=3)
    pieces = mgf.generate(model, 400, **kwargs)
    assert c_calls, "the loop ran in Python, not in C"
    monkeypatch.setenv("MGF_PYTHON_LOOP", "1")
    np.testing.assert_array_equal(pieces, mgf.generate(model, 400, **kwargs))
    for piece in pieces:
        steps, starts = lengths(piece)
        assert steps.max() <= 4
        pitches = starts[starts > NOTE_OFF]
        assert not (pitches[1:] == pitches[:-1]).any()  # no pitch twice in a row (max_repeats 1)


def test_shipped_notes_model_limits_held_notes_by_default():
    model = mgf.load_model(mgf.get_representation("notes").default_bundle)
    assert "hold-limit" in model.defaults["constraints"]
    limit = model.defaults["options"]["max_holds"]
    primer = model.representation.parse_primer("C4 E4 G4")
    pieces = mgf.generate(model, 256, primer=primer, seed=0, num_outputs=300)
    longest = np.array([lengths(piece)[0].max() for piece in pieces])
    assert longest.max() <= limit + 1 < 64  # no note or rest of 4 bars (64 sixteenths) or more, in 300 seeds


def test_the_readme_python_example_writes_a_tune(tmp_path, monkeypatch):
    """The README's Python example, run verbatim: a melody of many notes, none held for bars on end."""
    code = re.search(r"## Python\n\n```python\n(.*?)```", README, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the documented example, as a user runs it
    tokens = namespace["tokens"]
    notes = mgf.get_representation("notes").to_notes(mgf.get_representation("notes").read(tmp_path / "melody.mid"))
    steps, starts = lengths(tokens)
    assert len(notes) >= 40 and (starts > NOTE_OFF).sum() == len(notes)
    assert steps.max() <= 16  # at most a bar
