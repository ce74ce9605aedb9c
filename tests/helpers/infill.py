"""Bundles that can infill, of random weights, as ``mgf train --infill`` writes them, and the note events of MIDI files."""

import dataclasses

import mido
import numpy as np

import mgf
from mgf.contract import bundle
from mgf.contract.infill import InfillTokens


def infill_made(name="notes", hidden=(32,), seed=0, context=64) -> bundle.Bundle:
    """A bundle over ``name``'s vocabulary and the four infilling ids (``audio``: with a codebook of random frames)."""
    base = mgf.get_representation(name)
    made = bundle.random_bundle(base.vocab_size + 4, hidden, representation={"name": name, "config": base.config()}, seed=seed)
    if name == "audio":
        codebook = np.random.default_rng(seed).normal(-4, 1, (base.codebook_size, base.n_mels)).astype(np.float32)
        made = dataclasses.replace(made, tensors={**made.tensors, "repr.codebook": codebook})
    return dataclasses.replace(made, infill={"format": "spm", "tokens": InfillTokens.after(base.vocab_size).as_dict(),
                                             "rate": 0.5, "context": context, "gap": "bars"})


def infill_bundle(path, name="notes", hidden=(32,), seed=0, context=64):
    """Write :func:`infill_made` to ``path``; returns ``path``."""
    bundle.write(infill_made(name, hidden, seed, context), path)
    return path


def note_events(path):
    """``[(tick, "on" | "off", note, velocity)]`` of a MIDI file, read with mido, sorted; a note_on of velocity 0 is an off."""
    found = []
    for track in mido.MidiFile(path).tracks:
        tick = 0
        for message in track:
            tick += message.time
            if message.type in ("note_on", "note_off"):
                off = message.type == "note_off" or message.velocity == 0
                found.append((tick, "off" if off else "on", message.note, 0 if off else message.velocity))
    return sorted(found)
