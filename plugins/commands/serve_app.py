"""The ASGI app of ``mgf serve``: a JSON/HTTP API over :func:`mgf.generate` and :func:`mgf.infill_piece`
(``/api/infill``, for the models that can), and the page that plays with them.

Starlette, because it is small and typed and its ``TestClient`` drives the same app the server runs.
The WebSocket ``/api/stream`` (:mod:`mgf.plugins.commands.serve_socket`) streams note events and jams.
Every request is bounded before any work: body size, steps (``MGF_MAX_STEPS`` and the server's own cap),
one output per request, and a fixed number of jobs admitted at once (those running, each in a worker process,
plus a queue); past it the answer is 503 with ``Retry-After``, so a flood cannot pile up memory or work, and a
job past the timeout is stopped.  A model is picked by
a name the server was started with, never by a path, and requests name no file: an uploaded primer or piece and
the answer pass through a private scratch folder in memory (``/dev/shm``) that is gone when the request ends,
because representations read and write paths.  Errors are one line of JSON, ``{"error": "..."}``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import json
import math
import multiprocessing
import os
import secrets
import shutil
import signal
import tempfile
import weakref
from collections.abc import Mapping
from importlib.resources import files

import numpy as np

import mgf
from mgf import InputError, MgfError, installed
from mgf.contract.infill import gap_bounds, gap_bounds_seconds
from mgf.generation.plan import infill_tokens, limit
from mgf.music import synth
from mgf.plugins.commands.sampling_options import as_read

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

#: fields of a generate request that are not sampler or constraint options
FIELDS = ("model", "repr", "steps", "seed", "sampler", "constraints", "format", "primer_midi", "audio")
GENERATE_OWN = ("num_outputs", "progress", "primer")  # mgf.generate's own keywords, which no request may set
#: fields of an infill request that are not sampler or constraint options, and mgf.infill_piece's own keywords
INFILL_FIELDS = ("model", "repr", "seed", "sampler", "constraints", "format", "piece_midi", "tokens", "bars", "seconds",
                 "max_tokens", "audio")
INFILL_OWN = (*GENERATE_OWN, "steps", "primer_midi", "plan", "length", "before", "after", "processors")
FORMATS = {"json": "application/json", "wav": "audio/wav"}
MEDIA_TYPES = {".mid": "audio/midi", ".wav": "audio/wav", ".txt": "text/plain; charset=utf-8"}
ASSETS = {"/": ("index.html", "text/html; charset=utf-8"), "/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/style.css": ("style.css", "text/css; charset=utf-8")}
#: memory-backed, where there is one: nothing a request sends or gets is written to disk
SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


class ApiError(Exception):
    """A request the server answers with ``status`` and a one-line JSON error."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.headers = status, headers or {}


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": " ".join(str(message).split())[:500]}, status, headers)


def shipped_models() -> dict[str, str]:
    """Each representation's default bundle that is installed, by the representation's name."""
    found = {}
    for name, entry in sorted(installed("representations").items()):
        path = entry.cls.default_bundle
        if path and os.path.isfile(path):
            found[name] = path
    return found


class Jobs:
    """At most ``workers`` generations at once, each in a worker process, and ``queue`` more waiting; past them 503.

    Processes, not threads: sampling and writing hold the GIL, so only processes use more than one core, and a
    job that passes ``timeout`` is stopped for good by killing its process (answered 504; a new one replaces it).
    A process is started when a job first needs it and loads each model once.
    """

    def __init__(self, workers: int, queue: int, timeout: float, generator: tuple) -> None:
        self.capacity, self.timeout, self.generator = workers + queue, timeout, generator
        self.idle: list = []
        self.free = asyncio.Semaphore(workers)
        self.admitted = 0  # read and written on the event loop only

    @contextlib.asynccontextmanager
    async def lend(self):
        """A worker for one job or one socket's session, given back when it is still clean; 503 past the capacity."""
        if self.admitted >= self.capacity:
            raise ApiError(503, f"busy: {self.admitted} jobs running or queued; retry shortly", {"Retry-After": "1"})
        self.admitted += 1
        try:
            async with self.free:
                worker = self.idle.pop() if self.idle else Worker(self.generator)
                try:
                    yield worker
                except BaseException:  # a timeout, or the client gone: the process may still be at work
                    worker.stop()
                    raise
                if not worker.connection.closed:
                    self.idle.append(worker)
        finally:
            self.admitted -= 1

    async def run(self, job: tuple):
        async with self.lend() as worker:
            try:
                answer = await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(None, worker.call, job),
                                                self.timeout)
            except TimeoutError:
                raise ApiError(504, f"the job took longer than {self.timeout:g} s; ask for fewer steps") from None
        if answer[0] == "error":
            raise ApiError(*answer[1:])
        return answer[1]

    def close(self) -> None:
        while self.idle:
            self.idle.pop().stop()


class Worker:
    """One process running :meth:`Generator.generate` for the jobs sent to it, one at a time."""

    def __init__(self, generator: tuple) -> None:
        context = multiprocessing.get_context("spawn")  # not fork: the server has threads
        self.connection, theirs = context.Pipe()
        # the jobs' files live in a folder of the server's, so that a process killed inside a job leaves none behind
        self.scratch = tempfile.mkdtemp(prefix="mgf-serve-", dir=SCRATCH)
        self.remove_scratch = weakref.finalize(self, shutil.rmtree, self.scratch, True)  # at stop(), else at exit
        self.process = context.Process(target=_work, args=(theirs, self.scratch, *generator), daemon=True,
                                       name="mgf-serve-job")
        self.process.start()
        theirs.close()

    def call(self, job: tuple) -> tuple:
        self.connection.send(job)
        try:
            return self.connection.recv()
        except (EOFError, OSError):  # killed by a timeout, or it died
            return ("error", 500, "the job's process ended without an answer")

    def stop(self) -> None:
        self.process.kill()
        self.process.join(5)
        self.connection.close()
        self.remove_scratch()


def _work(connection, scratch: str, bundles: dict[str, str], max_steps: int) -> None:
    """A worker process: answer each job, ``(method of Generator, *arguments)``, with ``("ok", (media type, body))``
    or ``("error", status, message)``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C reaches it too: the server stops it
    generator = Generator(bundles, max_steps, scratch)
    while True:
        try:
            job = connection.recv()
        except EOFError:  # the server is gone
            return
        if not isinstance(job, tuple):  # a socket's session (serve_socket.Session): it talks until it ends
            job.run(connection, generator)
            continue
        answer: tuple
        try:
            answer = ("ok", getattr(generator, job[0])(*job[1:]))
        except ApiError as error:
            answer = ("error", error.status, str(error))
        except MgfError as error:  # bad input is the request's; a broken plugin is the server's
            answer = ("error", 400 if isinstance(error, InputError) else 500, str(error))
        except Exception as error:
            answer = ("error", 500, f"internal error: {type(error).__name__}")
        connection.send(answer)


class Generator:
    """The models a server offers, by name; a worker process loads each once, when a job first asks for it."""

    def __init__(self, bundles: dict[str, str], max_steps: int, scratch: str | None = SCRATCH) -> None:
        self.bundles, self.max_steps, self.scratch = bundles, max_steps, scratch
        self.shipped = shipped_models()
        self.loaded: dict = {}
        self.cards = {}
        for name, path in {**self.shipped, **bundles}.items():
            meta = mgf.contract.bundle.read_metadata(path)
            self.cards[name] = {"name": name, "repr": meta["representation"]["name"], "shipped": name not in bundles,
                                "defaults": meta.get("defaults", {}), "infill": meta.get("infill") is not None,
                                "controls": meta.get("controls") or []}
        self.default = "notes" if "notes" in self.cards else next(iter(self.cards), None)
        if self.default is not None:
            self.cards[self.default]["default"] = True

    def model(self, name: str):
        if name not in self.loaded:
            self.loaded[name] = mgf.load_model({**self.shipped, **self.bundles}[name])
        return self.loaded[name]

    def pick(self, body: dict) -> str:
        name, representation = body.get("model"), body.get("repr")
        for key, value in (("model", name), ("repr", representation)):
            if value is not None and not isinstance(value, str):
                raise ApiError(400, f"{key} must be a string")
        if name is None:
            if representation is None:
                if self.default is None:
                    raise ApiError(400, "this server offers no model")
                return self.default
            if representation not in self.shipped:
                raise ApiError(400, f"no shipped model for the representation {representation[:60]!r} "
                                    f"(representations: {', '.join(self.shipped) or 'none'})")
            return representation
        if name not in self.cards:
            raise ApiError(400, f"no model {name[:60]!r} (models: {', '.join(self.cards)}; see GET /api/models)")
        if representation is not None and representation != self.cards[name]["repr"]:
            raise ApiError(400, f"model {name!r} was trained for {self.cards[name]['repr']!r}, not {representation[:60]!r}")
        return name

    @staticmethod
    def primer(representation, primer_midi: bytes, scratch: str):
        """The tokens of an uploaded MIDI file, read by the representation from ``scratch``."""
        if ".mid" not in representation.read_suffixes:
            raise ApiError(400, f"the representation {representation.name!r} reads no MIDI primer")
        path = os.path.join(scratch, "primer.mid")
        with open(path, "wb") as handle:
            handle.write(primer_midi)
        return representation.read(path)

    def generate(self, name: str, settings: dict, primer_midi: bytes | None, answer: str, audio: bool):
        """``(media type, body)`` of one piece: the representation's own file, a WAV, or JSON for the page."""
        model = self.model(name)
        representation = model.representation
        with tempfile.TemporaryDirectory(prefix="mgf-serve-", dir=self.scratch) as scratch:
            if primer_midi is not None:
                settings["primer"] = self.primer(representation, primer_midi, scratch)
            _check_answer(representation, answer)
            tokens = mgf.generate(model, **settings)
            return _reply(scratch, representation, tokens, answer, audio, {"model": name, "seed": settings["seed"]})

    def read(self, name: str, piece: bytes, audio: bool):
        """The JSON of a MIDI file as the model's representation reads it (as :meth:`infill` reads one): for the page
        to draw a piece whose bars it then fills."""
        representation = as_read(self.model(name).representation)
        with tempfile.TemporaryDirectory(prefix="mgf-serve-", dir=self.scratch) as scratch:
            tokens = self.primer(representation, piece, scratch)
            return _reply(scratch, representation, tokens, "json", audio, {"model": name})

    def infill(self, name: str, settings: dict, piece: bytes | list[int], gap: dict, answer: str, audio: bool):
        """``(media type, body)`` of ``piece`` (MIDI, or token ids) with ``gap`` (``bars`` or ``seconds``) refilled,
        as :meth:`generate` answers; its JSON says which bars or seconds were asked for and, from ``start`` to ``end``
        seconds, where the music is new: from the gap's first token to the first after it, by the clock."""
        model = self.model(name)
        infill_tokens(model.representation)  # a model that cannot infill says so before the piece is read
        representation = model.representation
        with tempfile.TemporaryDirectory(prefix="mgf-serve-", dir=self.scratch) as scratch:
            if isinstance(piece, bytes):  # written back as read: no accents added twice (as mgf infill does)
                representation = as_read(representation)
                tokens = self.primer(representation, piece, scratch)
            else:
                tokens = _music(representation, piece)
            _check_answer(representation, answer)
            filled = mgf.infill_piece(model, tokens, **gap, **settings)
            clock = representation.clock()
            if "bars" in gap:
                i, j = gap_bounds(clock, tokens, gap["bars"][0] - 1, gap["bars"][1] - 1)
            else:
                i, j = gap_bounds_seconds(clock, tokens, *gap["seconds"])
            steps = clock.steps(tokens)  # the middle runs from the gap's first token to the first after it
            where = {key: list(span) for key, span in gap.items()} | {"start": _seconds(clock, steps[i]),
                                                                      "end": _seconds(clock, steps[j])}
            return _reply(scratch, representation, filled, answer, audio, {"model": name, "seed": settings["seed"], "filled": where})


def _check_answer(representation, answer: str) -> None:
    if answer == "midi" and representation.suffix != ".mid":
        raise ApiError(400, f"the representation {representation.name!r} writes {representation.suffix} files, "
                            "not MIDI; ask for format json or file")


def _music(representation, tokens: list[int]) -> np.ndarray:
    """``tokens`` as an array, each an id of the representation's music (not its start token or the infilling ids)."""
    base = getattr(representation, "base", representation)
    start = representation.start_token
    bad = next((t for t in tokens if not 0 <= t < base.vocab_size or t == start), None)
    if bad is not None:
        raise ApiError(400, f"tokens: {bad} is not a token of {representation.name!r}'s music "
                            f"(ids 0 to {base.vocab_size - 1}, the start token {start} left out)")
    return np.asarray(tokens, dtype=np.int32)


def _seconds(clock, step: int) -> float:
    return round(float(clock.seconds_of(step)), 6)


def _reply(scratch: str, representation, tokens: np.ndarray, answer: str, audio: bool, about: dict) -> tuple[str, bytes]:
    """``(media type, body)`` of ``tokens``: the representation's own file, a WAV, or JSON (``about`` and the piece's
    tokens, file, notes, and its bar lines and length in seconds, for the page's roll)."""
    if answer == "wav":
        notes = representation.to_notes(tokens)
        return FORMATS["wav"], _written(scratch, ".wav", lambda p: synth.write_wav(synth.render(notes), p))
    piece = _written(scratch, representation.suffix, lambda p: representation.write(tokens, p))
    if answer != "json":
        return MEDIA_TYPES.get(representation.suffix, "application/octet-stream"), piece
    reply = {**about, "repr": representation.name, "tokens": tokens.tolist(),
             "file": {"suffix": representation.suffix, "base64": base64.b64encode(piece).decode()}}
    try:
        notes = representation.to_notes(tokens)
    except InputError:  # a representation without music (``tokens``): its tokens and file only
        return FORMATS["json"], json.dumps(reply, separators=(",", ":")).encode()
    reply["notes"] = [{"pitch": int(p), "velocity": int(v), "start": round(float(s), 6), "end": round(float(e), 6)}
                      for p, v, s, e in notes]
    clock = representation.clock()
    if clock is not None:
        end = int(clock.steps(tokens)[-1])
        per_bar = clock.steps_per_bar
        reply["seconds"] = _seconds(clock, end)
        reply["bars"] = [_seconds(clock, bar * per_bar) for bar in range(-(-end // per_bar) + 1)] if per_bar else []
    if audio:
        wav = _written(scratch, ".wav", lambda p: synth.write_wav(synth.render(notes), p))
        reply["wav"] = base64.b64encode(wav).decode()
    return FORMATS["json"], json.dumps(reply, separators=(",", ":")).encode()


def _written(scratch: str, suffix: str, write) -> bytes:
    path = os.path.join(scratch, "piece" + suffix)
    write(path)
    with open(path, "rb") as handle:
        return handle.read()


def _settings(body: dict, max_steps: int) -> dict:
    """The arguments of :func:`mgf.generate` in a request, their types checked; values are checked by ``generate``."""
    steps = _count(body, "steps", 128, max_steps)
    return {"steps": steps, **_sampling(body, FIELDS, GENERATE_OWN)}


def _infill_settings(body: dict, max_steps: int) -> tuple[dict, dict]:
    """The gap (``bars`` or ``seconds``) and the other arguments of :func:`mgf.infill_piece` in a request.

    A middle may take ``max_tokens`` tokens, at most the server's steps (its default): the bound of a generation."""
    gap = {key: body[key] for key in ("bars", "seconds") if key in body}
    if len(gap) != 1:
        raise ApiError(400, "give the gap as bars [A, B] (counted from 1, both included) or as seconds [A, B], one of them")
    (key, span), = gap.items()
    number = (int,) if key == "bars" else (int, float)
    if not (isinstance(span, list) and len(span) == 2 and all(isinstance(x, number) and not isinstance(x, bool) and
                                                                math.isfinite(x) and abs(x) < 2**53 for x in span)):
        raise ApiError(400, f"{key} must be [A, B], two {'whole numbers' if key == 'bars' else 'numbers'}, "
                            f"got {json.dumps(span)[:40]}")
    tokens = _count(body, "max_tokens", min(max_steps, limit("steps")), max_steps)
    return {key: tuple(span)}, {"max_tokens": tokens, **_sampling(body, INFILL_FIELDS, INFILL_OWN)}


def _count(body: dict, key: str, default: int, most: int) -> int:
    """A positive integer field, at most ``most`` (the server's --max-steps) and MGF_MAX_STEPS."""
    value = body.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ApiError(400, f"{key} must be a positive integer, got {str(value)[:40]!r}")
    if value > most:
        raise ApiError(400, f"{key} {value} exceeds this server's limit {most} (mgf serve --max-steps)")
    mgf.check_limit("steps", value)  # MGF_MAX_STEPS as this server sees it
    return value


def _sampling(body: dict, fields: tuple[str, ...], own: tuple[str, ...]) -> dict:
    """The seed, sampler, constraints and options (every key not in ``fields``) of a request, their types checked."""
    seed = body.get("seed")
    if seed is None:
        seed = secrets.randbelow(2**31)  # told back, so that a piece heard can be generated again
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
        raise ApiError(400, f"seed must be a non-negative integer, got {str(seed)[:40]!r}")
    sampler = body.get("sampler")
    if sampler is not None and not isinstance(sampler, str):
        raise ApiError(400, "sampler must be a string")
    constraints = body.get("constraints", [])
    if not isinstance(constraints, list) or not all(isinstance(c, str) for c in constraints) or len(constraints) > 16:
        raise ApiError(400, "constraints must be a list of at most 16 names")
    options = {k: v for k, v in body.items() if k not in fields}
    for key, value in options.items():
        if key in own:  # one output a request, no progress bar on the server's stderr, a primer or piece only as MIDI
            raise ApiError(400, f"{key} is not a request field (one piece a request; a primer is primer_midi, "
                                "a piece to fill piece_midi or tokens)")
        if not isinstance(value, (str, int, float, bool)) or (isinstance(value, str) and len(value) > 200):
            raise ApiError(400, f"option {key[:40]!r} must be a number, a short string or a boolean")
    return {"seed": seed, "sampler": sampler, "constraints": constraints, **options}


def _answer(body: dict, accept: str) -> str:
    """``json``, ``wav``, ``midi`` or ``file`` (the representation's own, MIDI for the music ones): ``format``, else Accept."""
    chosen = body.get("format")
    if chosen is None:
        return next((name for name, media in FORMATS.items() if media in accept), "file")
    if chosen not in ("json", "wav", "midi", "file"):
        raise ApiError(400, f"format must be json, wav or midi, got {str(chosen)[:40]!r}")
    return chosen


def _primer(encoded, field: str = "primer_midi") -> bytes | None:
    if encoded is None:
        return None
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise ApiError(400, f"{field} must be a MIDI file in base64") from None


def _piece(body: dict, upload: bytes | None) -> bytes | list[int]:
    """The piece an infill request fills: an uploaded file (``piece``), ``piece_midi`` or ``tokens``, one of them."""
    given = [key for key in ("piece_midi", "tokens") if key in body] + (["piece"] if upload is not None else [])
    if len(given) != 1:
        raise ApiError(400, "give the piece once: as a file (piece), as piece_midi (base64) or as tokens")
    if upload is not None:
        return upload
    if "piece_midi" in body:
        return _primer(body["piece_midi"], "piece_midi") or b""
    tokens = body["tokens"]
    if not (isinstance(tokens, list) and tokens and all(isinstance(t, int) and not isinstance(t, bool) for t in tokens)):
        raise ApiError(400, "tokens must be a non-empty list of token ids of the model's representation")
    return tokens


def create_app(bundles: dict[str, str] | None = None, *, token: str | None = None, workers: int = 2, queue: int = 16,
               timeout: float = 30.0, max_steps: int = 4096, max_body: int = 1_000_000, idle: float = 300.0) -> Starlette:
    """The app; ``bundles``: extra models by name (paths given by whoever starts the server, never by a request);
    ``idle``: seconds a jam over the socket may go without a message from its player."""
    from mgf.plugins.commands.serve_socket import Conversation  # here: it imports this module
    generator = Generator(dict(bundles or {}), max_steps)
    jobs = Jobs(workers, queue, timeout, (generator.bundles, max_steps))
    assets = {route: ((files("mgf.plugins.commands") / "serve_static" / name).read_bytes(), media)
              for route, (name, media) in ASSETS.items()}

    def check_token(request: Request) -> None:
        if token is None:
            return
        given = request.headers.get("authorization", "")
        if not (given.startswith("Bearer ") and hmac.compare_digest(given[7:].encode(), token.encode())):
            raise ApiError(401, "this server needs the header Authorization: Bearer <token>", {"WWW-Authenticate": "Bearer"})

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_body:
            raise ApiError(413, f"request body over {max_body} bytes")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_body:
                raise ApiError(413, f"request body over {max_body} bytes")
        return bytes(body)

    async def parse(request: Request, upload_field: str = "primer") -> tuple[dict, bytes | None]:
        """The JSON body of a request, or its form's ``request`` field, and the file uploaded as ``upload_field``."""
        raw = await read_body(request)
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "multipart/form-data":
            async def replay():
                return {"type": "http.request", "body": raw, "more_body": False}

            try:  # max_body (1 MB) is under Starlette's spooling size: an uploaded file stays in memory
                form = await Request(request.scope, replay).form(max_files=1, max_fields=4)
            except HTTPException as error:
                raise ApiError(400, f"bad multipart form: {error.detail}") from None
            try:
                extra = set(form) - {"request", upload_field}
                if extra:
                    raise ApiError(400, f"unknown form fields {sorted(extra)[:4]} (send 'request' as JSON and "
                                        f"'{upload_field}' as a file)")
                field, upload = form.get("request", "{}"), form.get(upload_field)
                if isinstance(upload, str) or not isinstance(field, str):
                    raise ApiError(400, f"send 'request' as a JSON field of the form and '{upload_field}' as a file")
                text: str | bytes = field
                uploaded = await upload.read() if upload is not None else None
            finally:
                await form.close()
        else:
            text, uploaded = raw, None
        try:
            body = json.loads(text or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "the request body is not JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be a JSON object")
        return body, uploaded

    async def models(request: Request) -> Response:
        check_token(request)
        return JSONResponse({"models": list(generator.cards.values()), "max_steps": generator.max_steps})

    async def generate(request: Request) -> Response:
        check_token(request)
        body, primer = await parse(request)
        if primer is not None and "primer_midi" in body:
            raise ApiError(400, "give the primer once: as a file or as primer_midi")
        primer = primer if primer is not None else _primer(body.get("primer_midi"))
        name = generator.pick(body)
        settings, answer = _settings(body, generator.max_steps), _answer(body, request.headers.get("accept", ""))
        media, content = await jobs.run(("generate", name, settings, primer, answer, body.get("audio") is True))
        return Response(content, media_type=media, headers={"X-Mgf-Seed": str(settings["seed"])})

    async def infill(request: Request) -> Response:
        check_token(request)
        body, upload = await parse(request, "piece")
        piece = _piece(body, upload)
        name = generator.pick(body)
        if not generator.cards[name]["infill"]:
            raise ApiError(400, f"the model {name!r} cannot infill (it was trained to continue only); "
                                "see GET /api/models for those that can")
        (gap, settings), answer = _infill_settings(body, generator.max_steps), _answer(body, request.headers.get("accept", ""))
        media, content = await jobs.run(("infill", name, settings, piece, gap, answer, body.get("audio") is True))
        return Response(content, media_type=media, headers={"X-Mgf-Seed": str(settings["seed"])})

    async def read(request: Request) -> Response:
        check_token(request)
        body, upload = await parse(request, "piece")
        extra = set(body) - {"model", "repr", "piece_midi", "audio"}
        if extra:
            raise ApiError(400, f"{sorted(extra)[0][:40]!r} is not a field of /api/read (model, repr, piece_midi, audio)")
        if (upload is None) == ("piece_midi" not in body):
            raise ApiError(400, "give the piece once: as a MIDI file (piece) or as piece_midi (base64)")
        piece = upload if upload is not None else _primer(body["piece_midi"], "piece_midi") or b""
        media, content = await jobs.run(("read", generator.pick(body), piece, body.get("audio") is True))
        return Response(content, media_type=media)

    async def stream(websocket: WebSocket) -> None:
        await Conversation(websocket, generator, jobs, token, max_body, idle).serve()

    async def page(request: Request) -> Response:
        content, media = assets[request.url.path]
        return Response(content, media_type=media, headers={"Cache-Control": "no-cache"})

    async def api_error(_request, error: ApiError) -> Response:
        return error_response(error.status, str(error), error.headers)

    async def mgf_error(_request, error: MgfError) -> Response:  # bad input is the request's; a broken plugin is the server's
        return error_response(400 if isinstance(error, InputError) else 500, str(error))

    async def http_error(_request, error: HTTPException) -> Response:
        return error_response(error.status_code, error.detail, error.headers)

    async def server_error(_request, error: Exception) -> Response:
        return error_response(500, f"internal error: {type(error).__name__}")

    routes = [Route("/api/models", models), Route("/api/generate", generate, methods=["POST"]),
              Route("/api/infill", infill, methods=["POST"]), Route("/api/read", read, methods=["POST"]),
              WebSocketRoute("/api/stream", stream), *(Route(path, page) for path in ASSETS)]
    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        jobs.close()

    handlers = {ApiError: api_error, MgfError: mgf_error, HTTPException: http_error, Exception: server_error}
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers)

