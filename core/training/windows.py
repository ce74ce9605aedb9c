"""Training windows: pieces cut into the fixed-length teacher-forcing rows a model trains on."""

from __future__ import annotations

import numpy as np

from mgf.errors import InputError


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
