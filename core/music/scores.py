"""Scores through music21: files of every format it reads, and ``corpus:`` references, read within limits.

music21 is imported here only when a score is read, so that generating never loads it.  Reading
is bounded: a file's size, a MIDI file's track count, delta times and length are checked
(with mido, cheaply) before music21 sees it, since music21 spends minutes and gigabytes on a
44-byte file whose one note lasts 2^28 beats; and :func:`bounded` stops what the checks
cannot foresee.  The limits are representation options (:data:`LIMIT_OPTIONS`), so a user can
raise them.
"""

from __future__ import annotations

import gc
import os
import re
import signal
import struct
import sys
import zipfile
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from mgf.music import corpus
from mgf.errors import InputError, MgfError
from mgf.contract.options import Option, resolve

SCORE_SUFFIXES = (".mxl", ".xml", ".musicxml", ".krn", ".abc", ".mid", ".midi")
MIDI_SUFFIXES = (".mid", ".midi")
#: the largest delta time a MIDI file can state: a variable-length quantity has at most 4 bytes
MAX_DELTA = 0x0FFFFFFF
#: the largest text file read as a primer
MAX_PRIMER_BYTES = 1_000_000

FILE_MB, TRACKS = 16.0, 256  # the defaults of max_file_mb and max_tracks
T = TypeVar("T")
LIMIT_OPTIONS = (
    Option("max_file_mb", float, FILE_MB, "reading: refuse files larger than this many megabytes", low=0.001, high=4096),
    Option("max_tracks", int, TRACKS, "reading: refuse MIDI files with more tracks", low=1, high=65535),
    Option("max_tokens", int, 1_000_000, "reading: refuse pieces that would need more tokens", low=1, high=2**31 - 1),
    Option("max_read_seconds", float, 60.0, "reading: give up on a score music21 parses for longer", low=0.01, high=86400),
)


def set_limits(representation, given: dict) -> None:
    """Set the :data:`LIMIT_OPTIONS` in ``given`` (checked, defaults for the rest) as attributes of ``representation``."""
    for name, value in resolve(LIMIT_OPTIONS, given, f"representation {representation.name!r}").items():
        setattr(representation, name, value)


def limits_config(representation) -> dict:
    """The limits of ``representation`` that differ from their defaults, for its ``config()``.

    Left out at their defaults, so that the bundles and cache keys made before the limits existed stay valid.
    """
    return {option.name: getattr(representation, option.name) for option in LIMIT_OPTIONS
            if getattr(representation, option.name) != option.default}


def quote(part: str) -> str:
    """``part`` quoted for a one-line message, cut short if long (a primer item of 5,000 digits)."""
    return repr(part) if len(part) <= 40 else repr(part[:37]) + "..."


def check_size(path: str, max_file_mb: float) -> None:
    """``InputError`` unless ``path`` is a non-empty file of at most ``max_file_mb`` megabytes (``.mxl``: unpacked,
    as zipfile reads no more than the sizes a member declares)."""
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    if os.path.isdir(path):
        raise InputError(f"{path}: is a directory")
    size = os.path.getsize(path)
    if size == 0:
        raise InputError(f"{path}: empty file")
    unpacked = ""
    if path.lower().endswith(".mxl"):
        try:
            with zipfile.ZipFile(path) as archive:
                size, unpacked = sum(member.file_size for member in archive.infolist()), " unpacked"
        except (zipfile.BadZipFile, OSError):
            pass  # music21 says what is wrong with it
    if size > max_file_mb * 1e6:
        raise InputError(f"{path}: {size / 1e6:.3g} MB{unpacked}, more than max_file_mb={max_file_mb:g}")


def check_midi(path: str, max_file_mb: float, max_tracks: int) -> bytes:
    """The bytes of the MIDI file ``path``, refused (``InputError``) when too big, with too many tracks, or with
    a variable-length quantity mido would read in quadratic time; what every MIDI reader checks before parsing."""
    check_size(path, max_file_mb)
    with open(path, "rb") as handle:
        data = handle.read()
    if data[:4] == b"MThd" and len(data) >= 14:
        tracks = struct.unpack(">H", data[10:12])[0]
        if tracks > max_tracks:
            raise InputError(f"{path}: {tracks} tracks, more than max_tracks={max_tracks}")
    # mido reads a variable-length quantity of any length, in time quadratic in it (100 kB: seconds,
    # 1 MB: minutes).  Only text and sysex hold long runs of bytes >= 0x80, so the walk is rare.
    if re.search(rb"[\x80-\xff]{64}", data):
        longest = _longest_quantity(data)
        if longest > 4:
            raise InputError(f"{path}: not a readable MIDI file (a variable-length quantity of {longest} bytes; MIDI allows 4)")
    return data


def read_midi(path: str, max_file_mb: float, max_tracks: int):
    """The ``mido.MidiFile`` of ``path``, refused (``InputError``) before parsing by :func:`check_midi`, and after
    when a delta time exceeds 4 bytes or the time division is not in ticks per beat."""
    import mido

    check_midi(path, max_file_mb, max_tracks)
    try:
        midi = mido.MidiFile(path)
    except Exception as error:
        message = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise InputError(f"{path}: not a readable MIDI file ({message})") from None
    if not 0 < midi.ticks_per_beat < 0x8000:
        raise InputError(f"{path}: not a readable MIDI file (time division {midi.ticks_per_beat}: "
                         "only ticks per beat are supported)")
    for track in midi.tracks:
        for message in track:
            if message.time > MAX_DELTA:
                raise InputError(f"{path}: not a readable MIDI file (a delta time of {message.time.bit_length()} bits; "
                                 "MIDI allows 28)")
    return midi


_DATA_BYTES = {0x8: 2, 0x9: 2, 0xA: 2, 0xB: 2, 0xC: 1, 0xD: 1, 0xE: 2}
_SYSTEM_BYTES = {0xF1: 1, 0xF2: 2, 0xF3: 1, 0xF6: 0, 0xF8: 0, 0xFA: 0, 0xFB: 0, 0xFC: 0, 0xFE: 0}


def _longest_quantity(data: bytes) -> int:
    """Bytes of the longest variable-length quantity (delta time or length) in the tracks of a MIDI file,
    walked as mido walks them; the walk stops where mido would fail (which it then reports)."""
    longest, position, last_status = 0, 14, None

    def quantity(at):
        nonlocal longest
        end = at
        while end < len(data) and data[end] & 0x80:
            end += 1
        longest = max(longest, end + 1 - at)
        value = 0
        for byte in data[at:min(end + 1, at + 4)]:
            value = (value << 7) | (byte & 0x7F)
        return value, end + 1

    for _ in range(struct.unpack(">h", data[10:12])[0]):  # signed, as mido reads it
        if data[position:position + 4] != b"MTrk" or position + 8 > len(data):
            break
        size, start = struct.unpack(">I", data[position + 4:position + 8])[0], position + 8
        position = start
        while position - start != size and position < len(data):
            _, position = quantity(position)
            if longest > 4 or position >= len(data):
                return longest
            status = data[position]
            position += 1
            if status < 0x80:
                if last_status is None:
                    return longest
                status, position = last_status, position - 1
            elif status != 0xFF:
                last_status = status
            if status == 0xFF:
                length, position = quantity(position + 1)
                position += length
            elif status in (0xF0, 0xF7):
                length, position = quantity(position)
                position += length
            elif status >> 4 in _DATA_BYTES:
                position += _DATA_BYTES[status >> 4]
            elif status in _SYSTEM_BYTES:
                position += _SYSTEM_BYTES[status]
            else:
                return longest
            if longest > 4:
                return longest
    return longest


def midi_quarters(midi) -> float:
    """Length of a ``mido.MidiFile`` in quarter notes (its longest track)."""
    return max((sum(message.time for message in track) for track in midi.tracks), default=0) / midi.ticks_per_beat


class ReadTimeout(InputError):
    """A score refused for taking longer than ``max_read_seconds``: it depends on the machine's load, so a cache should not keep it."""


WALL_FACTOR = 10  # the wall-clock backstop of bounded(): this many times the CPU limit, plus a minute


def bounded(seconds: float, where: str, function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` run in a forked child that the kernel ends after ``seconds`` of its CPU time (a ``ReadTimeout``).

    music21 is pure Python and may spend minutes on a crafted score, and nothing raised inside
    this process stops it for sure: a timer signal's exception lands in a gc callback or a
    ``__del__`` now and then, where Python prints and swallows it, and another user of the
    process's CPU timer (a profiler) switches such a limit off.  The child's own ITIMER_PROF
    with the default action ends it wherever it is.  music21 is imported here first, so that no
    child imports it again, and the child freezes the objects it inherits, so that its garbage
    collector does not copy their pages: a fork then costs about 10% of a chorale's parse (16 ms
    of 190 on a busy 2-core machine), within the noise of ``mgf dataset corpus:bach``.  The result
    or exception comes back pickled.  The CPU time counts, not the wall clock, so that a busy
    machine does not turn a slow but valid file into a skipped one.  Where there is no fork
    (Windows), unbounded.
    """
    if not hasattr(os, "fork"):
        return function(*args)
    import pickle

    import music21.converter  # noqa: F401 - once here rather than in every child

    from mgf.training import workers as _workers  # noqa: F401 - the same: the child calls its exit_with_parent

    sys.stdout.flush()
    sys.stderr.flush()  # else a line still buffered would be written by the child too
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        _child(seconds, (reader, writer), function, args)
    os.close(writer)
    try:
        with os.fdopen(reader, "rb") as pipe:
            answer = pipe.read()
        _, status = os.waitpid(pid, 0)
        pid = 0
    finally:
        if pid:  # interrupted (Ctrl-C): the child goes too
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGPROF:
        raise ReadTimeout(f"{where}: reading took more than max_read_seconds={seconds:g} s of CPU time")
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGALRM:
        raise ReadTimeout(f"{where}: reading took more than {WALL_FACTOR * seconds + 60:g} s of wall-clock time")
    if not answer:
        ended = (f"killed by {signal.Signals(os.WTERMSIG(status)).name}" if os.WIFSIGNALED(status)
                 else f"exit code {os.WEXITSTATUS(status)}")
        raise InputError(f"{where}: reading ended without a result ({ended})")
    done, value = pickle.loads(answer)
    if done:
        return value
    raise value


def _child(seconds: float, pipe: tuple[int, int], function: Callable[..., Any], args: tuple) -> NoReturn:
    """The forked side of :func:`bounded`: run, send ``(True, result)`` or ``(False, exception)``, and end."""
    import pickle
    import traceback

    try:
        from mgf.training.workers import exit_with_parent

        exit_with_parent()  # should the parent be killed (an OOM kill), no reader is left behind
        os.close(pipe[0])
        gc.freeze()  # the parent's objects are not collected here: untouched, their pages stay shared
        signal.signal(signal.SIGPROF, signal.SIG_DFL)
        signal.setitimer(signal.ITIMER_PROF, seconds)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)  # and a wall-clock backstop, for a child that uses no CPU:
        signal.setitimer(signal.ITIMER_REAL, WALL_FACTOR * seconds + 60)  # stuck on a lock a parent's thread held at the fork
        try:
            data = pickle.dumps((True, function(*args)))
        except BaseException as error:  # noqa: BLE001 - every outcome goes to the parent, which raises it
            if not isinstance(error, MgfError):
                error.add_note("".join(traceback.format_exception(error)).rstrip())  # where, in the child
            try:
                data = pickle.dumps((False, error))
            except Exception:  # noqa: BLE001 - an exception that does not pickle
                data = pickle.dumps((False, RuntimeError(f"{type(error).__name__}: {error}")))
        with os.fdopen(pipe[1], "wb") as handle:
            handle.write(data)
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(0)  # never the parent's exit handlers, nor its buffers


def parse(path, max_file_mb: float, max_tracks: int, max_quarters: float | None = None):
    """A music21 stream for a file or ``corpus:`` reference, and its name; every failure is an InputError naming it.

    A MIDI file is checked with :func:`read_midi` first, and refused when it lasts more than ``max_quarters``.
    """
    where = str(path)
    if corpus.is_reference(where):
        paths = corpus.resolve(where)
        if len(paths) != 1:
            raise InputError(f"{where}: names {len(paths)} files; read one work at a time (`mgf dataset {where}` "
                             "encodes a whole collection; mgf.training.sources.load from Python)")
        target = paths[0]
    else:
        target = os.fspath(path)
    is_midi = target.lower().endswith(MIDI_SUFFIXES)
    if is_midi:  # strict too: music21 would read a truncated file up to the cut
        quarters = midi_quarters(read_midi(target, max_file_mb, max_tracks))
        if max_quarters is not None and quarters > max_quarters:
            raise InputError(f"{where}: lasts {quarters:.0f} quarter notes, more than max_tokens allows ({max_quarters:.0f})")
    else:
        check_size(target, max_file_mb)
    from music21 import converter  # after the checks: refusing a file takes no music21

    try:
        # forceSource: music21's own pickle cache matches files by path and mtime, and mgf.training.cache
        # caches by content already; quantizePost=False: MIDI onsets reach our grid unsnapped.
        options: dict[str, Any] = {"quantizePost": False} if is_midi else {}
        return converter.parse(target, forceSource=True, **options), where
    except Exception as error:
        message = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        raise InputError(f"{where}: not a readable score ({type(error).__name__}{': ' + message if message else ''})") from None


def primer_source(text: str, suffixes: tuple[str, ...]) -> tuple[str | None, str]:
    """``(path, "")`` when primer ``text`` names a file to read (one with a suffix in ``suffixes``, or a
    ``corpus:`` reference); ``(None, content)`` for a ``.txt`` file of primer text; ``(None, text)`` otherwise.

    Text that looks like a file (a path separator, or a suffix of ``suffixes`` or ``.txt``) but names
    none is an ``InputError`` saying so, rather than a complaint that it is no pitch.
    """
    if corpus.is_reference(text):
        return text, ""
    name = text.strip()
    lower = name.lower()
    if "/" not in name and os.sep not in name and not lower.endswith(tuple(suffixes) + (".txt",)):
        return None, text
    if not os.path.isfile(name):
        if any(character.isspace() for character in name):
            return None, text  # items of primer text, one of which has a slash
        raise InputError(f"primer: {name}: {'is a directory' if os.path.isdir(name) else 'no such file'}")
    if lower.endswith(tuple(suffixes)):
        return name, ""
    if not lower.endswith(".txt"):
        raise InputError(f"primer: {name}: reads {', '.join(suffixes)} files, and .txt files of primer text")
    if os.path.getsize(name) > MAX_PRIMER_BYTES:
        raise InputError(f"primer: {name}: a primer text file must be at most {MAX_PRIMER_BYTES // 1000} kB")
    try:
        with open(name, encoding="utf-8") as handle:
            return None, handle.read()
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"primer: {name}: cannot read ({getattr(error, 'strerror', None) or error})") from None
