"""Speed of sound: the synthesizer (seconds of audio per second of wall time) and the audio tokenizer.

Run ``pytest benchmarks/bench_audio.py``.  The material is one Bach chorale (bwv66.6, about 22 s)
rendered by the built-in synthesizer; the codebook (and its spectra) are fitted on it once.
"""

from __future__ import annotations

import pytest

from mgf import get_representation
from mgf.music import synth
from mgf.plugins.representations.audio import Audio


@pytest.fixture(scope="module")
def chorale(tmp_path_factory):
    midi = get_representation("midi")
    notes = midi.to_notes(midi.read("corpus:bach/bwv66.6"))
    audio = Audio()
    path = tmp_path_factory.mktemp("audio") / "chorale.wav"
    samples = synth.render(notes, audio.sample_rate)
    synth.write_wav(samples, path, audio.sample_rate)
    audio.fit([str(path)])
    return notes, audio, path, len(samples) / audio.sample_rate, audio.read(path)


def test_render(benchmark, chorale):
    notes, _, _, seconds, _ = chorale
    benchmark.group = "audio"
    benchmark(synth.render, notes)
    benchmark.extra_info.update(audio_seconds=round(seconds, 2), realtime_factor=seconds / benchmark.stats.stats.median)


@pytest.mark.parametrize("operation", ["encode", "decode"])
def test_tokenizer(benchmark, chorale, tmp_path, operation):
    _, audio, path, seconds, tokens = chorale
    run = {"encode": lambda: audio.read(path), "decode": lambda: audio.write(tokens, tmp_path / "out.wav")}[operation]
    benchmark.group = "audio"
    benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(audio_seconds=round(seconds, 2), realtime_factor=seconds / benchmark.stats.stats.median,
                                frames=len(tokens))
