"""Rules of a third-party constraint against a built-in's: tokens/s of ``chord-tones`` next to ``scale``.

Run ``pytest benchmarks/bench_rules.py`` (with ``pip install -e examples/mgf-chord-tones``).  ``chord-tones``
(examples/mgf-chord-tones) is written from the public rules only (``mgf.BarMask`` on the representation's
clock) and ``scale`` is mgf's own (``mgf.Forbid``); both run inside the C loop, so the acceptance of issue 19 is
that the third-party one stays within 10% of the built-in's tokens per second.  Each round times ``mgf.generate``
of TOKENS tokens with one of them (temperature 1, seed 0, one output, the shipped model on the native backend at
one thread and fp32, without its sampling defaults) and, untimed by pytest-benchmark but by its own clock, the
same generation with the other constraint just before: the ratio of the two rates is the median of the rounds'
ratios, each from two runs a moment apart (a step's median moved by 25% from one benchmark to the next on a
shared machine).  ``extra_info`` holds both rates (medians) and that ratio.
"""

from __future__ import annotations

import statistics
import time

import pytest

import mgf
import mgf.testing

try:
    import mgf_chord_tones
except ImportError as error:  # the example package, installed by CI through examples/requirements.txt
    raise ImportError("bench_rules needs the example plugin: pip install -e examples/mgf-chord-tones") from error

MODELS = ("notes", "midi")
TOKENS = 2000
CONSTRAINTS = {"scale": {"key": "C major"}, "chord-tones": {"chords": "C G Am F"}}

_loaded: dict[str, mgf.Model] = {}


def shipped(name: str) -> mgf.Model:
    if name not in _loaded:
        model = mgf.load_model(mgf.get_representation(name).default_bundle, backend="native", threads=1,
                               precision="fp32")
        model.defaults = {}  # plain temperature sampling: the constraint is the only rule
        _loaded[name] = model
    return _loaded[name]


@pytest.fixture(scope="module", autouse=True)
def chord_tones():
    with mgf.testing.registered(mgf_chord_tones):
        yield


def generate(model: mgf.Model, constraint: str):
    """TOKENS tokens with ``constraint`` alone."""
    return mgf.generate(model, TOKENS, seed=0, constraints=[constraint], **CONSTRAINTS[constraint])


@pytest.mark.parametrize("constraint", list(CONSTRAINTS))
@pytest.mark.parametrize("name", MODELS)
def test_rules(benchmark, name, constraint):
    model = shipped(name)
    other = next(c for c in CONSTRAINTS if c != constraint)
    beside = []

    def other_first():
        start = time.perf_counter()
        generate(model, other)
        beside.append(time.perf_counter() - start)
        return (model, constraint), {}

    benchmark.group = f"rules-{name}"
    piece = benchmark.pedantic(generate, setup=other_first, rounds=15, iterations=1, warmup_rounds=1)
    assert piece.shape == (TOKENS,)
    timed = benchmark.stats.stats.data  # seconds per round; setup ran once more, before the warmup round
    pairs = {constraint: timed, other: beside[-len(timed):]}
    rates = {name: TOKENS / statistics.median(seconds) for name, seconds in pairs.items()}
    ratio = statistics.median(s / c for s, c in zip(pairs["scale"], pairs["chord-tones"]))  # round by round
    benchmark.extra_info.update(kind="rules", model=name, tokens=TOKENS, chord_tones_tokens_per_s=rates["chord-tones"],
                                scale_tokens_per_s=rates["scale"], ratio=ratio)
