"""Training data: a source (``corpus:`` reference, folder, glob or file) -> token sequences.

Files are encoded by all local cores (``workers``), or on a Dask cluster (``scheduler``);
workers get the representation's name, config and learned tensors, rebuild it with
``mgf.get_representation`` and send back token arrays, so no plugin object is ever pickled.
Encoded pieces are cached on disk per file, keyed by the file's content hash and the
representation's name and config, so a second run reads arrays instead of re-parsing scores.
Unreadable files are skipped, counted and listed, never fatal.  What the cache gives back is checked
like input (see :mod:`mgf.training.npz`): an entry that is damaged, belongs to another file or holds ids the
representation cannot make is re-encoded and replaced.

A source encoded for training becomes a *dataset directory* (see :func:`build`): token shards
that training streams one at a time, so its memory does not grow with the corpus.
"""

from __future__ import annotations

import collections
import glob
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mgf.music import corpus
from mgf.errors import InputError, UsageError
from mgf.files import NotRegularFile, check_output, directory_locked, files_under, temporary_directory, writing_elsewhere
from mgf.training.npz import Archive, Damaged, file_sha256, opened
from mgf.contract.representation import Representation

CACHE_FORMAT = "1"
DATASET_FORMAT = "mgf-dataset/1"
MANIFEST = "manifest.json"
SHARD_TOKENS = 1 << 22  # tokens per shard: 16 MB of int32, what training holds at once
LINE_SECONDS = 30  # without a terminal, the longest silence of a long run (encoding, an epoch)
MAX_PIECE_TOKENS = 1 << 24  # tokens of one piece, for representations without a max_tokens option
MAX_PIECES = 65_534  # pieces of one source file (a cache entry's members, without zip64)
MAX_META_BYTES = 1 << 24  # a cache entry's JSON (the pieces' names)
MAX_MANIFEST_BYTES = 1 << 24  # a manifest of 100,000 shards takes about 10 MB
MAX_LINE_BYTES = 1 << 20  # one line of files.jsonl: a path and a reason
MAX_TENSOR_BYTES = 1 << 28  # a dataset's representation.npz (an audio codebook is at most 64 MB)


def cache_root() -> str:
    """``MGF_CACHE_DIR`` if set, else the user cache directory (e.g. ``~/.cache/mgf`` on Linux)."""
    explicit = os.environ.get("MGF_CACHE_DIR")
    if explicit:
        return explicit
    import platformdirs

    return platformdirs.user_cache_dir("mgf")


def local_cores() -> int:
    """The cores this process may run on (its affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def exit_with_parent() -> None:
    """In a worker process: have it end (SIGTERM) when the process that started it dies.

    A pool's workers wait for work for ever; when ``mgf generate --workers N`` or ``mgf dataset``
    is killed (SIGKILL, an OOM kill), nothing tells them, and they stayed, each holding what it
    had loaded.  A worker ends at once, as its parent did (unwinding would hang on the pool's
    pipes, which nobody reads any more); a file it was writing is a temporary that the next write
    into that folder removes.  Linux only (prctl PR_SET_PDEATHSIG); elsewhere nothing happens.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    parent = os.getppid()
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def worker_context(method: str):
    """``multiprocessing``'s context ``method`` for a pool of workers, its resource tracker started quietly.

    A pool's queues hold named semaphores.  When the run is killed (SIGKILL, an OOM kill),
    multiprocessing's resource tracker, a process of its own, unlinks them once the workers have
    ended, as it is meant to, but says "There appear to be 5 leaked semaphore objects" on the
    run's stderr although nothing is left behind.  The tracker takes its warning filters from
    ``sys.warnoptions`` when it starts, so it is started here with its own warnings ignored.
    """
    import multiprocessing
    from multiprocessing import resource_tracker

    quiet = "ignore::UserWarning:multiprocessing.resource_tracker"
    sys.warnoptions.append(quiet)
    try:
        resource_tracker.ensure_running()
    finally:
        sys.warnoptions.remove(quiet)
    return multiprocessing.get_context(method)


def duration(seconds: float) -> str:
    """``"42 s"``, ``"3 min 5 s"``, ``"2 h 10 min"``: for progress lines."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


@dataclass
class Dataset:
    """Token sequences (without start tokens), one per piece, with where each came from.

    ``keys`` identify pieces by content (the file's bytes and the piece's place in it), so the
    split does not depend on how a path was typed or on a file's name.
    """

    sequences: list[np.ndarray] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    cached: int = 0
    keys: list[str] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return sum(len(s) for s in self.sequences)

    def extend(self, other: Dataset) -> None:
        """Append the pieces, skips and cache hits of ``other``."""
        self.sequences += other.sequences
        self.names += other.names
        self.skipped += other.skipped
        self.cached += other.cached
        self.keys += other.keys

    def split(self, validation: float) -> tuple[Dataset, Dataset]:
        """(train, validation) by piece and content: a piece's side never depends on its path.

        Pieces built by hand (no ``keys``) are keyed by their tokens.
        """
        keys = self.keys or [hashlib.sha256(np.asarray(s, np.int32).tobytes()).hexdigest() for s in self.sequences]
        train, held = Dataset(), Dataset()
        for name, sequence, key, out in zip(self.names, self.sequences, keys, held_out(keys, validation)):
            side = held if out else train
            side.names.append(name)
            side.sequences.append(sequence)
            side.keys.append(key)
        return train, held


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


def augment(dataset: Dataset, representation: Representation, semitones: range) -> Dataset:
    """The pieces plus their transpositions by each shift in ``semitones``; shifts that leave the range are dropped.

    Apply it to the training side only, after :meth:`Dataset.split`, so no transposed copy of a
    validation piece leaks into training.
    """
    out = Dataset(skipped=list(dataset.skipped), cached=dataset.cached)
    keys: list[str | None] = list(dataset.keys) or [None] * len(dataset.sequences)
    for name, sequence, key in zip(dataset.names, dataset.sequences, keys):
        for shift in semitones:
            moved = sequence if shift == 0 else representation.transpose(sequence, shift)
            if moved is not None:
                out.names.append(name if shift == 0 else f"{name} ({shift:+d})")
                out.sequences.append(moved)
                if key is not None:
                    out.keys.append(key)  # a transposed copy stays on its piece's side
    return out


def files(source: str, suffixes: tuple[str, ...]) -> list[str]:
    """The files a source names: ``corpus:...``, a folder (recursively, by suffix), a glob, or one file."""
    if corpus.is_reference(source):
        return [p for p in corpus.resolve(source) if p.lower().endswith(suffixes)]
    source = os.path.expanduser(source)
    if os.path.isdir(source):
        found = files_under(source, suffixes)
    elif os.path.isfile(source):
        found = [source]
    elif glob.has_magic(source):
        found = [p for p in glob.glob(source, recursive=True) if os.path.isfile(p) and p.lower().endswith(suffixes)]
    else:
        raise InputError(f"{source}: no such file, folder, glob match or corpus reference")
    if not found:
        raise InputError(f"{source}: no files with suffix {', '.join(suffixes)}")
    return sorted(found)


# -- encoding, in this process, in local worker processes or on a Dask cluster ---------------------------------


@dataclass
class Encoded:
    """One file's pieces ``[(name, tokens)]``, or why it was skipped; ``digest`` is the SHA-256 of its bytes."""

    path: str
    pieces: list[tuple[str, np.ndarray]]
    error: str | None
    cached: bool
    digest: str


class _Progress:
    """Files done, files/s and ETA: a bar on a terminal, else a line every ``every`` seconds (none if ``every`` is None)."""

    def __init__(self, label: str, total: int, progress: bool | None, every: float | None) -> None:
        from tqdm import tqdm

        self.label, self.total, self.every = label, total, every
        self.bar = tqdm(total=total, desc=f"encoding {label}", unit="file", leave=False,
                        disable=None if progress is None else not progress)
        self.lines = every is not None and self.bar.disable and progress is not False
        self.started = self.last = time.monotonic()
        self.done = 0

    def update(self, count: int) -> None:
        self.done += count
        self.bar.update(count)
        now = time.monotonic()
        if self.every is not None and self.lines and now - self.last >= self.every and self.done < self.total:
            self.last = now
            rate = self.done / max(now - self.started, 1e-9)
            print(f"encoding {self.label}: {self.done}/{self.total} files, {rate:.1f} files/s, "
                  f"ETA {duration((self.total - self.done) / rate)}", file=sys.stderr, flush=True)

    def close(self) -> None:
        self.bar.close()


def encode(representation: Representation, paths: list[str], *, workers: int = 1, scheduler: str | None = None,
           cache: bool = True, progress: bool | None = None, every: float | None = None,
           label: str = "") -> Iterator[Encoded]:
    """Every file of ``paths`` encoded, in order, as :class:`Encoded`; a file that fails is reported, never fatal.

    ``workers > 1`` encodes in that many local processes, ``scheduler`` (``tcp://host:port``) on
    a Dask cluster whose workers see the same paths.  Only a few chunks of files are ahead of the
    one being reported, so memory stays bounded however many files there are.
    """
    key = _config_key(representation)
    store = cache_root() if cache else None
    report = _Progress(label or f"{len(paths)} files", len(paths), progress, every)
    try:
        if scheduler is None and (workers <= 1 or len(paths) < 2):
            for path in paths:
                yield Encoded(path, *_encode_cached(representation, path, key, store))
                report.update(1)
            return
        spec = _spec(representation)
        _check_rebuildable(representation, spec)
        with _pool(workers, scheduler) as (submit, slots):
            size = max(1, min(16, len(paths) // (slots * 8)))  # chunks: small enough to balance, big enough to be cheap
            chunks = iter([paths[i:i + size] for i in range(0, len(paths), size)])
            pending: collections.deque = collections.deque()
            for chunk in chunks:
                pending.append(submit(_encode_chunk, spec, key, chunk, store))
                if len(pending) >= 4 * slots:
                    break
            while pending:
                results = pending.popleft().result()
                for chunk in chunks:
                    pending.append(submit(_encode_chunk, spec, key, chunk, store))
                    break
                for result in results:
                    yield Encoded(*result)
                report.update(len(results))
    finally:
        report.close()


class _pool:
    """``(submit, slots)`` of local worker processes or of a Dask cluster, shut down on exit."""

    def __init__(self, workers: int, scheduler: str | None) -> None:
        self.workers, self.scheduler = workers, scheduler

    def __enter__(self):
        if self.scheduler is not None:
            self.client = dask_client(self.scheduler)
            slots = max(1, sum(self.client.nthreads().values()))
            return lambda function, *args: self.client.submit(function, *args, pure=False), slots
        import concurrent.futures
        import multiprocessing

        # forkserver (spawn where there is none): workers start from a clean process, never a fork of one
        # whose threads (TensorFlow's, a BLAS pool's) may hold locks that the child would inherit locked
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        context = worker_context(method)
        if method == "forkserver":
            context.set_forkserver_preload([__name__])
        self.client = concurrent.futures.ProcessPoolExecutor(self.workers, mp_context=context,
                                                             initializer=exit_with_parent)
        return self.client.submit, self.workers

    def __exit__(self, *exc):
        if self.scheduler is not None:
            self.client.close()
            return
        if exc[0] is not None:  # a signal or an error: end the workers' chunks now, not when they are done (seconds)
            for process in list((getattr(self.client, "_processes", None) or {}).values()):  # Python < 3.14 has
                process.terminate()                                             # no terminate_workers()
        self.client.shutdown(wait=exc[0] is None, cancel_futures=True)


SCHEDULER_TIMEOUT = 10  # seconds for a Dask scheduler to answer


def dask_client(scheduler: str):
    """A Dask client of the cluster at ``scheduler``; one-line errors when the extra or the cluster is missing."""
    try:
        from dask.distributed import Client
    except ImportError:
        raise UsageError("--scheduler needs Dask: pip install 'mgf-music[distributed]'") from None
    check_scheduler(scheduler)
    try:
        return Client(scheduler, timeout=SCHEDULER_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as error:
        raise InputError(f"--scheduler {scheduler}: cannot connect ({error})") from None


def check_scheduler(scheduler: str) -> None:
    """Refuse, in one line, a ``tcp://`` peer that does not answer like a Dask scheduler within the timeout.

    Checked before Dask meets it: Dask's own timeout covers the connection, not the handshake, so a peer
    that accepts and never answers hung every command for ever, and an HTTP server's reply, read as the
    length of a message, asked for 3 EiB.  A scheduler speaks first: one length-prefixed message
    (little-endian 64-bit total length).
    """
    import socket
    import struct

    scheme, _, address = scheduler.rpartition("://")
    host, _, port = address.rpartition(":")
    if scheme not in ("", "tcp") or not port.isdigit():
        return  # tls://, ucx://...: left to Dask
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=SCHEDULER_TIMEOUT) as peer:
            peer.settimeout(SCHEDULER_TIMEOUT)
            head = b""
            while len(head) < 8:
                received = peer.recv(8 - len(head))
                if not received:
                    raise InputError(f"--scheduler {scheduler}: the peer closed the connection; is it a Dask scheduler?")
                head += received
    except InputError:
        raise
    except TimeoutError:
        raise InputError(f"--scheduler {scheduler}: no answer within {SCHEDULER_TIMEOUT} s; is it a Dask scheduler?") from None
    except (OSError, ValueError) as error:
        raise InputError(f"--scheduler {scheduler}: cannot connect ({error})") from None
    if struct.unpack("<Q", head)[0] > 1 << 26:
        raise InputError(f"--scheduler {scheduler}: not a Dask scheduler (it answered {head!r})")


def _spec(representation: Representation) -> dict:
    """What a worker needs to rebuild the representation: plain data, never the plugin object."""
    return {"name": representation.name, "config": representation.config(),
            "tensors": {name: np.asarray(array) for name, array in representation.tensors().items()}}


def _check_rebuildable(representation: Representation, spec: dict) -> None:
    """``UsageError`` unless workers rebuilding ``spec`` by name get the class of ``representation``, not another."""
    from mgf.generation.api import get_representation

    if type(get_representation(spec["name"], **spec["config"])) is not type(representation):
        raise UsageError(f"representation {type(representation).__name__} is not the one registered as "
                         f"{spec['name']!r}: workers rebuild representations by name; encode it in this process (1 worker)")


_REBUILT: dict[str, Representation] = {}


def _encode_chunk(spec: dict, key: str, paths: list[str], store: str | None) -> list[tuple]:
    """In a worker: the fields of :class:`Encoded` for each of ``paths``; the representation is rebuilt once per process."""
    representation = _REBUILT.get(key)
    if representation is None:
        from mgf.generation.api import get_representation

        representation = get_representation(spec["name"], **spec["config"])
        if spec["tensors"]:
            representation.load_tensors(spec["tensors"])
        _REBUILT[key] = representation
    return [(path, *_encode_cached(representation, path, key, store)) for path in paths]


def load(representation: Representation, source: str, cache: bool = True, progress: bool | None = None,
         every: float | None = None, workers: int = 1, scheduler: str | None = None) -> Dataset:
    """Every piece of ``source`` in memory; ``progress=None`` shows a bar only on a terminal.

    Where there is no bar (stderr is a file or a pipe), ``every`` seconds asks for a line of
    progress (files/s, ETA) that often instead, so that a long first encoding is not silent in a log.
    """
    paths = files(source, representation.read_suffixes)
    dataset = Dataset()
    for done in encode(representation, paths, workers=workers, scheduler=scheduler, cache=cache, progress=progress,
                       every=every, label=source):
        dataset.cached += done.cached
        if done.error is not None:
            dataset.skipped.append((done.path, done.error))
            continue
        for index, (name, tokens) in enumerate(done.pieces):
            dataset.names.append(name)
            dataset.sequences.append(tokens)
            dataset.keys.append(piece_key(done.digest, index))
    return dataset


def _config_key(representation: Representation) -> str:
    """Name, config and learned tensors (a codebook) of the representation: what its tokens depend on."""
    spec = json.dumps({"name": representation.name, "config": representation.config(), "cache": CACHE_FORMAT},
                      sort_keys=True)
    digest = hashlib.sha256(spec.encode())
    for name, array in sorted(representation.tensors().items()):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


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


def _save(path: str, **arrays) -> None:
    """``np.savez`` to ``path``, synced to disk: a rename after it never publishes a file whose bytes are not there yet."""
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)
        _synced(handle)


def _synced(handle) -> None:
    """Flush ``handle`` and sync its file to disk."""
    handle.flush()
    os.fsync(handle.fileno())


def _store(entry, pieces, error, digest):
    from mgf.files import atomic_path

    arrays = {f"piece_{i}": tokens for i, (_, tokens) in enumerate(pieces)}
    meta = json.dumps({"names": [name for name, _ in pieces], "error": error, "sha256": digest})
    try:
        os.makedirs(os.path.dirname(entry), exist_ok=True)
        with atomic_path(entry) as tmp:
            _save(tmp, meta=np.frombuffer(meta.encode(), np.uint8), **arrays)
    except OSError:
        pass  # an unwritable cache (or a FIFO in its place) only costs speed


# -- dataset directories: token shards and a manifest ----------------------------------------------------------


def is_dataset(path: str) -> bool:
    """Whether ``path`` is a dataset directory written by :func:`build`."""
    return os.path.isfile(os.path.join(os.path.expanduser(path), MANIFEST))


def build(representation: Representation, source: str, directory: str | None = None, *, workers: int = 1,
          scheduler: str | None = None, cache: bool = True, progress: bool | None = None,
          every: float | None = None, validation: float = 0.1) -> Shards:
    """Encode ``source`` into a dataset directory and open it; ``directory=None`` means the cache's own.

    The directory holds ``shard-NNNNN.npz`` files (a flat int32 ``tokens`` array, int64
    ``offsets`` with one more entry than pieces, float64 split ``positions``), ``files.jsonl``
    (each source file's path, SHA-256, piece count or skip reason) and ``manifest.json`` (format,
    representation name/config/tensors, shards with their counts, the split at ``validation``),
    written last.  It is built beside its place under a temporary name and renamed when
    complete, so a dataset directory is never half-written.  Pieces arrive one file at a time
    and leave in shards of :data:`SHARD_TOKENS`, so encoding too holds one shard at a time.
    """
    paths = files(source, representation.read_suffixes)
    key = _config_key(representation)
    shared = directory is None  # the cache's: runs building it at once build the same thing, one of them is kept
    if directory is None:
        directory = _cached_dataset(representation.name, key, paths)
        if is_dataset(directory):
            try:
                return Shards(directory, representation=representation)
            except InputError:  # damaged: rebuilt, as a damaged cache entry is re-encoded
                shutil.rmtree(directory, ignore_errors=True)
    elif os.path.exists(directory):
        raise InputError(f"{directory}: exists; name a new directory for the dataset")
    parent = os.path.dirname(os.path.abspath(directory))
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as error:
        raise InputError(f"{directory}: cannot create {parent} ({error.strerror or error})") from None
    check_output(os.path.join(directory + ".manifest"))  # the parent is writable: before any work
    place = os.path.join(parent, os.path.basename(directory))
    with directory_locked(parent):
        tmp, claim = temporary_directory(place)
        elsewhere = not shared and writing_elsewhere(place, tmp)
    try:
        if elsewhere:
            raise InputError(f"{directory}: another mgf dataset is writing it; "
                             "wait for it to finish or name another directory")
        writer = _ShardWriter(tmp)
        with open(os.path.join(tmp, "files.jsonl"), "w", encoding="utf-8") as listing:
            for done in encode(representation, paths, workers=workers, scheduler=scheduler, cache=cache,
                               progress=progress, every=every, label=source):
                writer.cached += done.cached
                if done.error is None:
                    for index, (_, tokens) in enumerate(done.pieces):
                        writer.add(tokens, position(piece_key(done.digest, index)))
                else:
                    writer.skipped += 1
                entry = {"path": done.path, "sha256": done.digest, "pieces": len(done.pieces)}
                listing.write(json.dumps({**entry, "error": done.error} if done.error else entry) + "\n")
            _synced(listing)
        writer.flush()
        tensors: dict[str, Any] = representation.tensors()
        if tensors:
            _save(os.path.join(tmp, "representation.npz"), **tensors)
        manifest = {
            "format": DATASET_FORMAT,
            "source": source,
            "representation": {"name": representation.name, "config": representation.config(),
                               "tensors": "representation.npz" if tensors else None, "key": key},
            "files": {"listing": "files.jsonl", "count": len(paths), "skipped": writer.skipped,
                      "from_cache": writer.cached},
            "shards": writer.shards,
            "pieces": sum(s["pieces"] for s in writer.shards),
            "tokens": sum(s["tokens"] for s in writer.shards),
        }
        opened = Shards(tmp, manifest, representation)
        manifest["split"] = opened.split_counts(validation)
        with open(os.path.join(tmp, MANIFEST), "w", encoding="utf-8") as handle:
            json.dump(manifest, handle, indent=1)
            _synced(handle)
        try:
            os.rename(tmp, directory)
        except OSError:
            if not shared and os.path.exists(directory):
                raise InputError(f"{directory}: another run wrote it meanwhile; name a new directory") from None
            if not is_dataset(directory):  # else another run built the same cache entry first: use it
                raise InputError(f"{directory}: cannot create the dataset directory") from None
    except OSError as error:
        raise InputError(f"{directory}: cannot write the dataset ({error.strerror or error})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        os.close(claim)
    return Shards(directory, representation=representation)


def _cached_dataset(name: str, key: str, paths: list[str]) -> str:
    """Where the cache keeps the dataset of these files (by path, size and modification time) for this config.

    Where the cache cannot be written, a temporary directory removed at exit: it only costs speed.
    """
    stamp = hashlib.sha256(key.encode())
    for path in paths:
        try:
            info = os.stat(path)
            stamp.update(f"{path}\0{info.st_size}\0{info.st_mtime_ns}\0".encode())
        except OSError:
            stamp.update(f"{path}\0unreadable\0".encode())  # encoding reports it
    folder = os.path.join(cache_root(), "datasets", name)
    try:
        os.makedirs(folder, exist_ok=True)
        check_output(os.path.join(folder, "probe"))
    except OSError:
        import atexit
        import tempfile

        folder = tempfile.mkdtemp(prefix="mgf-dataset-")
        atexit.register(shutil.rmtree, folder, True)
    return os.path.join(folder, stamp.hexdigest()[:24])


def _manifest_problem(manifest: dict) -> str | None:
    """What is wrong with the fields of a manifest of the right format, or None."""
    spec, listing, shards = manifest.get("representation"), manifest.get("files"), manifest.get("shards")
    if not (isinstance(spec, dict) and isinstance(spec.get("name"), str) and isinstance(spec.get("config"), dict)
            and isinstance(spec.get("key"), str) and isinstance(spec.get("tensors", 0), (str, type(None)))):
        return "no representation name, config, key and tensors file"
    if not (isinstance(listing, dict) and isinstance(listing.get("listing"), str)
            and all(_is_count(listing.get(key)) for key in ("count", "skipped", "from_cache"))):
        return "no file listing and counts"
    if not (isinstance(shards, list) and all(
            isinstance(s, dict) and isinstance(s.get("file"), str) and _is_count(s.get("pieces"))
            and _is_count(s.get("tokens")) and isinstance(s.get("sha256", ""), str) for s in shards)):
        return "its shards are not a list of files with piece and token counts"
    if manifest.get("pieces") != sum(s["pieces"] for s in shards) or manifest.get("tokens") != sum(s["tokens"] for s in shards):
        return "its piece and token counts are not the sums of its shards'"
    for name in (spec["tensors"], listing["listing"], *(s["file"] for s in shards)):
        if name is not None and not name.isprintable():
            return f"it names {name[:200]!r}, not a printable file name"
        if name is not None and not _relative(name):
            return f"it names {name[:200]!r}, outside the dataset directory"
    return None


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _relative(name: str) -> bool:
    """Whether ``name`` is a path below a directory as written: not absolute, no ``..``, no NUL."""
    return bool(name) and "\0" not in name and not os.path.isabs(name) and ".." not in name.replace("\\", "/").split("/")


def _check_index(offsets: np.ndarray, positions: np.ndarray, tokens: int, longest: int) -> None:
    """:class:`Damaged` unless ``offsets`` cut ``tokens`` tokens into pieces of at most ``longest`` and every
    split position is in [0, 1)."""
    lengths = np.diff(offsets)
    if offsets[0] != 0 or offsets[-1] != tokens or (lengths < 0).any() or lengths.max(initial=0) > longest:
        raise Damaged(f"its offsets do not cut its {tokens:,} tokens into pieces of 0 to {longest:,} tokens")
    if not ((positions >= 0) & (positions < 1)).all():  # false for NaN too
        raise Damaged("its split positions are not all in [0, 1)")


class _ShardWriter:
    """Pieces in, ``shard-NNNNN.npz`` files out, one every :data:`SHARD_TOKENS` tokens."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.pieces: list[np.ndarray] = []
        self.positions: list[float] = []
        self.size = 0
        self.shards: list[dict] = []
        self.skipped = self.cached = 0

    def add(self, tokens: np.ndarray, where: float) -> None:
        self.pieces.append(tokens)
        self.positions.append(where)
        self.size += len(tokens)
        if self.size >= SHARD_TOKENS or len(self.pieces) >= SHARD_TOKENS:  # what Shards accepts
            self.flush()

    def flush(self) -> None:
        if not self.pieces:
            return
        name = f"shard-{len(self.shards):05d}.npz"
        offsets = np.zeros(len(self.pieces) + 1, np.int64)
        np.cumsum([len(p) for p in self.pieces], out=offsets[1:])
        tokens = np.concatenate(self.pieces).astype(np.int32, copy=False)
        path = os.path.join(self.directory, name)
        _save(path, tokens=tokens, offsets=offsets, positions=np.array(self.positions, np.float64))
        self.shards.append({"file": name, "pieces": len(self.pieces), "tokens": int(offsets[-1]),
                            "sha256": file_sha256(path)})
        self.pieces, self.positions, self.size = [], [], 0


class Shards:
    """A dataset directory, read one shard at a time: what training streams from.

    What it holds is checked like input: the manifest's fields; that the files it names are
    regular files inside the directory; each shard against its manifest entry (counts, offsets,
    split positions, SHA-256) and its tokens against the representation, headers before data.
    The first reading of a shard reads it whole, so the split that training computes first finds
    a damaged shard before TensorFlow runs.  ``representation`` is the one the pieces were encoded
    with, if at hand (else rebuilt from the manifest when first needed).
    """

    def __init__(self, directory: str, manifest: dict | None = None,
                 representation: Representation | None = None) -> None:
        self.directory = os.path.expanduser(directory)
        if manifest is None:
            manifest = self._read_manifest()
        if not isinstance(manifest, dict) or manifest.get("format") != DATASET_FORMAT:
            raise InputError(f"{directory}: {MANIFEST} is not a dataset of this mgf version ({DATASET_FORMAT})")
        problem = _manifest_problem(manifest)
        if problem:
            raise InputError(f"{os.path.join(self.directory, MANIFEST)}: {problem}; {self._remedy()}")
        self.manifest = manifest
        longest = _longest(manifest["representation"]["config"])
        for entry in manifest["shards"]:
            if entry["tokens"] > SHARD_TOKENS + longest or entry["pieces"] > SHARD_TOKENS:
                raise InputError(f"{os.path.join(self.directory, entry['file'])}: the manifest gives it "
                                 f"{entry['tokens']:,} tokens in {entry['pieces']:,} pieces, more than a shard holds "
                                 f"({SHARD_TOKENS:,} and a piece of at most {longest:,}); {self._remedy()}")
        self._limits = None if representation is None else _Limits.of(representation)
        self._checked: set[int] = set()  # shards read whole and found sound

    def _read_manifest(self) -> dict:
        path = os.path.join(self.directory, MANIFEST)
        try:
            with opened(path) as handle:
                text = handle.read(MAX_MANIFEST_BYTES + 1)
        except (Damaged, OSError) as error:
            if isinstance(error, Damaged) and os.path.lexists(path):  # a FIFO, a directory
                raise InputError(f"{path}: {error}; {self._remedy()}") from None
            raise InputError(f"{self.directory}: not a dataset directory (no readable {MANIFEST})") from None
        if len(text) > MAX_MANIFEST_BYTES:
            raise InputError(f"{path}: more than {MAX_MANIFEST_BYTES:,} bytes; {self._remedy()}")
        try:
            return json.loads(text)
        except (ValueError, RecursionError) as error:
            raise InputError(f"{path}: not JSON ({str(error)[:200]}); {self._remedy()}") from None

    def _remedy(self) -> str:
        """What to do about a damaged dataset: rebuild it (the cache's own rebuilds itself once deleted)."""
        cached = os.path.join(os.path.realpath(cache_root()), "datasets") + os.sep
        if os.path.realpath(self.directory).startswith(cached):
            return f"delete {self.directory} (mgf's cache) and run again to rebuild it"
        return "rebuild the dataset with mgf dataset"

    def _file(self, name: str) -> str:
        """The path of the dataset's file ``name``, which must lie inside the directory (no ``..``, no link out)."""
        path = os.path.join(self.directory, name)
        root = os.path.realpath(self.directory)
        if not _relative(name) or os.path.commonpath([root, os.path.realpath(path)]) != root:
            raise InputError(f"{path}: outside the dataset directory {self.directory}, yet named in its {MANIFEST}; "
                             f"{self._remedy()}")
        return path

    def representation(self) -> Representation:
        """The representation the pieces were encoded with, its learned tensors included."""
        from mgf.generation.api import get_representation

        spec = self.manifest["representation"]
        representation = get_representation(spec["name"], **spec["config"])
        if spec["tensors"]:
            path = self._file(spec["tensors"])
            try:
                with Archive(path, 64, MAX_TENSOR_BYTES) as archive:
                    tensors = {name: archive.array(name) for name in sorted(archive.names)}
            except Damaged as error:
                raise InputError(f"{path}: damaged representation tensors ({error}); {self._remedy()}") from None
            representation.load_tensors(tensors)
        return representation

    def _piece_limits(self) -> _Limits:
        if self._limits is None:
            self._limits = _Limits.of(self.representation())
        return self._limits

    def matches(self, representation: Representation) -> bool:
        """Whether ``representation`` makes the tokens this dataset holds (same name, config and tensors)."""
        return _config_key(representation) == self.manifest["representation"]["key"]

    def skipped(self) -> list[tuple[str, str]]:
        """``(path, reason)`` of the source files that could not be encoded."""
        path = self._file(self.manifest["files"]["listing"])
        found = []
        try:
            with opened(path, "r", encoding="utf-8") as handle:
                while line := handle.readline(MAX_LINE_BYTES + 1):
                    if len(line) > MAX_LINE_BYTES:
                        raise ValueError(f"a line of more than {MAX_LINE_BYTES:,} characters")
                    entry = json.loads(line)
                    if not isinstance(entry, dict):
                        raise ValueError(f"a line holds {type(entry).__name__}, not an object")
                    if entry.get("error"):
                        found.append((str(entry.get("path")), str(entry["error"])))
        except (OSError, ValueError, RecursionError) as error:  # Damaged too: a FIFO, a missing file
            raise InputError(f"{path}: damaged file listing ({getattr(error, 'strerror', None) or error}); "
                             f"{self._remedy()}") from None
        return found

    def shard(self, index: int, *, tokens: bool = True) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
        """``(tokens, offsets, positions)`` of shard ``index``, checked (``tokens=False`` reads no tokens once the
        shard has been read whole)."""
        entry = self.manifest["shards"][index]
        path = self._file(entry["file"])
        whole = tokens or index not in self._checked
        limits = self._piece_limits() if whole else None
        try:
            with Archive(path, 8) as archive:
                offsets = archive.array("offsets", np.int64, (entry["pieces"] + 1,))
                positions = archive.array("positions", np.float64, (entry["pieces"],))
                _check_index(offsets, positions, entry["tokens"], _longest(self.manifest["representation"]["config"]))
                if limits is None:
                    archive.check("tokens", np.int32, (entry["tokens"],))
                    return None, offsets, positions
                stored = archive.array("tokens", np.int32, (entry["tokens"],))
                problem = limits.ids(stored)
                if problem:
                    raise Damaged(problem)
                if "sha256" in entry and archive.sha256() != entry["sha256"]:
                    raise Damaged("its SHA-256 is not the one in the manifest")
        except Damaged as error:
            raise InputError(f"{path}: damaged dataset shard ({error}); {self._remedy()}") from None
        self._checked.add(index)
        return (stored if tokens else None), offsets, positions

    def __len__(self) -> int:
        return len(self.manifest["shards"])

    def sides(self, validation: float) -> list[np.ndarray]:
        """Per shard, which pieces are held out at ``validation`` (the split of :meth:`Dataset.split`)."""
        return sides([self.shard(i, tokens=False)[2] for i in range(len(self))], validation)

    def split_counts(self, validation: float) -> dict:
        """Pieces and tokens on each side of the split at ``validation``."""
        sides: dict[str, dict[str, int]] = {"train": {"pieces": 0, "tokens": 0}, "validation": {"pieces": 0, "tokens": 0}}
        for index, held in enumerate(self.sides(validation)):
            lengths = np.diff(self.shard(index, tokens=False)[1])
            for side, mask in (("train", ~held), ("validation", held)):
                sides[side]["pieces"] += int(mask.sum())
                sides[side]["tokens"] += int(lengths[mask].sum())
        return {"validation_fraction": validation, **sides}

    def pieces(self, index: int, mask: np.ndarray | None = None) -> list[np.ndarray]:
        """The pieces of shard ``index`` (those where ``mask`` is true)."""
        tokens, offsets, _ = self.shard(index)
        assert tokens is not None
        chosen = range(len(offsets) - 1) if mask is None else np.flatnonzero(mask)
        return [tokens[offsets[i]:offsets[i + 1]] for i in chosen]


def stream(parts: list[tuple[Shards, int, np.ndarray]], transform=None, seed: int | None = None) -> Iterable[list[np.ndarray]]:
    """The chosen pieces of ``(dataset, shard, mask)`` parts, a shard's worth at a time.

    ``seed`` shuffles the order of the parts; ``transform`` maps a shard's list of pieces (augmentation).
    """
    order = range(len(parts)) if seed is None else np.random.default_rng(seed).permutation(len(parts))
    for i in order:
        shards, index, mask = parts[i]
        pieces = shards.pieces(index, mask)
        yield transform(pieces) if transform else pieces


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
