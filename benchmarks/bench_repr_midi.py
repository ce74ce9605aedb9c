"""Throughput of the ``midi`` representation, in events (tokens) per second, on a generated 10-minute file.

Run ``pytest benchmarks/bench_repr_midi.py``.  ``read`` is file to tokens (mido's parsing included),
``write`` tokens to file; ``encode`` and ``to_notes`` are the same without the file, to show what mido costs.
"""

from __future__ import annotations

import random

import mido
import pytest

from mgf import get_representation
from mgf.plugins.representations.midi import read_midi_notes

MINUTES, TRACKS = 10, 8


def generate(path, minutes=MINUTES, tracks=TRACKS, seed=0):
    """A format-1 file: a tempo track changing every 60 beats, and ``tracks`` tracks of chords and single notes."""
    rng, ticks = random.Random(seed), 480
    midi = mido.MidiFile(type=1, ticks_per_beat=ticks)
    end = minutes * 120 * ticks  # about ``minutes`` at the tempos below (100 to 150 qpm)
    tempo = [(beat * ticks, mido.MetaMessage("set_tempo", tempo=rng.choice([400_000, 500_000, 600_000])))
             for beat in range(0, end // ticks, 60)]
    layers = [tempo]
    for track in range(tracks):
        events, tick = [], 0
        while tick < end:
            length = rng.choice([120, 240, 480])
            for pitch in rng.sample(range(36 + 4 * track, 60 + 4 * track), rng.choice([1, 1, 2, 3])):
                events.append((tick, mido.Message("note_on", note=pitch, velocity=rng.randint(30, 120), channel=track)))
                events.append((tick + length, mido.Message("note_on", note=pitch, velocity=0, channel=track)))
            tick += length
        layers.append(sorted(events, key=lambda e: (e[0], e[1].velocity > 0)))  # offs first at a tick
    for events in layers:
        track, last = mido.MidiTrack(), 0
        for tick, message in events:
            track.append(message.copy(time=tick - last))
            last = tick
        midi.tracks.append(track)
    midi.save(path)
    return path


@pytest.fixture(scope="module")
def piece(tmp_path_factory):
    midi = get_representation("midi")
    path = generate(tmp_path_factory.mktemp("midi") / "long.mid")
    notes = read_midi_notes(str(path))
    return midi, path, notes, midi.encode(notes), mido.MidiFile(path).length / 60


@pytest.mark.parametrize("operation", ["read", "encode", "write", "to_notes"])
def test_midi_throughput(benchmark, piece, tmp_path, operation):
    midi, path, notes, tokens, minutes = piece
    run = {
        "read": lambda: midi.read(path),
        "encode": lambda: midi.encode(notes),
        "write": lambda: midi.write(tokens, tmp_path / "out.mid"),
        "to_notes": lambda: midi.to_notes(tokens),
    }[operation]
    benchmark.group = "midi"
    benchmark(run)
    benchmark.extra_info.update(events=len(tokens), notes=len(notes), minutes=round(minutes, 1),
                                events_per_second=len(tokens) / benchmark.stats.stats.median)
