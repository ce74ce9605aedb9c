"""The token cache: each source file's pieces, encoded once and read back as arrays by later runs.

Entries are keyed by the file's content hash and the representation's name, config and learned
tensors, so a second run reads arrays instead of re-parsing scores.  What the cache gives back is
checked like input (see :mod:`mgf.training.npz`): an entry that is damaged, belongs to another file or
holds ids the representation cannot make is re-encoded and replaced.  An unwritable cache only costs speed.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass

import numpy as np

from mgf.contract.representation import Representation
from mgf.errors import InputError
from mgf.files import NotRegularFile, atomic_path
from mgf.training.npz import Archive, Damaged, file_sha256, save

CACHE_FORMAT = "1"
MAX_PIECE_TOKENS = 1 << 24  # tokens of one piece, for representations without a max_tokens option
MAX_PIECES = 65_534  # pieces of one source file (a cache entry's members, without zip64)
MAX_META_BYTES = 1 << 24  # a cache entry's JSON (the pieces' names)


def cache_root() -> str:
    """``MGF_CACHE_DIR`` if set, else the user cache directory (e.g. ``~/.cache/mgf`` on Linux)."""
    explicit = os.environ.get("MGF_CACHE_DIR")
    if explicit:
        return explicit
    import platformdirs

    return platformdirs.user_cache_dir("mgf")


def _config_key(representation: Representation) -> str:
    """Name, config and learned tensors (a codebook) of the representation: what its tokens depend on."""
    spec = json.dumps({"name": representation.name, "config": representation.config(), "cache": CACHE_FORMAT},
                      sort_keys=True)
    digest = hashlib.sha256(spec.encode())
    for name, array in sorted(representation.tensors().items()):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class _Limits:
    """What every piece read back must respect: ids in ``[0, vocab)`` but the start token, at most ``longest`` tokens."""

    vocab: int
    start: int
    longest: int

    @classmethod
    def of(cls, representation: Representation) -> _Limits:
        return cls(representation.vocab_size, representation.start_token, _longest(representation.config()))

    def problem(self, tokens: np.ndarray) -> str | None:
        """Why ``tokens`` (integers) are not a piece of this representation, or None."""
        if len(tokens) > self.longest:
            return f"a piece of {len(tokens):,} tokens, more than the limit of {self.longest:,}"
        return self.ids(tokens)

    def ids(self, tokens: np.ndarray) -> str | None:
        """Why ``tokens`` (integers) are not ids of pieces of this representation, or None."""
        if not tokens.size:
            return None
        low, high = int(tokens.min()), int(tokens.max())
        if low < 0 or high >= self.vocab:
            return f"token id {low if low < 0 else high} outside the vocabulary [0, {self.vocab})"
        if (tokens == self.start).any():
            return f"the start token {self.start} inside a piece"
        return None

    def checked(self, tokens) -> np.ndarray:
        """A representation's freshly read piece as int32, or an ``InputError``: the cache stores only what it may read back."""
        array = np.asarray(tokens)
        if array.size == 0 and array.ndim == 1:  # an empty list is float64 to numpy, and still no token
            array = array.astype(np.int32)
        if array.ndim != 1 or array.dtype.kind not in "iu":
            raise InputError(f"the representation gave {array.dtype} tokens of shape {array.shape}, not int32[n]")
        problem = self.problem(array)
        if problem:
            raise InputError(f"the representation gave {problem}")
        return array.astype(np.int32, copy=False)


def _longest(config: dict) -> int:
    """The most tokens a piece may have: the representation's ``max_tokens`` option, else :data:`MAX_PIECE_TOKENS`."""
    limit = config.get("max_tokens")
    return limit if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 else MAX_PIECE_TOKENS


def _encode_cached(representation, path, key, store):
    """``(pieces, error, cache_hit, content_digest)`` for one file, from the cache under ``store`` (None: no cache)."""
    try:
        digest = file_sha256(path)  # regular files only: a FIFO among the sources would block for ever
    except NotRegularFile as unreadable:
        return [], str(unreadable).removeprefix(f"{path}: "), False, ""
    except OSError as unreadable:
        return [], f"cannot read ({unreadable.strerror or unreadable})", False, ""
    limits = _Limits.of(representation)
    entry = store and os.path.join(store, "sequences", representation.name, key, digest[:2], digest + ".npz")
    if entry and os.path.lexists(entry):
        try:
            pieces, error = _read_entry(entry, digest, limits)
            return pieces, error, True, digest
        except Damaged:
            pass  # damaged, of another file, or ids this representation cannot make: re-encoded and replaced below
    pieces, error = [], None
    try:
        for name, tokens in representation.read_pieces(path):
            pieces.append((name, limits.checked(tokens)))
            if len(pieces) > MAX_PIECES:
                raise InputError(f"more than {MAX_PIECES} pieces in one file")
    except InputError as exc:
        pieces, error = [], str(exc)
    except Exception as exc:  # a plugin's unexpected failure on one file must not end the run
        pieces, error = [], f"{type(exc).__name__}: {exc}"
    if entry:
        _store(entry, pieces, error, digest)
    return pieces, error, False, digest


def _read_entry(entry: str, digest: str, limits: _Limits) -> tuple[list[tuple[str, np.ndarray]], str | None]:
    """``(pieces, error)`` of a cache entry, or :class:`Damaged`: checked against its file's digest and ``limits``."""
    with Archive(entry, MAX_PIECES + 1) as archive:
        try:
            meta = json.loads(archive.array("meta", np.uint8, (None,), MAX_META_BYTES).tobytes())
        except (ValueError, RecursionError):
            raise Damaged("meta is not JSON") from None
        if not isinstance(meta, dict):
            raise Damaged("meta is not a JSON object")
        names, error = meta.get("names"), meta.get("error")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or not isinstance(error, (str, type(None))):
            raise Damaged("meta lists no names and error")
        if meta.get("sha256") != digest or len(archive.names) != len(names) + 1 or (error is not None and names):
            raise Damaged("the entry of another file")
        pieces = []
        for i, name in enumerate(names):
            tokens = archive.array(f"piece_{i}", np.int32, (None,), limits.longest)
            problem = limits.problem(tokens)
            if problem:
                raise Damaged(problem)
            pieces.append((name, tokens))
    return pieces, error


def _store(entry, pieces, error, digest):
    arrays = {f"piece_{i}": tokens for i, (_, tokens) in enumerate(pieces)}
    meta = json.dumps({"names": [name for name, _ in pieces], "error": error, "sha256": digest})
    try:
        os.makedirs(os.path.dirname(entry), exist_ok=True)
        with atomic_path(entry) as tmp:
            save(tmp, meta=np.frombuffer(meta.encode(), np.uint8), **arrays)
    except OSError:
        pass  # an unwritable cache (or a FIFO in its place) only costs speed
