"""Encode/decode throughput of both representations on a real chorale, and the cached-dataset load time.

Run ``pytest benchmarks/bench_repr_chorale.py``.  ``read`` parses the score with music21 each time
(the data pipeline's cache is bypassed), ``write`` writes a MIDI file; events are tokens.
``dataset-cached`` loads all of ``corpus:bach`` through ``mgf.training.sources`` from a warm cache (the first,
cold load is done once in the fixture and reported in ``extra_info``).
"""

from __future__ import annotations

import time

import pytest

from mgf import get_representation
from mgf.training.sources import load

CHORALE = "corpus:bach/bwv66.6"


@pytest.mark.parametrize("name", ["notes", "midi"])
@pytest.mark.parametrize("operation", ["read", "write"])
def test_chorale_throughput(benchmark, tmp_path, name, operation):
    representation = get_representation(name)
    tokens = representation.read(CHORALE)
    run = {"read": lambda: representation.read(CHORALE), "write": lambda: representation.write(tokens, tmp_path / "out.mid")}
    benchmark.group = f"chorale-{name}"
    benchmark.pedantic(run[operation], rounds=5, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(events=len(tokens), events_per_second=len(tokens) / benchmark.stats.stats.median)


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory):
    import os

    os.environ["MGF_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    representation = get_representation("notes")
    started = time.perf_counter()
    cold = load(representation, "corpus:bach", progress=False)
    return representation, time.perf_counter() - started, cold


def test_dataset_cached(benchmark, warm_cache):
    representation, cold_seconds, cold = warm_cache
    benchmark.group = "dataset"
    loaded = benchmark.pedantic(lambda: load(representation, "corpus:bach", progress=False), rounds=5, iterations=1)
    assert loaded.tokens == cold.tokens
    benchmark.extra_info.update(pieces=len(loaded.sequences), tokens=loaded.tokens, cold_seconds=round(cold_seconds, 1))
