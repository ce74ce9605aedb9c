"""Incremental decoding next to generation: µs per token of ``Decoder.feed`` and of ``mgf.generate``, shipped models.

Run ``pytest benchmarks/bench_stream.py`` (pytest-benchmark).  ``test_feed`` feeds the TOKENS tokens of one
generation (seed 0) to a fresh ``representation.decoder()`` per round; ``test_generate`` generates TOKENS tokens
(native backend, one thread, temperature 1, seed 0); ``test_feed_default`` feeds the first DEFAULT_TOKENS tokens
to the base class's decoder, which decodes the whole prefix again per token (O(n) per token), for contrast.
Each records ``us_per_token`` in ``extra_info``; the printed groups put feed and generate side by side.
"""

from __future__ import annotations

import os

import pytest

import mgf

MODELS = ("notes", "midi")
TOKENS = 2000
DEFAULT_TOKENS = 500

_loaded: dict[str, tuple[mgf.Model, list[int]]] = {}


def shipped(name: str) -> tuple[mgf.Model, list[int]]:
    """The shipped ``name`` model (native, one thread, plain temperature sampling) and TOKENS tokens it generated."""
    if name not in _loaded:
        path = mgf.packaged_model(f"{name}.safetensors")
        if not os.path.exists(path):
            pytest.skip(f"no shipped model at {path}")
        model = mgf.load_model(path, backend="native", threads=1)
        model.defaults = {}
        _loaded[name] = model, mgf.generate(model, TOKENS, seed=0, temperature=1.0).tolist()
    return _loaded[name]


def feed_all(decoder_of, tokens):
    decoder = decoder_of()
    for token in tokens:
        decoder.feed(token)
    return decoder.close()


@pytest.mark.parametrize("name", MODELS)
def test_feed(benchmark, name):
    model, tokens = shipped(name)
    benchmark.group = f"stream-{name}"
    benchmark.pedantic(feed_all, args=(model.representation.decoder, tokens), rounds=30, iterations=1, warmup_rounds=2)
    benchmark.extra_info.update(kind="feed", model=name, tokens=TOKENS, us_per_token=benchmark.stats.stats.median / TOKENS * 1e6)


@pytest.mark.parametrize("name", MODELS)
def test_generate(benchmark, name):
    model, _ = shipped(name)
    benchmark.group = f"stream-{name}"
    benchmark.pedantic(mgf.generate, args=(model, TOKENS), kwargs={"seed": 0, "temperature": 1.0}, rounds=15, iterations=1,
                       warmup_rounds=1)
    benchmark.extra_info.update(kind="generate", model=name, tokens=TOKENS, us_per_token=benchmark.stats.stats.median / TOKENS * 1e6)


@pytest.mark.parametrize("name", MODELS)
def test_feed_default(benchmark, name):
    model, tokens = shipped(name)
    benchmark.group = f"stream-{name}"
    representation = model.representation
    benchmark.pedantic(feed_all, args=(lambda: mgf.Representation.decoder(representation), tokens[:DEFAULT_TOKENS]),
                       rounds=3, iterations=1)
    benchmark.extra_info.update(kind="feed-default", model=name, tokens=DEFAULT_TOKENS,
                                us_per_token=benchmark.stats.stats.median / DEFAULT_TOKENS * 1e6)
