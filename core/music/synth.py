"""A small deterministic synthesizer: notes -> mono audio, so that any generated music can be heard.

Each note is a wavetable of the first four harmonics (amplitudes 1, 1/2, 1/4, 1/8) under an
attack / decay / sustain / release envelope, louder with velocity.  Voices are summed, and the
mix is scaled down only when its peak would pass 0.9 of full scale, so polyphony never clips.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import wave

import numpy as np

from mgf.errors import InputError
from mgf.files import atomic_path

SAMPLE_RATE = 22050
HARMONICS = (1.0, 0.5, 0.25, 0.125)
ATTACK, DECAY, SUSTAIN, RELEASE = 0.01, 0.1, 0.6, 0.15  # seconds, seconds, level, seconds
TABLE_SIZE = 4096
PEAK = 0.9


def _table() -> np.ndarray:
    phase = np.arange(TABLE_SIZE) / TABLE_SIZE
    wave_ = sum(a * np.sin(2 * np.pi * (k + 1) * phase) for k, a in enumerate(HARMONICS))
    return (wave_ / np.abs(wave_).max()).astype(np.float32)


def render(notes, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """float32 samples in [-PEAK, PEAK] of ``[(pitch, velocity, start_seconds, end_seconds)]``."""
    if not notes:
        return np.zeros(0, np.float32)
    table = _table()
    length = int(np.ceil((max(end for _, _, _, end in notes) + RELEASE) * sample_rate)) + 1
    mix = np.zeros(length, np.float64)
    for pitch, velocity, start, end in notes:
        frequency = 440.0 * 2.0 ** ((pitch - 69) / 12.0)
        first = int(round(start * sample_rate))
        held = max(end - start, ATTACK)
        count = int(round((held + RELEASE) * sample_rate))
        t = np.arange(count) / sample_rate
        envelope = np.where(t < ATTACK, t / ATTACK,
                            np.where(t < ATTACK + DECAY, 1.0 - (1.0 - SUSTAIN) * (t - ATTACK) / DECAY, SUSTAIN))
        release = t >= held
        at_release = np.interp(held, t, envelope) if count else 0.0
        envelope[release] = at_release * np.maximum(0.0, 1.0 - (t[release] - held) / RELEASE)
        index = (np.floor(frequency * t * TABLE_SIZE).astype(np.int64)) % TABLE_SIZE
        loudness = 0.2 * (max(1, velocity) / 127.0) ** 1.5
        end_index = min(length, first + count)
        mix[first:end_index] += (loudness * envelope * table[index])[: end_index - first]
    peak = np.abs(mix).max()
    if peak > PEAK:
        mix *= PEAK / peak
    return mix.astype(np.float32)


def write_wav(samples: np.ndarray, path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> None:
    """16-bit mono PCM WAV, written whole or not at all."""
    if not str(path).lower().endswith(".wav"):
        raise InputError(f"{path}: audio is written as .wav")
    pcm = np.clip(np.round(np.asarray(samples, np.float64) * 32767), -32768, 32767).astype("<i2")
    with atomic_path(path) as tmp, wave.open(tmp, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(sample_rate)
        handle.writeframes(pcm.tobytes())


FLUIDSYNTH_HINT = "install FluidSynth and a General MIDI SoundFont: apt-get install fluidsynth fluid-soundfont-gm"


def render_notes(notes, output, soundfont=None, sample_rate=SAMPLE_RATE):
    """Write ``notes`` to ``output`` (.wav): FluidSynth with ``soundfont`` if given, else the built-in synthesizer."""
    if soundfont is None:
        write_wav(render(notes, sample_rate), output, sample_rate)
        return
    program = shutil.which("fluidsynth")
    if program is None:
        raise InputError(f"--soundfont needs the fluidsynth program; {FLUIDSYNTH_HINT}")
    if not os.path.isfile(soundfont):
        raise InputError(f"{soundfont}: no such SoundFont file")
    with tempfile.TemporaryDirectory() as scratch:
        midi_path, wav_path = os.path.join(scratch, "in.mid"), os.path.join(scratch, "out.wav")
        from mgf.generation.api import get_representation

        midi = get_representation("midi")
        midi.write(midi.encode(notes), midi_path)
        result = subprocess.run([program, "-ni", "-g", "0.6", "-r", str(sample_rate), "-F", wav_path, soundfont, midi_path],
                                capture_output=True, text=True, check=False)
        if result.returncode != 0 or not os.path.exists(wav_path):
            raise InputError(f"fluidsynth failed: {(result.stderr or result.stdout).strip().splitlines()[-1:]}")
        with wave.open(wav_path) as handle:
            channels = handle.getnchannels()
            frames = np.frombuffer(handle.readframes(handle.getnframes()), "<i2").astype(np.float64) / 32768
    mono = frames.reshape(-1, channels).mean(axis=1)
    peak = np.abs(mono).max(initial=0.0)
    if peak > PEAK:
        mono *= PEAK / peak
    write_wav(mono, output, sample_rate)
