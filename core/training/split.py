"""The train/validation split, by content: a piece's side never depends on a path or on the other pieces.

Each piece is keyed by the SHA-256 of its file's bytes and its place in the file; the key's hash gives
it a position in [0, 1), and the pieces below the validation fraction are held out.  So the same files
split the same way however they are named, found or sharded, and adding pieces moves none.
"""

from __future__ import annotations

import hashlib

import numpy as np

from mgf.errors import InputError
from mgf.training.npz import file_sha256


def position(key: str) -> float:
    """Where the piece keyed ``key`` falls in [0, 1): it is held out when below the validation fraction."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64


def held_out(keys: list[str], validation: float) -> list[bool]:
    """Which of the pieces keyed ``keys`` are on the validation side of a split at ``validation``."""
    return sides([np.array([position(key) for key in keys], np.float64)], validation)[0].tolist()


def sides(positions: list[np.ndarray], validation: float) -> list[np.ndarray]:
    """Held-out masks for groups of pieces (shards) at these :func:`position`\\ s, the split taken over all groups.

    A piece is held out when its position falls below ``validation``, so adding pieces moves none;
    but with two pieces or more and ``validation > 0`` at least one is held out and one kept,
    so that small data sets still get a validation split.
    """
    if not 0.0 <= validation < 1.0:
        raise InputError(f"validation fraction must be in [0, 1), got {validation}")
    out = [p < validation for p in positions]
    filled = [i for i, p in enumerate(positions) if len(p)]
    if validation > 0 and sum(len(p) for p in positions) >= 2:
        if not any(o.any() for o in out):
            group = min(filled, key=lambda i: positions[i].min())
            out[group][np.argmin(positions[group])] = True
        if all(o.all() for o in out):
            group = max(filled, key=lambda i: positions[i].max())
            out[group][np.argmax(positions[group])] = False
    return out


def held_out_files(paths: list[str], validation: float) -> dict[str, bool]:
    """Whether each file's first piece is held out: a split of files, for fitting a representation before encoding."""
    keys = [piece_key(file_sha256(path), 0) for path in paths]
    return dict(zip(paths, held_out(keys, validation)))


def piece_key(digest: str, index: int) -> str:
    """The content key of the ``index``-th piece of the file whose bytes hash to ``digest``."""
    return f"{digest}:{index}"
