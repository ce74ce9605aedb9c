"""``scale-lock``: temperature sampling locked to one key; tokens that start no note (rests, holds) stay free."""

import mgf
import numpy as np

TONICS = {"C": 0, "C#": 1, "Db": 1, "D": 2, "D#": 3, "Eb": 3, "E": 4, "F": 5, "F#": 6, "Gb": 6, "G": 7, "G#": 8,
          "Ab": 8, "A": 9, "A#": 10, "Bb": 10, "B": 11}
MODES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
KEYS = tuple(f"{tonic} {mode}" for tonic in TONICS for mode in MODES)


def in_key(key: str) -> np.ndarray:
    """bool ``[128]``: the MIDI pitches of ``key`` (one of ``KEYS``)."""
    tonic, mode = key.split()
    return np.isin((np.arange(128) - TONICS[tonic]) % 12, MODES[mode])


class ScaleLock(mgf.Policy):
    name = "scale-lock"
    options = (
        mgf.Option("key", str, "C major", "the key every note must belong to", choices=KEYS),
        mgf.Option("temperature", float, 1.0, "divide logits by T before the softmax", low=1e-3, high=100.0),
    )

    def choose(self, logits, ctx):
        if not hasattr(self, "outside"):  # one instance serves one generation: the mask is built once
            pitches = ctx.representation.token_pitches()
            if pitches is None:
                raise mgf.UsageError(f"sampler 'scale-lock' needs pitched tokens; {ctx.representation.name!r} has none")
            self.outside = (pitches >= 0) & ~in_key(ctx.options["key"])[np.clip(pitches, 0, 127)]
        logits[:, self.outside] = -np.inf
        if not (logits > -np.inf).any(axis=1).all():
            raise mgf.InputError(f"scale-lock: no token in {ctx.options['key']} is allowed at step {ctx.step + 1}")
        return mgf.draw_from_logits(logits, ctx.rng, ctx.options["temperature"])


@mgf.hookimpl
def register_samplers(register):
    register(ScaleLock)
