"""Streaming tokens: µs per token of ``mgf.stream`` next to ``mgf.generate``, and the latency of ``send``.

Run ``pytest benchmarks/bench_stream_tokens.py`` (pytest-benchmark).  The shipped models as ``bench_stream.py``
loads them (native backend, one thread, no sampling defaults: temperature 1), seed 0.  ``test_generate``
generates TOKENS tokens; ``test_stream`` consumes a stream of TOKENS tokens in chunks of 1 or 16, so the gap is
what chunking costs per token.  ``test_send`` times ``stream.send(played)`` into a running stream: PLAYED
tokens (the first of ``bench_stream.py``'s generation stand for a player's) primed until the next chunk is
back, i.e. from a player's notes to the model's first answering token (chunk 1) or its first 16.  Each records
``us_per_token`` or ``us_per_send`` in ``extra_info``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import mgf

sys.path.insert(0, str(Path(__file__).resolve().parent))  # pytest imports with --import-mode=importlib
from bench_stream import MODELS, TOKENS, shipped

PLAYED = 4


def consume(model, chunk):
    for _ in mgf.stream(model, TOKENS, seed=0, chunk=chunk, temperature=1.0):
        pass


@pytest.mark.parametrize("name", MODELS)
def test_generate(benchmark, name):
    model, _ = shipped(name)
    benchmark.group = f"stream-tokens-{name}"
    benchmark.pedantic(mgf.generate, args=(model, TOKENS), kwargs={"seed": 0, "temperature": 1.0}, rounds=15, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(kind="generate", model=name, us_per_token=benchmark.stats.stats.median / TOKENS * 1e6)


@pytest.mark.parametrize("chunk", [1, 16])
@pytest.mark.parametrize("name", MODELS)
def test_stream(benchmark, name, chunk):
    model, _ = shipped(name)
    benchmark.group = f"stream-tokens-{name}"
    benchmark.pedantic(consume, args=(model, chunk), rounds=15, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(kind=f"stream chunk {chunk}", model=name,
                                us_per_token=benchmark.stats.stats.median / TOKENS * 1e6)


@pytest.mark.parametrize("chunk", [1, 16])
@pytest.mark.parametrize("name", MODELS)
def test_send(benchmark, name, chunk):
    model, tokens = shipped(name)
    played = tokens[:PLAYED]

    def running():
        stream = mgf.stream(model, seed=0, chunk=chunk, temperature=1.0)
        next(stream)
        return (stream,), {}

    benchmark.group = f"stream-send-{name}"
    benchmark.pedantic(lambda stream: stream.send(played), setup=running, rounds=200, iterations=1, warmup_rounds=5)
    benchmark.extra_info.update(kind=f"send {PLAYED} tokens, chunk {chunk}", model=name,
                                us_per_send=benchmark.stats.stats.median * 1e6)
