"""Training with Keras: windows of token sequences, teacher forcing, Adam, early stopping, checkpoints."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import sys
import time
import warnings

import numpy as np

import mgf
from mgf import InputError, Representation, atomic_path, bundle, data
from mgf.bundle import Arch, Bundle

from .keras_net import build, keras, load_keras, to_tensors

LINE_SECONDS = 30  # without a terminal, the longest silence during an epoch


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


class Progress(keras.callbacks.Callback):
    """What training does, on stderr: a line per epoch (losses, speed, ETA) and a bar during it on a terminal.

    Without a terminal there is no bar, so a line comes every ``LINE_SECONDS`` during an epoch
    instead; ``every`` asks for one every that many batches too.  Keras averages a weighted
    loss over every position, padding included; ``scales`` (positions per real token, for
    training and validation) turn that into nats per real token.
    """

    def __init__(self, epochs: int, batches: int, tokens: int, scales: tuple[float, float], quiet: bool, every: int = 0) -> None:
        super().__init__()
        self.epochs, self.batches, self.tokens, self.scales, self.quiet, self.every = epochs, batches, tokens, scales, quiet, every
        self.best = float("inf")  # the lowest validation loss, in nats per token
        self.run_started = self.started = self.last_line = time.perf_counter()
        self.epochs_done = 0
        self.bar = None

    def on_epoch_begin(self, epoch, logs=None):
        from tqdm import tqdm

        self.epoch = epoch
        self.started = self.last_line = time.perf_counter()
        self.bar = tqdm(total=self.batches, desc=f"epoch {epoch + 1}/{self.epochs}", unit="batch", leave=False,
                        disable=True if self.quiet else None)

    def on_train_batch_end(self, batch, logs=None):
        self.bar.update()
        done, now = batch + 1, time.perf_counter()
        if self.quiet or done >= self.batches:
            return
        if (self.every and done % self.every == 0) or (self.bar.disable and now - self.last_line >= LINE_SECONDS):
            self.last_line = now
            rate = done / (now - self.started)  # batches per second
            left = (self.batches - done) / rate + (self.epochs - self.epoch - 1) * self.batches / rate
            loss = (logs or {}).get("loss", float("nan")) * self.scales[0]
            self.bar.write(f"batch {done}/{self.batches} (epoch {self.epoch + 1}/{self.epochs}), loss {loss:.4f}, "
                           f"{rate * self.tokens / self.batches:.0f} tokens/s, ETA {_duration(left)}", file=sys.stderr)

    def on_epoch_end(self, epoch, logs=None):
        self.bar.close()
        logs = logs or {}
        val = logs.get("val_loss")
        if val is not None:
            val *= self.scales[1]
            self.best = min(self.best, float(val))
        self.epochs_done += 1
        if self.quiet:
            return
        now = time.perf_counter()
        seconds = now - self.started
        left = (now - self.run_started) / self.epochs_done * (self.epochs - epoch - 1)
        parts = [f"epoch {epoch + 1}/{self.epochs}", f"loss {logs.get('loss', float('nan')) * self.scales[0]:.4f}"]
        if val is not None:
            parts.append(f"val_loss {val:.4f}")
        parts += [f"{self.tokens / seconds:.0f} tokens/s", f"{seconds:.0f} s", f"ETA {_duration(left)}"]
        print(", ".join(parts), file=sys.stderr, flush=True)


class Checkpoints(keras.callbacks.Callback):
    """Per-epoch checkpoints that a kill at any moment cannot destroy.

    Epoch N's model goes to its own file ``STEM.ckpt-N.keras``, written under a temporary name
    and renamed.  Only then is the sidecar ``STEM.ckpt.json`` replaced (atomically too): it
    lists the newest checkpoints, newest first, each with its epoch and SHA-256.  Files it no
    longer lists are deleted last.  So the sidecar only ever names complete files, and a
    checkpoint that does not match its hash (changed by hand) is passed over for the older one.
    """

    KEEP = 2

    def __init__(self, output: str, progress: Progress) -> None:
        super().__init__()
        self.stem = os.path.splitext(output)[0]
        self.sidecar = f"{self.stem}.ckpt.json"
        self.progress = progress
        self.entries: list[dict] = []

    def _path(self, entry: dict) -> str:
        return os.path.join(os.path.dirname(self.stem), entry["file"])

    def on_epoch_end(self, epoch, logs=None):
        name = f"{os.path.basename(self.stem)}.ckpt-{epoch + 1}.keras"
        with atomic_path(os.path.join(os.path.dirname(self.stem), name)) as tmp:
            self.model.save(tmp)
            digest = _sha256(tmp)
        best = self.progress.best if np.isfinite(self.progress.best) else None
        entry = {"file": name, "epoch": epoch + 1, "sha256": digest, "best_val_loss": best}
        self.entries = [entry] + [e for e in self.entries if e["file"] != name][:self.KEEP - 1]
        with atomic_path(self.sidecar) as tmp, open(tmp, "w") as handle:
            json.dump({"checkpoints": self.entries}, handle, indent=1)
        kept = {e["file"] for e in self.entries}
        for path in glob.glob(f"{glob.escape(self.stem)}.ckpt-*.keras"):
            if os.path.basename(path) not in kept:
                os.unlink(path)

    def resume(self) -> tuple[keras.Model, dict]:
        """The newest checkpoint whose file matches the sidecar, and its entry; older ones stay listed."""
        if not os.path.exists(self.sidecar):
            raise InputError(f"--resume: no checkpoint {self.sidecar} to continue from")
        try:
            with open(self.sidecar) as handle:
                entries = json.load(handle)["checkpoints"]
            entries = [e for e in entries if isinstance(e["file"], str) and isinstance(e["epoch"], int)]
        except (OSError, ValueError, KeyError, TypeError):
            raise InputError(f"--resume: {self.sidecar} is not a checkpoint list of this mgf version") from None
        for position, entry in enumerate(entries):
            path = self._path(entry)
            if os.path.basename(entry["file"]) == entry["file"] and os.path.isfile(path) and _sha256(path) == entry.get("sha256"):
                if position:
                    warnings.warn(f"--resume: {entries[0]['file']} does not match {self.sidecar}; "
                                  f"continuing from epoch {entry['epoch']}", stacklevel=1)
                self.entries = entries[position:]
                return load_keras(path), entry
        raise InputError(f"--resume: no checkpoint listed in {self.sidecar} is intact")


def _sha256(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


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
    transpose: range = range(1),
    resume: bool = False,
    quiet: bool = False,
    log_every: int = 0,
    command: str = "",
) -> Bundle:
    """Train on the pieces of ``sources`` and write the bundle to ``output`` (the Keras model goes beside it as ``.keras``)."""
    keras.utils.set_random_seed(seed)
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()  # same seed, same data -> same bundle
    if type(representation).fit is not Representation.fit and not representation.tensors():
        # learn the representation (a codebook) from the training side's files only
        paths = [p for source in sources for p in data.files(source, representation.read_suffixes)]
        held = data.held_out_files(paths, val_split)
        representation.fit([p for p in paths if not held[p]] or paths)
    dataset = data.Dataset()
    for source in sources:
        dataset.extend(data.load(representation, source, progress=False if quiet else None,
                                 every=None if quiet else LINE_SECONDS))
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

    arch = Arch(vocab_size=representation.vocab_size, hidden=tuple(hidden), embedding_dim=embedding_dim)
    scales = (w.size / w.sum(), validation[2].size / validation[2].sum() if validation else 1.0)
    initial_epoch, best = 0, None
    progress = Progress(epochs, -(-len(x) // batch_size), int(w.sum()), scales, quiet, log_every)
    checkpoints = Checkpoints(output, progress)
    if resume:
        model, entry = checkpoints.resume()
        initial_epoch, best = entry["epoch"], entry.get("best_val_loss")
        progress.best = float("inf") if best is None else best
        if to_tensors(model)[0] != arch:
            raise InputError(f"--resume: {entry['file']} has another architecture than the one asked for")
    else:
        model = build(arch, dropout)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=lr),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    callbacks = [progress, checkpoints]
    if validation is not None:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True))
    started = time.perf_counter()
    history = model.fit(x, y, sample_weight=w, batch_size=batch_size, epochs=epochs, initial_epoch=initial_epoch,
                        validation_data=validation, callbacks=callbacks, shuffle=True, verbose=0)
    seconds = time.perf_counter() - started
    with atomic_path(f"{os.path.splitext(output)[0]}.keras") as tmp:
        model.save(tmp)
    arch, tensors = to_tensors(model)

    val_losses = [loss * scales[1] for loss in history.history.get("val_loss", [])] + ([best] if best is not None else [])
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
                        "mgf_version": mgf.__version__,
                        "keras_version": keras.__version__,
                    })
    bundle.write(result, output)
    if val_set.sequences:
        result.training["validation_cross_entropy"] = _scores(output, representation, train_set, val_set)
        bundle.write(result, output)
    return result


def _scores(output, representation, train_set, val_set):
    """Nats per validation token: the written model (native kernel) and the baselines fitted on the same training pieces."""
    from mgf.baselines import NGram, model_cross_entropy

    scores = {"model": model_cross_entropy(mgf.load_model(output, backend="native", threads=1), val_set.sequences)}
    for name, order in (("unigram", 1), ("5-gram", 5)):
        baseline = NGram(order, representation.vocab_size, representation.start_token).fit(train_set.sequences)
        scores[name] = baseline.cross_entropy(val_set.sequences)
    return {name: round(value, 4) for name, value in scores.items()}
