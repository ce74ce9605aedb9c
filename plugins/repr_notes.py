"""``notes``: a monophonic melody on a time grid, read and written with music21 (Magenta's MelodyRNN scheme).

Token ids, for ``P = max_pitch - min_pitch + 1`` pitches:
  0          NO_EVENT: nothing new in this step (the note or rest goes on)
  1          NOTE_OFF: a rest begins
  2 .. P+1   NOTE_ON of pitch ``min_pitch + id - 2``
  P+2        START (start of sequence; never written)
One token per grid step of ``1 / steps_per_quarter`` quarter notes.

Reading a score takes its melody by one rule: the first part in score order (the soprano of a
chorale), and of a chord its highest note; a note starting while another sounds ends that one.
Onsets and ends are rounded to the grid (a note keeps at least one step).  Leading rests are
dropped.  A melody outside [min_pitch, max_pitch] is moved by the whole octaves that leave the
fewest notes outside; a note still outside is moved by octaves alone.
"""

from __future__ import annotations

import os
import re

import numpy as np

from mgf import InputError, Representation, corpus, hookimpl
from mgf.files import atomic_path

NO_EVENT, NOTE_OFF, FIRST_PITCH_TOKEN = 0, 1, 2
SCORE_SUFFIXES = (".mxl", ".xml", ".musicxml", ".krn", ".abc", ".mid", ".midi")
NAMES = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}


class Notes(Representation):
    name = "notes"
    suffix = ".mid"
    read_suffixes = SCORE_SUFFIXES

    def __init__(self, steps_per_quarter: int = 4, min_pitch: int = 48, max_pitch: int = 84, qpm: float = 120.0) -> None:
        for key, value in (("steps_per_quarter", steps_per_quarter), ("min_pitch", min_pitch), ("max_pitch", max_pitch)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise InputError(f"notes: {key} must be an integer, got {value!r}")
        if steps_per_quarter < 1:
            raise InputError(f"notes: steps_per_quarter must be >= 1, got {steps_per_quarter}")
        if not 0 <= min_pitch <= max_pitch <= 127 or max_pitch - min_pitch < 11:
            raise InputError(f"notes: need 0 <= min_pitch <= max_pitch <= 127 spanning an octave, got {min_pitch}..{max_pitch}")
        if not isinstance(qpm, (int, float)) or not 0 < qpm <= 1000:
            raise InputError(f"notes: qpm must be in (0, 1000], got {qpm!r}")
        self.steps_per_quarter, self.min_pitch, self.max_pitch, self.qpm = steps_per_quarter, min_pitch, max_pitch, float(qpm)

    def config(self):
        return {"steps_per_quarter": self.steps_per_quarter, "min_pitch": self.min_pitch,
                "max_pitch": self.max_pitch, "qpm": self.qpm}

    @property
    def vocab_size(self):
        return FIRST_PITCH_TOKEN + self.max_pitch - self.min_pitch + 2

    @property
    def start_token(self):
        return self.vocab_size - 1

    # reading -----------------------------------------------------------------------------
    def read(self, path):
        pieces = list(self.read_pieces(path))
        return pieces[0][1]

    def read_pieces(self, path):
        from music21 import stream

        parsed, where = _parse(path)
        scores = list(parsed.scores) if isinstance(parsed, stream.Opus) else [parsed]
        found = 0
        for number, score in enumerate(scores):
            notes = self._melody(score)
            if not notes:
                continue
            found += 1
            title = score.metadata.title if score.metadata and score.metadata.title else None
            name = f"{where}#{number + 1}" if len(scores) > 1 else where
            yield (f"{name} {title}" if title and len(scores) > 1 else name), self._encode(notes)
        if not found:
            raise InputError(f"{where}: no notes in the score")

    def _melody(self, score):
        """``[(onset_step, end_step, midi_pitch)]`` of the top part, monophonic, on the grid."""
        from music21 import chord

        parts = list(score.parts) if hasattr(score, "parts") and len(score.parts) else [score]
        events = {}
        for element in parts[0].stripTies().flatten().notes:
            pitch = max(p.midi for p in element.pitches) if isinstance(element, chord.Chord) else element.pitch.midi
            onset = round(float(element.offset) * self.steps_per_quarter)
            end = max(onset + 1, round(float(element.offset + element.quarterLength) * self.steps_per_quarter))
            if onset not in events or pitch > events[onset][1]:
                events[onset] = (end, pitch)
        notes = []
        for onset in sorted(events):
            end, pitch = events[onset]
            if notes and notes[-1][1] > onset:
                notes[-1] = (notes[-1][0], onset, notes[-1][2])
            notes.append((onset, end, pitch))
        return self._into_range(notes)

    def _into_range(self, notes):
        pitches = np.array([p for _, _, p in notes])
        shifts = sorted(range(-120, 121, 12), key=abs)
        best = min(shifts, key=lambda s: int(((pitches + s < self.min_pitch) | (pitches + s > self.max_pitch)).sum()))
        moved = []
        for onset, end, pitch in notes:
            pitch += best
            while pitch < self.min_pitch:
                pitch += 12
            while pitch > self.max_pitch:
                pitch -= 12
            moved.append((onset, end, pitch))
        return moved

    def _encode(self, notes):
        first = notes[0][0]
        tokens = np.full(notes[-1][1] - first, NO_EVENT, np.int32)
        for index, (onset, end, pitch) in enumerate(notes):
            tokens[onset - first] = FIRST_PITCH_TOKEN + pitch - self.min_pitch
            following = notes[index + 1][0] if index + 1 < len(notes) else None
            if end - first < len(tokens) and (following is None or end < following):
                tokens[end - first] = NOTE_OFF
        return tokens

    # writing -----------------------------------------------------------------------------
    def decode(self, tokens):
        """``[(onset_step, end_step, midi_pitch)]`` of a token sequence (the start token is skipped)."""
        notes, current = [], None
        tokens = [int(t) for t in tokens if int(t) != self.start_token]
        for step, token in enumerate(tokens):
            if token == NO_EVENT:
                continue
            if current is not None:
                notes.append((current[0], step, current[1]))
                current = None
            if token >= FIRST_PITCH_TOKEN:
                current = (step, self.min_pitch + token - FIRST_PITCH_TOKEN)
        if current is not None:
            notes.append((current[0], len(tokens), current[1]))
        return notes

    def write(self, tokens, path, qpm=None, **options):
        from music21 import note, stream, tempo

        suffix = os.path.splitext(str(path))[1].lower()
        formats = {".mid": "midi", ".midi": "midi", ".musicxml": "musicxml", ".xml": "musicxml"}
        if suffix not in formats:
            raise InputError(f"{path}: notes writes {', '.join(formats)} files, not {suffix or 'files without a suffix'!r}")
        part = stream.Part()
        part.insert(0, tempo.MetronomeMark(number=qpm or self.qpm))
        position = 0
        for onset, end, pitch in self.decode(tokens):
            if onset > position:
                part.append(note.Rest(quarterLength=(onset - position) / self.steps_per_quarter))
            part.append(note.Note(pitch, quarterLength=(end - onset) / self.steps_per_quarter))
            position = end
        if position == 0:
            part.append(note.Rest(quarterLength=1))
        score = stream.Score([part])
        with atomic_path(path) as tmp:
            written = score.write(formats[suffix], fp=tmp)
            if os.path.abspath(str(written)) != os.path.abspath(tmp):
                os.replace(str(written), tmp)

    # primers and augmentation ------------------------------------------------------------
    def parse_primer(self, text):
        tokens = []
        for part in text.replace(",", " ").split():
            low = part.lower()
            if low in ("-", "_"):
                tokens.append(NO_EVENT)
                continue
            if low in ("r", "rest"):
                tokens.append(NOTE_OFF)
                continue
            pitch = _pitch(part)
            if pitch is None:
                raise InputError(f"primer: {part!r} is not a note (C4, F#4, Bb3, 60), '-' (hold) or 'r' (rest)")
            if not self.min_pitch <= pitch <= self.max_pitch:
                raise InputError(f"primer: {part!r} (MIDI {pitch}) is outside {self.min_pitch}..{self.max_pitch}")
            tokens.append(FIRST_PITCH_TOKEN + pitch - self.min_pitch)
        return np.asarray(tokens, dtype=np.int32)

    def transpose(self, tokens, semitones):
        tokens = np.asarray(tokens, dtype=np.int32)
        notes = (tokens >= FIRST_PITCH_TOKEN) & (tokens != self.start_token)
        moved = tokens.copy()
        moved[notes] += semitones
        if notes.any() and (moved[notes].min() < FIRST_PITCH_TOKEN or moved[notes].max() >= self.start_token):
            return None
        return moved


def _pitch(text):
    """MIDI number of ``60``, ``C4``, ``c#4``, ``Bb3``, ``E-5`` (music21's flat), or None."""
    if re.fullmatch(r"\d{1,3}", text):
        value = int(text)
        return value if value <= 127 else None
    match = re.fullmatch(r"([A-Ga-g])([#b\-]*)(-?\d)", text)
    if not match:
        return None
    letter, accidentals, octave = match.groups()
    value = (int(octave) + 1) * 12 + NAMES[letter.lower()] + accidentals.count("#") - accidentals.count("b") - accidentals.count("-")
    return value if 0 <= value <= 127 else None


def _parse(path):
    """A music21 stream for a file or ``corpus:`` reference; every failure is an InputError naming it."""
    from music21 import converter

    where = str(path)
    if corpus.is_reference(where):
        paths = corpus.resolve(where)
        if len(paths) != 1:
            raise InputError(f"{where}: names {len(paths)} files; read one work at a time (mgf.data reads collections)")
        target = paths[0]
    else:
        target = os.fspath(path)
        if not os.path.exists(target):
            raise InputError(f"{where}: no such file")
        if os.path.isdir(target):
            raise InputError(f"{where}: is a directory")
        if os.path.getsize(target) == 0:
            raise InputError(f"{where}: empty file")
    try:
        if target.lower().endswith((".mid", ".midi")):
            import mido

            mido.MidiFile(target)  # strict: music21 would read a truncated file up to the cut
        return converter.parse(target), where
    except Exception as error:
        message = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        raise InputError(f"{where}: not a readable score ({type(error).__name__}{': ' + message if message else ''})") from None


@hookimpl
def register_representations(register):
    register(Notes)
