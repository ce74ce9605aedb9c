"""The `audio` representation: spectrogram-frame tokens through a learned codebook, WAV in and out."""

import subprocess
import sys
import wave

import numpy as np
import pytest

import mgf
from mgf import BundleError, InputError
from mgf.contract import bundle
from mgf.music import synth
from mgf.plugins.representations.audio import Audio, griffin_lim, mel_filterbank, mel_to_linear, read_audio, stft

SMALL = dict(n_fft=512, hop=256, n_mels=32, codebook_size=32, griffin_lim_iters=16)


@pytest.fixture(scope="module")
def fitted():
    audio = Audio(**SMALL)
    audio.fit(["corpus:bach/bwv66.6"])
    return audio


def wav(path, samples, rate=22050, width=2):
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(width)
        handle.setframerate(rate)
        scale = 2 ** (8 * width - 1) - 1
        handle.writeframes((np.asarray(samples) * scale).astype({2: "<i2", 4: "<i4"}.get(width, "<i2")).tobytes()
                           if width in (2, 4) else bytes(len(samples) * width))
    return path


def test_mel_filterbank_covers_the_spectrum():
    filters = mel_filterbank(22050, 512, 32)
    assert filters.shape == (32, 257) and (filters >= 0).all()
    centres = filters.argmax(axis=1)
    assert (np.diff(centres) >= 0).all() and centres[-1] > 200


def test_encode_decode_keeps_the_sound(fitted, tmp_path):
    midi = mgf.get_representation("midi")
    original = synth.render(midi.to_notes(midi.read("corpus:bach/bwv66.6")))
    tokens = fitted.read("corpus:bach/bwv66.6")
    assert len(tokens) == 1 + len(original) // SMALL["hop"]
    assert len(np.unique(tokens)) > 10
    fitted.write(tokens, tmp_path / "out.wav")
    decoded = read_audio(tmp_path / "out.wav", 22050)
    assert len(decoded) == (len(tokens) - 1) * SMALL["hop"]
    assert np.abs(decoded).max() <= synth.PEAK + 1e-3 and np.sqrt(np.mean(decoded ** 2)) > 0.02
    n = min(len(original), len(decoded))
    X, Y = np.abs(stft(original[:n], 512, 256)), np.abs(stft(decoded[:n], 512, 256))
    Y *= (X * Y).sum() / (Y * Y).sum()
    assert np.linalg.norm(X - Y) / np.linalg.norm(X) < 0.9  # spectral convergence: 1 would be unrelated sound
    noise = np.random.default_rng(0).standard_normal(n) * 0.1
    N = np.abs(stft(noise, 512, 256))
    N *= (X * N).sum() / (N * N).sum()
    assert np.linalg.norm(X - Y) < np.linalg.norm(X - N)


def test_codebook_travels_in_the_bundle(fitted, tmp_path):
    loaded = bundle.random_bundle(fitted.vocab_size, (16,), 8, representation={"name": "audio", "config": fitted.config()})
    loaded.tensors["repr.codebook"] = fitted.codebook
    bundle.write(loaded, tmp_path / "a.safetensors")
    model = mgf.load_model(tmp_path / "a.safetensors")
    np.testing.assert_array_equal(model.representation.codebook, fitted.codebook)
    out = tmp_path / "gen.wav"
    result = subprocess.run([sys.executable, "-m", "mgf.cli.main", "generate", "--bundle", str(tmp_path / "a.safetensors"),
                             "--steps", "100", "--seed", "0", "-o", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    samples = read_audio(out, 22050)
    assert len(samples) == 99 * SMALL["hop"] and np.abs(samples).max() <= synth.PEAK + 1e-3
    del loaded.tensors["repr.codebook"]
    bundle.write(loaded, tmp_path / "b.safetensors")
    result = subprocess.run([sys.executable, "-m", "mgf.cli.main", "generate", "--bundle", str(tmp_path / "b.safetensors"),
                             "-o", str(tmp_path / "b.wav")], capture_output=True, text=True)
    assert result.returncode == 1 and "repr.codebook" in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "b.wav").exists()


def test_primer_from_an_audio_file(fitted, tmp_path):
    clip = wav(tmp_path / "clip.wav", 0.5 * np.sin(2 * np.pi * 440 * np.arange(11025) / 22050))
    tokens = fitted.read(clip)
    assert len(tokens) == 1 + 11025 // 256
    with pytest.raises(InputError, match="give an audio file"):
        fitted.parse_primer("1 2 3")


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "absent.wav", "no such file"),
        (lambda d: (d / "empty.wav").write_bytes(b"") or d / "empty.wav", "empty file"),
        (lambda d: (d / "text.wav").write_text("not audio at all") and d / "text.wav", "not a readable WAV file"),
        (lambda d: wav(d / "silent.wav", np.zeros(22050)), "silent"),
        (lambda d: wav(d / "odd.wav", np.zeros(100), width=3), "unsupported sample format (24-bit WAV)"),
    ],
)
def test_bad_audio_is_an_input_error(fitted, tmp_path, make, message):
    target = make(tmp_path)
    with pytest.raises(InputError) as error:
        fitted.read(target)
    assert message in str(error.value) and str(target) in str(error.value)


def test_without_a_codebook_it_says_so():
    with pytest.raises(BundleError, match="no codebook"):
        Audio(**SMALL).read("corpus:bach/bwv66.6")
    with pytest.raises(InputError):
        Audio(hop=4096, n_fft=1024)


def test_flac_and_ogg_read_like_wav(fitted, tmp_path):
    soundfile = pytest.importorskip("soundfile")
    samples = 0.5 * np.sin(2 * np.pi * 330 * np.arange(22050) / 22050)
    wav(tmp_path / "a.wav", samples)
    soundfile.write(tmp_path / "a.flac", samples, 22050)
    np.testing.assert_array_equal(fitted.read(tmp_path / "a.flac"), fitted.read(tmp_path / "a.wav"))
    (tmp_path / "bad.flac").write_bytes(b"fLaC but not really")
    with pytest.raises(InputError, match="not a readable audio file"):
        fitted.read(tmp_path / "bad.flac")


@pytest.mark.parametrize("config, words", [
    ({"sample_rate": 10**12}, ["option sample_rate of representation 'audio'", "[4000, 192000]"]),
    ({"n_fft": 2**20}, ["option n_fft of representation 'audio'"]),
    ({"hop": 4096, "n_fft": 1024}, ["representation 'audio'", "hop 4096", "n_fft 1024"]),
    ({"n_fft": 64, "hop": 16, "n_mels": 80}, ["representation 'audio'", "n_mels 80", "n_fft / 2 + 1 = 33"]),
    ({"griffin_lim_momentum": 1.5}, ["option griffin_lim_momentum of representation 'audio'", "[0, 0.999]"]),
])
def test_config_errors_are_one_line_usage_errors_naming_the_keys(config, words):
    with pytest.raises(mgf.UsageError) as error:
        mgf.get_representation("audio", **config)
    assert "\n" not in str(error.value) and all(word in str(error.value) for word in words)


def test_one_token_decodes_to_one_hop_of_sound(fitted, tmp_path):
    samples = fitted.to_samples([fitted.start_token, 3])
    assert len(samples) == fitted.hop and np.abs(samples).max() == pytest.approx(synth.PEAK)
    fitted.write([3], tmp_path / "one.wav")
    with wave.open(str(tmp_path / "one.wav")) as handle:
        assert handle.getnframes() == fitted.hop


def spectral_convergence(original, decoded, n_fft=512, hop=256):
    """||X - gY|| / ||X|| of STFT magnitudes, g the least-squares gain (decoding normalises the peak)."""
    n = min(len(original), len(decoded))
    X, Y = np.abs(stft(original[:n], n_fft, hop)), np.abs(stft(decoded[:n], n_fft, hop))
    return np.linalg.norm(X - Y * (X * Y).sum() / (Y * Y).sum()) / np.linalg.norm(X)


def test_fast_griffin_lim_converges_further_than_the_original():
    t = np.arange(22050) / 22050
    signal = np.sin(2 * np.pi * 220 * t) + 0.5 * np.sin(2 * np.pi * 331 * t) * (t > 0.4)
    magnitude = np.abs(stft(signal, 512, 256))
    length = (len(magnitude) - 1) * 256
    plain, fast = (spectral_convergence(signal, griffin_lim(magnitude, 512, 256, length, 16, momentum))
                   for momentum in (0.0, 0.99))
    assert fast < 0.8 * plain  # 0.10 against 0.16 when written


def test_mel_inversion_is_non_negative_and_matches_the_bands_better_than_the_pseudo_inverse():
    filters = mel_filterbank(22050, 512, 32)
    spectrum = np.abs(stft(np.sin(2 * np.pi * 440 * np.arange(4096) / 22050), 512, 256))
    mel = spectrum @ filters.T
    clipped = np.maximum(mel @ np.linalg.pinv(filters).T, 0.0)
    inverted = mel_to_linear(mel, filters)
    assert (inverted >= 0).all()
    assert np.linalg.norm(inverted @ filters.T - mel) < 0.5 * np.linalg.norm(clipped @ filters.T - mel)


def test_fitted_spectra_decode_closer_than_the_mel_inversion(fitted):
    midi = mgf.get_representation("midi")
    original = synth.render(midi.to_notes(midi.read("corpus:bach/bwv66.6")))
    tokens = fitted.read("corpus:bach/bwv66.6")
    assert fitted.spectra.shape == (SMALL["codebook_size"], SMALL["n_fft"] // 2 + 1) and (fitted.spectra >= 0).all()
    without = Audio(**SMALL)
    without.load_tensors({"codebook": fitted.codebook})
    assert without.spectra is None
    assert spectral_convergence(original, fitted.to_samples(tokens)) < spectral_convergence(original, without.to_samples(tokens))


def test_spectra_travel_in_the_bundle_and_old_bundles_still_decode(fitted, tmp_path):
    old_config = {k: v for k, v in fitted.config().items() if k != "griffin_lim_momentum"}  # before the option
    old = bundle.random_bundle(fitted.vocab_size, (16,), 8, representation={"name": "audio", "config": old_config})
    old.tensors["repr.codebook"] = fitted.codebook
    bundle.write(old, tmp_path / "old.safetensors")
    loaded = mgf.load_model(tmp_path / "old.safetensors").representation
    assert loaded.spectra is None and loaded.griffin_lim_momentum == 0.99
    assert len(loaded.to_samples([1, 2, 3])) == 2 * SMALL["hop"]
    new = bundle.random_bundle(fitted.vocab_size, (16,), 8, representation={"name": "audio", "config": fitted.config()})
    new.tensors.update({f"repr.{k}": v for k, v in fitted.tensors().items()})
    bundle.write(new, tmp_path / "new.safetensors")
    np.testing.assert_array_equal(mgf.load_model(tmp_path / "new.safetensors").representation.spectra, fitted.spectra)


@pytest.mark.parametrize("spectra, message", [
    (np.ones((32, 100), np.float32), "repr.spectra must be [32, 257], got [32, 100]"),
    (-np.ones((32, 257), np.float32), "negative or NaN"),
    (np.full((32, 257), np.nan, np.float32), "negative or NaN"),
])
def test_bad_spectra_are_a_bundle_error(fitted, spectra, message):
    with pytest.raises(BundleError) as error:
        Audio(**SMALL).load_tensors({"codebook": fitted.codebook, "spectra": spectra})
    assert message in str(error.value)
