"""Training with Keras: windows streamed from dataset shards, teacher forcing, Adam, early stopping, checkpoints,
one machine or several (``MultiWorkerMirroredStrategy``)."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import math
import os
import sys
import time
import warnings

from collections.abc import Sequence

import numpy as np

import mgf
from mgf.contract import registry
from mgf import Infilling, InputError, Representation, UsageError, atomic_path, open_regular
from mgf.files import atomic_paths
from mgf.contract import bundle
from mgf.contract.clock import clock_of
from mgf.training import card
from mgf.training.infill import Examples
from mgf.training.controls import Conditioning
from mgf.contract.controls import Conditioned, families_for
from mgf.training.build import build as build_dataset
from mgf.training.progress import duration, LINE_SECONDS
from mgf.training.shards import is_dataset, Shards, stream
from mgf.training.sources import augment, Dataset, files
from mgf.training.split import held_out_files, sides
from mgf.training.windows import windows as cut_windows
from mgf.contract.bundle import Arch, Bundle
from mgf.contract.transformer import Transformer

from mgf.plugins.keras.archive import BYTES_PER_PARAMETER, check_memory
from mgf.plugins.keras.net import build, keras, load_keras, to_tensors
from mgf.plugins.keras.support import ready


class Progress(keras.callbacks.Callback):
    """What training does, on stderr: a line per epoch (losses, speed, ETA) and a bar during it on a terminal.

    Without a terminal there is no bar, so a line comes every ``mgf.training.progress.LINE_SECONDS`` during an epoch
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
                           f"{rate * self.tokens / self.batches:.0f} tokens/s, ETA {duration(left)}", file=sys.stderr)

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
        parts += [f"{self.tokens / seconds:.0f} tokens/s", f"{seconds:.0f} s", f"ETA {duration(left)}"]
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
        loss = (logs or {}).get("loss", math.nan)
        largest = max((float(np.max(np.abs(w))) for w in self.model.get_weights() if w.size), default=0.0)
        if not (math.isfinite(loss) and largest <= bundle.MAX_WEIGHT):  # a checkpoint of it would only spoil --resume
            raise InputError(f"training diverged in epoch {epoch + 1} (loss {loss:.4g}, weights up to {largest:.3g}; "
                             f"a bundle holds at most {bundle.MAX_WEIGHT:g}), so nothing was written: try a lower --lr "
                             f"(this run's: {float(self.model.optimizer.learning_rate.numpy()):g})")
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
            with open_regular(self.sidecar, "r") as handle:  # a FIFO would block for ever
                entries = json.load(handle)["checkpoints"]
            entries = [e for e in entries if isinstance(e["file"], str) and isinstance(e["epoch"], int)]
        except InputError as error:
            raise InputError(f"--resume: {error}") from None
        except (OSError, ValueError, KeyError, TypeError):
            raise InputError(f"--resume: {self.sidecar} is not a checkpoint list of this mgf version") from None
        for position, entry in enumerate(entries):
            path = self._path(entry)
            named = f"{os.path.basename(self.stem)}.ckpt-{entry['epoch']}.keras" == entry["file"]
            if named and entry["epoch"] >= 1 and os.path.isfile(path) and _sha256(path) == entry.get("sha256"):
                if position:
                    warnings.warn(f"--resume: {entries[0]['file']} does not match {self.sidecar}; "
                                  f"continuing from epoch {entry['epoch']}", stacklevel=1)
                self.entries = entries[position:]
                return load_keras(path, compile=True), entry
        raise InputError(f"--resume: no checkpoint listed in {self.sidecar} is intact")


def _sha256(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


DEFAULT_LR = 1e-3  # Adam's learning rate unless told otherwise
BASELINE_TOKENS = 1_000_000  # the n-gram baselines fit on at most this many training tokens: bounded memory


def train(
    representation,
    sources: list[str],
    output: str,
    *,
    hidden=(256, 256),
    cell: str = "lstm",
    embedding_dim: int | None = 64,
    seq_len: int = 128,
    batch_size: int = 64,
    epochs: int = 20,
    lr: float | None = None,
    val_split: float = 0.1,
    seed: int = 0,
    patience: int = 3,
    dropout: float = 0.0,
    transpose: range = range(1),
    resume: bool = False,
    quiet: bool = False,
    log_every: int = 0,
    command: str = "",
    workers: int = 1,
    scheduler: str | None = None,
    distributed: bool = False,
    infill: float = 0.0,
    infill_context: int | None = None,
    controls: Sequence[tuple[str, float]] = (),
    transformer: Transformer | None = None,
) -> Bundle | None:
    """Train on the pieces of ``sources`` and write the bundle to ``output`` (the Keras model goes beside it as ``.keras``).

    A source is a dataset directory (``mgf dataset -o``) or what :func:`mgf.training.sources.files` reads;
    the latter is first encoded (by ``workers`` processes or on the Dask ``scheduler``) into a
    dataset directory in the cache.  Training streams the shards through ``tf.data``, so memory
    does not grow with the data.  ``representation=None`` takes the first dataset directory's.
    ``distributed`` trains under ``MultiWorkerMirroredStrategy`` as configured by ``TF_CONFIG``
    (``batch_size`` is then the global batch); only the chief writes checkpoints and the bundle,
    and the other workers return None.  ``infill`` (0: off) is the share of training windows made fill-in-the-middle
    examples (:mod:`mgf.training.infill`) with ``infill_context`` tokens each side (default: a quarter of the window);
    the model then scores the representation's ids and the four of :class:`mgf.Infilling`.  ``controls``: the
    attribute controls (:mod:`mgf.training.controls`) by name, each with the probability that a window leaves it out.
    ``transformer``: train a Transformer of ``len(hidden)`` blocks of ``hidden[0]`` (``cell`` and ``embedding_dim``
    aside) of this shape instead; ``seq_len`` at most its context.
    """
    if transformer is not None and seq_len > transformer.context:
        raise UsageError(f"--seq-len {seq_len} is longer than the Transformer's context ({transformer.context})")
    import tensorflow as tf

    if distributed:
        with _c_logs_silenced():
            strategy = tf.distribute.MultiWorkerMirroredStrategy()  # returns once every worker has joined
        ready()  # the wait that in_child() times out (--peer-timeout) is over
    else:
        strategy = tf.distribute.get_strategy()
    chief = _is_chief(strategy) if distributed else True
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()  # same seed, same data -> same bundle
    quiet = quiet or not chief
    representation = _representation(representation, sources)
    clock = clock_of(representation, "--infill") if infill else None  # gaps are cut by it: checked before any data is read
    families = _families(representation, controls)  # so are the controls
    representation, datasets = _datasets(representation, sources, val_split, workers, scheduler, quiet)
    infilling = None if clock is None else Infilling(representation)
    scored = infilling or representation
    conditioned = Conditioned(scored, families) if families else None
    vocab_size = (conditioned or scored).vocab_size
    if transformer is not None:
        arch = Arch.of_transformer(vocab_size, hidden[0], len(hidden), **transformer.as_dict())
    else:
        arch = Arch(vocab_size=vocab_size, hidden=tuple(hidden), embedding_dim=embedding_dim, cell=cell)
    source = " + ".join(sources)
    skipped = sum(d.manifest["files"]["skipped"] for d in datasets)
    if not any(d.manifest["pieces"] for d in datasets):
        raise InputError(f"{source}: no piece could be read ({skipped} file(s) skipped)")
    shards = [(d, i) for d in datasets for i in range(len(d))]
    held = sides([d.shard(i, tokens=False)[2] for d, i in shards], val_split)
    train_parts = [(d, i, ~mask) for (d, i), mask in zip(shards, held) if not mask.all()]
    val_parts = [(d, i, mask) for (d, i), mask in zip(shards, held) if mask.any()]
    if val_split > 0 and not (val_parts and train_parts):  # a single file: trained on, whole
        pieces = sum(d.manifest["pieces"] for d in datasets)
        warnings.warn(f"{source}: {pieces} piece{'s are' if pieces > 1 else ' is'} too few to hold any out for validation; "
                      "training on all of it, without early stopping, held-out cross-entropy or a model card "
                      "(--val-split 0: the same without this warning)", stacklevel=1)
        train_parts, val_parts = [(d, i, np.ones_like(mask)) for (d, i), mask in zip(shards, held)], []
    augmenting = len(transpose) > 1 or 0 not in transpose

    def transform(pieces):
        return augment(Dataset(pieces, [""] * len(pieces)), representation, transpose).sequences

    music_transform = transform if augmenting else None  # what the baselines fit: music alone
    conditioning = None
    if conditioned is not None:
        conditioning = Conditioning(conditioned, tuple(rate for _, rate in controls))
        train_transform = _then(music_transform, conditioning.transform)
        val_transform = conditioning.transform
    else:
        train_transform, val_transform = music_transform, None
    train_count = _count(train_parts, seq_len, train_transform)
    val_count = _count(val_parts, seq_len, val_transform)
    if train_count["windows"] == 0 or train_count["tokens"] < 2:
        raise InputError(f"{source}: too little data to train on ({train_count['tokens']} tokens)")
    # windows are padded to seq_len: beyond the longest piece only padding grows (10^9 made a segfault)
    seq_len = min(seq_len, max(train_count["longest"], val_count["longest"]))
    _check_fits(arch, min(batch_size, train_count["windows"]), seq_len)
    examples = None if infilling is None else Examples(infilling.infill, (conditioned or infilling).clock(), infill,
                                                       seq_len // 4 if infill_context is None else infill_context)
    if conditioning is not None:
        conditioning = Conditioning(conditioned, conditioning.dropout, examples)
        examples = conditioning
    start = representation.start_token
    train_data = _tf_windows(tf, train_parts, start, seq_len, batch_size, train_count["windows"], train_transform,
                             lambda: [seed, next(epoch_seeds)], examples)
    validation = None
    if val_parts:
        validation = _tf_windows(tf, val_parts, start, seq_len, batch_size, val_count["windows"], val_transform,
                                 lambda: None, conditioning)
    positions = train_count["tokens"] * _positions_per_token(examples, train_parts, train_transform, start, seq_len, seed)
    val_positions = val_count["tokens"] * _positions_per_token(conditioning, val_parts, val_transform, start, seq_len, None)
    scales = (train_count["windows"] * seq_len / positions,
              val_count["windows"] * seq_len / val_positions if val_parts else 1.0)
    initial_epoch, best = 0, None
    progress = Progress(epochs, -(-train_count["windows"] // batch_size), train_count["tokens"], scales, quiet, log_every)
    checkpoints = Checkpoints(output, progress)
    with strategy.scope():
        if resume:
            model, entry = checkpoints.resume()
            initial_epoch, best = entry["epoch"], entry.get("best_val_loss")
            progress.best = float("inf") if best is None else best
            if to_tensors(model)[0] != arch:
                raise InputError(f"--resume: {entry['file']} has another architecture than the one asked for")
            if initial_epoch >= epochs:
                raise UsageError(f"--resume: {entry['file']} ended epoch {initial_epoch}, so --epochs {epochs} leaves "
                                 "nothing to train; give more --epochs")
        else:
            model = build(arch, dropout)
        if resume and model.optimizer is not None:  # Adam goes on with its step count, moments and rate
            if lr is None:  # the float32 variable's shortest decimal: 0.01, not 0.009999999776
                lr = float(str(np.float32(keras.ops.convert_to_numpy(model.optimizer.learning_rate))))
            model.optimizer.learning_rate = lr
        else:
            lr = DEFAULT_LR if lr is None else lr
            model.compile(optimizer=keras.optimizers.Adam(learning_rate=lr),
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        if distributed:
            _multi_worker_keras(model, tf, batch_size, seq_len)
    epoch_seeds = iter(range(initial_epoch, 10**9))  # a resumed run shuffles its epochs as the first run would have
    callbacks = [progress] + ([checkpoints] if chief else [])
    if validation is not None:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True))
    started = time.perf_counter()
    history = model.fit(train_data, epochs=epochs, initial_epoch=initial_epoch, validation_data=validation,
                        callbacks=callbacks, shuffle=False, verbose=0)  # the pipeline shuffles
    seconds = time.perf_counter() - started
    if not chief:
        return None
    val_losses = [loss * scales[1] for loss in history.history.get("val_loss", [])] + ([best] if best is not None else [])
    # the Keras model and the bundle are renamed into place together, after the model card: a run that
    # fails anywhere leaves the previous ones as they were
    with atomic_paths(f"{os.path.splitext(output)[0]}.keras", output) as (keras_tmp, bundle_tmp):
        model.save(keras_tmp)
        result = _bundle(model, representation, examples, conditioned, val_parts, train_parts, music_transform, bundle_tmp, {
            "data": list(sources),
            "command": command,
            "pieces": {"train": train_count["pieces"], "validation": val_count["pieces"], "skipped_files": skipped},
            "tokens": {"train": train_count["tokens"], "validation": val_count["tokens"]},
            "epochs": initial_epoch + len(history.history.get("loss", [])),
            "best_val_loss": float(np.min(val_losses)) if val_losses else None,
            "train_seconds": round(seconds, 1),
            "seq_len": seq_len, "batch_size": batch_size, "lr": lr, "seed": seed, "dropout": dropout,
            **({"controls": dict(controls)} if controls else {}),
            "transpose": [transpose.start, transpose.stop - 1],
            "workers": strategy.num_replicas_in_sync,
            "mgf_version": mgf.__version__,
            "keras_version": keras.__version__,
        })
    return result


def _bundle(model, representation, examples, conditioned, val_parts, train_parts, train_transform, path, training) -> Bundle:
    """The trained ``model``'s bundle, scored in memory with its card when there is a validation split, written to
    ``path`` once: the numbers are those of the weights written, with no file written, read back and rewritten.

    Scores and card are of plain music, with or without infilling (``examples``): the validation pieces continued."""
    arch, tensors = to_tensors(model)
    result = Bundle(arch, {**tensors, **{f"repr.{k}": v for k, v in representation.tensors().items()}},
                    {"name": representation.name, "config": representation.config()}, training,
                    infill=None if examples is None else examples.metadata(),
                    controls=None if conditioned is None else conditioned.metadata())
    if val_parts:
        scored = mgf.load_model(result, backend="native", threads=1)
        result.training.update(_scored(scored, representation, train_parts, val_parts, train_transform))
    bundle.write(result, path)
    return result


CARD_PIECES = 500  # held-out pieces a card compares with, at most (the first of the split)


def _multi_worker_keras(model, tf, batch_size: int, seq_len: int) -> None:
    """Work around Keras 3's multi-worker ``fit`` (tensorflow/tensorflow#72388), which fails twice without it.

    Each step's logs are averaged across workers along axis 0, which scalars lack: the steps
    return them as vectors of one.  And before its first step, ``fit`` averages a batch of data
    across workers to build the loss and optimizer, which fails for a tuple of tensors: they are
    built here from a batch of zeros (evaluated on every worker), and that averaging is skipped.
    """

    def as_vectors(step):
        def wrapped(batch):
            return {name: tf.reshape(value, [1]) for name, value in step(batch).items()}

        return wrapped

    model.train_step = as_vectors(model.train_step)
    model.test_step = as_vectors(model.test_step)
    zeros = np.zeros((batch_size, seq_len), np.int32)
    model.test_on_batch(zeros, zeros, sample_weight=np.ones((batch_size, seq_len), np.float32))
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None


@contextlib.contextmanager
def _c_logs_silenced():
    """Keep what TensorFlow's C++ writes to fd 2 (absl and oneDNN notices when a cluster starts) off the user's terminal."""
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    sys.stderr.flush()
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _is_chief(strategy) -> bool:
    """Whether this process is the chief of a multi-worker run: the ``chief`` task, else worker 0."""
    resolver = strategy.cluster_resolver
    if resolver.task_type in (None, "chief"):
        return True
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in resolver.cluster_spec().as_dict()


def _representation(representation, sources):
    """``representation``, or for None the first dataset directory's."""
    if representation is None:
        first = next((s for s in sources if is_dataset(s)), None)
        if first is None:
            raise mgf.UsageError("give --repr: the --data sources are not dataset directories (`mgf dataset -o`)")
        representation = Shards(first).representation()
    return representation


def _datasets(representation, sources, val_split, workers, scheduler, quiet):
    """The representation and one dataset directory per source, encoding into the cache those that are not one."""
    if type(representation).fit is not Representation.fit and not representation.tensors():
        # learn the representation (a codebook) from the training side's files only
        paths = [p for source in sources if not is_dataset(source)
                 for p in files(source, representation.read_suffixes)]
        held = held_out_files(paths, val_split)
        representation.fit([p for p in paths if not held[p]] or paths)
    datasets = []
    for source in sources:
        if is_dataset(source):
            opened = Shards(source)
            if not opened.matches(representation):
                spec = opened.manifest["representation"]
                raise InputError(f"{source}: encoded with {spec['name']} {spec['config']}, not with the representation "
                                 f"asked for; leave out --repr/--config to train with the dataset's")
        else:
            opened = build_dataset(representation, source, workers=workers, scheduler=scheduler,
                                progress=False if quiet else None, every=None if quiet else LINE_SECONDS,
                                validation=val_split)
        datasets.append(opened)
    return representation, datasets


def _check_fits(arch: Arch, batch: int, seq_len: int) -> None:
    """Refuse a run that cannot fit this machine's memory, before Keras builds the network (it took 54 s and 17 GB
    to fail on an embedding of 10^8): float32 weights, gradients and Adam's two moments, and the activations that
    backpropagation through a window keeps (per token: the input, each layer's gates, cell and output, the logits
    and their gradient)."""
    parameters = sum(math.prod(shape) for shape in arch.tensor_shapes().values())
    if arch.transformer is not None:  # per block: norms, q k v, attention weights per head, output, MLP, sums
        shape = arch.transformer
        per_token = sum(10 * h + 2 * shape.mlp + shape.heads * seq_len for h in arch.hidden) + 3 * arch.vocab_size
    else:
        gates = 3 if arch.cell == "gru" else 4
        per_token = (arch.embedding_dim or arch.vocab_size) + sum((gates + 3) * h for h in arch.hidden) + 3 * arch.vocab_size
    check_memory(BYTES_PER_PARAMETER * parameters + 4 * batch * seq_len * per_token,
                 f"this network's {parameters:,} parameters and batches of {batch} windows of {seq_len} tokens", "to train",
                 UsageError)


SAMPLE_TOKENS = 100_000  # training tokens that tell how many positions examples weigh, per token of music


def _positions_per_token(examples, parts, transform, start, seq_len, seed) -> float:
    """Weighted positions per token of music in training windows: 1 without ``examples``; with them, fewer (an example
    holds its gap and some context, not all the music of the window it replaces), measured on the first pieces."""
    if examples is None:
        return 1.0
    sample = _first_tokens(parts, transform, SAMPLE_TOKENS)
    rng = None if seed is None else np.random.default_rng([seed, 2**31])  # no epoch's stream
    weights = examples.windows(sample, start, seq_len, rng)[2]
    return float(weights.sum()) / sum(len(piece) for piece in sample)


def _count(parts, seq_len, transform) -> dict[str, int]:
    """Pieces, tokens, training windows and the longest piece of ``parts``: one pass over the shards, before training."""
    count = {"pieces": 0, "tokens": 0, "windows": 0, "longest": 0}

    def add(lengths):
        count["pieces"] += len(lengths)
        count["tokens"] += int(lengths.sum())
        count["windows"] += int((-(-lengths // seq_len)).sum())
        count["longest"] = max(count["longest"], int(lengths.max(initial=0)))

    if transform is None:  # the offsets alone tell
        for shards, index, mask in parts:
            add(np.diff(shards.shard(index, tokens=False)[1])[mask])
    else:
        for pieces in stream(parts, transform):
            add(np.array([len(p) for p in pieces], np.int64))
    return count


def _then(first, second):
    """``second`` after ``first`` (None: nothing to do first)."""
    return second if first is None else (lambda pieces: second(first(pieces)))


def _families(representation, controls):
    """The installed controls named in ``controls`` with the values they take on ``representation`` (a ``UsageError``
    for one it cannot condition), before any data is read; [] for none."""
    if not controls or representation is None:
        return []
    found = [registry.get("controls", name)() for name, _ in controls]
    return families_for(clock_of(representation), found, "--controls")


def _tf_windows(tf, parts, start, seq_len, batch_size, windows_count, transform, epoch_seed, examples=None):
    """A ``tf.data`` pipeline of ``(inputs, targets, weights)`` batches read from the shards, one shard at a time.

    Each pass (epoch) asks ``epoch_seed()`` for its seed: shards come in a shuffled order and
    each shard's windows shuffled (no shuffling for None), and with ``examples`` (a seed needed) a share
    of them made fill-in-the-middle examples, new gaps each epoch.  Its length (``windows_count``,
    counted beforehand: examples replace windows) is declared, so Keras knows an epoch's batches from the first one on.
    Multi-worker runs shard it by batch.
    """

    def windows():
        seed = epoch_seed()
        rng = None if seed is None else np.random.default_rng(seed)
        for pieces in stream(parts, transform, seed):
            if examples is None:
                x, y, w = cut_windows(pieces, start, seq_len)
            else:
                x, y, w = examples.windows(pieces, start, seq_len, rng)
            if rng is not None:
                order = rng.permutation(len(x))
                x, y, w = x[order], y[order], w[order]
            if len(x):
                yield x, y, w

    spec = (tf.TensorSpec([None, seq_len], tf.int32), tf.TensorSpec([None, seq_len], tf.int32),
            tf.TensorSpec([None, seq_len], tf.float32))
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    pipeline = tf.data.Dataset.from_generator(windows, output_signature=spec).unbatch().batch(batch_size)
    pipeline = pipeline.apply(tf.data.experimental.assert_cardinality(-(-windows_count // batch_size)))
    return pipeline.prefetch(2).with_options(options)


def _scored(model, representation, train_parts, val_parts, transform) -> dict:
    """``validation_cross_entropy`` (nats per validation token: the model, and the baselines fitted on the training
    pieces) and the ``card`` (what the model writes against the first :data:`CARD_PIECES` held-out pieces; skipped
    for a representation without notes), from one pass over the validation shards.

    The baselines fit on the first :data:`BASELINE_TOKENS` training tokens: the training shards are read up to them.
    """
    from mgf.training.baselines import NGram, model_cross_entropy

    fitted = _first_tokens(train_parts, transform, BASELINE_TOKENS)
    baselines = {name: NGram(order, representation.vocab_size, representation.start_token).fit(fitted)
                 for name, order in (("unigram", 1), ("5-gram", 5))}
    totals, tokens, held_out = dict.fromkeys(["model", *baselines], 0.0), 0, []
    for pieces in stream(val_parts):
        count = sum(len(p) for p in pieces)
        tokens += count
        totals["model"] += model_cross_entropy(model, pieces) * count
        for name, baseline in baselines.items():
            totals[name] += baseline.cross_entropy(pieces) * count
        held_out.extend(pieces[:CARD_PIECES - len(held_out)])
    try:
        measured = card.measure_model(model, held_out)
    except InputError as error:  # audio and tokens have no notes to measure
        measured = {"skipped": str(error)}
    return {"validation_cross_entropy": {name: round(value / tokens, 4) for name, value in totals.items()},
            "card": measured}


def _first_tokens(parts, transform, budget: int) -> list:
    """The pieces of ``parts`` up to ``budget`` tokens (the last one cut there); no shard is read beyond them."""
    pieces = []
    for shard in stream(parts, transform):
        for piece in shard:
            pieces.append(piece[:budget])
            budget -= len(piece)
            if budget <= 0:
                return pieces
    return pieces
