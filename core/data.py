"""Training data: a source (``corpus:`` reference, folder, glob or file) -> token sequences.

Encoded pieces are cached on disk per file, keyed by the file's content hash and the
representation's name and config, so a second run reads arrays instead of re-parsing scores.
Unreadable files are skipped, counted and listed, never fatal.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from . import corpus
from .errors import InputError
from .files import atomic_path, files_under
from .representation import Representation

CACHE_FORMAT = "1"


def cache_root() -> str:
    """``MGF_CACHE_DIR`` if set, else the user cache directory (e.g. ``~/.cache/mgf`` on Linux)."""
    explicit = os.environ.get("MGF_CACHE_DIR")
    if explicit:
        return explicit
    import platformdirs

    return platformdirs.user_cache_dir("mgf")


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


def held_out(keys: list[str], validation: float) -> list[bool]:
    """Which of the pieces keyed ``keys`` are on the validation side of a split at ``validation``.

    A piece is held out when its hash falls below ``validation``, so adding pieces moves none;
    but with two pieces or more and ``validation > 0`` at least one is held out and one kept,
    so that small data sets still get a validation split.
    """
    if not 0.0 <= validation < 1.0:
        raise InputError(f"validation fraction must be in [0, 1), got {validation}")
    position = [int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64 for key in keys]
    out = [p < validation for p in position]
    if validation > 0 and len(keys) >= 2:
        if not any(out):
            out[position.index(min(position))] = True
        if all(out):
            out[position.index(max(position))] = False
    return out


def held_out_files(paths: list[str], validation: float) -> dict[str, bool]:
    """Whether each file's first piece is held out: a split of files, for fitting a representation before encoding."""
    keys = [piece_key(_digest(path), 0) for path in paths]
    return dict(zip(paths, held_out(keys, validation)))


def piece_key(digest: str, index: int) -> str:
    """The content key of the ``index``-th piece of the file whose bytes hash to ``digest``."""
    return f"{digest}:{index}"


def _digest(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def augment(dataset: Dataset, representation: Representation, semitones: range) -> Dataset:
    """The pieces plus their transpositions by each shift in ``semitones``; shifts that leave the range are dropped.

    Apply it to the training side only, after :meth:`Dataset.split`, so no transposed copy of a
    validation piece leaks into training.
    """
    out = Dataset(skipped=list(dataset.skipped), cached=dataset.cached)
    keys = dataset.keys or [None] * len(dataset.sequences)
    for name, sequence, key in zip(dataset.names, dataset.sequences, keys):
        for shift in semitones:
            moved = sequence if shift == 0 else representation.transpose(sequence, shift)
            if moved is not None:
                out.names.append(name if shift == 0 else f"{name} ({shift:+d})")
                out.sequences.append(moved)
                if key is not None:
                    out.keys.append(key)  # a transposed copy stays on its piece's side
    return out


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


def load(representation: Representation, source: str, cache: bool = True, progress: bool | None = None,
         every: float | None = None) -> Dataset:
    """Encode every piece of ``source``; ``progress=None`` shows a bar only on a terminal.

    Where there is no bar (stderr is a file or a pipe), ``every`` seconds asks for a line of
    progress that often instead, so that a long first encoding is not silent in a log.
    """
    from tqdm import tqdm

    paths = files(source, representation.read_suffixes)
    dataset = Dataset()
    key = _config_key(representation)
    bar = tqdm(paths, desc=f"encoding {source}", unit="file", disable=None if progress is None else not progress,
               leave=False)
    lines = every is not None and bar.disable and progress is not False
    last = time.monotonic()
    for done, path in enumerate(bar, 1):
        if lines and time.monotonic() - last >= every:
            print(f"encoding {source}: {done - 1}/{len(paths)} files", file=sys.stderr, flush=True)
            last = time.monotonic()
        pieces, error, hit, digest = _encode_cached(representation, path, key, cache)
        dataset.cached += hit
        if error is not None:
            dataset.skipped.append((path, error))
            continue
        for index, (name, tokens) in enumerate(pieces):
            dataset.names.append(name)
            dataset.sequences.append(tokens)
            dataset.keys.append(piece_key(digest, index))
    return dataset


def _config_key(representation: Representation) -> str:
    """Name, config and learned tensors (a codebook) of the representation: what its tokens depend on."""
    spec = json.dumps({"name": representation.name, "config": representation.config(), "cache": CACHE_FORMAT},
                      sort_keys=True)
    digest = hashlib.sha256(spec.encode())
    for name, array in sorted(representation.tensors().items()):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def _encode_cached(representation, path, key, cache):
    """``(pieces, error, cache_hit, content_digest)`` for one file, from the cache when its content was seen before."""
    try:
        digest = _digest(path)
    except OSError as error:
        return [], f"cannot read ({error.strerror})", False, ""
    entry = os.path.join(cache_root(), "sequences", representation.name, key, digest[:2], digest + ".npz")
    if cache and os.path.exists(entry):
        try:
            with np.load(entry, allow_pickle=False) as stored:
                meta = json.loads(str(stored["meta"]))
                pieces = [(name, stored[f"piece_{i}"]) for i, name in enumerate(meta["names"])]
            return pieces, meta["error"], True, digest
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache entry is re-encoded below
    pieces, error = [], None
    try:
        for name, tokens in representation.read_pieces(path):
            pieces.append((name, np.asarray(tokens, dtype=np.int32)))
    except InputError as exc:
        pieces, error = [], str(exc)
    except Exception as exc:  # a plugin's unexpected failure on one file must not end the run
        pieces, error = [], f"{type(exc).__name__}: {exc}"
    if cache:
        _store(entry, pieces, error)
    return pieces, error, False, digest


def _store(entry, pieces, error):
    os.makedirs(os.path.dirname(entry), exist_ok=True)
    arrays = {f"piece_{i}": tokens for i, (_, tokens) in enumerate(pieces)}
    meta = json.dumps({"names": [name for name, _ in pieces], "error": error})
    try:
        with atomic_path(entry) as tmp:
            np.savez(tmp, meta=np.array(meta), **arrays)
    except OSError:
        pass  # an unwritable cache only costs speed


def windows(sequences: list[np.ndarray], start: int, length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Teacher-forcing windows: ``inputs[i, t]`` is followed by ``targets[i, t]``; ``weights`` masks the padding.

    Each piece becomes ``[start, *tokens]`` cut into windows of ``length`` predictions (stride
    ``length``), so every token is predicted once and the first window of a piece starts, as
    generation does, from a zero state and the start token.  The last window is padded.
    """
    if length < 1:
        raise InputError(f"sequence length must be >= 1, got {length}")
    inputs, targets, weights = [], [], []
    for sequence in sequences:
        full = np.concatenate([[start], np.asarray(sequence, dtype=np.int32)])
        for first in range(0, len(full) - 1, length):
            chunk = full[first:first + length + 1]
            n = len(chunk) - 1
            x, y, w = np.zeros(length, np.int32), np.zeros(length, np.int32), np.zeros(length, np.float32)
            x[:n], y[:n], w[:n] = chunk[:-1], chunk[1:], 1.0
            inputs.append(x)
            targets.append(y)
            weights.append(w)
    if not inputs:
        return np.zeros((0, length), np.int32), np.zeros((0, length), np.int32), np.zeros((0, length), np.float32)
    return np.stack(inputs), np.stack(targets), np.stack(weights)
