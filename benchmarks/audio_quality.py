"""How close the ``audio`` tokenizer's encode -> decode comes to the sound it encoded, decoder by decoder.

    python benchmarks/audio_quality.py                  # 8 held-out chorales, spectra fitted on 40 training ones
    python benchmarks/audio_quality.py --pieces 2 --fit-pieces 10   # a quick look
    python benchmarks/audio_quality.py --before old.safetensors     # "today" from an earlier bundle's codebook

The material is the shipped bundle's own: its codebook, and the chorales of its ``training`` data
split as ``mgf train`` split them (``mgf.training.split.held_out_files(files, 0.1)``); the held-out ones are
measured (the first ``--pieces``, as ``benchmarks/model_quality.py`` does), ``repr.spectra`` are fitted
on ``--fit-pieces`` training ones.  Definitions, on ``X`` and ``Y`` the STFT magnitudes (the bundle's
``n_fft`` and ``hop``) of the original and of the decoded sound, ``Y`` first scaled by the
least-squares gain ``sum(XY) / sum(YY)`` (decoding normalises the peak):

- spectral convergence ``||X - Y||_F / ||X||_F`` (0: a copy; about 1: unrelated sound);
- log-spectral distance: per frame ``sqrt(mean_bins((20 log10((X + 1e-5) / (Y + 1e-5)))^2))`` dB,
  averaged over the frames;

each averaged over the pieces.  Rows: ``today`` is the decoder before fast Griffin-Lim (clipped
pseudo-inverse of the mel bands, 32 plain Griffin-Lim iterations) on the codebook of ``--before``
(default: the shipped bundle's; the first shipped audio model's is in git, 256 codewords); then the
shipped bundle's decoder without and with ``repr.spectra`` (its own, if it has them); then three
bounds that say where the error comes from: the unquantised log-mel frames decoded (what the
codebook costs), the true magnitudes through fast Griffin-Lim (what the phase costs), and the
spectra with the true phase (what the tokens cost at best).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import mgf
from mgf.contract import bundle
from mgf.training.sources import files as source_files
from mgf.training.split import held_out_files
from mgf.plugins.representations.audio import FLOOR, griffin_lim, istft, mel_to_linear, nearest, stft
from mgf.contract.representation import packaged_model


def scores(original: np.ndarray, decoded: np.ndarray, n_fft: int, hop: int) -> tuple[float, float]:
    """(spectral convergence, log-spectral distance in dB) of ``decoded`` against ``original``."""
    n = min(len(original), len(decoded))
    X, Y = np.abs(stft(original[:n], n_fft, hop)), np.abs(stft(decoded[:n], n_fft, hop))
    Y *= (X * Y).sum() / (Y * Y).sum()
    distance = np.sqrt(np.mean((20 * np.log10((X + 1e-5) / (Y + 1e-5))) ** 2, axis=1))
    return float(np.linalg.norm(X - Y) / np.linalg.norm(X)), float(distance.mean())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pieces", type=int, default=8, help="held-out chorales measured")
    parser.add_argument("--fit-pieces", type=int, default=40, help="training chorales the spectra are fitted on")
    parser.add_argument("--before", help="bundle whose codebook the 'today' row decodes (default: the shipped one)")
    args = parser.parse_args(argv)
    path = packaged_model("audio.safetensors")
    shipped = mgf.load_model(path).representation
    before = mgf.load_model(args.before).representation if args.before else shipped
    files = [f for source in bundle.read_metadata(path)["training"]["data"]
             for f in source_files(source, shipped.read_suffixes)]
    held = held_out_files(files, 0.1)
    training = [f for f in files if not held[f]]
    chosen = np.random.default_rng(0).choice(len(training), min(args.fit_pieces, len(training)), replace=False)
    held = [f for f in files if held[f]][: args.pieces]

    config = shipped.config()
    today = mgf.get_representation("audio", **{**before.config(), "griffin_lim_momentum": 0.0})
    today.load_tensors({"codebook": before.codebook})
    mel = np.maximum(np.exp(before.codebook.astype(np.float64)) - FLOOR, 0.0)
    today.spectra = np.maximum(mel @ np.linalg.pinv(before.filters).T, 0.0)  # the decoder before fast Griffin-Lim
    plain = mgf.get_representation("audio", **config)
    plain.load_tensors({"codebook": shipped.codebook})  # the shipped codebook, inverted: no repr.spectra
    if shipped.spectra is not None:
        fitted, fitted_label = shipped, "shipped bundle, its repr.spectra"
    else:
        fitted = mgf.get_representation("audio", **config)
        fitted.load_tensors({"codebook": shipped.codebook})
        started = time.perf_counter()
        fitted.fit_spectra([training[i] for i in sorted(chosen)])
        print(f"spectra fitted on {len(chosen)} training chorales in {time.perf_counter() - started:.0f} s")
        fitted_label = f"repr.spectra fitted on {len(chosen)} training chorales"

    n_fft, hop, iters, momentum = shipped.n_fft, shipped.hop, shipped.griffin_lim_iters, shipped.griffin_lim_momentum
    rows: dict[str, list] = {}
    seconds: dict[str, float] = {}
    audio_seconds = 0.0
    for name in held:
        for _, original in shipped.sounds(name):
            audio_seconds += len(original) / shipped.sample_rate
            frames = shipped.log_mel(original)
            tokens = nearest(frames, shipped.codebook.astype(np.float64))
            before_tokens = nearest(before.log_mel(original), before.codebook.astype(np.float64))
            truth = stft(original, n_fft, hop)
            length = (len(tokens) - 1) * hop
            unquantised = mel_to_linear(np.maximum(np.exp(frames) - FLOOR, 0.0), shipped.filters)
            decoders = {  # label -> (function, arguments)
                f"today ({before.codebook_size} codewords, pseudo-inverse, 32 plain Griffin-Lim)": (
                    today.to_samples, (before_tokens,)),
                f"now, {shipped.codebook_size} codewords inverted (mel inversion, fast Griffin-Lim)": (
                    plain.to_samples, (tokens,)),
                f"now, {fitted_label}": (fitted.to_samples, (tokens,)),
                "bound: unquantised log-mel frames, fast Griffin-Lim": (
                    griffin_lim, (unquantised, n_fft, hop, length, iters, momentum)),
                "bound: true magnitudes, fast Griffin-Lim (phase only)": (
                    griffin_lim, (np.abs(truth), n_fft, hop, length, iters, momentum)),
                "bound: repr.spectra with the true phase (tokens only)": (
                    istft, (fitted.spectra[tokens] * np.exp(1j * np.angle(truth)), n_fft, hop, length)),
            }
            for label, (decode, arguments) in decoders.items():
                started = time.perf_counter()
                decoded = decode(*arguments)
                seconds[label] = seconds.get(label, 0.0) + time.perf_counter() - started
                rows.setdefault(label, []).append(scores(original, decoded, n_fft, hop))
        print(f"  {name}", flush=True)
    baseline = np.mean(next(iter(rows.values())), axis=0)
    print(f"\n{len(held)} held-out chorales, {audio_seconds:.0f} s of audio\n")
    print("| decoder | spectral convergence | log-spectral distance (dB) | realtime factor |")
    print("|---|--:|--:|--:|")
    for label, values in rows.items():
        sc, lsd = np.mean(values, axis=0)
        print(f"| {label} | {sc:.3f} ({100 * (sc / baseline[0] - 1):+.0f}%) | {lsd:.2f} ({100 * (lsd / baseline[1] - 1):+.0f}%) "
              f"| {audio_seconds / seconds[label]:.1f} |")


if __name__ == "__main__":
    main()
