"""MIDI files to ``[(pitch, velocity, start_seconds, end_seconds)]`` for the ``midi`` representation.

Two parsers, one meaning.  symusic (a C++ parser, about 100 times faster than mido) reads a file
when it can; mido reads it when symusic is not installed, refuses the file, or reads it in a way
that could differ from mido's (below).  Both parsers only fill the same small description of the
file (:class:`_Parsed`), and :func:`_notes` alone turns that into notes, so that the two give the
same notes by construction.  The rules are symusic's where a MIDI file leaves room for choice,
because its parser decides them before Python sees the notes:

* notes pair within their track and channel, first in first out: a note-off ends the earliest
  sounding note of its pitch (overlapping same-pitch notes keep their own lengths; the
  ``midi`` encoding then ends an earlier note where a later one of its pitch starts); a note-off
  that finds no note does nothing; a note-on with velocity 0 is a note-off; a note no note-off
  ends is left out;
* the sustain pedal (CC64 >= 64) holds a released note until the pedal is lifted (or the file's
  last note or pedal event); it acts on the notes of its own track and channel (a program change
  starts a new group, as symusic's tracks do); a note released at a tick where the pedal changes
  sees the pedal as it was before that tick (symusic keeps no order within a tick);
* channel 10 (drums) is left out unless ``drums``;
* seconds follow the tempo map, summed in floating point tick after tick as mido's reader always did
  (so that a note on an exact half step of the grid rounds as before), over the ticks of the events
  both parsers see: notes, controllers, pitch bends, tempos, time and key signatures, markers, lyrics.
  Program changes, sysex and other meta events do not move a note.

Files read by mido instead (each a case symusic's view could hide a difference in): symusic
missing or refusing the file; a time division that is not ticks per beat; bytes that may be a
delta time longer than 4 bytes (mido refuses those with its own message; long runs of text bytes
look the same and are read by mido too); two different tempos at one tick (symusic sorts them in
no fixed order); a tick past 2^31 (symusic's ticks are 32-bit; past 2^32 they wrap unseen, which only a
hostile file of months of ticks reaches: it is read either way, within the limits).
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

import numpy as np

from mgf.music.scores import FILE_MB, TRACKS, check_midi, read_midi

TEMPO = 500_000  # microseconds per quarter note until a file sets one: 120 qpm
DRUM_CHANNEL = 9
PEDAL = 64
_HIGH_BYTES, _HIGH_RUN = bytes(b >> 7 for b in range(256)), b"\x01" * 4  # translate beats re: 1 GB/s


class _Parsed(NamedTuple):
    """A MIDI file as both parsers describe it: what :func:`_notes` needs, no more."""

    ticks_per_beat: int
    tempos: list  # [(tick, microseconds per quarter note)] in file order, track after track
    groups: list  # [(is_drum, notes: int64 array (on tick, off tick, pitch, velocity), pedal: int64 array (tick, value))]
    marks: np.ndarray  # ticks of the other events both see: tempos, time and key signatures, markers, lyrics,
    # controllers and pitch bends (of the groups that have notes)


def read_midi_notes(path, drums=False, max_file_mb=FILE_MB, max_tracks=TRACKS):
    """``[(pitch, velocity, start_seconds, end_seconds)]`` of a MIDI file, by the rules in the module docstring."""
    return [(int(p), int(v), s, e) for p, v, s, e in read_midi_table(path, drums, max_file_mb, max_tracks).tolist()]


def read_midi_table(path, drums=False, max_file_mb=FILE_MB, max_tracks=TRACKS) -> np.ndarray:
    """The notes of :func:`read_midi_notes` as a float64 array of rows (pitch, velocity, start, end): what
    ``Midi.encode`` takes without a list of tuples in between."""
    path = str(path)
    parsed = _with_symusic(check_midi(path, max_file_mb, max_tracks))
    if parsed is None:
        parsed = _with_mido(read_midi(path, max_file_mb, max_tracks))
    return _notes(parsed, drums)


def _with_symusic(data: bytes) -> _Parsed | None:
    """The file read by symusic, or None where mido should read it (see the module docstring)."""
    try:
        import symusic
    except ImportError:
        return None
    if _HIGH_RUN in data.translate(_HIGH_BYTES):  # 4 bytes with the high bit: maybe a delta time of 5+ bytes
        return None
    try:
        score = symusic.Score.from_midi(data)
    except Exception:  # symusic's errors are RuntimeErrors of every kind; mido says what is wrong
        return None
    if not 0 < score.ticks_per_quarter < 0x8000:
        return None
    tempos = score.tempos.numpy() if len(score.tempos) else {"time": np.zeros(0, np.int64), "mspq": np.zeros(0, np.int64)}
    ticks, values = tempos["time"].astype(np.int64), tempos["mspq"].astype(np.int64)
    order = np.lexsort((values, ticks))
    ticks, values = ticks[order], values[order]
    if np.any((ticks[1:] == ticks[:-1]) & (values[1:] != values[:-1])) or np.any(ticks < 0):
        return None
    groups, marks = [], [ticks, _times(score.time_signatures), _times(score.key_signatures), _times(score.markers)]
    for track in score.tracks:
        notes, controls = track.notes.numpy(), track.controls.numpy()
        bends = track.pitch_bends.numpy()["time"] if len(track.pitch_bends) else np.zeros(0, np.int64)
        marks += [controls["time"].astype(np.int64), bends.astype(np.int64), _times(track.lyrics)]
        on = notes["time"].astype(np.int64)
        off = on + notes["duration"].astype(np.int64)
        pedal = controls["number"] == PEDAL
        pedal_ticks = controls["time"][pedal].astype(np.int64)
        if np.any(on < 0) or np.any(off < on) or np.any(pedal_ticks < 0):
            return None
        groups.append((bool(track.is_drum),
                       np.stack([on, off, notes["pitch"].astype(np.int64), notes["velocity"].astype(np.int64)], axis=1),
                       np.stack([pedal_ticks, controls["value"][pedal].astype(np.int64)], axis=1)))
    marks = np.concatenate(marks)
    if np.any(marks < 0):  # a 32-bit tick past 2^31
        return None
    return _Parsed(score.ticks_per_quarter, list(zip(ticks.tolist(), values.tolist())), groups, marks)


def _times(events) -> np.ndarray:
    return np.array([event.time for event in events], dtype=np.int64)


class _Group:
    """A track's notes of one channel and program, as symusic groups them: the pedal acts within one."""

    def __init__(self, is_drum: bool) -> None:
        self.is_drum, self.notes, self.pedal, self.marks = is_drum, [], [], []


class _Track:
    """symusic's grouping of one MIDI track: a group per channel and program, made by a note-on, which takes in the
    controls sent on its channel while there was none (those a track never gives a note-on are lost)."""

    def __init__(self) -> None:
        self.program, self.formal, self.stragglers = [0] * 16, {}, {}

    def group(self, channel: int, create: bool) -> _Group:
        key = (channel, self.program[channel])
        if key in self.formal:
            return self.formal[key]
        straggler = self.stragglers.setdefault(channel, _Group(channel == DRUM_CHANNEL))
        if create:
            self.formal[key] = self.stragglers.pop(channel)
        return straggler


def _with_mido(midi) -> _Parsed:
    """A ``mido.MidiFile`` described as symusic describes it (see :func:`_with_symusic`)."""
    tempos, groups, marks = [], [], []
    for track in midi.tracks:
        tick, made, sounding = 0, _Track(), {}
        for message in track:
            tick += message.time
            kind = message.type
            if kind == "set_tempo":
                tempos.append((tick, message.tempo))
                marks.append(tick)
            elif kind in ("time_signature", "key_signature"):
                marks.append(tick)
            elif kind in ("marker", "lyrics") and message.text.encode("latin-1", "replace").decode("utf-8", "ignore"):
                marks.append(tick)
                if kind == "lyrics":
                    made.group(15, True)  # symusic files a lyric under the channel of its status byte 0xFF
            elif kind == "program_change":
                made.program[message.channel] = message.program
            elif kind == "note_on" and message.velocity > 0:
                note = [tick, -1, message.note, message.velocity]
                made.group(message.channel, True).notes.append(note)
                sounding.setdefault((message.channel, message.note), deque()).append(note)
            elif kind in ("note_on", "note_off"):
                waiting = sounding.get((message.channel, message.note))
                if waiting:
                    waiting.popleft()[1] = tick
            elif kind in ("control_change", "pitchwheel"):
                group = made.group(message.channel, False)
                group.marks.append(tick)
                if kind == "control_change" and message.control == PEDAL:
                    group.pedal.append((tick, message.value))
        for group in made.formal.values():
            notes = [note for note in group.notes if note[1] >= 0]
            groups.append((group.is_drum, np.array(notes, dtype=np.int64).reshape(-1, 4),
                           np.array(group.pedal, dtype=np.int64).reshape(-1, 2)))
            marks += group.marks
    tempos.sort(key=lambda item: item[0])  # stable: at one tick, the last in file order wins
    return _Parsed(midi.ticks_per_beat, tempos, groups, np.array(marks, dtype=np.int64))


def _notes(parsed: _Parsed, drums: bool) -> np.ndarray:
    """The notes of a parsed file, pedal applied, in seconds: rows (pitch, velocity, start, end), sorted."""
    groups = [(notes, pedal) for is_drum, notes, pedal in parsed.groups if drums or not is_drum]
    if not any(len(notes) for notes, _ in groups):
        return np.zeros((0, 4))
    last = max(max((int(notes[:, 1].max()) for notes, _ in groups if len(notes)), default=0),
               max((int(pedal[:, 0].max()) for _, pedal in groups if len(pedal)), default=0))
    ons, offs, pitches, velocities = [], [], [], []
    for notes, pedal in groups:
        if not len(notes):
            continue
        off = notes[:, 1]
        if len(pedal):  # held: the pedal was down at the release (the last pedal event before it); ends at the next lift
            down = pedal[:, 1] >= PEDAL
            before = np.searchsorted(pedal[:, 0], off, side="left") - 1
            held = (before >= 0) & down[np.maximum(before, 0)]
            lifts = np.append(pedal[~down, 0], last)
            off = np.where(held, lifts[np.searchsorted(lifts[:-1], off, side="left")], off)
        ons.append(notes[:, 0]), offs.append(off), pitches.append(notes[:, 2]), velocities.append(notes[:, 3])
    on, off = np.concatenate(ons), np.concatenate(offs)
    seconds = _clock(parsed)
    table = np.stack([np.concatenate(pitches), np.concatenate(velocities), seconds(on), seconds(off)], axis=1).astype(np.float64)
    return table[np.lexsort((table[:, 3], table[:, 1], table[:, 0], table[:, 2]))]


def _clock(parsed: _Parsed):
    """Seconds of ticks, summed event by event in floating point as mido's reader always summed them (so that a
    note on an exact half step of the grid rounds as it did), over the events both parsers see.

    The sum is over every tick where a note starts or ends or another kept event lies (``marks``), at the
    tempo set at or before the tick it starts from: ``seconds += delta * (tempo * 1e-6 / ticks_per_beat)``.
    """
    notes = [notes[:, :2].ravel() for _, notes, _ in parsed.groups]
    points = np.sort(np.concatenate([np.zeros(1, dtype=np.int64), parsed.marks, *notes]))
    points = points[np.append(True, points[1:] != points[:-1])]  # np.unique hashes: 10x slower on millions of ticks
    tempo_ticks, tempos = [0], [TEMPO]
    for tick, tempo in parsed.tempos:  # sorted by tick; at one tick the last wins
        if tick == tempo_ticks[-1]:
            tempos[-1] = tempo
        else:
            tempo_ticks.append(tick), tempos.append(tempo)
    tempo = np.asarray(tempos, dtype=np.float64)[np.searchsorted(tempo_ticks, points[:-1], side="right") - 1]
    steps = np.diff(points).astype(np.float64) * (tempo * 1e-6 / parsed.ticks_per_beat)
    sums = np.concatenate([np.zeros(1), np.cumsum(steps)])  # cumsum adds left to right, as the loop did
    return lambda ticks: sums[np.searchsorted(points, ticks)]
