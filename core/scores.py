"""Scores through music21: files of every format it reads, and ``corpus:`` references, read within limits.

music21 is imported here only when a score is read, so that generating never loads it.  Reading
is bounded: a file's size, a MIDI file's track count, delta times and length are checked
(with mido, cheaply) before music21 sees it, since music21 spends minutes and gigabytes on a
44-byte file whose one note lasts 2^28 beats; and :func:`time_budget` stops what the checks
cannot foresee.  The limits are representation options (:data:`LIMIT_OPTIONS`), so a user can
raise them.
"""

from __future__ import annotations

import os
import re
import signal
import struct
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from . import corpus
from .errors import InputError
from .options import Option, resolve

SCORE_SUFFIXES = (".mxl", ".xml", ".musicxml", ".krn", ".abc", ".mid", ".midi")
MIDI_SUFFIXES = (".mid", ".midi")
#: the largest delta time a MIDI file can state: a variable-length quantity has at most 4 bytes
MAX_DELTA = 0x0FFFFFFF
#: the largest text file read as a primer
MAX_PRIMER_BYTES = 1_000_000

FILE_MB, TRACKS = 16.0, 256  # the defaults of max_file_mb and max_tracks
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


def read_midi(path: str, max_file_mb: float, max_tracks: int):
    """The ``mido.MidiFile`` of ``path``, refused (``InputError``) before parsing when too big or with too many
    tracks, and after when a delta time exceeds 4 bytes or the time division is not in ticks per beat."""
    import mido

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


class _Expired(BaseException):
    """Raised by the alarm; a BaseException, so that music21's ``except Exception`` cannot swallow it."""


@contextmanager
def time_budget(seconds: float, where: str) -> Iterator[None]:
    """Stop the body with an ``InputError`` after ``seconds`` of CPU time (POSIX, main thread; elsewhere unbounded).

    music21 is pure Python, so a timer signal interrupts it anywhere; a worker process would cost
    a music21 import per file, and the common file parses in a fraction of a second.  The timer
    counts this process's CPU time (ITIMER_PROF), not the wall clock, so that a busy machine
    does not turn a slow but valid file into a skipped one.
    """
    if (not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread()
            or signal.getitimer(signal.ITIMER_PROF)[0] > 0):  # someone else's timer is set: leave it be
        yield
        return

    def expire(signum, frame):
        raise _Expired

    previous = signal.signal(signal.SIGPROF, expire)
    try:
        try:
            signal.setitimer(signal.ITIMER_PROF, seconds)
            yield
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
    except _Expired:
        raise ReadTimeout(f"{where}: reading took more than max_read_seconds={seconds:g} s of CPU time") from None
    finally:
        signal.signal(signal.SIGPROF, previous)


def parse(path, max_file_mb: float, max_tracks: int, max_quarters: float | None = None):
    """A music21 stream for a file or ``corpus:`` reference, and its name; every failure is an InputError naming it.

    A MIDI file is checked with :func:`read_midi` first, and refused when it lasts more than ``max_quarters``.
    """
    where = str(path)
    if corpus.is_reference(where):
        paths = corpus.resolve(where)
        if len(paths) != 1:
            raise InputError(f"{where}: names {len(paths)} files; read one work at a time (mgf.data reads collections)")
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
        # forceSource: music21's own pickle cache matches files by path and mtime, and mgf.data
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
