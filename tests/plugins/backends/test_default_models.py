"""The models shipped in mgf/models, used as a newcomer uses them: `mgf generate --repr NAME`."""

import subprocess
import sys

import mido
import numpy as np
import pytest

from mgf import get_representation
from mgf.contract import bundle


def generate(*args):
    result = subprocess.run([sys.executable, "-m", "mgf.cli.main", "generate", *map(str, args)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result


@pytest.mark.parametrize("name", ["notes", "midi", "audio"])
def test_shipped_model_is_small_trained_and_beats_the_ngram(name):
    path = get_representation(name).default_bundle
    meta = bundle.read_metadata(path)
    scores = meta["training"]["validation_cross_entropy"]
    assert scores["model"] < scores["5-gram"] < scores["unigram"]
    assert meta["training"]["command"].startswith(f"mgf train --repr {name}")
    import os

    assert os.path.getsize(path) < 8_000_000


def test_midi_default_writes_several_seconds_of_polyphony(tmp_path):
    generate("--repr", "midi", "--model", "native", "--steps", "1000", "--seed", "0", "-o", tmp_path / "out.mid")
    midi = mido.MidiFile(tmp_path / "out.mid")
    assert midi.length > 5
    notes = get_representation("midi").to_notes(get_representation("midi").read(tmp_path / "out.mid"))
    starts = [round(start, 2) for _, _, start, _ in notes]
    assert max(starts.count(s) for s in set(starts)) >= 2  # chords: several notes at one onset


def test_notes_default_writes_a_melody_in_musicxml(tmp_path):
    generate("--repr", "notes", "--primer", "C4 E4 G4", "--steps", "128", "--seed", "0", "-o", tmp_path / "m.musicxml")
    from music21 import converter

    melody = converter.parse(str(tmp_path / "m.musicxml")).flatten().notes
    assert len(melody) > 10 and [n.pitch.midi for n in melody[:3]] == [60, 64, 67]


def test_audio_default_writes_sound(tmp_path):
    soundfile = pytest.importorskip("soundfile")
    generate("--repr", "audio", "--model", "native", "--steps", "300", "--seed", "0", "-o", tmp_path / "out.wav")
    samples, rate = soundfile.read(tmp_path / "out.wav")
    representation = get_representation("audio")
    assert rate == representation.sample_rate and len(samples) == 299 * representation.hop
    assert np.sqrt(np.mean(samples ** 2)) > 0.01 and np.abs(samples).max() <= 0.91


def test_midi_defaults_keep_the_chorale_texture():
    """Issue 12: the shipped midi model's defaults sound about four voices, as the chorales do (at most 5)."""
    import mgf
    from mgf.music import metrics

    model = mgf.load_model(get_representation("midi").default_bundle)
    assert "close-notes" in model.defaults["constraints"]
    pieces = mgf.generate(model, 471, seed=1, num_outputs=8)
    polyphony = [metrics.polyphony(model.representation.to_notes(p)) for p in pieces]
    assert 3 <= np.mean(polyphony) <= 5, polyphony
