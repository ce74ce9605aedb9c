"""Report on the shipped default models: size, training, cross-entropy against baselines, listen-test proxies.

    python benchmarks/model_quality.py            # the per-model sections of docs/models.md

The proxies compare generated pieces with the training data: the pitch-class histogram (all notes
pooled) and the note density (notes per second, mean over pieces).  Generation: 16 pieces per
model, temperature 1, seed 0, with the native backend.
"""

from __future__ import annotations

import os

import numpy as np

import mgf
from mgf import bundle, data, metrics
from mgf.representation import packaged_model

PIECES = 16
STEPS = {"notes": 256, "midi": 1500, "audio": 860}
CLASSES = "C C# D D# E F F# G G# A A# B".split()


def profile(notes_per_piece):
    pooled = [n for notes in notes_per_piece for n in notes]
    density = np.mean([metrics.note_density(n) for n in notes_per_piece if n])
    polyphony = np.mean([metrics.polyphony(n) for n in notes_per_piece if n])
    return metrics.pitch_class_histogram(pooled), density, polyphony


def audio_quality(representation, pieces) -> str:
    """Encode -> decode against the original sound, on held-out pieces: the tokenizer's own loss."""
    from mgf.plugins.repr_audio import nearest, stft

    convergence, distance, codebook_error = [], [], []
    for name in pieces:
        for _, original in representation.sounds(name):
            frames = representation.log_mel(original)
            tokens = nearest(frames, representation.codebook.astype(np.float64))
            codebook_error.append(np.sqrt(np.mean((frames - representation.codebook[tokens]) ** 2)))
            decoded = representation.to_samples(tokens)
            n = min(len(original), len(decoded))
            X = np.abs(stft(original[:n], representation.n_fft, representation.hop))
            Y = np.abs(stft(decoded[:n], representation.n_fft, representation.hop))
            Y *= (X * Y).sum() / (Y * Y).sum()
            convergence.append(np.linalg.norm(X - Y) / np.linalg.norm(X))
            distance.append(np.mean(np.sqrt(np.mean((20 * np.log10((X + 1e-5) / (Y + 1e-5))) ** 2, axis=1))))
    return (f"Tokenizer on {len(pieces)} held-out chorales (encode -> decode against the rendered original): "
            f"spectral convergence {np.mean(convergence):.3f}, log-spectral distance {np.mean(distance):.1f} dB, "
            f"codebook reconstruction error {np.mean(codebook_error):.3f} (RMS, natural-log mel units).")


def report(name: str) -> str:
    path = packaged_model(f"{name}.safetensors")
    if not os.path.exists(path):
        return f"## `{name}`\n\nno shipped model at {path}\n"
    meta = bundle.read_metadata(path)["training"]
    model = mgf.load_model(path)
    representation = model.representation
    training = data.Dataset()
    for source in meta["data"]:
        training.extend(data.load(representation, source, progress=False))
    train_set, held = training.split(0.1)
    scores = meta.get("validation_cross_entropy", {})
    lines = [
        f"## `{name}`",
        "",
        f"- data: {', '.join(meta['data'])} ({meta['pieces']['train']} training pieces, {meta['pieces']['validation']} validation pieces, "
        f"{meta['tokens']['train']:,} training tokens)",
        f"- command: `{meta['command']}`",
        f"- size: {os.path.getsize(path) / 1e6:.2f} MB; {meta['epochs']} epochs in {meta['train_seconds'] / 60:.1f} min on this 2-core machine",
        "",
        "| validation cross-entropy (nats/token) | value |",
        "|---|--:|",
        *(f"| {k} | {v:.3f} |" for k, v in scores.items()),
    ]
    if scores:
        lines += ["", f"The model beats the 5-gram by {scores['5-gram'] - scores['model']:.3f} nats/token "
                      f"({100 * (1 - scores['model'] / scores['5-gram']):.1f}% lower cross-entropy)."
                  if scores["model"] < scores["5-gram"] else
                  f"The model does NOT beat the 5-gram ({scores['model']:.3f} vs {scores['5-gram']:.3f})."]
    if name == "audio":
        return "\n".join(lines + ["", audio_quality(representation, held.names[:8]), ""])
    reference = profile([representation.to_notes(s) for s in train_set.sequences])
    pieces = mgf.generate(model, STEPS[name], seed=0, num_outputs=PIECES)
    generated = profile([representation.to_notes(p) for p in pieces])
    lines += [
        "",
        f"Listen-test proxies ({PIECES} pieces of {STEPS[name]} tokens, temperature 1, seed 0):",
        "",
        "| | " + " | ".join(CLASSES) + " | notes/s | polyphony |",
        "|---|" + "--:|" * 14,
        "| training | " + " | ".join(f"{v:.3f}" for v in reference[0]) + f" | {reference[1]:.2f} | {reference[2]:.2f} |",
        "| generated | " + " | ".join(f"{v:.3f}" for v in generated[0]) + f" | {generated[1]:.2f} | {generated[2]:.2f} |",
        "",
        f"Pitch-class histogram L1 distance: {np.abs(reference[0] - generated[0]).sum():.3f} (0 = identical, 2 = disjoint).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print("\n".join(report(name) for name in ("notes", "midi", "audio")))
