"""``close-notes``: the performance rules a ``midi`` model forgets, kept at generation time.

An event model must remember, for every note it starts, to end it: at temperature 1 the shipped
chorale model sometimes forgets, and a forgotten note rings on under every later chord (the
generated chorales sounded 8.6 notes at once against Bach's 4).  Decoding with the representation's
``max_note_seconds`` only shortens such a note afterwards; this constraint changes what the model
may say next, so the rest of the piece follows from notes that really ended:

- ``max_note_seconds``: no TIME_SHIFT may carry a sounding note past this length, and once a note
  has sounded this long only NOTE_OFFs of such notes may follow;
- ``max_polyphony``: while this many notes sound, no NOTE_ON of a pitch not sounding; the
  probability the model gave those NOTE_ONs goes to the NOTE_OFF of the longest-sounding note.

The state of a row (which pitches sound since when, and the time) is a function of its history:
it is kept per history, advanced by the last token, and replayed from scratch for a history not
seen at the step before, so that searches, which reorder and copy rows, get the right state.
"""

from __future__ import annotations

import numpy as np

from mgf import Constraint, Option, UsageError, hookimpl

PITCHES = 128  # NOTE_ON p is token p, NOTE_OFF p is token 128 + p (docs/tokens.md)


class CloseNotes(Constraint):
    name = "close-notes"
    options = (
        Option("max_note_seconds", float, 4.0, "end a note held this long: only NOTE_OFFs may follow it", low=0.01,
               high=3600),
        Option("max_polyphony", int, None,
               "at most this many notes at once: a new one ends the longest-sounding (default: no limit)", low=1,
               high=PITCHES),
    )

    def prepare(self, ctx):
        representation = ctx.representation
        if representation.name != "midi":
            raise UsageError(f"constraint 'close-notes' works on the midi representation's events, "
                             f"not on {representation.name!r}")
        config = representation.config()  # the layout of docs/tokens.md: NOTE_ON, NOTE_OFF, TIME_SHIFT, VELOCITY
        self.shift0 = 2 * PITCHES
        self.velocity0 = self.shift0 + config["max_shift_steps"]
        self.max_steps = max(1, round(ctx.options["max_note_seconds"] * 1000 / config["time_shift_ms"]))
        self.max_polyphony = ctx.options["max_polyphony"]
        self.shift_steps = np.arange(1, self.velocity0 - self.shift0 + 1)  # steps each TIME_SHIFT token moves on
        self.states: dict[bytes, tuple[np.ndarray, int]] = {}

    def apply(self, logits, ctx):
        onsets, now = self._states(ctx.history)
        sounding = onsets >= 0
        age = np.where(sounding, now[:, None] - onsets, -1)
        oldest = age.max(axis=1)
        room = np.where(oldest >= 0, self.max_steps - oldest, self.shift_steps[-1])
        logits[:, self.shift0:self.velocity0][self.shift_steps[None, :] > room[:, None]] = -np.inf
        overdue = age >= self.max_steps
        rows = np.flatnonzero(overdue.any(axis=1))
        if rows.size:
            keep = np.zeros((rows.size, logits.shape[1]), bool)
            keep[:, PITCHES:2 * PITCHES] = overdue[rows]
            logits[rows] = np.where(keep, logits[rows], -np.inf)
        if self.max_polyphony is not None:
            full = np.flatnonzero(sounding.sum(axis=1) >= self.max_polyphony)
            if full.size:
                self._steal(logits, full, sounding[full], age[full])
        return logits

    def _native(self, ctx):
        """For the generation loop in C (core/kernel/sample.h): the layout, the limits and the state after the primer."""
        onsets, now = self._replay(ctx.history[0])
        return {"kind": "close_notes", "shift0": self.shift0, "shift_end": self.velocity0, "max_steps": self.max_steps,
                "max_polyphony": self.max_polyphony or 0, "onsets": onsets, "now": now}

    @staticmethod
    def _steal(logits, rows, sounding, age):
        """In full ``rows``, forbid NOTE_ONs of silent pitches and give their probability to ending the oldest note.

        A model that asks for a new note in a full texture has usually forgotten to end one, so
        the wish becomes the NOTE_OFF it forgot (a synthesizer's voice stealing), and the new note
        can start at the next step; forbidding alone would turn the wish into time shifts.
        """
        block = ~sounding
        wished = np.where(block, logits[rows, :PITCHES], -np.inf).astype(np.float64)
        peak = wished.max(axis=1)
        with np.errstate(divide="ignore"):  # a row whose NOTE_ONs are all forbidden already wishes nothing: log(0)
            mass = peak + np.log(np.exp(wished - np.where(np.isfinite(peak), peak, 0)[:, None]).sum(axis=1))
        oldest = PITCHES + np.argmax(age, axis=1)
        off = logits[rows, oldest].astype(np.float64)
        # a NOTE_OFF another constraint forbade stays forbidden
        logits[rows, oldest] = np.where(np.isfinite(off), np.logaddexp(off, mass), off).astype(logits.dtype)
        logits[rows, :PITCHES] = np.where(block, -np.inf, logits[rows, :PITCHES])

    def _states(self, history) -> tuple[np.ndarray, np.ndarray]:
        """Onset step of each sounding pitch (-1: silent) ``[B, 128]`` and the current step ``[B]`` of every row."""
        onsets = np.empty((len(history), PITCHES), np.int64)
        now = np.empty(len(history), np.int64)
        states = {}
        for row, tokens in enumerate(history):
            previous = self.states.get(tokens[:-1].tobytes()) if len(tokens) else None
            if previous is None:
                state = self._replay(tokens)
            else:
                state = self._advance(previous[0].copy(), previous[1], tokens[-1:])
            onsets[row], now[row] = state
            states[tokens.tobytes()] = state
        self.states = states
        return onsets, now

    def _replay(self, tokens: np.ndarray) -> tuple[np.ndarray, int]:
        """The state after ``tokens`` from silence, as :meth:`_advance` gives it, in vector operations (16,000
        events of a primer: 0.25 ms, against 22 ms token by token)."""
        tokens = np.asarray(tokens, np.int64)
        shifts = np.where((tokens >= self.shift0) & (tokens < self.velocity0), tokens - self.shift0 + 1, 0)
        times = np.cumsum(shifts) - shifts  # the step each token comes at
        events = np.flatnonzero(tokens < 2 * PITCHES)
        last = np.full(PITCHES, -1, np.int64)
        np.maximum.at(last, tokens[events] % PITCHES, events)  # each pitch's last NOTE_ON or NOTE_OFF
        if not events.size:
            return last, int(shifts.sum())
        started = (last >= 0) & (tokens[np.maximum(last, 0)] < PITCHES)
        return np.where(started, times[np.maximum(last, 0)], -1), int(shifts.sum())

    def _advance(self, onsets: np.ndarray, now: int, tokens) -> tuple[np.ndarray, int]:
        """The state after ``tokens``, updating ``onsets`` in place (a NOTE_ON of a sounding pitch restarts it)."""
        for token in tokens.tolist():
            if token < PITCHES:
                onsets[token] = now
            elif token < 2 * PITCHES:
                onsets[token - PITCHES] = -1
            elif self.shift0 <= token < self.velocity0:
                now += token - self.shift0 + 1
        return onsets, now


@hookimpl
def register_constraints(register):
    register(CloseNotes)
