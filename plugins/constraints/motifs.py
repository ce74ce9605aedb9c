"""``motifs``: restate what the piece has said before, as folk tunes and chorales do.

A recurrent model of the corpus writes music that wanders: the shipped ``notes`` model repeats
a 4-note pitch pattern of its own a third as often as the tunes it learned from (the
``repetition`` metric of ``mgf eval``), because one unlikely draw at temperature 1 ends a
restatement it had begun.  This constraint makes restating likelier, after Magenta's Lookback
RNN but at decoding time, so that any model of any representation can use it: when the last
``length`` tokens occurred earlier in the piece (the primer counts), ending before they begin,
the token that followed their most recent such occurrence gets ``bonus`` added to its logit
(its probability times e^bonus before the softmax renormalises).  An occurrence overlapping the
last tokens does not count: a long held note would otherwise match itself one step back and be
held longer still.  A restatement earns the bonus for ``max_run`` tokens in a row at most (a
folk tune restates a phrase, then moves on): without the cap, what has just been restated
matches again at the next step, and a piece can loop on one motif to its end.  Nothing is
forbidden; a token another constraint forbade stays forbidden.

The loop in C (core/kernel/sample.h) finds the same occurrence through a hash of each window.
"""

from __future__ import annotations

import numpy as np

from mgf import Constraint, Option, hookimpl


class Motifs(Constraint):
    name = "motifs"
    options = (
        Option("length", int, 8, "tokens that must match an earlier passage (8: half a bar of notes' 16ths)",
               low=1, high=512),
        Option("bonus", float, 2.0, "added to the logit of what followed that passage (nats; 0: off)", low=0, high=50),
        Option("max_run", int, 32, "tokens in a row a restatement may be favoured for (32: two bars of notes' 16ths)",
               low=1, high=1_000_000),
    )

    def prepare(self, ctx):
        # the primer's state in vector operations (its index for the Python loop is built on first use), so that no
        # step rescans the primer: every later history starts with it
        length, primer = ctx.options["length"], ctx.history[0]
        following = _following(primer, length)
        self.primer, self.index, self.indexed = _key(primer), None, len(primer) - 1 - length
        self.primer_run = _run_after(primer, following)
        self.states: dict[bytes, tuple[int, int | None]] = {}
        if len(primer):
            self.states[_key(primer[:-1])] = (_run_after(primer[:-1], following), _token(following[len(primer) - 1]))

    def apply(self, logits, ctx):
        length, bonus, cap = ctx.options["length"], np.float32(ctx.options["bonus"]), ctx.options["max_run"]
        states = {}
        for row, history in enumerate(ctx.history):
            previous = self.states.get(_key(history[:-1])) if len(history) else None
            run = _run_after(history, _following(history, length)) if previous is None else _next_run(*previous, history[-1])
            following = self._favoured(history, length)
            states[_key(history)] = (run, following)
            if following is not None and run < cap:
                logits[row, following] += bonus
        self.states = states
        return logits

    def _native(self, ctx):
        return {"kind": "motifs", "length": ctx.options["length"], "bonus": ctx.options["bonus"],
                "max_run": ctx.options["max_run"], "run": self.primer_run}

    def _favoured(self, history: np.ndarray, length: int) -> int | None:
        """:func:`_after_last_match` for a history that starts with the primer: the occurrences ending after the
        primer's indexed windows are scanned (the tokens generated so far), the earlier ones looked up."""
        n = len(history)
        if n < 2 * length or _key(history[:len(self.primer) // 4]) != self.primer:
            return _after_last_match(history, length)
        first = max(self.indexed + 1, length)  # the first end e to scan: window history[e - length:e]
        if first <= n - length:
            windows = np.lib.stride_tricks.sliding_window_view(history[first - length:n - length], length)
            matches = np.flatnonzero((windows == history[n - length:]).all(axis=1))
            if matches.size:
                return int(history[first + matches[-1]])
        if self.index is None:  # the end of the most recent occurrence of each window of the primer up to `indexed`
            data = self.primer
            self.index = {data[4 * (e - length):4 * e]: e for e in range(length, self.indexed + 1)}
        end = self.index.get(_key(history[n - length:]))
        return None if end is None else int(history[end])


def _after_last_match(history: np.ndarray, length: int) -> int | None:
    """The token after the most recent occurrence of ``history``'s last ``length`` tokens that ends before they
    begin, or None."""
    return _token(_following(history, length)[-1])


def _following(history: np.ndarray, length: int) -> np.ndarray:
    """:func:`_after_last_match` of ``history[:n]`` for every n in [0, len(history)] (-1 for None), at once.

    Windows are numbered by value; the most recent earlier occurrence of each is found by a binary
    search among the windows sorted by (number, end): O(N log N) for N tokens, where a scan from each
    position was O(N²) (2.9 s before the first token of a 16,000-token primer).
    """
    size = len(history)
    out = np.full(size + 1, -1, np.int64)
    if size < 2 * length:
        return out
    history = np.asarray(history, np.int64)
    ids = _window_ids(history, length)  # ids[j]: the number of the window history[j:j + length], ending at j + length
    span = size + 2
    keys = np.sort(ids * span + np.arange(length, size + 1))
    n = np.arange(2 * length, size + 1)
    wanted = ids[n - length]  # the last `length` tokens of history[:n], whose occurrences may end at n - length
    found = np.searchsorted(keys, wanted * span + n - length, side="right") - 1
    same = (found >= 0) & (keys[found] // span == wanted)
    out[n] = np.where(same, history[np.minimum(keys[found] % span, size - 1)], -1)
    return out


def _window_ids(history: np.ndarray, length: int) -> np.ndarray:
    """A number for each window ``history[j:j + length]``, equal for equal windows: by a polynomial hash, checked
    window by window (a collision falls back to sorting the windows themselves, five times slower)."""
    count = len(history) - length + 1
    hashed = np.zeros(count, np.uint64)
    for offset in range(length):  # wraps modulo 2**64
        hashed = hashed * np.uint64(0x100000001B3) + history[offset:offset + count].astype(np.uint64)
    _, first, ids = np.unique(hashed, return_index=True, return_inverse=True)
    windows = np.lib.stride_tricks.sliding_window_view(history, length)
    if (windows == windows[first[ids]]).all():
        return ids
    return np.unique(windows, axis=0, return_inverse=True)[1].reshape(-1)


def _run_after(history: np.ndarray, following: np.ndarray) -> int:
    """How many of ``history``'s last tokens in a row were what the history before each favoured (``following``:
    :func:`_following` of a history that ``history`` begins)."""
    misses = np.flatnonzero(following[:len(history)] != history)
    return len(history) - 1 - int(misses[-1]) if misses.size else len(history)


def _token(value) -> int | None:
    return None if value < 0 else int(value)


def _key(tokens: np.ndarray) -> bytes:
    """``tokens`` as int32 bytes, the key of a history or a window."""
    return np.ascontiguousarray(tokens, np.int32).tobytes()


def _next_run(run: int, following: int | None, token: int) -> int:
    """The restatement's length after ``token``: one more if it was what the bonus favoured, else 0."""
    return run + 1 if following is not None and token == following else 0


@hookimpl
def register_constraints(register):
    register(Motifs)
