"""The WebSocket of ``mgf serve`` (``/api/stream``): a piece's note events as they are chosen, and a jam.

The client's first message is a JSON object: the settings of ``POST /api/generate`` (``model``, ``steps``,
``seed``, ``sampler``, options, ``primer_midi``; ``token`` where the server has one) and ``mode``:
``stream`` (the default) answers the piece's events from :func:`mgf.stream`, then ``{"type": "end"}``;
``call-response`` or ``accompany`` (with ``qpm``, ``pause_beats``, ``window_beats``) runs the engine of
``mgf jam`` (:class:`~mgf.plugins.commands.jam_engine.Jam`) on what the client plays:
``{"type": "note_on", "pitch": 60, "velocity": 80, "time": 1.5}``, ``note_off``, ``handover``, ``end``.
The server answers ``{"type": "ready", ...}``, then ``{"type": "events", "events": [{"time", "type",
"pitch", "velocity"}, ...]}``; a stream's times are the piece's seconds, a jam's are when to play them in the
clock of the ``time`` values the client sends (without any: seconds since the session began), and after the
events of each answer of a jam, ``{"type": "answer", "time": t, "seconds": s}`` (when it starts, how long).

A session runs in one of the server's worker processes, as a generate job does, and holds it until it ends:
the jobs' bounds hold (a full server closes with 1013 after a one-line JSON error), a stream must end within
the job timeout, a jam ends after ``idle`` seconds without a message.  A bad message gets a one-line JSON
error and is counted; messages past the rate of ``mgf jam`` are dropped and counted; the counts come with
the last message, ``{"type": "end", "counts": {...}}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import math
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import mgf
from mgf import InputError, MgfError, UsageError
from mgf.plugins.commands import jam_engine
from mgf.plugins.commands.serve_app import ApiError, Generator, Jobs, _primer, _settings

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

MODES = ("stream", *jam_engine.MODES)
JAM_FIELDS = ("qpm", "pause_beats", "window_beats")
MAX_MESSAGE = 1024  # bytes of a message after the first: one note is under 100
CHUNK = 16  # tokens a stream computes between two looks at the connection
JAM_CHUNK = 4  # as mgf jam: an answer's first events come after 4 tokens
#: close codes (RFC 6455): done, the client's fault, too big, the server's fault, full
NORMAL, POLICY, TOO_BIG, INTERNAL, TRY_LATER = 1000, 1008, 1009, 1011, 1013


@dataclass(frozen=True)
class Session:
    """A socket's session as a worker process runs it: it talks over the worker's connection until it ends.

    Worker to server: ``("ready", info)``, ``("events", [(seconds, kind, pitch, velocity)])``, ``("answer",
    (start, seconds))``, ``("error", status, message)``, and last always ``("end", counts)``.  Server to worker:
    ``("play", [(kind, args)])`` for a jam, and last always ``("stop",)``.  The worker takes its next job only
    after both, so that no message of a session is left for the next one.
    """

    mode: str
    model: str
    settings: dict
    primer: bytes | None
    jam: dict

    def run(self, connection, generator: Generator) -> None:
        counts: Counter[str] = Counter()
        stop = threading.Event()  # set once the server's stop has been read
        try:
            with tempfile.TemporaryDirectory(prefix="mgf-serve-", dir=generator.scratch) as scratch:
                model = generator.model(self.model)
                settings = dict(self.settings)
                if self.primer is not None:
                    settings["primer"] = generator.primer(model.representation, self.primer, scratch)
                if self.mode == "stream":
                    self._stream(connection, model, settings, stop)
                else:
                    counts = self._jam(connection, model, settings, scratch, stop)
        except ApiError as error:
            connection.send(("error", error.status, str(error)))
        except MgfError as error:  # a bad setting is the client's; a broken plugin is the server's
            connection.send(("error", 400 if isinstance(error, (InputError, UsageError)) else 500, str(error)))
        except Exception as error:
            connection.send(("error", 500, f"internal error: {type(error).__name__}"))
        connection.send(("end", dict(counts)))
        with contextlib.suppress(EOFError, OSError):  # EOF: the server is gone
            while not stop.is_set():
                if connection.recv()[0] == "stop":
                    stop.set()

    def _stream(self, connection, model, settings: dict, stop: threading.Event) -> None:
        with mgf.stream(model, chunk=CHUNK, events=True, **settings) as stream:
            connection.send(("ready", {"model": self.model, "repr": model.representation.name, "seed": settings["seed"]}))
            for events in stream:
                if events:
                    connection.send(("events", [tuple(event) for event in events]))
                if connection.poll():  # the client left or asked to stop: nothing else comes in a stream
                    if connection.recv()[0] == "stop":
                        stop.set()
                    return

    def _jam(self, connection, model, settings: dict, scratch: str, stop: threading.Event) -> Counter[str]:
        jam = jam_engine.Jam(model, Outbox(connection), scratch, mode=self.mode, chunk=JAM_CHUNK, **self.jam, **settings)  # type: ignore[arg-type]
        try:
            connection.send(("ready", {"model": self.model, "repr": model.representation.name, "seed": settings["seed"]}))
            jam_engine.run(jam, Inbox(connection, stop, jam), stop)
        finally:
            jam.close()
        return jam.counts


class Outbox:
    """The jam engine's scheduler for a socket: each event goes to the server at once, with its time; the client plays it then."""

    clock = staticmethod(time.perf_counter)  # CLOCK_MONOTONIC: one clock for the server and its workers

    def __init__(self, connection) -> None:
        self.connection = connection

    def at(self, when: float, kind: str, pitch: int, velocity: int) -> None:
        self.connection.send(("events", [(when, kind, pitch, velocity)]))

    def close(self) -> None:
        """Nothing waits here: the client ends what still sounds when the session ends."""


class Inbox:
    """The jam engine's source: what the server forwards, ``[(kind, args)]``; ``("stop",)`` or a closed pipe ends the jam.

    Read after each of the engine's ticks, it also tells the server of each answer the tick scheduled, ``("answer",
    (start, seconds))``: its events are all sent, and a client hears of an answer that is silence too.
    """

    def __init__(self, connection, stop: threading.Event, jam: jam_engine.Jam) -> None:
        self.connection, self.stop, self.jam = connection, stop, jam
        self.answered = jam.answers[-1] if jam.answers else None

    def read(self, timeout: float) -> list:
        found: list = []
        if self.jam.answers and self.jam.answers[-1] is not self.answered:
            self.answered = self.jam.answers[-1]
            self.connection.send(("answer", self.answered))
        try:
            if not self.connection.poll(timeout):
                return found
            while self.connection.poll():
                message = self.connection.recv()
                if message[0] == "stop":
                    self.stop.set()
                    break
                found += message[1]
        except (EOFError, OSError):  # the server is gone: nothing more to read, ever
            self.stop.set()
        return found


class Clocks:
    """The client's clock and the server's: a note's ``time`` placed on the server's, the answer's times put back on the client's.

    The offset is the smallest ``arrival - time`` seen (the quickest delivery), so a note is never placed after
    it arrived; a note is never placed before the one sent before it.  Without ``time`` a note is placed at arrival.
    """

    def __init__(self) -> None:
        self.began = time.perf_counter()
        self.offset = math.inf
        self.last = -math.inf

    def place(self, arrival: float, given: float | None) -> float:
        if given is not None:
            self.offset = min(self.offset, arrival - given)
        placed = arrival if given is None else given + self.offset
        self.last = min(arrival, max(self.last, placed))
        return self.last

    def back(self, when: float) -> float:
        return when - (self.began if self.offset == math.inf else self.offset)


def _number(body: dict, key: str, low: float, high: float) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ApiError(400, f"{key} must be a number in [{low:g}, {high:g}], got {str(value)[:40]!r}")
    return float(value)


def play_message(text: str) -> tuple[str, tuple] | None:
    """A jam message as the engine's ``(kind, args)`` (``time`` last, None if not given); None for ``end``; ApiError if bad."""
    try:
        body = json.loads(text)
    except ValueError:
        raise ApiError(400, "a message must be JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "a message must be a JSON object")
    kind = body.get("type")
    needed = {"note_on": ("pitch",), "note_off": ("pitch",), "handover": (), "end": ()}.get(kind) if isinstance(kind, str) else None
    if needed is None:
        raise ApiError(400, f"type must be note_on, note_off, handover or end, got {str(kind)[:40]!r}")
    allowed = {"type", "time", *needed, *(("velocity",) if kind == "note_on" else ())}
    if set(body) - allowed:
        raise ApiError(400, f"unknown fields {sorted(set(body) - allowed)[:4]} in a {kind} message")
    if kind == "end":
        return None
    given = _number(body, "time", -1e9, 1e9)
    if kind == "handover":
        return "handover", ()
    pitch = body.get("pitch")
    if not isinstance(pitch, int) or isinstance(pitch, bool) or not 0 <= pitch <= 127:
        raise ApiError(400, f"pitch must be a MIDI number 0..127, got {str(pitch)[:40]!r}")
    if kind == "note_off":
        return "note_off", (pitch, given)
    velocity = body.get("velocity", 80)
    if not isinstance(velocity, int) or isinstance(velocity, bool) or not 0 <= velocity <= 127:
        raise ApiError(400, f"velocity must be 0..127, got {str(velocity)[:40]!r}")
    return "note_on", (pitch, velocity, given)


class Conversation:
    """One socket, on the server's side: reads the first message, lends a worker, and carries messages both ways."""

    def __init__(self, websocket: WebSocket, generator: Generator, jobs: Jobs, token: str | None, max_first: int,
                 idle: float) -> None:
        self.websocket, self.generator, self.jobs, self.token = websocket, generator, jobs, token
        self.max_first, self.idle = max_first, idle
        self.counts: Counter[str] = Counter()
        self.clocks = Clocks()
        self.flood = jam_engine.FloodGate(self.counts)  # the rate of ``mgf jam``: a message past it is dropped, unanswered
        self.ended: dict | None = None  # the worker's counts, once it has ended
        self.failed: int | None = None  # the status of the worker's error, if it sent one

    async def serve(self) -> None:
        await self.websocket.accept()
        try:
            try:
                first = await asyncio.wait_for(self._receive(), self.jobs.timeout)
            except TimeoutError:
                raise ApiError(400, "no settings within the job timeout: send them as the first message") from None
            session = self._session(_text(first, self.max_first))
            async with self.jobs.lend() as worker:
                await self._talk(worker, session)
        except ApiError as error:
            await self._close(_code(error.status), str(error))
        except WebSocketDisconnect:
            pass

    async def _receive(self) -> Mapping:
        """The next message; WebSocketDisconnect once the client has gone."""
        message = await self.websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", NORMAL))
        return message

    def _session(self, text: str) -> Session:
        try:
            body = json.loads(text)
        except ValueError:
            raise ApiError(400, "the first message must be JSON settings") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the first message must be a JSON object of settings")
        given = body.pop("token", None)
        if self.token is not None:
            query = self.websocket.query_params.get("token")
            header = self.websocket.headers.get("authorization", "")
            if not any(isinstance(t, str) and hmac.compare_digest(t.encode(), self.token.encode()) for t in
                       (given, query, header[7:] if header.startswith("Bearer ") else None)):
                raise ApiError(401, "this server needs a token: 'token' in the first message, ?token= or a bearer header")
        mode = body.pop("mode", "stream")
        if mode not in MODES:
            raise ApiError(400, f"mode must be one of {', '.join(MODES)}, got {str(mode)[:40]!r}")
        jam = {key: number for key in JAM_FIELDS if (number := _number(body, key, 0, 1e4)) is not None}
        for key in JAM_FIELDS:
            body.pop(key, None)
        if mode != "stream" and (jam.keys() - {"qpm"} - {"pause_beats" if mode == "call-response" else "window_beats"}):
            raise ApiError(400, f"{', '.join(sorted(jam))} do not all apply to {mode}")
        if mode == "stream" and jam:
            raise ApiError(400, f"{', '.join(sorted(jam))} apply to a jam (mode call-response or accompany), not a stream")
        if mode != "stream" and ("steps" in body or "primer_midi" in body):
            raise ApiError(400, "a jam takes no steps or primer_midi: it answers what is played")
        for key in ("format", "audio"):
            if key in body:
                raise ApiError(400, f"{key} is not a setting of the socket: it answers note events")
        name = self.generator.pick(body)
        settings = _settings(body, self.generator.max_steps)
        if mode != "stream":
            del settings["steps"]
        return Session(mode, name, settings, _primer(body.get("primer_midi")), jam)

    async def _talk(self, worker, session: Session) -> None:
        connection = worker.connection
        connection.send(session)
        out = asyncio.ensure_future(self._from_worker(connection, session.mode))
        into = asyncio.ensure_future(self._from_client(connection, session.mode))
        try:
            done, _ = await asyncio.wait({out, into}, timeout=self.jobs.timeout if session.mode == "stream" else None,
                                         return_when=asyncio.FIRST_COMPLETED)
            if not done:
                raise ApiError(504, f"the stream took longer than {self.jobs.timeout:g} s; ask for fewer steps")
            into.cancel()
            await asyncio.gather(into, return_exceptions=True)
            if not connection.closed:  # once, whoever ended: the worker's cue that the session is over
                connection.send(("stop",))
            try:
                await asyncio.wait_for(out, self.jobs.timeout)
            except TimeoutError:
                raise ApiError(504, f"the session did not stop within {self.jobs.timeout:g} s") from None
        finally:
            for task in (out, into):
                task.cancel()
            await asyncio.gather(out, into, return_exceptions=True)
        if self.failed is not None:
            await self._close(_code(self.failed), None)
        elif self.websocket.application_state == WebSocketState.CONNECTED:
            await self._send({"type": "end", "counts": dict(self.counts + Counter(self.ended))})
            await self._close(NORMAL, None)

    async def _from_worker(self, connection, mode: str) -> None:
        """Carry the worker's messages to the client, all those waiting in one, until its ``end``."""
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        fd = connection.fileno()  # kept: a connection closed below has none
        loop.add_reader(fd, readable.set)
        try:
            while True:
                await readable.wait()
                readable.clear()
                events: list[dict] = []
                while self.ended is None and connection.poll():
                    try:
                        message = connection.recv()
                    except (EOFError, OSError):
                        connection.close()
                        raise ApiError(500, "the session's process ended without an answer") from None
                    if message[0] == "events":
                        events += [{"time": round(when if mode == "stream" else self.clocks.back(when), 6), "type": kind,
                                    "pitch": pitch, "velocity": velocity} for when, kind, pitch, velocity in message[1]]
                        continue
                    if events:
                        await self._send({"type": "events", "events": events})
                        events = []
                    if message[0] == "answer":
                        start, seconds = message[1]
                        await self._send({"type": "answer", "time": round(self.clocks.back(start), 6), "seconds": seconds})
                    elif message[0] == "ready":
                        await self._send({"type": "ready", "mode": mode, **message[1]})
                    elif message[0] == "error":
                        self.failed = message[1]
                        await self._send({"error": _line(message[2])})
                    else:
                        self.ended = message[1]
                if events:
                    await self._send({"type": "events", "events": events})
                if self.ended is not None:
                    return
        finally:
            loop.remove_reader(fd)

    async def _from_client(self, connection, mode: str) -> None:
        """Check each message of the client and carry the notes to the worker; return once it asked to end or left."""
        while True:
            try:
                received = await asyncio.wait_for(self._receive(), None if mode == "stream" else self.idle)
            except TimeoutError:
                await self._send({"error": f"no message for {self.idle:g} s: the session ends"})
                return
            except WebSocketDisconnect:
                return
            if not self.flood.accept():
                continue
            try:
                message = play_message(_text(received, MAX_MESSAGE))
            except ApiError as error:
                await self._bad(str(error))
                continue
            if message is None:
                return
            if mode == "stream":
                await self._bad("a stream takes no notes: play them in a jam (mode call-response or accompany)")
                continue
            kind, args = message
            if kind != "handover":
                args = (*args[:-1], self.clocks.place(time.perf_counter(), args[-1]))
            connection.send(("play", [(kind, args)]))

    async def _bad(self, message: str) -> None:
        self.counts["bad messages"] += 1
        await self._send({"error": _line(message)})

    async def _send(self, body: dict) -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):  # the client gone: the session still ends cleanly
            await self.websocket.send_text(json.dumps(body, separators=(",", ":")))

    async def _close(self, code: int, message: str | None) -> None:
        if self.websocket.application_state != WebSocketState.CONNECTED:
            return
        if message is not None:
            await self._send({"error": _line(message)})
        with contextlib.suppress(RuntimeError, OSError):
            await self.websocket.close(code)


def _text(message: Mapping, limit: int) -> str:
    """A message's text; ApiError 413 past ``limit`` characters, 400 for a binary message."""
    text = message.get("text")
    if text is None:
        raise ApiError(400, "send text messages of JSON, not binary ones")
    if len(text) > limit:
        raise ApiError(413, f"message over {limit} bytes")
    return text


def _code(status: int) -> int:
    """The close code of an HTTP status."""
    return TRY_LATER if status == 503 else TOO_BIG if status == 413 else INTERNAL if status >= 500 else POLICY


def _line(message: str) -> str:
    return " ".join(str(message).split())[:500]
