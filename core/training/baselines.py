"""Baselines a trained model must beat: per-token cross-entropy of unigram and n-gram models.

The n-gram model is interpolated Witten-Bell: each order's estimate is mixed with the next lower
order's in proportion to how many distinct tokens followed the context, down to a unigram that
is itself mixed with the uniform distribution, so no token ever gets probability 0.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict

import numpy as np


class NGram:
    """Witten-Bell interpolated n-gram over token ids; each sequence is scored after ``start``."""

    def __init__(self, order: int, vocab_size: int, start: int) -> None:
        if order < 1:
            raise ValueError("order must be >= 1")
        self.order, self.vocab_size, self.start = order, vocab_size, start
        # counts[k][context of length k][token]
        self.counts: list[defaultdict[tuple[int, ...], Counter[int]]] = [defaultdict(Counter) for _ in range(order)]

    def _padded(self, sequence):
        return [self.start] * (self.order - 1) + [self.start] + [int(t) for t in sequence]

    def fit(self, sequences) -> NGram:
        for sequence in sequences:
            padded = self._padded(sequence)
            for i in range(self.order, len(padded)):
                token = padded[i]
                for k in range(self.order):
                    self.counts[k][tuple(padded[i - k:i])][token] += 1
        self._totals = [{ctx: (sum(c.values()), len(c)) for ctx, c in level.items()} for level in self.counts]
        return self

    def probability(self, context: tuple[int, ...], token: int) -> float:
        p = 1.0 / self.vocab_size
        for k in range(self.order):
            ctx = context[len(context) - k:] if k else ()
            total, distinct = self._totals[k].get(ctx, (0, 0))
            if total:
                p = (self.counts[k][ctx][token] + distinct * p) / (total + distinct)
        return p

    def cross_entropy(self, sequences) -> float:
        """Mean negative log-probability (nats) per token of ``sequences``."""
        nll, count = 0.0, 0
        for sequence in sequences:
            padded = self._padded(sequence)
            for i in range(self.order, len(padded)):
                nll -= math.log(self.probability(tuple(padded[i - self.order + 1:i]), padded[i]))
                count += 1
        return nll / max(count, 1)


def model_cross_entropy(model, sequences, batch_size: int = 256) -> float:
    """Mean negative log-probability (nats) per token the model gives ``sequences``, each after its start token.

    A conditioned model (:class:`mgf.Conditioned`) reads each bar's controls as "any", as it does when generating
    without them, and only the music's tokens are counted: the cross-entropy of plain continuation."""
    from mgf.contract.controls import Conditioned, interleave
    from mgf.contract.sampler import log_softmax

    representation = model.representation
    start = representation.start_token
    counted = None
    if isinstance(representation, Conditioned):
        clock, anys = representation.clock(), np.array([[f.any for f in representation.families]], np.int32)
        sequences = [interleave(clock, np.asarray(s, np.int32), anys) for s in sequences]
        counted = representation.is_control
    nll, count = 0.0, 0
    ordered = sorted(sequences, key=len)
    for first in range(0, len(ordered), batch_size):
        batch = ordered[first:first + batch_size]
        longest = max(len(s) for s in batch)
        inputs = np.full((len(batch), longest + 1), start, np.int32)
        mask = np.zeros((len(batch), longest), bool)
        for row, sequence in enumerate(batch):
            inputs[row, 1:len(sequence) + 1] = sequence
            mask[row, :len(sequence)] = True
        state = model.initial_state(len(batch))
        for t in range(longest):
            logits, state = model.step(inputs[:, t].copy(), state)
            rows = mask[:, t] if counted is None else mask[:, t] & ~counted(inputs[:, t + 1])
            nll -= log_softmax(logits[rows])[np.arange(rows.sum()), inputs[rows, t + 1]].sum()
            count += int(rows.sum())
    return nll / max(count, 1)
