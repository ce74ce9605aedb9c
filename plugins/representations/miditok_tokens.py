"""``miditok``: MidiTok's tokenizers (REMI, TSD, MIDI-Like, Structured, and BPE vocabularies trained on them) as a representation.

Needs ``pip install 'mgf-music[miditok]'``; MidiTok (and symusic, which it reads MIDI with) is
imported on first use, so that ``import mgf`` and ``mgf plugins`` work without it.

Config: ``tokenizer=NAME`` builds MidiTok's tokenizer of that name with MidiTok's default
``TokenizerConfig``; ``params=PATH`` loads a tokenizer saved with MidiTok's ``save`` (or
``save_pretrained``: the ``tokenizer.json`` it writes), trained BPE/Unigram/WordPiece
vocabularies included.  The file's JSON text, not its path, is what ``config()`` returns, so that
a bundle carries its tokenizer and a cache key changes with the file.

Token ids are MidiTok's own: ``vocab_size`` is ``len(tokenizer)`` and its ``BOS`` token is the
start token (a tokenizer without ``BOS`` gets one more id for it).  ``read`` ends every piece with
``EOS`` (when the tokenizer has it), so that a model learns where music ends; ``write`` and
``to_notes`` stop at the first ``EOS`` and MidiTok's decoder passes over ``PAD``, ``MASK`` and
other special tokens.

Reading: a MIDI file is checked as every mgf representation checks one (size, tracks, delta
times, length: :func:`mgf.music.scores.read_midi`) before symusic parses it; scores (MusicXML, ABC,
Humdrum, ``corpus:``) are rendered to MIDI by music21 within ``max_read_seconds``.  A tokenizer
without programs (``use_programs``, MidiTok's default) reads one stream, so every track but
the drums is merged into one; one with programs keeps the tracks in its own tokens.  Writing
gives what MidiTok's ``decode`` gives, as a ``.mid`` file.

Pitch: ``Pitch_N`` and ``NoteOn_N`` tokens start MIDI pitch N (``token_pitches``), so that pitch
constraints work and ``transpose`` moves them.  A tokenizer with pitch intervals, and a trained
vocabulary in which one token holds several notes, has no token pitches (pitch constraints then
refuse it) and does not transpose.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re

import numpy as np

from mgf import Clock, InputError, Option, Representation, TokenKind, UsageError, atomic_path, hookimpl
from mgf.music.scores import (LIMIT_OPTIONS, MIDI_SUFFIXES, SCORE_SUFFIXES, bounded, limits_config, midi_quarters, parse, primer_source,
                        quote, read_midi, set_limits)

TOKENIZERS = ("REMI", "TSD", "MIDILike", "Structured")
INSTALL = "pip install 'mgf-music[miditok]'"
#: kinds of token that start a note of the pitch they name (MidiTok decodes a drum hit as a note of its key number
#: in whichever track is current), and those that name a pitch without starting a note
PITCH_KINDS, OTHER_PITCH_KINDS = ("Pitch", "NoteOn", "PitchDrum", "DrumOn"), ("NoteOff", "DrumOff")
#: tokens of drums, which a transposition must not move
DRUM_KINDS = ("PitchDrum", "DrumOn", "DrumOff")
#: the keys of a MidiTok params file that mgf passes on (others would become attributes of the tokenizer)
PARAMS_KEYS = ("config", "tokenization", "miditok_version", "symusic_version", "hf_tokenizers_version",
               "_vocab_base", "_model", "_vocab_base_byte_to_token")
#: the largest params text: it is stored in the bundle, whose metadata values stay under 1 MiB
MAX_PARAMS_BYTES = 900_000


class MidiTok(Representation):
    name = "miditok"
    suffix = ".mid"
    read_suffixes = MIDI_SUFFIXES + tuple(s for s in SCORE_SUFFIXES if s not in MIDI_SUFFIXES)
    options = (
        Option("tokenizer", str, None, "MidiTok tokenizer, with MidiTok's default config (null: REMI)", choices=TOKENIZERS),
        Option("params", str, None, "a tokenizer saved by MidiTok (tokenizer.save / save_pretrained): its JSON file, or the JSON text"),
        *LIMIT_OPTIONS,
    )

    def __init__(self, tokenizer: str | None = None, params: str | None = None, **limits) -> None:
        """``limits``: the reading limits of :data:`mgf.music.scores.LIMIT_OPTIONS`, by name."""
        if importlib.util.find_spec("miditok") is None:
            raise UsageError(f"representation 'miditok' needs MidiTok: {INSTALL}")
        if tokenizer is not None and params is not None:
            raise UsageError("representation 'miditok': give tokenizer or params, not both")
        self.params = None if params is None else _params_text(params)
        self.tokenizer_name = json.loads(self.params)["tokenization"] if self.params else tokenizer or "REMI"
        set_limits(self, limits)
        self._built: _Vocabulary | None = None

    def config(self):
        own = {"params": self.params} if self.params else {"tokenizer": self.tokenizer_name}
        return own | limits_config(self)

    def __repr__(self) -> str:  # the params text runs to hundreds of kilobytes
        given = f"params=<{self.tokenizer_name}, {len(self.params)} bytes>" if self.params else f"tokenizer={self.tokenizer_name!r}"
        return f"MidiTok({given})"

    # the MidiTok tokenizer, built on first use -----------------------------------------------
    @property
    def tokenizer(self):
        """The MidiTok tokenizer (imports MidiTok the first time)."""
        return self._vocabulary.tokenizer

    @property
    def _vocabulary(self) -> _Vocabulary:
        if self._built is None:
            self._built = _Vocabulary(_build(self.tokenizer_name, self.params))
        return self._built

    @property
    def vocab_size(self):
        return self._vocabulary.size

    @property
    def start_token(self):
        return self._vocabulary.start

    # reading ------------------------------------------------------------------------------
    def read(self, path):
        return next(iter(self.read_pieces(path)))[1]

    def read_pieces(self, path):
        where = str(path)
        if where.lower().endswith(MIDI_SUFFIXES):
            yield where, self.encode(_midi_score(where, self.max_file_mb, self.max_tracks, self.max_tokens), where)
            return
        scores = bounded(self.max_read_seconds, where, _score_midis, path, self.max_file_mb, self.max_tracks)
        import symusic

        for name, data in scores:
            yield name, self.encode(symusic.Score.from_midi(data), name)

    def encode(self, score, where: str = "miditok") -> np.ndarray:
        """The ids of a ``symusic.Score``, ending with EOS; every track but drums merged unless the tokenizer keeps programs."""
        from miditok.utils import merge_tracks

        tokenizer, end = self.tokenizer, self._vocabulary.end
        if not tokenizer.one_token_stream:
            tracks = [track for track in score.tracks if not track.is_drum and len(track.notes)]
            if not tracks:
                raise InputError(f"{where}: no notes in it (drums are left out)")
            score.tracks = [merge_tracks(tracks)]
        elif not score.note_num():
            raise InputError(f"{where}: no notes in it")
        try:
            sequence = tokenizer.encode(score)
        except Exception as error:  # MidiTok's own checks (time signatures outside its vocabulary, ...)
            raise InputError(f"{where}: MidiTok cannot tokenize it ({type(error).__name__}: {_first_line(error)})") from None
        ids = (sequence if tokenizer.one_token_stream else sequence[0]).ids
        if not ids:
            raise InputError(f"{where}: no notes in it within the tokenizer's pitch range")
        if len(ids) + 1 > self.max_tokens:
            raise InputError(f"{where}: more than max_tokens={self.max_tokens} tokens")
        return np.asarray(list(ids) + ([end] if end is not None else []), dtype=np.int32)

    # writing ------------------------------------------------------------------------------
    def decode(self, tokens):
        """The ``symusic.Score`` MidiTok decodes from ``tokens`` (start tokens skipped, cut at the first EOS)."""
        tokens = np.asarray(tokens)
        vocab = self.vocab_size
        bad = tokens[(tokens < 0) | (tokens >= vocab)]
        if bad.size:
            raise InputError(f"miditok: token id {int(bad[0])} is outside [0, {vocab})")
        start, end = self._vocabulary.start, self._vocabulary.end
        ids = [int(t) for t in tokens if t != start]
        if end is not None and end in ids:
            ids = ids[:ids.index(end)]
        from miditok import TokSequence

        tokenizer = self.tokenizer
        sequence = TokSequence(ids=ids, are_ids_encoded=tokenizer.is_trained)
        return tokenizer.decode(sequence if tokenizer.one_token_stream else [sequence])

    def to_notes(self, tokens):
        """``[(pitch, velocity, start_seconds, end_seconds)]`` of MidiTok's decoding, every track's (a drum hit at its key number)."""
        notes = [(n.pitch, max(1, n.velocity), float(n.time), float(n.time + n.duration))
                 for track in self.decode(tokens).to("second").tracks for n in track.notes if n.duration > 0]
        return sorted(notes, key=lambda n: (n[2], n[0]))

    def write(self, tokens, path, **options):
        suffix = os.path.splitext(str(path))[1].lower()
        if suffix not in MIDI_SUFFIXES:
            raise InputError(f"{path}: miditok writes .mid or .midi files, not {suffix or 'files without a suffix'!r}")
        score = self.decode(tokens)
        with atomic_path(path) as tmp:
            score.dump_midi(str(tmp))

    # primers, pitch, transposition ------------------------------------------------------------
    def parse_primer(self, text):
        """MidiTok token names (``Bar_None Position_0 Pitch_60``) or ids, or a file to read (see ``mgf.music.scores.primer_source``)."""
        path, text = primer_source(text, self.read_suffixes)
        if path is not None:
            return self.read(path)
        vocab, start = self.tokenizer.vocab, self.start_token
        tokens = []
        for part in text.replace(",", " ").split():
            if part in vocab and vocab[part] != start:
                tokens.append(vocab[part])
            elif re.fullmatch(r"[0-9]{1,9}", part) and int(part) < self.vocab_size and int(part) != start:
                tokens.append(int(part))
            else:
                raise InputError(f"primer: {quote(part)} is not a token of the {self.tokenizer_name} tokenizer (Pitch_60, ...) "
                                 "or a token id")
        return np.asarray(tokens, dtype=np.int32)

    def token_pitches(self):
        """``Pitch_N`` and ``NoteOn_N`` start pitch N; None with pitch intervals or tokens that hold several notes."""
        pitches = self._vocabulary.pitches
        return None if pitches is None else pitches.copy()

    def clock(self):
        """MidiTok's grid (``time_division`` ticks per quarter note) at its 120 qpm in 4/4; None where a token alone
        cannot say where it falls.

        None for a learned vocabulary (one token may hold several notes and shifts), pitch intervals (the pitch of
        a note depends on an earlier one), rests (a ``Rest`` starts where the last note ended) and numbered bars
        (``Bar_N``, which MidiTok's decoder does not move time for).  A ``TimeSig`` token of another signature moves
        the bars (x/4) or the grid (x/8) of what follows, and a ``Tempo`` token the seconds: forbid them
        (``mgf.Forbid``) where a rule keys on bars or seconds.
        """
        return _clock(self._vocabulary)

    def transpose(self, tokens, semitones):
        """Pitches moved; None when one leaves the tokenizer's range, or for music with drums (a hit is no pitch to move)."""
        return self._vocabulary.transpose(np.asarray(tokens, dtype=np.int64), semitones)


class _Vocabulary:
    """A tokenizer's ids: its start and end tokens, each id's pitch, and which ids move under transposition."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        base = tokenizer.vocab
        count = len(tokenizer)
        self.start = base.get("BOS_None", count)
        self.end = base.get("EOS_None")
        self.size = count + (self.start == count)
        tokens = [_base_tokens(tokenizer, i) for i in range(count)] + [[]] * (self.size - count)
        pitched = [[int(t.split("_")[1]) for t in parts if t.split("_")[0] in PITCH_KINDS] for parts in tokens]
        config = tokenizer.config
        intervals = config.use_pitch_intervals
        self.pitches = None
        if not intervals and all(len(p) <= 1 for p in pitched):
            self.pitches = np.asarray([p[0] if p else -1 for p in pitched], dtype=np.int64)
        # a trained vocabulary's merged tokens and a chord named by its root would not move with their notes
        self.transposable = not (intervals or tokenizer.is_trained or (config.use_chords and config.chord_tokens_with_root_note))
        self.drums = np.asarray([any(t.partition("_")[0] in DRUM_KINDS or t == "Program_-1" for t in parts) for parts in tokens])
        self.shifts: dict[int, np.ndarray] = {}

    def transpose(self, tokens: np.ndarray, semitones: int) -> np.ndarray | None:
        if not self.transposable:
            return None
        if semitones not in self.shifts:
            self.shifts[semitones] = self._shift_table(semitones)
        moved = self.shifts[semitones][tokens]
        return None if (moved < 0).any() or self.drums[tokens].any() else moved.astype(np.int32)

    def _shift_table(self, semitones: int) -> np.ndarray:
        """Each id's id ``semitones`` higher (-1 where that pitch has no token); ids without pitch map to themselves."""
        vocab = self.tokenizer.vocab
        table = np.arange(self.size, dtype=np.int64)
        for token, index in vocab.items():
            kind, _, value = token.partition("_")
            if kind in PITCH_KINDS + OTHER_PITCH_KINDS:
                table[index] = vocab.get(f"{kind}_{int(value) + semitones}", -1)
        return table


def _clock(vocabulary: _Vocabulary) -> Clock | None:
    """The clock of a tokenizer's ids (see :meth:`MidiTok.clock`)."""
    from miditok.constants import TEMPO

    tokenizer = vocabulary.tokenizer
    config = tokenizer.config
    if tokenizer.is_trained or config.use_pitch_intervals or config.use_rests:
        return None
    names = [tokenizer[index] for index in range(len(tokenizer))]
    if any(re.fullmatch(r"Bar_[0-9]+", name) for name in names):
        return None
    per_quarter, finest = tokenizer.time_division, max(config.beat_res.values())
    kinds = np.full(vocabulary.size, TokenKind.OTHER, dtype=np.int8)
    pitches = np.full(vocabulary.size, -1)
    advance = np.zeros(vocabulary.size, dtype=np.int32)
    for index, name in enumerate(names):
        kind, _, value = name.partition("_")
        if kind in PITCH_KINDS + OTHER_PITCH_KINDS:
            kinds[index] = TokenKind.NOTE_ON if kind in PITCH_KINDS else TokenKind.NOTE_OFF
            pitches[index] = int(value)
        elif kind == "TimeShift":  # beats.positions.resolution
            beats, positions, resolution = map(int, value.split("."))
            kinds[index], advance[index] = TokenKind.TIME_SHIFT, (beats * resolution + positions) * per_quarter // resolution
        elif kind == "Position":
            kinds[index], advance[index] = TokenKind.POSITION, int(value) * per_quarter // finest
        elif kind == "Velocity":
            kinds[index] = TokenKind.VELOCITY
        elif name == "Bar_None":
            kinds[index] = TokenKind.BAR
    return Clock(kinds, pitches, advance, 60 / (TEMPO * per_quarter), per_quarter, 4)


def _params_text(params: str) -> str:
    """The JSON text of a params file (or of ``params`` itself, when it is JSON), compact; ``InputError`` when unusable."""
    where = "params"
    text = params
    if not params.lstrip().startswith("{"):
        where = f"params {params}"
        try:
            if os.path.getsize(params) > 100 * MAX_PARAMS_BYTES:
                raise InputError(f"{where}: larger than {100 * MAX_PARAMS_BYTES // 10**6} MB; not a tokenizer file")
            with open(params, encoding="utf-8") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError) as error:
            raise InputError(f"{where}: cannot read it ({getattr(error, 'strerror', None) or error})") from None
    try:
        loaded = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise InputError(f"{where}: not a MidiTok tokenizer file (not JSON: {_first_line(error)})") from None
    if not isinstance(loaded, dict) or not isinstance(loaded.get("config"), dict):
        raise InputError(f"{where}: not a MidiTok tokenizer file (no 'config'; save one with tokenizer.save(PATH))")
    if loaded.get("tokenization") not in TOKENIZERS:
        raise InputError(f"{where}: tokenizer {loaded.get('tokenization')!r} is not one mgf reads "
                         f"({', '.join(TOKENIZERS)}: one token stream each)")
    compact = json.dumps({k: loaded[k] for k in PARAMS_KEYS if k in loaded}, separators=(",", ":"), sort_keys=True)
    if len(compact.encode("utf-8")) > MAX_PARAMS_BYTES:
        raise InputError(f"{where}: {len(compact) // 1000} kB of tokenizer, more than the {MAX_PARAMS_BYTES // 1000} kB "
                         "a bundle can carry (a smaller trained vocabulary fits)")
    return compact


def _build(name: str, params: str | None):
    """MidiTok's tokenizer ``name`` with its default config, or the one ``params`` describes; ``InputError`` if MidiTok refuses."""
    try:
        import miditok
    except ImportError as error:
        raise UsageError(f"representation 'miditok' needs MidiTok ({_first_line(error)}): {INSTALL}") from None
    cls = getattr(miditok, name)
    if params is None:
        return cls()
    import tempfile

    with tempfile.TemporaryDirectory(prefix="mgf-miditok-") as folder:  # MidiTok loads params from a file only
        path = os.path.join(folder, "tokenizer.json")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(params)
        try:
            return cls(params=path)
        except Exception as error:
            raise InputError(f"params: MidiTok cannot load this {name} tokenizer ({type(error).__name__}: "
                             f"{_first_line(error)})") from None


def _base_tokens(tokenizer, index: int) -> list[str]:
    """The base tokens (``Pitch_60``, ...) of one id: itself, or those a trained vocabulary merged into it."""
    if not tokenizer.is_trained or index < len(tokenizer.vocab):
        return [tokenizer[index]]
    from miditok import TokSequence

    sequence = TokSequence(ids=[index], are_ids_encoded=True)
    tokenizer.decode_token_ids(sequence)
    return list(sequence.tokens)


def _midi_score(path: str, max_file_mb: float, max_tracks: int, max_tokens: int):
    """The ``symusic.Score`` of a MIDI file, after mgf's checks; a piece too long for ``max_tokens`` is refused unparsed."""
    midi = read_midi(path, max_file_mb, max_tracks)
    if midi_quarters(midi) > max_tokens:  # a bar or time shift every few beats at least: cheaper than MidiTok's refusal
        raise InputError(f"{path}: lasts {midi_quarters(midi):.0f} quarter notes, more than max_tokens allows ({max_tokens})")
    import symusic

    try:
        return symusic.Score.from_file(path)
    except Exception as error:
        raise InputError(f"{path}: not a readable MIDI file ({_first_line(error)})") from None


def _score_midis(path, max_file_mb: float, max_tracks: int) -> list[tuple[str, bytes]]:
    """``[(name, MIDI bytes)]`` of every score in a file or ``corpus:`` reference, rendered by music21."""
    from music21 import stream
    from music21.midi import translate

    parsed, where = parse(path, max_file_mb, max_tracks)
    scores = list(parsed.scores) if isinstance(parsed, stream.Opus) else [parsed]
    rendered = []
    for number, score in enumerate(scores):
        try:
            data = translate.streamToMidiFile(score).writestr()
        except Exception as error:  # music21 fails in its own ways on odd scores
            raise InputError(f"{where}: cannot render the score ({type(error).__name__}: {_first_line(error)})") from None
        rendered.append(((f"{where}#{number + 1}" if len(scores) > 1 else where), data))
    return rendered


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


@hookimpl
def register_representations(register):
    register(MidiTok)
