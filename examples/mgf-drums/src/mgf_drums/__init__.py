"""``drums``: a drum pattern as one token per grid step, the set of drums struck on that step (as Magenta's DrumsRNN).

Nine drum classes, each a group of General MIDI percussion keys (channel 10); token ``t`` strikes
class ``k`` when bit ``k`` of ``t`` is set, so ``0`` is a silent step and ``511`` all nine at once;
``512`` is the start token.  Reading keeps the note-ons of MIDI channel 10, on the grid of the
file's beats (the tempo does not matter), from the file's start to the end of its longest track.
Writing strikes the first key of each class, one track on channel 10, and ends the track where
the pattern ends, so silent steps at the end survive a round trip.
"""

import os

import mgf
import numpy as np

CLASSES = (  # (name, General MIDI keys; the first is written)
    ("kick", (36, 35)),
    ("snare", (38, 27, 28, 31, 32, 33, 34, 37, 39, 40, 56, 65, 66, 75, 85)),
    ("hat", (42, 44, 54, 68, 69, 70, 71, 73, 78, 80, 22)),
    ("open-hat", (46, 67, 72, 74, 79, 81, 26)),
    ("low-tom", (45, 29, 41, 43, 61, 64, 84)),
    ("mid-tom", (48, 47, 60, 63, 77, 86, 87)),
    ("high-tom", (50, 30, 62, 76, 83)),
    ("crash", (49, 52, 55, 57, 58)),
    ("ride", (51, 53, 59, 82)),
)
CLASS_OF_KEY = {key: k for k, (_, keys) in enumerate(CLASSES) for key in keys}
NAMES = {name: k for k, (name, _) in enumerate(CLASSES)}
DRUM_CHANNEL = 9
TICKS_PER_BEAT = 480


class Drums(mgf.Representation):
    name = "drums"
    suffix = ".mid"
    read_suffixes = (".mid", ".midi")
    options = (
        mgf.Option("steps_per_quarter", int, 4, "grid steps per quarter note (4: sixteenths)", low=1, high=32),
        mgf.Option("qpm", float, 120.0, "tempo of written files, in quarter notes per minute", low=1, high=1000),
        mgf.Option("velocity", int, 100, "velocity of written hits", low=1, high=127),
    )

    def __init__(self, steps_per_quarter=4, qpm=120.0, velocity=100):
        self.steps_per_quarter, self.qpm, self.velocity = steps_per_quarter, float(qpm), velocity

    def config(self):
        return {"steps_per_quarter": self.steps_per_quarter, "qpm": self.qpm, "velocity": self.velocity}

    @property
    def vocab_size(self):
        return 2 ** len(CLASSES) + 1

    @property
    def start_token(self):
        return 2 ** len(CLASSES)

    def read(self, path):
        import mido

        if not os.path.isfile(path):
            raise mgf.InputError(f"{path}: no such file")
        try:
            midi = mido.MidiFile(os.fspath(path))
        except Exception as error:  # mido raises many kinds on a damaged file
            raise mgf.InputError(f"{path}: not a readable MIDI file ({type(error).__name__})") from None
        if midi.type == 2 or not 0 < midi.ticks_per_beat < 0x8000:
            raise mgf.InputError(f"{path}: only MIDI files of type 0 or 1 with ticks per beat are read")
        per_step = midi.ticks_per_beat / self.steps_per_quarter
        hits, length = [], 0
        for track in midi.tracks:
            tick = 0
            for message in track:
                tick += message.time
                if message.type == "note_on" and message.velocity > 0 and message.channel == DRUM_CHANNEL \
                        and message.note in CLASS_OF_KEY:
                    hits.append((round(tick / per_step), CLASS_OF_KEY[message.note]))
            length = max(length, round(tick / per_step))
        if not hits:
            raise mgf.InputError(f"{path}: no General MIDI drum hits on channel 10")
        tokens = np.zeros(max(length, max(step for step, _ in hits) + 1), np.int32)
        for step, k in hits:
            tokens[step] |= 1 << k
        return tokens

    def write(self, tokens, path, **options):
        import mido

        tokens = np.asarray(tokens)
        if not str(path).lower().endswith(self.read_suffixes):
            raise mgf.InputError(f"{path}: drums writes .mid or .midi files")
        if tokens.ndim != 1 or tokens.dtype.kind not in "iu" or ((tokens < 0) | (tokens >= self.vocab_size)).any():
            raise mgf.InputError(f"{path}: tokens must be a 1-D sequence of ids in [0, {self.vocab_size})")
        steps = tokens[tokens != self.start_token]
        per_step = TICKS_PER_BEAT // self.steps_per_quarter if TICKS_PER_BEAT % self.steps_per_quarter == 0 else None
        ticks_per_beat = TICKS_PER_BEAT if per_step else 96 * self.steps_per_quarter
        per_step = per_step or 96
        track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(self.qpm), time=0)])
        now = 0
        for step, token in enumerate(steps.tolist()):
            keys = [CLASSES[k][1][0] for k in range(len(CLASSES)) if token >> k & 1]
            for i, key in enumerate(keys):
                track.append(mido.Message("note_on", channel=DRUM_CHANNEL, note=key, velocity=self.velocity,
                                          time=step * per_step - now if i == 0 else 0))
                now = step * per_step
            for key in keys:
                track.append(mido.Message("note_off", channel=DRUM_CHANNEL, note=key, velocity=0,
                                          time=per_step // 2 if key == keys[0] else 0))
            now += per_step // 2 if keys else 0
        track.append(mido.MetaMessage("end_of_track", time=len(steps) * per_step - now))
        midi = mido.MidiFile(type=0, ticks_per_beat=ticks_per_beat, tracks=[track])
        with mgf.atomic_path(path) as tmp:
            midi.save(tmp)

    def parse_primer(self, text):
        """One step per word: drum names joined by ``+`` (``kick+hat``), or ``-`` for a silent step."""
        tokens = []
        for word in text.split():
            token = 0
            if word != "-":
                for name in word.lower().split("+"):
                    if name not in NAMES:
                        raise mgf.InputError(f"primer: {name!r} is not a drum ({', '.join(NAMES)}) or '-'")
                    token |= 1 << NAMES[name]
            tokens.append(token)
        if not tokens:
            raise mgf.InputError("primer: no steps given")
        return np.asarray(tokens, np.int32)


@mgf.hookimpl
def register_representations(register):
    register(Drums)
