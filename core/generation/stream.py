"""Streaming: tokens as they are chosen, and a player's tokens fed in between (:func:`stream`).

A live player cannot wait for a whole piece: it plays each chunk as it comes and may play along.  A
:class:`Stream` runs the same loop as :func:`mgf.generate` (in C with the native backend and built-in
rules and policies, else in Python) a chunk at a time, keeping the model's state, the rules' state
and the rng between chunks, so that one seed gives the tokens ``generate`` gives.  Tokens fed in are
primed from the current state (``Model.prime``) and fed to the rules and the clock, as if they had
been part of the primer.  No thread is started: each chunk is computed in the consumer's call.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

import numpy as np

from mgf.contract.controls import interleave
from mgf.contract.boundary import guard, origin_of
from mgf.contract.model import Model
from mgf.errors import InputError, UsageError
from mgf.generation.api import checked_run
from mgf.generation.plan import _is_int, check_limit, limit
from mgf.generation.processors import Processor

#: tokens a stream without ``steps`` holds room for at first (it doubles as it grows)
FIRST_ROOM = 1024


def stream(
    model: Model,
    steps: int | None = None,
    sampler: str | None = None,
    primer=None,
    seed: int | np.random.SeedSequence | None = None,
    num_outputs: int | None = None,
    progress: bool | None = False,
    constraints: Sequence[str] | None = None,
    processors: Sequence[Processor] | None = None,
    *,
    chunk: int = 16,
    events: bool = False,
    **options: Any,
) -> Stream:
    """The tokens that :func:`mgf.generate` with these arguments chooses after the primer, ``chunk`` at a time.

    Iterate the returned :class:`Stream` for int32 arrays of up to ``chunk`` new tokens (the primer is
    not repeated); equal seeds give ``generate``'s tokens.  ``steps=None`` streams until the consumer
    stops, at most ``MGF_MAX_STEPS`` tokens (then a :class:`UsageError` saying how to raise it).
    ``Stream.feed(tokens)`` primes the model with a player's tokens between chunks; ``close()`` ends it.
    With ``events=True`` each item is the list of :class:`mgf.Event` that the chunk's tokens make
    certain (the representation's :meth:`~mgf.Representation.decoder`).  One output only: a stream
    has one history to feed; ``progress`` must be off (a stream shows its progress itself).  A sampler
    that searches whole sequences (``beam``) cannot stream: :class:`UsageError`.
    """
    if steps is not None and (not _is_int(steps) or steps < 1):
        raise UsageError(f"steps must be a positive integer or None, got {steps!r}")
    if steps is not None:
        check_limit("steps", steps)
    if num_outputs not in (None, 1) or isinstance(num_outputs, bool):
        raise UsageError(f"a stream has one output; got num_outputs={num_outputs!r} (generate several with mgf.generate)")
    if progress:
        raise UsageError("a stream shows no progress bar: it yields its tokens as they come")
    if not _is_int(chunk) or not 1 <= chunk <= 1 << 20:
        raise UsageError(f"chunk must be an integer in [1, 2**20], got {chunk!r}")
    run = checked_run(model, sampler, primer, seed, 1, constraints, processors, options, steps=steps)
    if run.sampler.search is not None:
        raise UsageError(f"sampler {run.sampler_origin.name!r} searches whole sequences and cannot stream; "
                         "stream with a policy such as 'temperature' or 'greedy'")
    return Stream(run, None if steps is None else int(steps), int(chunk), bool(events))


class Stream(Generator):
    """A running generation (see :func:`stream`): iterate it for chunks, ``feed`` it a player's tokens, ``close`` it.

    It is a generator: ``send(tokens)`` is ``feed(tokens)`` then ``next()``, ``send(None)`` is ``next()``;
    ``close()`` (or leaving a ``with`` block) ends it at once and drops the model state, the rules and
    the history it held.  ``clock`` says where the next token falls.
    """

    def __init__(self, run, steps: int | None, chunk: int, events: bool) -> None:
        from mgf.kernel import _native

        self.steps, self.chunk, self.generated, self.closed = steps, chunk, 0, False
        # what the stream holds, each None once closed
        self._run: Any
        self._history: Any
        self._logits: Any
        self._rules: Any
        self._chooser: Any
        self._state: Any
        self._decoder: Any
        run._prepare(steps if steps is not None else limit("steps"))
        self._run, P = run, len(run.primer)
        self._room = P + (steps if steps is not None else FIRST_ROOM)
        self._history = np.empty((1, self._room), np.int32)
        self._history[0, :P] = run.primer
        self._length = P
        self._rules = run._ruleset(self._history[:, :P], self._room)
        self._chooser = _native.Chooser(run.processors, bool(run.greedy))
        logits, self._state = run._prime_raw(1)
        self._logits = np.array(logits, np.float32, order="C")
        self._decoder = None
        if events:
            self._decoder = run.representation.decoder()
            self._decode(run.primer)  # the primer's events are the caller's, not the stream's

    @property
    def clock(self) -> dict[str, int | float] | None:
        """Where the next token falls: ``step``, ``beat``, ``bar`` (-1 without a meter) and ``seconds``, from the
        start of the primer; None where the representation has no clock (:meth:`mgf.Representation.clock`)."""
        self._check_open()
        where = self._rules.clock()
        if where is None:
            return None
        step = int(where["step"][0])
        return {"step": step, "beat": int(where["beat"][0]), "bar": int(where["bar"][0]),
                "seconds": float(self._run.clock.seconds_of(step))}

    @property
    def tokens(self) -> np.ndarray:
        """Everything so far: the primer, the chosen tokens and the fed ones, in order (int32, a copy; a conditioned
        model's control tokens left out, as :func:`mgf.generate` leaves them out)."""
        self._check_open()
        held = self._history[0, : self._length].copy()
        return held if self._run.conditioned is None else self._run.conditioned.music(held)

    def __next__(self):
        if self.closed or self.steps is not None and self.generated >= self.steps:
            raise StopIteration
        if self.steps is None:
            check_limit("steps", self.generated + 1)
            want = min(self.chunk, limit("steps") - self.generated)
        else:
            want = min(self.chunk, self.steps - self.generated)
        conditioned = self._run.conditioned
        parts, got = [], 0
        while got < want:  # a conditioned model's controls take model steps too: a chunk is ``want`` tokens of music
            count = want - got
            # whether the model steps after the last token: not at the stream's end (unknown beforehand with controls)
            more = self.steps is None or conditioned is not None or self.generated + count < self.steps
            self._make_room(count)
            first = self._length
            try:
                self._logits, self._state = self._run.extend(self._logits, self._state, self._rules, self._chooser,
                                                             self._history, first, count, more)
            except BaseException:  # half a chunk chosen and fed: like a generator, a stream that raised has ended
                self.close()
                raise
            self._length += count
            chosen = self._history[0, first : first + count].copy()
            parts.append(chosen)
            got += count if conditioned is None else len(conditioned.music(chosen))
        self.generated += got
        chosen = np.concatenate(parts)
        if self._decoder is None:  # a conditioned model's controls are no music: left out (the decoder passes over them)
            return chosen if conditioned is None else conditioned.music(chosen)
        found = self._decode(chosen)
        if self.steps is not None and self.generated >= self.steps:
            with guard(origin_of(self._run.representation), "decoder"):
                found += self._decoder.close()
        return found

    def feed(self, tokens) -> list | None:
        """Prime the model with ``tokens`` (a player's, 1-D token ids) after what the stream holds: the next chunk
        follows them.  The rules and the clock see them too.  With ``events=True``, the events they make certain.
        ``InputError`` for a bad token id (nothing fed); ``UsageError`` once the stream has ended."""
        self._check_open()
        if self.steps is not None and self.generated >= self.steps:
            raise UsageError(f"the stream has ended after its {self.steps} steps; nothing can follow")
        array = np.asarray(tokens)
        if array.size == 0:
            return [] if self._decoder is not None else None
        if array.ndim != 1 or array.dtype.kind not in "iu":
            raise InputError("fed tokens must be a 1-D sequence of integer token ids")
        run = self._run
        if array.min() < 0 or array.max() >= run.vocab_size:
            bad = array[(array < 0) | (array >= run.vocab_size)][0]
            raise InputError(f"fed token id {bad} is outside the vocabulary [0, {run.vocab_size})")
        if bool((array == run.start).any()):
            raise InputError(f"fed tokens must not contain the start token {run.start}")
        check_limit("primer_tokens", self._length - self.generated + array.size)
        array = self._framed(array.astype(np.int32))[None, :]
        self._make_room(array.shape[1])
        logits, self._state = run.prime_from(array, self._state)
        self._logits = np.array(logits, np.float32, order="C")
        self._history[:, self._length : self._length + array.shape[1]] = array
        self._rules.feed(array)
        self._length += array.shape[1]
        return self._decode(array[0]) if self._decoder is not None else None

    def _framed(self, tokens: np.ndarray) -> np.ndarray:
        """A conditioned model's fed tokens with the controls of the bars they enter, as a fresh primer holding them
        would have them (the bars asked for from the first generated one on, else "any"); other models' as they are."""
        run = self._run
        if run.conditioned is None or run.framed is None:
            return tokens
        clock = run.conditioned.clock()
        per_bar = clock.steps_per_bar
        steps = clock.steps(self._history[0, : self._length])
        last = int(steps[:-1].max()) // per_bar if self._length else -1
        now = int(steps[-1])
        bars = int(clock.steps(tokens)[-1] + now) // per_bar + 1
        table, first = run.framed.table, run.framed.first
        rows = np.tile(np.array([family.any for family in run.conditioned.families], np.int32), (bars, 1))
        asked = np.arange(max(first, last + 1), bars)  # interleave reads the bars from last + 1 on
        rows[asked] = table[(asked - first) % len(table)]
        return interleave(clock, tokens, rows, now, last + 1)

    def send(self, tokens):
        """``feed(tokens)`` (unless None), then the next chunk; with ``events=True`` the fed tokens' events come first."""
        fed = self.feed(tokens) if tokens is not None else None
        item = next(self)
        return fed + item if fed else item

    def throw(self, typ=None, value=None, traceback=None):
        """End the stream and raise the exception here, as a generator does."""
        self.close()
        if value is None:
            value = typ() if isinstance(typ, type) else typ
        raise value.with_traceback(traceback) if traceback is not None else value

    def close(self) -> None:
        """End the stream now: later ``next`` stops, ``feed`` is a ``UsageError``; what it held is released."""
        self.closed = True
        self._run = self._state = self._logits = self._rules = self._chooser = self._history = self._decoder = None

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_open(self) -> None:
        if self.closed:
            raise UsageError("the stream is closed")

    def _make_room(self, count: int) -> None:
        """Room for ``count`` more tokens: the history and the rules grow by doubling (the rules are fed it again,
        their state being a function of the tokens)."""
        if self._length + count <= self._room:
            return
        self._room = max(2 * self._room, self._length + count)
        history = np.empty((1, self._room), np.int32)
        history[:, : self._length] = self._history[:, : self._length]
        self._history = history
        self._rules = self._run._ruleset(history[:, : self._length], self._room)

    def _decode(self, tokens: np.ndarray) -> list:
        """The events ``tokens`` make certain: the representation's decoder is its code, so guarded."""
        with guard(origin_of(self._run.representation), "decoder"):
            return [event for token in tokens.tolist() for event in self._decoder.feed(token)]
