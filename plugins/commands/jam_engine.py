"""The engine of ``mgf jam``: a player's notes in, the model's answer out, on time.

It is apart from the command so that tests and ``benchmarks/bench_jam.py`` drive it in-process with any
input and output.  What the player plays is quantized *by the representation itself*: the call is
written as a small MIDI file at the jam's tempo and read with ``Representation.read`` (:class:`CallReader`),
so every representation that reads MIDI files can jam, with its own rules (the ``notes`` grid and range,
``midi``'s time shifts and velocity bins).  The tokens are fed to one :func:`mgf.stream` that lives for the
whole session (the model is never primed from the start again), and the events the stream decodes are
sent at their times by a :class:`Scheduler` thread, so that computing the next notes never delays one.
"""

from __future__ import annotations

import contextlib
import heapq
import math
import os
import sys
import threading
import time
from collections import Counter, deque

import numpy as np

import mgf
from mgf import MgfError, UsageError

MODES = ("call-response", "accompany")
TICKS = 480  # per beat, in the call's MIDI file
MAX_CALL_NOTES = 512  # notes one call keeps; more are dropped and counted (a player who never pauses)
MAX_ANSWER_BEATS = 64  # the longest answer, whatever the call's length
MAX_ANSWER_TOKENS = 8192  # the most tokens one answer may take to fill its beats
FLOOD_BURST, FLOOD_RATE = 256, 1000.0  # input messages: a burst of this many, then this many per second
KEPT = 100_000  # timings kept for the figures (a session of hours keeps the latest)
SWITCH_INTERVAL = 0.0005  # seconds a thread holds the GIL while another waits for it (Python's default: 0.005)


class Scheduler:
    """Sends ``(kind, pitch, velocity)`` at a given ``time.perf_counter()`` time, from a thread of its own.

    ``lateness`` holds how late each event went (the jitter).  ``close()`` ends every note it started, so
    that neither Ctrl-C nor an error leaves a note hanging on a synthesizer.  While it runs, a thread gives up the
    GIL after :data:`SWITCH_INTERVAL`: with Python's 5 ms, an event due while the engine samples waited up to 5 ms.
    """

    def __init__(self, send, clock=time.perf_counter) -> None:
        self._switch = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch, SWITCH_INTERVAL))
        self._send, self.clock = send, clock
        self._heap: list = []
        self._order = 0
        self._wake = threading.Condition()
        self._closed = False
        self.sounding: Counter[int] = Counter()  # pitches whose note-on went out and whose note-off has not
        self.lateness: deque[float] = deque(maxlen=KEPT)
        self.sent = self.failed = 0
        self._thread = threading.Thread(target=self._loop, name="mgf-jam-scheduler", daemon=True)
        self._thread.start()

    def at(self, when: float, kind: str, pitch: int, velocity: int) -> None:
        with self._wake:
            heapq.heappush(self._heap, (when, kind == "note_on", self._order, kind, pitch, velocity))
            self._order += 1
            self._wake.notify()

    def idle(self) -> bool:
        """Whether every event given has gone out."""
        with self._wake:
            return not self._heap

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._closed and (not self._heap or self._heap[0][0] > self.clock()):
                    self._wake.wait(None if not self._heap else self._heap[0][0] - self.clock())
                if self._closed:
                    return
                when, _, _, kind, pitch, velocity = heapq.heappop(self._heap)
            self._out(kind, pitch, velocity)
            self.lateness.append(self.clock() - when)

    def _out(self, kind: str, pitch: int, velocity: int) -> None:
        try:
            self._send(kind, pitch, velocity)
        except Exception:  # a full socket buffer, a port gone: counted, the jam goes on
            self.failed += 1
            return
        self.sent += 1
        if kind == "note_on":
            self.sounding[pitch] += 1
        elif self.sounding[pitch] > 0:
            self.sounding[pitch] -= 1

    def close(self) -> None:
        """Stop now: what is waiting is dropped, every note still sounding gets its note-off."""
        with self._wake:
            self._closed = True
            self._heap.clear()
            self._wake.notify()
        self._thread.join(timeout=1)
        for pitch in sorted(+self.sounding):
            for _ in range(self.sounding[pitch]):
                self._out("note_off", pitch, 0)
        sys.setswitchinterval(self._switch)


class FloodGate:
    """The input rate of a jam, a token bucket: ``FLOOD_BURST`` messages at once, then ``FLOOD_RATE`` a second; a
    message past it is dropped and counted in ``counts["dropped (flood)"]``."""

    def __init__(self, counts: Counter[str], clock=time.perf_counter) -> None:
        self.counts, self.clock = counts, clock
        self.bucket, self.filled = float(FLOOD_BURST), clock()

    def accept(self) -> bool:
        now = self.clock()
        self.bucket = min(FLOOD_BURST, self.bucket + (now - self.filled) * FLOOD_RATE)
        self.filled = now
        if self.bucket < 1:
            self.counts["dropped (flood)"] += 1
            return False
        self.bucket -= 1
        return True


class CallReader:
    """The tokens of a call ``[(pitch, velocity, start, end)]`` (wall seconds), as the representation reads a MIDI file of it.

    Writing and reading the file costs 1-3 ms, so :class:`Jam` quantizes a call during the pause that ends it.
    ``scale`` is wall seconds per second of the representation's own time: a representation on a grid (``notes``)
    writes at its own tempo, one in seconds (``midi``) at the player's.  It is measured once, by reading a probe.
    """

    def __init__(self, representation, qpm: float, folder: str) -> None:
        if ".mid" not in tuple(getattr(representation, "read_suffixes", ())):
            raise UsageError(f"representation {representation.name!r} cannot read MIDI files, which mgf jam quantizes with")
        self.representation, self.beat = representation, 60.0 / qpm
        self.path = os.path.join(folder, "call.mid")
        probe = [(60, 80, 0.0, self.beat), (62, 80, 8 * self.beat, 9 * self.beat)]
        notes = representation.to_notes(self.tokens(probe))
        span = max(end for *_, end in notes) - min(start for _, _, start, _ in notes) if notes else 0
        self.scale = 9 * self.beat / span if span > 0 else 1.0

    def tokens(self, notes) -> np.ndarray:
        import mido  # here: `mgf --help` imports this module, and needs no mido

        midi = mido.MidiFile(ticks_per_beat=TICKS)
        track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=round(self.beat * 1e6), time=0)])
        midi.tracks.append(track)
        events = []
        for pitch, velocity, start, end in notes:
            on = round(start / self.beat * TICKS)
            events += [(on, 1, pitch, velocity), (max(on + 1, round(end / self.beat * TICKS)), 0, pitch, 0)]
        now = 0
        for tick, is_on, pitch, velocity in sorted(events):
            track.append(mido.Message("note_on" if is_on else "note_off", note=pitch, velocity=velocity, time=tick - now))
            now = tick
        midi.save(self.path)
        return np.asarray(self.representation.read(self.path), dtype=np.int32)


class Jam:
    """One session: ``note_on``/``note_off``/``handover`` as the player plays, ``tick`` often (see :func:`run`).

    ``call-response``: once the player has paused ``pause_beats`` beats (or handed over), the call is fed to the
    stream and the model answers for as many beats as the call lasted.  ``accompany``: every ``window_beats``
    beats the player's notes of the window before are fed and the model plays the next window; a handover
    mutes or unmutes the model.  A single-line model hears the player's window and then its own, one after
    the other, though both sounded at once: what one stream of tokens can hold.
    """

    def __init__(self, model, scheduler: Scheduler, folder: str, *, mode: str = "call-response", qpm: float = 120.0,
                 pause_beats: float = 1.0, window_beats: float = 1.0, chunk: int = 4, **generate) -> None:
        if mode not in MODES:
            raise UsageError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if not 1 <= qpm <= 1000 or not 0 < pause_beats <= 64 or not 0 < window_beats <= 64:
            raise UsageError("qpm must be in [1, 1000], pause and window beats in (0, 64]")
        self.model, self.scheduler, self.mode, self.chunk, self.generate = model, scheduler, mode, chunk, generate
        self.clock = scheduler.clock
        self.reader = CallReader(model.representation, qpm, folder)
        self.beat, self.pause, self.window = 60.0 / qpm, pause_beats * 60.0 / qpm, window_beats * 60.0 / qpm
        self.stream = mgf.stream(model, chunk=chunk, events=True, **generate)
        self.played: list[list] = []  # [pitch, velocity, start, end or None] not yet fed
        self.sounding: dict[int, list] = {}  # pitch -> its note in `played`
        self.last_input: float | None = None
        self.muted = False
        self.next_window: float | None = None
        self.counts: Counter[str] = Counter()
        self.compute: deque[float] = deque(maxlen=KEPT)  # seconds from the answer's start to its first event scheduled
        self.answers: deque[tuple[float, float]] = deque(maxlen=KEPT)  # (wall time it starts, seconds) of each answer
        self.flood = FloodGate(self.counts, self.clock)
        self._quantized: tuple = ((), None)  # (call, its tokens): quantized during the pause, fed when it is over

    # ---- what the player plays

    def accept(self) -> bool:
        """Whether one more input message fits the rate; one that does not is dropped and counted."""
        return self.flood.accept()

    def note_on(self, pitch: int, velocity: int, now: float | None = None) -> None:
        if velocity == 0:
            return self.note_off(pitch, now)
        now = self.clock() if now is None else now
        self.note_off(pitch, now)  # a re-strike ends the note
        if len(self.played) >= MAX_CALL_NOTES:
            self.counts["dropped (call too long)"] += 1
            return
        note = [pitch, velocity, now, None]
        self.played.append(note)
        self.sounding[pitch] = note
        self.last_input = now
        return None

    def note_off(self, pitch: int, now: float | None = None) -> None:
        now = self.clock() if now is None else now
        note = self.sounding.pop(pitch, None)
        if note is not None:
            note[3] = now
            self.last_input = now

    def handover(self, now: float | None = None) -> None:
        now = self.clock() if now is None else now
        self.counts["handovers"] += 1
        if self.mode == "accompany":
            self.muted = not self.muted
        elif self.played:
            self._answer(now)

    # ---- the model's turn

    def due(self, now: float) -> float:
        """When :meth:`tick` has something to do next (``inf``: only after more input)."""
        if self.mode == "accompany":
            return now if self.next_window is None else self.next_window
        if self.played and not self.sounding and self.last_input is not None:
            return self.last_input + self.pause
        return math.inf

    def tick(self, now: float | None = None) -> None:
        now = self.clock() if now is None else now
        if now < self.due(now):
            if self.mode == "call-response" and self.played and not self.sounding:
                with contextlib.suppress(MgfError):  # counted when the call is played
                    self._quantize(self._notes(math.inf))  # a complete call: its tokens are ready when the pause ends
            return
        if self.mode == "call-response":
            self._answer(now)
            return
        if self.next_window is None:
            self.next_window = now
        if now - self.next_window > self.window:  # fallen behind (a stalled machine): skip to the present
            self.counts["windows skipped"] += int((now - self.next_window) // self.window)
            self.next_window += (now - self.next_window) // self.window * self.window
        start = self.next_window
        self.next_window += self.window
        self._play(self._take(start), None if self.muted else self.window, now)

    def _take(self, before: float) -> list:
        """:meth:`_notes`, no longer kept."""
        taken = self._notes(before)
        self.played = [note for note in self.played if note[2] >= before]
        return taken

    def _notes(self, before: float) -> list:
        """The played notes that start before ``before``, relative to the first, ended at ``before`` at the latest."""
        taken = [note for note in self.played if note[2] < before]
        if not taken:
            return []
        first = min(note[2] for note in taken)
        return [(pitch, velocity, start - first, min(before if end is None else end, before) - first)
                for pitch, velocity, start, end in taken]

    def _answer(self, now: float) -> None:
        call = self._take(math.inf if not self.sounding else now)
        length = max(end for *_, end in call) if call else 0.0
        beats = min(MAX_ANSWER_BEATS, max(1, round(length / self.beat)))
        self.counts["calls answered"] += 1
        self._play(call, beats * self.beat, now)

    def _play(self, call: list, seconds: float | None, started: float) -> None:
        """Feed ``call``, then schedule ``seconds`` (wall) of the model's answer (None: feed only)."""
        try:
            tokens = self._quantize(call) if call else None
        except MgfError:  # e.g. an InputError of the representation's reading
            self.counts["calls the representation refused"] += 1
            tokens = None
        try:
            if tokens is not None:
                self.stream.feed(tokens)  # the events it returns are the player's own
            if seconds is not None:
                self._schedule(seconds, started)
        except MgfError as error:  # the session's stream is full (MGF_MAX_STEPS...): a fresh one goes on
            self.counts[f"stream restarted ({type(error).__name__})"] += 1
            self.stream.close()
            self.stream = mgf.stream(self.model, chunk=self.chunk, events=True, **self.generate)

    def _quantize(self, call: list) -> np.ndarray:
        key = tuple(call)
        if self._quantized[0] != key:
            self._quantized = (key, self.reader.tokens(call))
        return self._quantized[1]

    def _position(self, seen: float) -> float:
        clock = self.stream.clock
        return seen if clock is None else clock["seconds"]

    def _schedule(self, seconds: float, started: float) -> None:
        """The stream's next events up to ``seconds`` from now, each at its time from the first one known."""
        scale = self.reader.scale
        origin = seen = self._position(0.0)
        end = origin + seconds / scale
        anchor = None
        mine: Counter[int] = Counter()  # the answer's own sounding notes: a note-off of the player's is not the model's
        for _ in range(MAX_ANSWER_TOKENS // self.chunk + 1):  # bounded: a stream without a clock moves by its events only
            if self._position(seen) >= end:
                break
            events = next(self.stream)
            for event in events:
                seen = max(seen, event.seconds)
                if anchor is None:
                    anchor = self.clock()
                    self.compute.append(anchor - started)
                at = anchor + (min(event.seconds, end) - origin) * scale
                if event.kind == "note_on" and event.seconds < end:
                    mine[event.pitch] += 1
                    self.scheduler.at(at, "note_on", event.pitch, event.velocity)
                elif event.kind == "note_off" and mine[event.pitch] > 0:
                    mine[event.pitch] -= 1
                    self.scheduler.at(at, "note_off", event.pitch, 0)
        anchor = self.clock() if anchor is None else anchor
        self.answers.append((anchor, seconds))
        for pitch in sorted(+mine):  # still sounding at the answer's end
            for _ in range(mine[pitch]):
                self.scheduler.at(anchor + seconds, "note_off", pitch, 0)

    def close(self) -> None:
        self.scheduler.close()
        self.stream.close()


def run(jam: Jam, source, stop: threading.Event, seconds: float | None = None) -> None:
    """Read ``source`` (``read(timeout) -> [(kind, args)]``) into ``jam`` until ``stop`` is set or ``seconds`` have passed."""
    clock = jam.clock
    until = math.inf if seconds is None else clock() + seconds
    while not stop.is_set() and clock() < until:
        now = clock()
        wait = max(0.0, min(jam.due(now), until, now + 0.05) - now)
        for kind, args in source.read(wait):
            if not jam.accept():
                continue
            if kind == "handover":
                jam.handover()
            elif kind == "note_on":
                jam.note_on(*args)
            else:
                jam.note_off(*args)
        jam.tick()
