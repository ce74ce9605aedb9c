"""``notes``: a monophonic melody on a time grid, in the token scheme of Magenta's MelodyRNN.

Time is cut into ``steps_per_quarter`` steps per quarter note; each step is one token:

* ``0`` NO_EVENT: hold whatever sounds (a note or the silence) for one more step;
* ``1`` NOTE_OFF: a rest begins;
* ``2 + (p - min_pitch)`` NOTE_ON of MIDI pitch ``p``, for ``p`` in ``[min_pitch, max_pitch]``;
* ``vocab_size - 1`` START, the start-of-sequence token (never in a melody; ``write`` skips it).

Reading a score (through ``mgf.music.scores``) keeps one line of it, by these rules:

* the melody is the first part in score order that has notes (the soprano of a chorale, the
  top staff otherwise); chord symbols, unpitched notes and grace notes are ignored;
* onsets and ends are rounded to the nearest step; a note that would get no length keeps one
  step; tied notes are merged into one;
* of notes that start on the same step the highest wins (so a chord gives its top note); a note
  is cut short where the next one starts;
* the melody is moved by the whole number of octaves that leaves the fewest notes outside
  ``[min_pitch, max_pitch]`` (the smallest such move); notes still outside are moved into the
  range by octaves one by one;
* the sequence starts with the first note (silence before it is dropped) and ends where the
  last note ends.

A MIDI file is read with mido, not music21, by the same rules (a part is one channel of one
track, drums left out; offsets in quarter notes from the ticks): music21 spends minutes on some
malformed MIDI files, mido's reading is bounded by the checks of :func:`mgf.music.scores.read_midi`.

Reading is bounded by the options of :data:`mgf.music.scores.LIMIT_OPTIONS` (file size, MIDI tracks,
tokens per piece, CPU seconds of music21 parsing): beyond one, the file is refused with an
``InputError`` naming it and the option to raise.

music21 is imported inside the methods that parse scores or write MusicXML, so sampling never loads it.
"""

import math
import os
import re
from fractions import Fraction

import numpy as np

from mgf import (Clock, Decoder, Event, InputError, MgfError, Option, Representation, TokenKind, UsageError, atomic_path, hookimpl,
                 packaged_model)
from mgf.music.scores import (LIMIT_OPTIONS, SCORE_SUFFIXES, bounded, limits_config, midi_quarters, parse, primer_source, quote,
                        read_midi, set_limits)

NO_EVENT, NOTE_OFF, FIRST_PITCH = 0, 1, 2
VELOCITY = 90  # of every note: what music21 writes when none is given
_MIDI_SUFFIXES = (".mid", ".midi")
_TICKS_PER_QUARTER = 10080  # music21's; every steps_per_quarter up to 10 divides it, and 12, 16, 24, 32, 48, 96, ...
_MAX_TEMPO = 0xFFFFFF  # microseconds per quarter: three bytes
_XML_SUFFIXES = (".musicxml", ".xml")
_PITCH_CLASSES = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
_PITCH_NAME = re.compile(r"([a-g])([#b-]{0,4})([0-9]{1,2})", re.IGNORECASE)


class Notes(Representation):
    """Melodies as NO_EVENT / NOTE_OFF / NOTE_ON tokens, one per step of ``steps_per_quarter`` per quarter."""

    name = "notes"
    suffix = ".mid"
    default_bundle = packaged_model("notes.safetensors")
    read_suffixes = SCORE_SUFFIXES
    options = (
        Option("steps_per_quarter", int, 4, "grid steps per quarter note (4: sixteenth notes)", low=1, high=96),
        Option("min_pitch", int, 48, "lowest MIDI pitch with a token", low=0, high=127),
        Option("max_pitch", int, 84, "highest MIDI pitch with a token", low=0, high=127),
        Option("qpm", float, 120.0, "tempo of written files, in quarter notes per minute", low=1, high=1000),
        *LIMIT_OPTIONS,
    )

    def __init__(self, steps_per_quarter: int = 4, min_pitch: int = 48, max_pitch: int = 84, qpm: float = 120,
                 **limits) -> None:
        """``limits``: the reading limits of :data:`mgf.music.scores.LIMIT_OPTIONS`, by name."""
        # an octave or more, so that every note can be moved into the range by octaves
        if max_pitch - min_pitch < 11:
            raise UsageError(f"representation 'notes': min_pitch {min_pitch} and max_pitch {max_pitch} "
                             "must span at least 12 pitches")
        self.steps_per_quarter, self.min_pitch, self.max_pitch, self.qpm = steps_per_quarter, min_pitch, max_pitch, qpm
        set_limits(self, limits)

    def config(self):
        return {"steps_per_quarter": self.steps_per_quarter, "min_pitch": self.min_pitch,
                "max_pitch": self.max_pitch, "qpm": self.qpm, **limits_config(self)}

    @property
    def vocab_size(self):
        return FIRST_PITCH + self.max_pitch - self.min_pitch + 2

    @property
    def start_token(self):
        return self.vocab_size - 1

    # ---- reading

    def read(self, path):
        """The first piece of ``path`` (a multi-tune file holds several: see ``read_pieces``)."""
        return next(iter(self.read_pieces(path)))[1]

    def read_pieces(self, path):
        """``(name, tokens)`` per piece; the k-th tune of a multi-tune file is ``file#k title`` (tunes without notes are left out)."""
        if str(path).lower().endswith(_MIDI_SUFFIXES) and os.path.isfile(path):  # mido, bounded by its checks
            tokens = self._midi_melody(path)
            if tokens is None:
                raise InputError(f"{path}: no notes in the score")
            yield str(path), tokens
            return
        yield from bounded(self.max_read_seconds, str(path), self._score_pieces, path)

    def _score_pieces(self, path):
        from music21 import stream

        parsed, where = parse(path, self.max_file_mb, self.max_tracks, self.max_tokens / self.steps_per_quarter)
        scores = list(parsed.scores) if isinstance(parsed, stream.Opus) else [parsed]
        pieces = []
        for number, score in enumerate(scores, 1):
            try:
                tokens = self._melody(score, where)
            except MgfError:
                raise
            except Exception as error:  # music21 may still fail on a score it parsed
                raise InputError(f"{where}: cannot take the melody ({type(error).__name__}: {str(error)[:200]})") from None
            if tokens is not None:
                title = score.metadata.title if score.metadata and score.metadata.title else ""
                pieces.append((where if len(scores) == 1 else f"{where}#{number} {title}".rstrip(), tokens))
        if not pieces:
            raise InputError(f"{where}: no notes in the score")
        return pieces

    def _melody(self, score, where):
        """Tokens of the melody of one score (the rules are in the module docstring), or None without notes."""
        from music21 import chord, harmony, note

        for part in list(getattr(score, "parts", [])) or [score]:  # a parsed file may be a bare Part
            notes = []
            for element in part.stripTies(inPlace=False).flatten().notes:
                if isinstance(element, harmony.Harmony) or element.duration.isGrace:
                    continue
                if isinstance(element, note.Note):
                    pitch = element.pitch.midi
                elif isinstance(element, chord.Chord) and element.pitches:
                    pitch = max(p.midi for p in element.pitches)
                else:
                    continue
                start = self._step(element.offset)
                notes.append((start, max(start + 1, self._step(element.offset + element.quarterLength)), pitch))
            if notes:
                return self._tokens(notes, where)
        return None

    def _midi_melody(self, path):
        """The melody of a MIDI file read with mido: the first part (a track's channel, drums left out) with notes."""
        midi = read_midi(str(path), self.max_file_mb, self.max_tracks)
        if midi_quarters(midi) > self.max_tokens / self.steps_per_quarter:
            raise InputError(f"{path}: lasts {midi_quarters(midi):.0f} quarter notes, more than max_tokens allows "
                             f"({self.max_tokens / self.steps_per_quarter:.0f})")
        for track in midi.tracks:
            parts: dict[int, list] = {}
            sounding: dict[tuple[int, int], int] = {}
            now = 0
            for message in track:
                now += message.time
                if message.type not in ("note_on", "note_off") or message.channel == 9:
                    continue
                key = (message.channel, message.note)
                if key in sounding:  # a note-off, or a re-strike that ends the sounding note
                    start = sounding.pop(key)
                    parts.setdefault(message.channel, []).append((start, now, message.note))
                if message.type == "note_on" and message.velocity > 0:
                    sounding[key] = now
            for (channel, pitch), start in sounding.items():  # notes never ended last to the end of the track
                parts.setdefault(channel, []).append((start, now, pitch))
            for channel in sorted(parts):
                notes = []
                for start, end, pitch in parts[channel]:
                    first = self._step(start / midi.ticks_per_beat)
                    notes.append((first, max(first + 1, self._step(end / midi.ticks_per_beat)), pitch))
                return self._tokens(notes, str(path))
        return None

    def _step(self, quarters):
        return math.floor(float(quarters) * self.steps_per_quarter + 0.5)

    def _tokens(self, notes, where):
        melody = []  # [start, end, pitch]
        for start, end, pitch in sorted(notes, key=lambda n: (n[0], -n[2])):
            if melody and melody[-1][0] == start:
                continue  # the highest note on this step came first
            if melody:
                melody[-1][1] = min(melody[-1][1], start)
            melody.append([start, end, pitch])
        pitches = self._fit([pitch for _, _, pitch in melody])
        first = melody[0][0]
        if melody[-1][1] - first > self.max_tokens:
            raise InputError(f"{where}: a melody of {melody[-1][1] - first} steps, more than max_tokens={self.max_tokens}")
        tokens = np.full(melody[-1][1] - first, NO_EVENT, dtype=np.int32)
        for (start, end, _), pitch in zip(melody, pitches):
            tokens[start - first] = FIRST_PITCH + pitch - self.min_pitch
            if end - first < len(tokens):
                tokens[end - first] = NOTE_OFF  # overwritten by the next note if it starts right there
        return tokens

    def _fit(self, pitches):
        """``pitches`` moved into the range: the best octave shift for all, then octave by octave each."""
        lo, hi = self.min_pitch, self.max_pitch
        shift = min(range(-120, 121, 12), key=lambda s: (sum(not lo <= p + s <= hi for p in pitches), abs(s)))
        moved = []
        for pitch in (p + shift for p in pitches):
            if pitch < lo:
                pitch += 12 * math.ceil((lo - pitch) / 12)
            elif pitch > hi:
                pitch -= 12 * math.ceil((pitch - hi) / 12)
            moved.append(pitch)
        return moved

    # ---- writing

    def write(self, tokens, path, qpm=None):
        """A MIDI (``.mid``/``.midi``) or MusicXML (``.musicxml``/``.xml``) file with a tempo of ``qpm`` (default: config).

        MIDI is written with mido (music21 takes ~0.4 s to import), as music21 writes it; MusicXML with music21.
        """
        target = os.fspath(path)
        suffix = os.path.splitext(target)[1].lower()
        if suffix not in _MIDI_SUFFIXES + _XML_SUFFIXES:
            supported = ", ".join(_MIDI_SUFFIXES + _XML_SUFFIXES)
            raise InputError(f"{target}: notes writes {supported}, not {suffix or 'no suffix'!r}")
        qpm = self.qpm if qpm is None else qpm
        if isinstance(qpm, bool) or not isinstance(qpm, (int, float)) or not 0 < qpm < math.inf:
            raise InputError(f"{target}: qpm must be a positive number, got {qpm!r}")
        segments = self._segments(tokens)
        if not segments:
            raise InputError(f"{target}: no tokens to write")
        if suffix in _MIDI_SUFFIXES:
            self._write_midi(segments, qpm, target)
            return
        from music21 import metadata, note, stream, tempo

        part = stream.Part()
        part.insert(0, tempo.MetronomeMark(number=qpm))  # in the part: MusicXML drops score-level tempo marks
        for pitch, steps in segments:
            length = Fraction(steps, self.steps_per_quarter)
            part.append(note.Rest(quarterLength=length) if pitch is None else note.Note(pitch, quarterLength=length))
        score = stream.Score([part])
        score.metadata = metadata.Metadata(title=os.path.splitext(os.path.basename(target))[0])
        with atomic_path(target) as tmp:  # tmp keeps the suffix, so music21 writes to it under that very name
            score.write("musicxml", fp=tmp)

    def _write_midi(self, segments: list[list], qpm: float, target: str) -> None:
        """The file music21's writer gave, less its no-op pitch bend: a conductor track (tempo, 4/4), then the notes on
        channel 0 at velocity 90, at music21's 10080 ticks per quarter where a step is a whole number of them, else at
        the nearest multiple of ``steps_per_quarter`` below (music21 rounded there, and could end a note after the
        next one began)."""
        import mido

        tempo = round(60_000_000 / qpm)
        if tempo > _MAX_TEMPO:  # music21 wrote it modulo 2**24: a wrong tempo
            raise InputError(f"{target}: qpm {qpm:g} is slower than a MIDI file can hold (at least {60_000_000 / _MAX_TEMPO:.2f})")
        per_step = _TICKS_PER_QUARTER // self.steps_per_quarter
        track = mido.MidiTrack([mido.MetaMessage("track_name", name="", time=0)])
        step, last = 0, 0
        for pitch, steps in segments:
            if pitch is not None:
                track.append(mido.Message("note_on", note=pitch, velocity=VELOCITY, time=(step - last) * per_step))
                track.append(mido.Message("note_off", note=pitch, velocity=0, time=steps * per_step))
                last = step + steps
            step += steps
        ticks_per_quarter = per_step * self.steps_per_quarter
        track.append(mido.MetaMessage("end_of_track", time=ticks_per_quarter))  # a quarter's silence, as music21 ends
        conductor = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=tempo, time=0),
                                    mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0),
                                    mido.MetaMessage("end_of_track", time=ticks_per_quarter)])
        midi = mido.MidiFile(type=1, ticks_per_beat=ticks_per_quarter, tracks=[conductor, track])
        with atomic_path(target) as tmp:
            midi.save(tmp)

    def to_notes(self, tokens):
        """``[(pitch, velocity, start_seconds, end_seconds)]`` at the config's ``qpm``, velocity 90 like ``write``."""
        seconds = 60.0 / (self.qpm * self.steps_per_quarter)
        notes, now = [], 0
        for pitch, steps in self._segments(tokens):
            if pitch is not None:
                notes.append((pitch, VELOCITY, now * seconds, (now + steps) * seconds))
            now += steps
        return notes

    def _segments(self, tokens):
        """``[pitch or None, steps]`` per note or rest of ``tokens``; a NOTE_OFF during a rest extends it."""
        tokens = np.asarray(tokens)
        if tokens.ndim != 1 or not np.issubdtype(tokens.dtype, np.integer):
            raise InputError("notes: tokens must be a 1-D sequence of integer ids")
        segments, start = [], self.start_token  # once: a property read through the plugin guard costs µs
        for token in tokens.tolist():
            if token == start:
                continue
            if not 0 <= token < start:
                raise InputError(f"notes: token id {token} is outside [0, {start})")
            pitch = None if token < FIRST_PITCH else self.min_pitch + token - FIRST_PITCH
            if segments and (token == NO_EVENT or (token == NOTE_OFF and segments[-1][0] is None)):
                segments[-1][1] += 1
            else:
                segments.append([pitch, 1])
        return segments

    def decoder(self):
        """Exact and O(1) per token (:class:`NotesDecoder`): a note-on at its token, its note-off at the next note or rest."""
        return NotesDecoder(self)

    # ---- primers and augmentation

    def parse_primer(self, text):
        """One step per item: a pitch (``C4``, ``F#4``, ``Bb3``, ``60``) is a NOTE_ON, ``-``/``_`` a NO_EVENT
        (hold), ``r``/``rest`` a NOTE_OFF; a score file or ``corpus:`` reference is read, a ``.txt`` file's text
        parsed (``mgf.music.scores.primer_source``)."""
        path, text = primer_source(text, self.read_suffixes)
        if path is not None:
            return self.read(path)
        tokens = []
        for part in re.split(r"[\s,]+", text.strip()):
            if not part:
                continue
            if part in ("-", "_"):
                tokens.append(NO_EVENT)
            elif part.lower() in ("r", "rest"):
                tokens.append(NOTE_OFF)
            else:
                pitch = self._pitch(part)
                if not self.min_pitch <= pitch <= self.max_pitch:
                    raise InputError(f"primer: {quote(part)} is MIDI pitch {pitch}, outside [{self.min_pitch}, {self.max_pitch}]")
                tokens.append(FIRST_PITCH + pitch - self.min_pitch)
        if not tokens:
            raise InputError("primer: no notes given")
        return np.asarray(tokens, dtype=np.int32)

    @staticmethod
    def _pitch(text):
        """MIDI number of ``60`` or ``C4`` (middle C; ``#`` sharp, ``b`` or ``-`` flat as in music21, repeatable)."""
        if re.fullmatch(r"[0-9]{1,3}", text):  # str.isdigit() takes '²', which int() refuses
            return int(text)
        match = _PITCH_NAME.fullmatch(text)
        if not match:
            raise InputError(f"primer: {quote(text)} is not a pitch (e.g. C4, F#4, Bb3, E-4, 60), '-' (hold) or 'r' (rest)")
        letter, accidentals, octave = match.groups()
        sharps = accidentals.count("#")
        return 12 * (int(octave) + 1) + _PITCH_CLASSES[letter.lower()] + sharps - (len(accidentals) - sharps)

    def token_pitches(self):
        """NOTE_ON tokens start their pitch; NO_EVENT, NOTE_OFF and START start none (-1)."""
        pitches = np.full(self.vocab_size, -1, dtype=np.int64)
        pitches[FIRST_PITCH:self.start_token] = np.arange(self.min_pitch, self.max_pitch + 1)
        return pitches

    def clock(self):
        """One token, one grid step of ``steps_per_quarter``, in the 4/4 at ``qpm`` that ``write`` gives (a beat: a quarter).

        NO_EVENT is a HOLD, NOTE_OFF a REST (it ends the sounding note), each pitch token a NOTE_ON; each sounds,
        then moves time one step; the start token moves none.
        """
        kinds = np.full(self.vocab_size, TokenKind.NOTE_ON, dtype=np.int8)
        kinds[[NO_EVENT, NOTE_OFF, self.start_token]] = TokenKind.HOLD, TokenKind.REST, TokenKind.OTHER
        advance = np.ones(self.vocab_size, dtype=np.int32)
        advance[self.start_token] = 0
        return Clock(kinds, self.token_pitches(), advance, 60 / (self.qpm * self.steps_per_quarter), self.steps_per_quarter, 4)

    def transpose(self, tokens, semitones):
        tokens = np.asarray(tokens, dtype=np.int32)
        pitched = (tokens >= FIRST_PITCH) & (tokens != self.start_token)
        moved = tokens[pitched] + semitones
        if moved.size and (moved.min() < FIRST_PITCH or moved.max() >= self.start_token):
            return None
        out = tokens.copy()
        out[pitched] = moved
        return out


class NotesDecoder(Decoder):
    """``to_notes`` token by token (the rules of ``Notes._segments``): each token is one step; a pitch ends the
    sounding note and starts its own, NOTE_OFF ends it, NO_EVENT holds, START is skipped."""

    def __init__(self, representation: Notes) -> None:
        super().__init__(representation)
        self.min_pitch, self.start = representation.min_pitch, representation.start_token
        self.seconds = 60.0 / (representation.qpm * representation.steps_per_quarter)  # as to_notes, to the bit
        self.step, self.sounding = 0, None

    def feed(self, token):
        token = self.check(token)
        if token == self.start:
            return []
        events = []
        if token != NO_EVENT and self.sounding is not None:
            events.append(Event(self.step * self.seconds, "note_off", self.sounding, 0))
            self.sounding = None
        if token >= FIRST_PITCH:
            self.sounding = self.min_pitch + token - FIRST_PITCH
            events.append(Event(self.step * self.seconds, "note_on", self.sounding, VELOCITY))
        self.step += 1
        return events

    def close(self):
        self.closed = True
        sounding, self.sounding = self.sounding, None
        return [] if sounding is None else [Event(self.step * self.seconds, "note_off", sounding, 0)]


@hookimpl
def register_representations(register):
    register(Notes)
