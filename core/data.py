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
    """Token sequences (without start tokens), one per piece, with where each came from."""

    sequences: list[np.ndarray] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    cached: int = 0

    @property
    def tokens(self) -> int:
        return sum(len(s) for s in self.sequences)

    def extend(self, other: Dataset) -> None:
        """Append the pieces, skips and cache hits of ``other``."""
        self.sequences += other.sequences
        self.names += other.names
        self.skipped += other.skipped
        self.cached += other.cached

    def split(self, validation: float) -> tuple[Dataset, Dataset]:
        """(train, validation) by piece; a piece's side depends only on its name, so it never moves."""
        if not 0.0 <= validation < 1.0:
            raise InputError(f"validation fraction must be in [0, 1), got {validation}")
        train, held = Dataset(), Dataset()
        for name, sequence in zip(self.names, self.sequences):
            side = held if held_out(name, validation) else train
            side.names.append(name)
            side.sequences.append(sequence)
        return train, held


def held_out(name: str, validation: float) -> bool:
    """Whether the piece (or file) called ``name`` is on the validation side of a split at ``validation``."""
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < validation


def augment(dataset: Dataset, representation: Representation, semitones: range) -> Dataset:
    """The pieces plus their transpositions by each shift in ``semitones``; shifts that leave the range are dropped.

    Apply it to the training side only, after :meth:`Dataset.split`, so no transposed copy of a
    validation piece leaks into training.
    """
    out = Dataset(skipped=list(dataset.skipped), cached=dataset.cached)
    for name, sequence in zip(dataset.names, dataset.sequences):
        for shift in semitones:
            moved = sequence if shift == 0 else representation.transpose(sequence, shift)
            if moved is not None:
                out.names.append(name if shift == 0 else f"{name} ({shift:+d})")
                out.sequences.append(moved)
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


def load(representation: Representation, source: str, cache: bool = True, progress: bool | None = None) -> Dataset:
    """Encode every piece of ``source``; ``progress=None`` shows a bar only on a terminal."""
    from tqdm import tqdm

    paths = files(source, representation.read_suffixes)
    dataset = Dataset()
    key = _config_key(representation)
    bar = tqdm(paths, desc=f"encoding {source}", unit="file", disable=None if progress is None else not progress,
               leave=False)
    for path in bar:
        pieces, error, hit = _encode_cached(representation, path, key, cache)
        dataset.cached += hit
        if error is not None:
            dataset.skipped.append((path, error))
            continue
        for name, tokens in pieces:
            dataset.names.append(name)
            dataset.sequences.append(tokens)
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
    """``(pieces, error, cache_hit)`` for one file, from the cache when its content was seen before."""
    try:
        with open(path, "rb") as handle:
            digest = hashlib.sha256(handle.read()).hexdigest()
    except OSError as error:
        return [], f"cannot read ({error.strerror})", False
    entry = os.path.join(cache_root(), "sequences", representation.name, key, digest[:2], digest + ".npz")
    if cache and os.path.exists(entry):
        try:
            with np.load(entry, allow_pickle=False) as stored:
                meta = json.loads(str(stored["meta"]))
                pieces = [(name, stored[f"piece_{i}"]) for i, name in enumerate(meta["names"])]
            return pieces, meta["error"], True
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
    return pieces, error, False


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
