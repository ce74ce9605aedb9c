"""Rendering notes to sound: the built-in synthesizer, `mgf render`, `mgf generate --render`."""

import shutil
import subprocess
import sys
import wave

import mido
import numpy as np
import pytest

from mgf.music import synth


def read_wav(path):
    with wave.open(str(path)) as handle:
        assert handle.getnchannels() == 1 and handle.getsampwidth() == 2
        data = np.frombuffer(handle.readframes(handle.getnframes()), "<i2").astype(np.float64) / 32768
        return data, handle.getframerate()


def test_render_length_loudness_and_pitch():
    audio = synth.render([(69, 100, 0.5, 1.5)])
    assert len(audio) == pytest.approx((1.5 + synth.RELEASE) * synth.SAMPLE_RATE, abs=2)
    assert np.abs(audio[: int(0.5 * synth.SAMPLE_RATE) - 1]).max() == 0.0  # silence before the note
    held = audio[int(0.7 * synth.SAMPLE_RATE): int(1.4 * synth.SAMPLE_RATE)]
    spectrum = np.abs(np.fft.rfft(held * np.hanning(len(held))))
    peak_hz = np.argmax(spectrum) * synth.SAMPLE_RATE / len(held)
    assert peak_hz == pytest.approx(440, abs=3)
    assert synth.render([(69, 30, 0, 1)]).std() < synth.render([(69, 120, 0, 1)]).std()


def test_polyphony_never_clips_and_output_is_deterministic():
    cluster = [(48 + i, 127, 0.0, 1.0) for i in range(40)]
    audio = synth.render(cluster)
    assert np.abs(audio).max() <= synth.PEAK + 1e-6
    np.testing.assert_array_equal(audio, synth.render(cluster))


def make_midi(path):
    midi = mido.MidiFile(type=1)
    track = mido.MidiTrack()
    for i, pitch in enumerate([60, 64, 67, 72]):
        track.append(mido.Message("note_on", note=pitch, velocity=90, time=0 if i == 0 else 240))
    track.append(mido.Message("note_off", note=72, time=960))
    midi.tracks.append(track)
    midi.save(path)
    return path


def test_mgf_render_writes_a_playable_wav(tmp_path):
    source = make_midi(tmp_path / "in.mid")
    result = subprocess.run([sys.executable, "-m", "mgf.cli.main", "render", str(source), "-o", str(tmp_path / "out.wav")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    data, rate = read_wav(tmp_path / "out.wav")
    assert rate == synth.SAMPLE_RATE
    assert len(data) / rate == pytest.approx(mido.MidiFile(source).length + synth.RELEASE, abs=0.05)
    rms = np.sqrt(np.mean(data ** 2))
    assert rms > 0.01 and np.abs(data).max() <= synth.PEAK + 1e-3
    soundfile = pytest.importorskip("soundfile")
    again, again_rate = soundfile.read(tmp_path / "out.wav")
    assert again_rate == rate and len(again) == len(data)


def test_render_errors_are_one_line(tmp_path):
    (tmp_path / "bad.mid").write_bytes(b"nope")
    result = subprocess.run([sys.executable, "-m", "mgf.cli.main", "render", str(tmp_path / "bad.mid")],
                            capture_output=True, text=True)
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    if shutil.which("fluidsynth") is None:
        result = subprocess.run([sys.executable, "-m", "mgf.cli.main", "render", str(make_midi(tmp_path / "in.mid")),
                                 "--soundfont", "x.sf2", "-o", str(tmp_path / "o.wav")], capture_output=True, text=True)
        assert result.returncode == 1 and "apt-get install fluidsynth fluid-soundfont-gm" in result.stderr
    assert not (tmp_path / "o.wav").exists()


def test_generate_render_writes_wav_beside_the_piece(tmp_path):
    from mgf import get_representation
    from mgf.contract import bundle

    notes = get_representation("notes")
    path = tmp_path / "m.safetensors"
    bundle.write(bundle.random_bundle(notes.vocab_size, (16,), 8, representation={"name": "notes", "config": notes.config()}), path)
    result = subprocess.run([sys.executable, "-m", "mgf.cli.main", "generate", "--bundle", str(path), "--steps", "64",
                             "--seed", "1", "--primer", "C4 E4 G4", "--render", "-o", str(tmp_path / "piece.mid")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    data, rate = read_wav(tmp_path / "piece.wav")
    assert len(data) > rate  # 67 sixteenths at 120 qpm: over 8 s
    assert np.sqrt(np.mean(data ** 2)) > 0.005


SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"


@pytest.mark.skipif(shutil.which("fluidsynth") is None or not __import__("os").path.exists(SOUNDFONT),
                    reason="needs Debian's fluidsynth and fluid-soundfont-gm")
def test_soundfont_rendering_with_fluidsynth(tmp_path):
    source = make_midi(tmp_path / "in.mid")
    result = subprocess.run([sys.executable, "-m", "mgf.cli.main", "render", str(source), "--soundfont", SOUNDFONT,
                             "-o", str(tmp_path / "fs.wav")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    data, rate = read_wav(tmp_path / "fs.wav")
    assert rate == synth.SAMPLE_RATE and len(data) / rate >= mido.MidiFile(source).length
    assert np.sqrt(np.mean(data ** 2)) > 0.005
    assert not np.array_equal(data[: rate], read_wav_builtin(source, tmp_path)[: rate])


def read_wav_builtin(source, tmp_path):
    subprocess.run([sys.executable, "-m", "mgf.cli.main", "render", str(source), "-o", str(tmp_path / "builtin.wav")], check=True)
    return read_wav(tmp_path / "builtin.wav")[0]
