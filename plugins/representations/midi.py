"""``midi``: polyphonic performances as events (Magenta's PerformanceRNN vocabulary), real MIDI files in and out.

Token ids (``S = max_shift_steps``, ``B = velocity_bins``; 100 and 32 by default):
  0 .. 127           NOTE_ON of pitch id
  128 .. 255         NOTE_OFF of pitch id - 128
  256 .. 256+S-1     TIME_SHIFT of id - 255 steps of ``time_shift_ms`` (10 ms .. 1 s)
  256+S .. 256+S+B-1 VELOCITY: bin id - 256 - S for the NOTE_ONs that follow, emitted when the bin changes
  256+S+B            START (start of sequence; never written)
388 event tokens and START (389) by default.

Reading a MIDI file (symusic's C++ parser, else mido; the rules in :mod:`mgf.plugins.representations.midi_read`): every
track and channel is merged; times follow the tempo map, in seconds; note-on with velocity 0
ends a note; a note-off ends the earliest sounding note of its pitch on its track and channel; the
sustain pedal (CC64 >= 64) holds released notes until it is lifted; channel 10 (drums) is left out
unless ``drums=True``; meta and sysex events carry no notes.  The vocabulary has no channels,
so a pitch sounds once: unisons merge (the later end, the higher velocity) and a later onset ends an earlier
note.  Times round to the grid; a note keeps at least one step.  Scores (MusicXML, ABC, Humdrum,
``corpus:``) are rendered through music21 at their first metronome mark, else at ``qpm``, all parts
merged, at velocity 80 unless marked; chord symbols are not played.
Silence (no note sounding) longer than ``max_silence_seconds`` is cut to that length, as a
rest of minutes carries nothing a model can learn and would cost thousands of time shifts.
Reading is bounded by the options of :data:`mgf.music.scores.LIMIT_OPTIONS` (file size, tracks, tokens
per piece, seconds of music21 parsing): beyond one, the file is refused with an ``InputError``
naming it and the option to raise, before the tokens are built.
Writing gives a format-1 file at 120 quarter notes per minute: a tempo track and one piano track.
"""

from __future__ import annotations

import os
import re
from collections import deque

import numpy as np

from mgf import Clock, Decoder, Event, InputError, Option, Representation, TokenKind, atomic_path, hookimpl, packaged_model
from mgf.plugins.representations import midi_dynamics
from mgf.plugins.representations.midi_read import read_midi_notes, read_midi_table  # noqa: F401 - read_midi_notes: imported from here too
from mgf.music.scores import (LIMIT_OPTIONS, MIDI_SUFFIXES, SCORE_SUFFIXES, bounded, limits_config, parse, primer_source, quote,
                        set_limits)

TICKS_PER_BEAT = 480
TEMPO = 500_000  # microseconds per quarter note: 120 qpm
SILENCE_SECONDS = 10.0  # the default of max_silence_seconds


class Midi(Representation):
    name = "midi"
    suffix = ".mid"
    default_bundle = packaged_model("midi.safetensors")
    read_suffixes = MIDI_SUFFIXES + tuple(s for s in SCORE_SUFFIXES if s not in MIDI_SUFFIXES)
    options = (
        Option("time_shift_ms", int, 10, "length of one time-shift step in milliseconds", low=1, high=1000),
        Option("max_shift_steps", int, 100, "time-shift tokens: 1 .. this many steps", low=1, high=1000),
        Option("velocity_bins", int, 32, "velocity tokens (MIDI velocity 1..127 in this many bins)", low=1, high=127),
        Option("drums", bool, False, "keep drum tracks (MIDI channel 10)"),
        Option("qpm", float, 120.0, "tempo for scores without one, in quarter notes per minute", low=1, high=1000),
        Option("max_note_seconds", float, None, "decoding: end a note held longer than this (null: never)",
               low=0.01, high=3600),
        Option("max_silence_seconds", float, SILENCE_SECONDS, "reading: cut silences longer than this to this length",
               low=0.001, high=86400),
        Option("dynamics", str, "none", "writing: the model's velocities as they are (none), or with metric accents and "
               "phrase swells (accents; plugins/representations/midi_dynamics.py)", choices=midi_dynamics.STYLES),
        *LIMIT_OPTIONS,
    )

    def __init__(self, time_shift_ms: int = 10, max_shift_steps: int = 100, velocity_bins: int = 32,
                 drums: bool = False, qpm: float = 120.0, max_note_seconds: float | None = None,
                 max_silence_seconds: float = SILENCE_SECONDS, dynamics: str = "none", **limits) -> None:
        """``limits``: the reading limits of :data:`mgf.music.scores.LIMIT_OPTIONS`, by name."""
        self.time_shift_ms, self.max_shift_steps, self.velocity_bins = time_shift_ms, max_shift_steps, velocity_bins
        self.drums, self.qpm = drums, float(qpm)
        self.max_note_steps = None if max_note_seconds is None else max(1, round(max_note_seconds * 1000 / time_shift_ms))
        self.max_silence_seconds = max_silence_seconds
        self.max_silence_steps = max(1, round(max_silence_seconds * 1000 / time_shift_ms))
        self.dynamics = dynamics
        set_limits(self, limits)
        self.shift0 = 256
        self.velocity0 = self.shift0 + max_shift_steps

    def config(self):
        config = {"time_shift_ms": self.time_shift_ms, "max_shift_steps": self.max_shift_steps,
                  "velocity_bins": self.velocity_bins, "drums": self.drums, "qpm": self.qpm}
        if self.max_note_steps is not None:  # absent by default, so bundles made before it keep their key
            config["max_note_seconds"] = self.max_note_steps * self.time_shift_ms / 1000
        if self.max_silence_seconds != SILENCE_SECONDS:  # the same: absent at the default
            config["max_silence_seconds"] = self.max_silence_seconds
        if self.dynamics != "none":  # the same
            config["dynamics"] = self.dynamics
        return config | limits_config(self)

    @property
    def vocab_size(self):
        return self.velocity0 + self.velocity_bins + 1

    @property
    def start_token(self):
        return self.vocab_size - 1

    # notes <-> tokens --------------------------------------------------------------------
    def velocity_bin(self, velocity):
        """The bin of a MIDI velocity, or of each in an array."""
        return np.minimum(self.velocity_bins - 1, (np.maximum(1, velocity) - 1) * self.velocity_bins // 127)

    def bin_velocity(self, index: int) -> int:
        """The middle velocity of a bin."""
        low = -(-index * 127 // self.velocity_bins) + 1
        high = -(-(index + 1) * 127 // self.velocity_bins)
        return (low + high) // 2

    def encode(self, notes, where: str = "midi") -> np.ndarray:
        """Tokens of ``[(pitch, velocity, start_seconds, end_seconds)]``; pitches outside MIDI's 0..127 are left out.

        Silences are cut to ``max_silence_seconds``; more than ``max_tokens`` tokens is an ``InputError``
        naming ``where``, raised before a long gap's time shifts are built.
        """
        step = self.time_shift_ms / 1000.0
        table = np.asarray(notes, dtype=np.float64).reshape(-1, 4)
        table = table[(table[:, 0] >= 0) & (table[:, 0] < 128)]
        pitch, velocity, start, end = table.T
        on, off = np.round(start / step), np.round(end / step)  # half to even, as round()
        if table.size and max(np.abs(on).max(), np.abs(off).max()) >= 2**62:
            raise InputError(f"{where}: a note lies more than 2^62 time steps from the start")
        on = on.astype(np.int64)
        off = np.maximum(on + 1, off.astype(np.int64))
        if self.max_note_steps is not None:
            off = np.minimum(off, on + self.max_note_steps)
        # one pitch sounds once: unisons merge (the higher velocity, the later end), a re-strike ends the note before it
        order = np.lexsort((on, pitch))
        pitch, on, velocity, off = pitch[order].astype(np.int64), on[order], velocity[order].astype(np.int64), off[order]
        first = np.ones(len(on), dtype=bool)
        first[1:] = (pitch[1:] != pitch[:-1]) | (on[1:] != on[:-1])
        heads = np.flatnonzero(first)
        pitch, on = pitch[heads], on[heads]
        velocity = np.maximum.reduceat(velocity, heads) if len(heads) else velocity
        off = np.maximum.reduceat(off, heads) if len(heads) else off
        restruck = np.append(pitch[1:] == pitch[:-1], False)
        following = np.append(on[1:], 0)
        off = np.where(restruck & (off > following), following, off)
        bins = self.velocity_bin(velocity)
        # events by (step, NOTE_OFF before NOTE_ON, token)
        when, is_on = np.concatenate([off, on]), np.repeat([False, True], len(on))
        token, bins = np.concatenate([128 + pitch, pitch]), np.concatenate([np.zeros_like(bins), bins])
        order = np.lexsort((token, is_on, when))
        when, is_on, token, bins = when[order], is_on[order], token[order], bins[order]
        sounding = np.cumsum(np.where(is_on, 1, -1)) - np.where(is_on, 1, -1)  # notes sounding before each event
        gap = np.diff(when, prepend=0)
        gap = np.where((sounding == 0) & (gap > self.max_silence_steps), self.max_silence_steps, gap)
        full, rest = np.divmod(gap, self.max_shift_steps)
        ons = np.flatnonzero(is_on)  # a VELOCITY token where a NOTE_ON's bin differs from the one before
        new_bin = np.zeros(len(when), dtype=bool)
        new_bin[ons] = np.append(True, bins[ons][1:] != bins[ons][:-1]) if len(ons) else []
        if len(full) and full.max() > self.max_tokens:  # before the shifts are made: a gap may be 2^40 steps
            raise InputError(f"{where}: more than max_tokens={self.max_tokens} tokens")
        counts = np.stack([np.maximum(full, 0), rest > 0, new_bin, np.ones(len(when), dtype=bool)], axis=1).astype(np.int64)
        if counts.sum() > self.max_tokens:
            raise InputError(f"{where}: more than max_tokens={self.max_tokens} tokens")
        values = np.stack([np.full(len(when), self.shift0 + self.max_shift_steps - 1), self.shift0 + rest - 1,
                           self.velocity0 + bins, token], axis=1)
        return np.repeat(values.ravel(), counts.ravel()).astype(np.int32)

    def to_notes(self, tokens):
        """``[(pitch, velocity, start_seconds, end_seconds)]`` of a token sequence, sorted by start.

        A NOTE_ON before any VELOCITY plays at 100.  A note that ends where it starts is dropped: it is
        inaudible, and a note-off at its own note-on's tick would leave the note hanging in the file.
        Notes still on at the end stop there (one step after their start at the earliest).  With
        ``max_note_seconds`` a note no NOTE_OFF ends in time stops after that long (as note_seq's
        ``max_note_duration``): a model that forgets a note-off does not leave it droning.
        """
        tokens = np.asarray(tokens)
        bad = tokens[(tokens < 0) | (tokens >= self.vocab_size)]
        if bad.size:
            raise InputError(f"midi: token id {int(bad[0])} is outside [0, {self.vocab_size})")
        step = self.time_shift_ms / 1000.0
        now, velocity, sounding, notes = 0, 100, {}, []
        for token in tokens.tolist():
            if token < 256 and token % 128 in sounding:  # a NOTE_OFF, or a NOTE_ON re-striking its pitch
                pitch = token % 128
                vel, start = sounding.pop(pitch)
                if now > start:
                    notes.append((pitch, vel, start * step, self._end(start, now) * step))
            if token < 128:
                sounding[token] = (velocity, now)
            elif 256 <= token < self.velocity0:
                now += token - self.shift0 + 1
            elif self.velocity0 <= token < self.start_token:
                velocity = self.bin_velocity(token - self.velocity0)
        for pitch, (vel, start) in sounding.items():
            notes.append((pitch, vel, start * step, self._end(start, max(now, start + 1)) * step))
        return sorted(notes, key=lambda n: (n[2], n[0]))

    def _end(self, start: int, end: int) -> int:
        return end if self.max_note_steps is None else min(end, start + self.max_note_steps)

    def decoder(self):
        """Exact and O(1) per token (:class:`MidiDecoder`): the events of ``to_notes`` as the tokens fix them."""
        return MidiDecoder(self)

    # files -------------------------------------------------------------------------------
    def read(self, path):
        return next(iter(self.read_pieces(path)))[1]

    def read_pieces(self, path):
        where = str(path)
        if where.lower().endswith(MIDI_SUFFIXES):
            notes = read_midi_table(where, drums=self.drums, max_file_mb=self.max_file_mb, max_tracks=self.max_tracks)
            if not len(notes):
                raise InputError(f"{where}: no notes in the MIDI file")
            yield where, self.encode(notes, where)
            return
        yield from bounded(self.max_read_seconds, where, self._score_pieces, path)

    def _score_pieces(self, path):
        from music21 import stream

        parsed, where = parse(path, self.max_file_mb, self.max_tracks)
        scores = list(parsed.scores) if isinstance(parsed, stream.Opus) else [parsed]
        pieces = []
        for number, score in enumerate(scores):
            try:
                notes = self._render(score)
            except Exception as error:  # music21 fails in its own ways on odd scores
                raise InputError(f"{where}: cannot render the score ({type(error).__name__}: {str(error)[:200]})") from None
            if notes:
                name = f"{where}#{number + 1}" if len(scores) > 1 else where
                pieces.append((name, self.encode(notes, name)))
        if not pieces:
            raise InputError(f"{where}: no notes in the score")
        return pieces

    def _render(self, score):
        """Notes of every part of a music21 score, in seconds at its first metronome mark (else ``qpm``)."""
        from music21 import harmony, tempo

        marks = list(score.recurse().getElementsByClass(tempo.MetronomeMark))
        qpm = marks[0].getQuarterBPM() if marks and marks[0].getQuarterBPM() else self.qpm
        seconds = 60.0 / qpm
        parts = list(score.parts) if hasattr(score, "parts") and len(score.parts) else [score]
        notes = []
        for part in parts:
            for element in part.stripTies().flatten().notes:
                if isinstance(element, harmony.Harmony):  # a chord symbol names harmony, it is not played
                    continue
                velocity = element.volume.velocity if element.volume.velocity is not None else 80
                start = float(element.offset) * seconds
                end = start + float(element.quarterLength) * seconds
                for pitch in element.pitches:
                    notes.append((pitch.midi, int(velocity), start, end))
        return sorted(notes, key=lambda n: (n[2], n[0]))

    def write(self, tokens, path, **options):
        import mido

        suffix = os.path.splitext(str(path))[1].lower()
        if suffix not in MIDI_SUFFIXES:
            raise InputError(f"{path}: midi writes .mid or .midi files, not {suffix or 'files without a suffix'!r}")
        ticks_per_second = TICKS_PER_BEAT * 1_000_000 / TEMPO
        events = []
        for pitch, velocity, start, end in midi_dynamics.shape(self.to_notes(tokens), self.dynamics):
            events.append((round(end * ticks_per_second), 0, pitch, 0))
            events.append((round(start * ticks_per_second), 1, pitch, velocity))
        events.sort()
        midi = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
        midi.tracks.append(mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=TEMPO, time=0),
                                           mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0)]))
        track = mido.MidiTrack([mido.MetaMessage("track_name", name="mgf", time=0),
                                mido.Message("program_change", program=0, channel=0, time=0)])
        last = 0
        for tick, is_on, pitch, velocity in events:
            kind = "note_on" if is_on else "note_off"
            track.append(mido.Message(kind, note=pitch, velocity=velocity if is_on else 0, channel=0, time=tick - last))
            last = tick
        midi.tracks.append(track)
        with atomic_path(path) as tmp:
            midi.save(tmp)

    # primers and augmentation ------------------------------------------------------------
    def token_name(self, token: int) -> str:
        if token < 128:
            return f"NOTE_ON_{token}"
        if token < 256:
            return f"NOTE_OFF_{token - 128}"
        if token < self.velocity0:
            return f"TIME_SHIFT_{token - self.shift0 + 1}"
        if token < self.start_token:
            return f"VELOCITY_{token - self.velocity0}"
        return "START"

    def parse_primer(self, text):
        """Events by name (``NOTE_ON_60 TIME_SHIFT_50``) or token ids, or a file to read (see ``mgf.music.scores.primer_source``)."""
        path, text = primer_source(text, self.read_suffixes)
        if path is not None:
            return self.read(path)
        limits = {"NOTE_ON": (0, 127, 0), "NOTE_OFF": (0, 127, 128), "TIME_SHIFT": (1, self.max_shift_steps, self.shift0 - 1),
                  "VELOCITY": (0, self.velocity_bins - 1, self.velocity0)}
        tokens = []
        for part in text.replace(",", " ").split():
            match = re.fullmatch(r"(NOTE_ON|NOTE_OFF|TIME_SHIFT|VELOCITY)_([0-9]+)", part.upper())
            if match:  # [0-9], not \d or str.isdigit(), which take digits that int() refuses ('²')
                low, high, offset = limits[match.group(1)]
                value = int(match.group(2)) if len(match.group(2)) <= 9 else high + 1
                if not low <= value <= high:
                    raise InputError(f"primer: {quote(part)} is out of range ({low}..{high})")
                tokens.append(offset + value)
            elif re.fullmatch(r"[0-9]{1,9}", part) and int(part) < self.start_token:
                tokens.append(int(part))
            else:
                raise InputError(f"primer: {quote(part)} is not an event (NOTE_ON_60, NOTE_OFF_60, TIME_SHIFT_50, VELOCITY_20) or token id")
        return np.asarray(tokens, dtype=np.int32)

    def token_pitches(self):
        """NOTE_ON tokens start their pitch; NOTE_OFF, TIME_SHIFT, VELOCITY and START start none (-1)."""
        pitches = np.full(self.vocab_size, -1, dtype=np.int64)
        pitches[:128] = np.arange(128)
        return pitches

    def clock(self):
        """NOTE_ON/NOTE_OFF of their pitch, TIME_SHIFT_n moving ``n`` steps, VELOCITY; in the 4/4 at 120 qpm ``write`` gives.

        A beat (a quarter note) is 500 ms: ``500 / time_shift_ms`` steps, or the nearest whole number (halves up) when
        that does not divide; then beats and bars drift from the written file's by the difference, while steps and
        seconds stay exact.
        """
        kinds = np.full(self.vocab_size, TokenKind.OTHER, dtype=np.int8)
        kinds[:128], kinds[128:256] = TokenKind.NOTE_ON, TokenKind.NOTE_OFF
        kinds[self.shift0:self.velocity0], kinds[self.velocity0:self.start_token] = TokenKind.TIME_SHIFT, TokenKind.VELOCITY
        pitches = np.full(self.vocab_size, -1)
        pitches[:256] = np.arange(256) % 128
        advance = np.zeros(self.vocab_size, dtype=np.int32)
        advance[self.shift0:self.velocity0] = np.arange(1, self.max_shift_steps + 1)
        beat_ms = TEMPO // 1000
        steps_per_beat = max(1, (beat_ms + self.time_shift_ms // 2) // self.time_shift_ms)
        return Clock(kinds, pitches, advance, self.time_shift_ms / 1000, steps_per_beat, 4)

    def transpose(self, tokens, semitones):
        tokens = np.asarray(tokens, dtype=np.int32)
        pitched = tokens < 256
        pitch = tokens[pitched] % 128 + semitones
        if pitch.size and (pitch.min() < 0 or pitch.max() > 127):
            return None
        moved = tokens.copy()
        moved[pitched] = (tokens[pitched] // 128) * 128 + pitch
        return moved


class MidiDecoder(Decoder):
    """``to_notes`` token by token, by its rules: a NOTE_OFF or a re-strike ends its pitch's note, a note that ends
    where it starts is dropped, ``max_note_seconds`` cuts a note that no NOTE_OFF ended in time.

    A note-on is given when time moves past it (until then a NOTE_OFF at the same step would drop the note), a
    cut note's note-off when time reaches the cut: events come in time order, note-offs first at equal times.
    O(1) per token, amortised: the cuts wait in a queue in the order of their notes' starts.
    """

    def __init__(self, representation: Midi) -> None:
        super().__init__(representation)
        self.representation = representation
        self.shift0, self.velocity0, self.start = representation.shift0, representation.velocity0, representation.start_token
        self.seconds = representation.time_shift_ms / 1000.0  # as to_notes, to the bit
        self.now, self.velocity = 0, 100
        self.sounding: dict[int, list] = {}  # pitch -> [velocity, start step, note-off given at its cut]
        self.fresh: dict[int, None] = {}  # pitches started at step `now`, their note-ons not given yet
        self.cuts: deque[tuple[int, int, int]] = deque()  # (step, pitch, start) where max_note_seconds ends a note

    def feed(self, token):
        token = self.check(token)
        events = []
        if token < 256 and token % 128 in self.sounding:  # a NOTE_OFF, or a NOTE_ON re-striking its pitch
            pitch = token % 128
            _, start, cut = self.sounding.pop(pitch)
            if start == self.now:
                del self.fresh[pitch]  # it would end where it starts: dropped
            elif not cut:
                events.append(Event(self.now * self.seconds, "note_off", pitch, 0))
        if token < 128:
            self.sounding[token] = [self.velocity, self.now, False]
            self.fresh[token] = None
            if self.representation.max_note_steps is not None:
                self.cuts.append((self.now + self.representation.max_note_steps, token, self.now))
        elif self.shift0 <= token < self.velocity0:
            events += self._advance(token - self.shift0 + 1)
        elif self.velocity0 <= token < self.start:
            self.velocity = self.representation.bin_velocity(token - self.velocity0)
        return events

    def _advance(self, steps: int) -> list[Event]:
        """The note-ons at ``now``, then ``now`` moved on and the note-offs of the cuts it passes."""
        events = [Event(self.now * self.seconds, "note_on", pitch, self.sounding[pitch][0]) for pitch in sorted(self.fresh)]
        self.fresh.clear()
        self.now += steps
        while self.cuts and self.cuts[0][0] <= self.now:
            step, pitch, start = self.cuts.popleft()
            note = self.sounding.get(pitch)
            if note is not None and note[1] == start and not note[2]:
                note[2] = True
                events.append(Event(step * self.seconds, "note_off", pitch, 0))
        return events

    def close(self):
        self.closed = True
        events = []
        for pitch, (velocity, start, cut) in self.sounding.items():
            if start == self.now:
                events.append(Event(start * self.seconds, "note_on", pitch, velocity))
            if not cut:
                end = self.representation._end(start, max(self.now, start + 1))
                events.append(Event(end * self.seconds, "note_off", pitch, 0))
        self.sounding.clear()
        self.fresh.clear()
        self.cuts.clear()
        return sorted(events)


@hookimpl
def register_representations(register):
    register(Midi)
