"""Training data: a source (``corpus:`` reference, folder, glob or file) -> token sequences.

Files are encoded by all local cores (``workers``), or on a Dask cluster (``scheduler``);
workers get the representation's name, config and learned tensors, rebuild it with
``mgf.get_representation`` and send back token arrays, so no plugin object is ever pickled.
Encoded pieces come from the token cache (:mod:`mgf.training.cache`) when it has them.
Unreadable files are skipped, counted and listed, never fatal.
"""

from __future__ import annotations

import collections
import glob
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from mgf.contract.representation import Representation
from mgf.errors import InputError, UsageError
from mgf.files import files_under
from mgf.music import corpus
from mgf.training.cache import _config_key, _encode_cached, cache_root
from mgf.training.progress import _Progress
from mgf.training.split import held_out, piece_key
from mgf.training.workers import _pool


def files(source: str, suffixes: tuple[str, ...]) -> list[str]:
    """The files a source names: ``corpus:...``, a folder (recursively, by suffix), a glob, or one file."""
    if corpus.is_reference(source):
        return [p for p in corpus.resolve(source) if p.lower().endswith(suffixes)]
    source = os.path.expanduser(source)
    if os.path.isdir(source):
        found = files_under(source, suffixes)
    elif os.path.isfile(source):
        found = [source]
    elif glob.has_magic(source):
        found = [p for p in glob.glob(source, recursive=True) if os.path.isfile(p) and p.lower().endswith(suffixes)]
    else:
        raise InputError(f"{source}: no such file, folder, glob match or corpus reference")
    if not found:
        raise InputError(f"{source}: no files with suffix {', '.join(suffixes)}")
    return sorted(found)


@dataclass
class Dataset:
    """Token sequences (without start tokens), one per piece, with where each came from.

    ``keys`` identify pieces by content (the file's bytes and the piece's place in it), so the
    split does not depend on how a path was typed or on a file's name.
    """

    sequences: list[np.ndarray] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    cached: int = 0
    keys: list[str] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return sum(len(s) for s in self.sequences)

    def extend(self, other: Dataset) -> None:
        """Append the pieces, skips and cache hits of ``other``."""
        self.sequences += other.sequences
        self.names += other.names
        self.skipped += other.skipped
        self.cached += other.cached
        self.keys += other.keys

    def split(self, validation: float) -> tuple[Dataset, Dataset]:
        """(train, validation) by piece and content: a piece's side never depends on its path.

        Pieces built by hand (no ``keys``) are keyed by their tokens.
        """
        keys = self.keys or [hashlib.sha256(np.asarray(s, np.int32).tobytes()).hexdigest() for s in self.sequences]
        train, held = Dataset(), Dataset()
        for name, sequence, key, out in zip(self.names, self.sequences, keys, held_out(keys, validation)):
            side = held if out else train
            side.names.append(name)
            side.sequences.append(sequence)
            side.keys.append(key)
        return train, held


def augment(dataset: Dataset, representation: Representation, semitones: range) -> Dataset:
    """The pieces plus their transpositions by each shift in ``semitones``; shifts that leave the range are dropped.

    Apply it to the training side only, after :meth:`Dataset.split`, so no transposed copy of a
    validation piece leaks into training.
    """
    out = Dataset(skipped=list(dataset.skipped), cached=dataset.cached)
    keys: list[str | None] = list(dataset.keys) or [None] * len(dataset.sequences)
    for name, sequence, key in zip(dataset.names, dataset.sequences, keys):
        for shift in semitones:
            moved = sequence if shift == 0 else representation.transpose(sequence, shift)
            if moved is not None:
                out.names.append(name if shift == 0 else f"{name} ({shift:+d})")
                out.sequences.append(moved)
                if key is not None:
                    out.keys.append(key)  # a transposed copy stays on its piece's side
    return out


def load(representation: Representation, source: str, cache: bool = True, progress: bool | None = None,
         every: float | None = None, workers: int = 1, scheduler: str | None = None) -> Dataset:
    """Every piece of ``source`` in memory; ``progress=None`` shows a bar only on a terminal.

    Where there is no bar (stderr is a file or a pipe), ``every`` seconds asks for a line of
    progress (files/s, ETA) that often instead, so that a long first encoding is not silent in a log.
    """
    paths = files(source, representation.read_suffixes)
    dataset = Dataset()
    for done in encode(representation, paths, workers=workers, scheduler=scheduler, cache=cache, progress=progress,
                       every=every, label=source):
        dataset.cached += done.cached
        if done.error is not None:
            dataset.skipped.append((done.path, done.error))
            continue
        for index, (name, tokens) in enumerate(done.pieces):
            dataset.names.append(name)
            dataset.sequences.append(tokens)
            dataset.keys.append(piece_key(done.digest, index))
    return dataset


@dataclass
class Encoded:
    """One file's pieces ``[(name, tokens)]``, or why it was skipped; ``digest`` is the SHA-256 of its bytes."""

    path: str
    pieces: list[tuple[str, np.ndarray]]
    error: str | None
    cached: bool
    digest: str


def encode(representation: Representation, paths: list[str], *, workers: int = 1, scheduler: str | None = None,
           cache: bool = True, progress: bool | None = None, every: float | None = None,
           label: str = "") -> Iterator[Encoded]:
    """Every file of ``paths`` encoded, in order, as :class:`Encoded`; a file that fails is reported, never fatal.

    ``workers > 1`` encodes in that many local processes, ``scheduler`` (``tcp://host:port``) on
    a Dask cluster whose workers see the same paths.  Only a few chunks of files are ahead of the
    one being reported, so memory stays bounded however many files there are.
    """
    key = _config_key(representation)
    store = cache_root() if cache else None
    report = _Progress(label or f"{len(paths)} files", len(paths), progress, every)
    try:
        if scheduler is None and (workers <= 1 or len(paths) < 2):
            for path in paths:
                yield Encoded(path, *_encode_cached(representation, path, key, store))
                report.update(1)
            return
        spec = _spec(representation)
        _check_rebuildable(representation, spec)
        with _pool(workers, scheduler, __name__) as (submit, slots):
            size = max(1, min(16, len(paths) // (slots * 8)))  # chunks: small enough to balance, big enough to be cheap
            chunks = iter([paths[i:i + size] for i in range(0, len(paths), size)])
            pending: collections.deque = collections.deque()
            for chunk in chunks:
                pending.append(submit(_encode_chunk, spec, key, chunk, store))
                if len(pending) >= 4 * slots:
                    break
            while pending:
                results = pending.popleft().result()
                for chunk in chunks:
                    pending.append(submit(_encode_chunk, spec, key, chunk, store))
                    break
                for result in results:
                    yield Encoded(*result)
                report.update(len(results))
    finally:
        report.close()


def _spec(representation: Representation) -> dict:
    """What a worker needs to rebuild the representation: plain data, never the plugin object."""
    return {"name": representation.name, "config": representation.config(),
            "tensors": {name: np.asarray(array) for name, array in representation.tensors().items()}}


def _check_rebuildable(representation: Representation, spec: dict) -> None:
    """``UsageError`` unless workers rebuilding ``spec`` by name get the class of ``representation``, not another."""
    from mgf.generation.api import get_representation

    if type(get_representation(spec["name"], **spec["config"])) is not type(representation):
        raise UsageError(f"representation {type(representation).__name__} is not the one registered as "
                         f"{spec['name']!r}: workers rebuild representations by name; encode it in this process (1 worker)")


_REBUILT: dict[str, Representation] = {}


def _encode_chunk(spec: dict, key: str, paths: list[str], store: str | None) -> list[tuple]:
    """In a worker: the fields of :class:`Encoded` for each of ``paths``; the representation is rebuilt once per process."""
    representation = _REBUILT.get(key)
    if representation is None:
        from mgf.generation.api import get_representation

        representation = get_representation(spec["name"], **spec["config"])
        if spec["tensors"]:
            representation.load_tensors(spec["tensors"])
        _REBUILT[key] = representation
    return [(path, *_encode_cached(representation, path, key, store)) for path in paths]
