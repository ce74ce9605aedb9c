"""Training with Keras: windows of token sequences, teacher forcing, Adam, early stopping, checkpoints."""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

from mgf import InputError, Representation, bundle, data
from mgf.bundle import Arch, Bundle

from .keras_net import build, keras, load_keras, to_tensors


class EpochLine(keras.callbacks.Callback):
    """One line per epoch on stderr: losses and time; also remembers the epoch for checkpoints.

    Keras averages a weighted loss over every position, padding included; ``scales`` (positions
    per real token, for training and validation) turn that into nats per real token.
    """

    def __init__(self, epochs: int, batches: int, sidecar: str, quiet: bool, scales: tuple[float, float]) -> None:
        super().__init__()
        self.epochs, self.batches, self.sidecar, self.quiet, self.scales = epochs, batches, sidecar, quiet, scales
        self.started = time.perf_counter()
        self.best = float("inf")
        self.bar = None

    def on_epoch_begin(self, epoch, logs=None):
        from tqdm import tqdm

        self.started = time.perf_counter()
        self.bar = tqdm(total=self.batches, desc=f"epoch {epoch + 1}/{self.epochs}", unit="batch", leave=False,
                        disable=True if self.quiet else None)

    def on_train_batch_end(self, batch, logs=None):
        self.bar.update()

    def on_epoch_end(self, epoch, logs=None):
        self.bar.close()
        logs = logs or {}
        val = logs.get("val_loss")
        if val is not None:
            val *= self.scales[1]
            self.best = min(self.best, float(val))
        if not self.quiet:
            parts = [f"epoch {epoch + 1}/{self.epochs}", f"loss {logs.get('loss', float('nan')) * self.scales[0]:.4f}"]
            if val is not None:
                parts.append(f"val_loss {val:.4f}")
            parts.append(f"{time.perf_counter() - self.started:.0f} s")
            print(", ".join(parts), file=sys.stderr, flush=True)
        with open(self.sidecar, "w") as handle:
            json.dump({"epoch": epoch + 1, "best_val_loss": self.best}, handle)


def train(
    representation,
    sources: list[str],
    output: str,
    *,
    hidden=(256, 256),
    embedding_dim: int | None = 64,
    seq_len: int = 128,
    batch_size: int = 64,
    epochs: int = 20,
    lr: float = 1e-3,
    val_split: float = 0.1,
    seed: int = 0,
    patience: int = 3,
    dropout: float = 0.0,
    transpose: range = range(0, 1),
    resume: bool = False,
    quiet: bool = False,
    command: str = "",
) -> Bundle:
    """Train on the pieces of ``sources`` and write the bundle to ``output`` (the Keras model goes beside it as ``.keras``)."""
    keras.utils.set_random_seed(seed)
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()  # same seed, same data -> same bundle
    if type(representation).fit is not Representation.fit and not representation.tensors():
        # learn the representation (a codebook) from the training side's files only
        paths = [p for source in sources for p in data.files(source, representation.read_suffixes)]
        representation.fit([p for p in paths if not data.held_out(p, val_split)] or paths)
    dataset = data.Dataset()
    for source in sources:
        dataset.extend(data.load(representation, source, progress=None if not quiet else False))
    source = " + ".join(sources)
    if not dataset.sequences:
        raise InputError(f"{source}: no piece could be read ({len(dataset.skipped)} file(s) skipped)")
    train_set, val_set = dataset.split(val_split)
    if val_split > 0 and not (val_set.sequences and train_set.sequences):
        raise InputError(f"{source}: too few pieces ({len(dataset.sequences)}) for a validation split; use more data or --val-split 0")
    if len(transpose) > 1 or 0 not in transpose:
        train_set = data.augment(train_set, representation, transpose)
    start = representation.start_token
    x, y, w = data.windows(train_set.sequences, start, seq_len)
    if len(x) == 0 or w.sum() < 2:
        raise InputError(f"{source}: too little data to train on ({int(w.sum())} tokens)")
    validation = None
    if val_set.sequences:
        vx, vy, vw = data.windows(val_set.sequences, start, seq_len)
        validation = (vx, vy, vw)

    stem = os.path.splitext(output)[0]
    checkpoint, sidecar, keras_path = f"{stem}.ckpt.keras", f"{stem}.ckpt.json", f"{stem}.keras"
    arch = Arch(vocab_size=representation.vocab_size, hidden=tuple(hidden), embedding_dim=embedding_dim)
    initial_epoch = 0
    if resume:
        if not (os.path.exists(checkpoint) and os.path.exists(sidecar)):
            raise InputError(f"--resume: no checkpoint {checkpoint} to continue from")
        model = load_keras(checkpoint)
        with open(sidecar) as handle:
            initial_epoch = json.load(handle)["epoch"]
        if to_tensors(model)[0] != arch:
            raise InputError(f"--resume: {checkpoint} has another architecture than the one asked for")
    else:
        model = build(arch, dropout)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=lr),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    scales = (w.size / w.sum(), validation[2].size / validation[2].sum() if validation else 1.0)
    progress = EpochLine(epochs, -(-len(x) // batch_size), sidecar, quiet, scales)
    callbacks = [progress, keras.callbacks.ModelCheckpoint(checkpoint)]
    if validation is not None:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True))
    started = time.perf_counter()
    history = model.fit(x, y, sample_weight=w, batch_size=batch_size, epochs=epochs, initial_epoch=initial_epoch,
                        validation_data=validation, callbacks=callbacks, shuffle=True, verbose=0)
    seconds = time.perf_counter() - started
    model.save(keras_path)
    arch, tensors = to_tensors(model)
    from mgf import __version__

    val_losses = [loss * scales[1] for loss in history.history.get("val_loss", [])]
    result = Bundle(arch, {**tensors, **{f"repr.{k}": v for k, v in representation.tensors().items()}},
                    {"name": representation.name, "config": representation.config()},
                    {
                        "data": list(sources),
                        "command": command,
                        "pieces": {"train": len(train_set.sequences), "validation": len(val_set.sequences),
                                   "skipped_files": len(dataset.skipped)},
                        "tokens": {"train": int(w.sum()), "validation": int(validation[2].sum()) if validation else 0},
                        "epochs": initial_epoch + len(history.history.get("loss", [])),
                        "best_val_loss": float(np.min(val_losses)) if val_losses else None,
                        "train_seconds": round(seconds, 1),
                        "seq_len": seq_len, "batch_size": batch_size, "lr": lr, "seed": seed, "dropout": dropout,
                        "transpose": [transpose.start, transpose.stop - 1],
                        "mgf_version": __version__,
                        "keras_version": keras.__version__,
                    })
    if val_set.sequences:
        result.training["validation_cross_entropy"] = _scores(result, representation, train_set, val_set)
    bundle.write(result, output)
    return result


def _scores(result, representation, train_set, val_set):
    """Nats per validation token: the model (native kernel) and the baselines fitted on the same training pieces."""
    from mgf.baselines import NGram, model_cross_entropy
    from mgf.plugins.model_native import NativeModel

    model = NativeModel(result, threads=1)
    model.representation = representation
    scores = {"model": model_cross_entropy(model, val_set.sequences)}
    for name, order in (("unigram", 1), ("5-gram", 5)):
        baseline = NGram(order, representation.vocab_size, representation.start_token).fit(train_set.sequences)
        scores[name] = baseline.cross_entropy(val_set.sequences)
    return {name: round(value, 4) for name, value in scores.items()}
