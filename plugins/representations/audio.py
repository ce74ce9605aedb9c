"""``audio``: sound as a sequence of spectrogram-frame tokens, WAV in and out.

Audio (mono, ``sample_rate``) -> magnitude STFT (Hann window of ``n_fft`` samples, hop ``hop``)
-> ``n_mels`` mel bands (Slaney-style triangles, 0 Hz to Nyquist) -> log(1e-5 + x) -> one token per
frame: the index of the nearest entry of a codebook of ``codebook_size`` log-mel frames, learned with
k-means (``fit``) and stored in the bundle as ``repr.codebook``.  Back: each token's linear magnitude
spectrum -> fast Griffin-Lim phase (``griffin_lim_iters`` iterations with momentum
``griffin_lim_momentum``, Perraudin et al. 2013) -> 16-bit WAV.  The magnitude spectrum of a token is
``repr.spectra``, the mean STFT magnitude of the training frames that chose it (fitted with the
codebook: the mel bands cannot tell which bins inside them sound); a bundle without it falls back on
inverting the codeword's mel bands (non-negative least squares through the filterbank).
Token ``codebook_size`` is START.  WAV is read with the standard library; FLAC and OGG need
``pip install 'mgf-music[audio]'`` (soundfile).  MIDI files and scores (and ``corpus:`` references) are
heard through the built-in synthesizer, so ``corpus:bach`` is audio training data offline.
"""

from __future__ import annotations

import os
import wave

import numpy as np

from mgf import BundleError, Clock, InputError, Option, Representation, UsageError, hookimpl, packaged_model
from mgf.music import synth
from mgf.music.scores import SCORE_SUFFIXES, primer_source

SOUND_SUFFIXES = (".wav", ".flac", ".ogg")

FLOOR = 1e-5
#: multiplicative-update steps of the non-negative mel inversion (converged to ~1e-3 relative change)
NNLS_STEPS = 50


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """``[n_mels, n_fft // 2 + 1]`` triangles evenly spaced on the mel scale, each of unit area."""
    def to_mel(hz):
        return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)

    def to_hz(mel):
        return 700.0 * (10.0 ** (np.asarray(mel) / 2595.0) - 1.0)

    bins = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = to_hz(np.linspace(0, to_mel(sample_rate / 2), n_mels + 2))
    low, centre, high = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins - low) / np.maximum(centre - low, 1e-9)
    falling = (high - bins) / np.maximum(high - centre, 1e-9)
    filters = np.maximum(0.0, np.minimum(rising, falling))
    return filters * (2.0 / (high - low))


def stft(signal: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Complex ``[frames, n_fft // 2 + 1]``; the signal is padded by half a window each side."""
    window = np.hanning(n_fft + 1)[:-1]
    padded = np.pad(signal, n_fft // 2)
    frames = 1 + (len(padded) - n_fft) // hop
    index = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    return np.fft.rfft(padded[index] * window, axis=1)


def istft(spectrum: np.ndarray, n_fft: int, hop: int, length: int) -> np.ndarray:
    """Overlap-add inverse of :func:`stft` (window-square normalised)."""
    window = np.hanning(n_fft + 1)[:-1]
    frames = np.fft.irfft(spectrum, n=n_fft, axis=1) * window
    total = n_fft + hop * (len(frames) - 1)
    out, norm = np.zeros(total), np.zeros(total)
    for i, frame in enumerate(frames):
        out[i * hop:i * hop + n_fft] += frame
        norm[i * hop:i * hop + n_fft] += window ** 2
    out /= np.maximum(norm, 1e-8)
    return out[n_fft // 2:n_fft // 2 + length]


def mel_to_linear(mel: np.ndarray, filters: np.ndarray) -> np.ndarray:
    """Non-negative ``S`` with ``S @ filters.T`` closest to ``mel`` (least squares, multiplicative updates).

    The clipped pseudo-inverse it starts from puts negative lobes (then zeros) between bands; the
    updates keep every bin non-negative while matching the bands, which halves the spectral error there.
    """
    linear = np.maximum(mel @ np.linalg.pinv(filters).T, 0.0) + 1e-6
    target = mel @ filters
    for _ in range(NNLS_STEPS):
        linear *= target / np.maximum(linear @ filters.T @ filters, 1e-12)
    return linear


def griffin_lim(magnitude: np.ndarray, n_fft: int, hop: int, length: int, iterations: int,
                momentum: float) -> np.ndarray:
    """Samples whose STFT magnitude approaches ``magnitude``: fast Griffin-Lim (momentum 0: the original).

    Each step projects onto the signals' spectra and onto the target magnitude, then moves
    ``momentum`` further along the last change (Perraudin, Balazs and Søndergaard 2013), which
    converges in far fewer steps.  The start phase is random with a fixed seed, so decoding is
    deterministic.
    """
    rng = np.random.default_rng(0)
    spectrum = previous = magnitude * np.exp(2j * np.pi * rng.random(magnitude.shape))
    for _ in range(iterations):
        estimate = stft(istft(spectrum, n_fft, hop, length), n_fft, hop)[: len(magnitude)]
        projected = magnitude * np.exp(1j * np.angle(estimate))
        spectrum, previous = projected + momentum * (projected - previous), projected
    return istft(magnitude * np.exp(1j * np.angle(spectrum)), n_fft, hop, length)


def kmeans(points: np.ndarray, k: int, seed: int = 0, iterations: int = 30) -> np.ndarray:
    """k-means++ seeding, then Lloyd iterations; deterministic for a seed."""
    rng = np.random.default_rng(seed)
    centres = [points[rng.integers(len(points))]]
    distance = ((points - centres[0]) ** 2).sum(axis=1)
    for _ in range(1, k):
        centres.append(points[rng.choice(len(points), p=distance / distance.sum())] if distance.sum() > 0
                       else points[rng.integers(len(points))])
        distance = np.minimum(distance, ((points - centres[-1]) ** 2).sum(axis=1))
    centres = np.array(centres)
    for _ in range(iterations):
        labels = nearest(points, centres)
        for j in range(k):
            members = points[labels == j]
            if len(members):
                centres[j] = members.mean(axis=0)
    return centres.astype(np.float32)


def nearest(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of the nearest centre of each point (squared Euclidean distance)."""
    distance = (points ** 2).sum(1)[:, None] - 2 * points @ centres.T + (centres ** 2).sum(1)[None, :]
    return distance.argmin(axis=1).astype(np.int32)


def read_audio(path, sample_rate: int) -> np.ndarray:
    """Mono float64 samples of a WAV (standard library) or FLAC/OGG (soundfile), resampled to ``sample_rate``."""
    where = str(path)
    if not os.path.exists(where):
        raise InputError(f"{where}: no such file")
    if os.path.getsize(where) == 0:
        raise InputError(f"{where}: empty file")
    if where.lower().endswith(".wav"):
        try:
            with wave.open(where) as handle:
                width, channels, rate = handle.getsampwidth(), handle.getnchannels(), handle.getframerate()
                raw = handle.readframes(handle.getnframes())
        except (wave.Error, EOFError) as error:
            raise InputError(f"{where}: not a readable WAV file ({error})") from None
        if width not in (1, 2, 4):
            raise InputError(f"{where}: unsupported sample format ({8 * width}-bit WAV)")
        dtype = {1: np.uint8, 2: "<i2", 4: "<i4"}[width]
        samples = np.frombuffer(raw[: len(raw) // (width * channels) * width * channels], dtype).astype(np.float64)
        samples = (samples - 128) / 128 if width == 1 else samples / float(2 ** (8 * width - 1))
        samples = samples.reshape(-1, channels).mean(axis=1)
    else:
        try:
            import soundfile
        except ImportError:
            raise InputError(f"{where}: reading {os.path.splitext(where)[1] or 'this'} needs soundfile: "
                             "pip install 'mgf-music[audio]'") from None
        try:
            samples, rate = soundfile.read(where, dtype="float64", always_2d=True)
        except Exception as error:
            raise InputError(f"{where}: not a readable audio file ({str(error).splitlines()[0][:200]})") from None
        samples = samples.mean(axis=1)
    if samples.size == 0:
        raise InputError(f"{where}: no audio in the file")
    if rate != sample_rate:
        positions = np.arange(int(len(samples) * sample_rate / rate)) * rate / sample_rate
        samples = np.interp(positions, np.arange(len(samples)), samples)
    if np.abs(samples).max() < 1e-4:
        raise InputError(f"{where}: the audio is silent")
    return samples


class Audio(Representation):
    name = "audio"
    suffix = ".wav"
    read_suffixes = SOUND_SUFFIXES + SCORE_SUFFIXES
    default_bundle = packaged_model("audio.safetensors")
    options = (
        Option("sample_rate", int, 22050, "samples per second of audio read and written", low=4000, high=192000),
        Option("n_fft", int, 2048, "FFT size of the spectrogram frames", low=64, high=16384),
        Option("hop", int, 512, "samples between frames (at most n_fft)", low=16, high=16384),
        Option("n_mels", int, 80, "mel bands per frame (at most n_fft / 2 + 1)", low=8, high=256),
        Option("codebook_size", int, 256, "codewords: tokens besides the start token", low=2, high=65536),
        Option("griffin_lim_iters", int, 32, "Griffin-Lim iterations when decoding to sound", low=1, high=1000),
        Option("griffin_lim_momentum", float, 0.99, "momentum of fast Griffin-Lim (0: the original algorithm)",
               low=0.0, high=0.999),
    )

    def __init__(self, sample_rate: int = 22050, n_fft: int = 2048, hop: int = 512, n_mels: int = 80,
                 codebook_size: int = 256, griffin_lim_iters: int = 32, griffin_lim_momentum: float = 0.99) -> None:
        if hop > n_fft:
            raise UsageError(f"representation 'audio': hop {hop} must not exceed n_fft {n_fft}")
        if n_mels > n_fft // 2 + 1:  # a band narrower than a frequency bin would be empty
            raise UsageError(f"representation 'audio': n_mels {n_mels} must not exceed n_fft / 2 + 1 = {n_fft // 2 + 1}")
        self.sample_rate, self.n_fft, self.hop, self.n_mels = sample_rate, n_fft, hop, n_mels
        self.codebook_size, self.griffin_lim_iters = codebook_size, griffin_lim_iters
        self.griffin_lim_momentum = griffin_lim_momentum
        self.filters = mel_filterbank(sample_rate, n_fft, n_mels)
        self.codebook: np.ndarray | None = None
        self.spectra: np.ndarray | None = None  # [codebook_size, n_fft // 2 + 1] linear magnitude per token

    def config(self):
        return {"sample_rate": self.sample_rate, "n_fft": self.n_fft, "hop": self.hop, "n_mels": self.n_mels,
                "codebook_size": self.codebook_size, "griffin_lim_iters": self.griffin_lim_iters,
                "griffin_lim_momentum": self.griffin_lim_momentum}

    @property
    def vocab_size(self):
        return self.codebook_size + 1

    @property
    def start_token(self):
        return self.codebook_size

    # the codebook ------------------------------------------------------------------------
    def log_mel(self, samples: np.ndarray) -> np.ndarray:
        """``[frames, n_mels]`` log-mel frames of mono samples."""
        return self.log_mel_of(np.abs(stft(samples, self.n_fft, self.hop)))

    def log_mel_of(self, magnitude: np.ndarray) -> np.ndarray:
        """``[frames, n_mels]`` log-mel frames of STFT magnitudes ``[frames, n_fft // 2 + 1]``."""
        return np.log(FLOOR + magnitude @ self.filters.T)

    def sounds(self, path):
        """``(name, samples)`` of each piece in ``path``: a sound file, or music rendered by the synthesizer."""
        if str(path).lower().endswith(SOUND_SUFFIXES):
            yield str(path), read_audio(path, self.sample_rate)
            return
        from mgf import get_representation

        midi = get_representation("midi")
        for name, tokens in midi.read_pieces(path):
            yield name, synth.render(midi.to_notes(tokens), self.sample_rate).astype(np.float64)

    def fit(self, paths, max_frames: int = 60000, seed: int = 0) -> None:
        """Learn the codebook with k-means on the log-mel frames of the pieces in ``paths``, then its spectra."""
        frames = np.concatenate([self.log_mel(samples) for path in paths for _, samples in self.sounds(path)])
        if len(frames) < self.codebook_size:
            raise InputError(f"audio: {len(frames)} frames cannot fit a codebook of {self.codebook_size}")
        rng = np.random.default_rng(seed)
        if len(frames) > max_frames:
            frames = frames[rng.choice(len(frames), max_frames, replace=False)]
        self.codebook, self.spectra = kmeans(frames, self.codebook_size, seed=seed), None
        self.fit_spectra(paths)

    def fit_spectra(self, paths) -> None:
        """Each token's magnitude spectrum: the mean STFT magnitude of the frames of ``paths`` that choose it.

        The mean is what minimises the squared magnitude error of a token's frames; a token no frame
        chooses keeps its codeword's mel inversion.  It needs only the codebook, so a bundle without
        ``repr.spectra`` can gain them without retraining its model.
        """
        codebook = self._require_codebook().astype(np.float64)
        total = np.zeros((self.codebook_size, self.n_fft // 2 + 1))
        count = np.zeros(self.codebook_size)
        for path in paths:
            for _, samples in self.sounds(path):
                magnitude = np.abs(stft(samples, self.n_fft, self.hop))
                tokens = nearest(self.log_mel_of(magnitude), codebook)  # one STFT a piece, not two
                np.add.at(total, tokens, magnitude)
                np.add.at(count, tokens, 1)
        used = count > 0
        spectra = self.inverted_codebook()
        spectra[used] = total[used] / count[used, None]
        self.spectra = spectra.astype(np.float32)

    def inverted_codebook(self) -> np.ndarray:
        """``[codebook_size, n_fft // 2 + 1]`` linear magnitudes whose mel bands are the codewords'."""
        mel = np.maximum(np.exp(self._require_codebook().astype(np.float64)) - FLOOR, 0.0)
        return mel_to_linear(mel, self.filters)

    def tensors(self):
        if self.codebook is None:
            return {}
        return {"codebook": self.codebook, **({} if self.spectra is None else {"spectra": self.spectra})}

    def load_tensors(self, tensors):
        codebook, spectra = tensors.get("codebook"), tensors.get("spectra")
        if codebook is None or codebook.shape != (self.codebook_size, self.n_mels):
            shape = None if codebook is None else list(codebook.shape)
            raise BundleError(f"audio: repr.codebook must be [{self.codebook_size}, {self.n_mels}], got {shape}")
        shape = (self.codebook_size, self.n_fft // 2 + 1)
        if spectra is not None and spectra.shape != shape:
            raise BundleError(f"audio: repr.spectra must be {list(shape)}, got {list(spectra.shape)}")
        if spectra is not None and not np.all(spectra >= 0):  # NaN fails too
            raise BundleError("audio: repr.spectra holds negative or NaN magnitudes")
        self.codebook, self.spectra = codebook, spectra

    def _require_codebook(self):
        if self.codebook is None:
            raise BundleError("audio: no codebook (repr.codebook): load the representation from a bundle, or fit() it")
        return self.codebook

    # files -------------------------------------------------------------------------------
    def read(self, path):
        return next(iter(self.read_pieces(path)))[1]

    def read_pieces(self, path):
        codebook = self._require_codebook().astype(np.float64)
        for name, samples in self.sounds(path):
            yield name, nearest(self.log_mel(samples), codebook)

    def write(self, tokens, path, **options):
        if not str(path).lower().endswith(".wav"):
            raise InputError(f"{path}: audio writes .wav files")
        synth.write_wav(self.to_samples(tokens), path, self.sample_rate)

    def to_samples(self, tokens) -> np.ndarray:
        """Mono float samples of ``tokens`` (start tokens skipped), peak-normalised to 0.9."""
        self._require_codebook()
        tokens = np.asarray([int(t) for t in tokens if int(t) != self.start_token], dtype=np.int64)
        if tokens.size == 0:
            raise InputError("audio: no frames to write")
        if tokens.min() < 0 or tokens.max() >= self.codebook_size:
            raise InputError(f"audio: token ids must lie in [0, {self.codebook_size})")
        spectra = self.spectra if self.spectra is not None else self.inverted_codebook()
        length = max(len(tokens) - 1, 1) * self.hop  # one frame still sounds for a hop
        signal = griffin_lim(spectra[tokens].astype(np.float64), self.n_fft, self.hop, length,
                             self.griffin_lim_iters, self.griffin_lim_momentum)
        peak = np.abs(signal).max()
        return signal * (synth.PEAK / peak) if peak > 0 else signal

    def clock(self):
        """Each frame one step of ``hop`` samples; no beats or bars: a sound carries no meter mgf could know."""
        advance = np.ones(self.vocab_size, dtype=np.int32)
        advance[self.start_token] = 0
        kinds, pitches = np.zeros(self.vocab_size, dtype=np.int8), np.full(self.vocab_size, -1)
        return Clock(kinds, pitches, advance, self.hop / self.sample_rate, 0, 0)

    def parse_primer(self, text):
        """Audio has no text notation: the primer is a file to read."""
        path, _ = primer_source(text, self.read_suffixes)
        if path is None:
            raise InputError("audio: give an audio file (WAV, FLAC, OGG) as the primer")
        return self.read(path)


@hookimpl
def register_representations(register):
    register(Audio)
