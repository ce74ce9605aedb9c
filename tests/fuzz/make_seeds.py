"""Write the seed corpus in ``tests/fuzz/seeds/<harness>/``: small real inputs the fuzzers mutate.

``python tests/fuzz/make_seeds.py`` rewrites them all.  MIDI seeds cover what ``read`` handles
(several tracks, tempo changes, running status, velocity-0 note-offs, the sustain pedal, drums,
format 0 and 1) plus a Bach chorale written by music21; bundles are tiny random ones.
"""

import io
import os
import sys
import tempfile

import mido

SEEDS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")


def _save(harnesses, name, data: bytes) -> None:
    for harness in harnesses:
        folder = os.path.join(SEEDS, harness)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, name), "wb") as handle:
            handle.write(data)


def _midi_bytes(midi: mido.MidiFile) -> bytes:
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


def _written(write, suffix: str) -> bytes:
    """The bytes ``write(path)`` puts in a file."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, f"seed{suffix}")
        write(path)
        with open(path, "rb") as handle:
            return handle.read()


def midi_files() -> dict[str, bytes]:
    Message, Meta = mido.Message, mido.MetaMessage
    files = {}

    scale = mido.MidiFile(type=0, ticks_per_beat=96)
    scale.tracks.append(mido.MidiTrack([Meta("set_tempo", tempo=600_000)]))
    for i, pitch in enumerate((60, 62, 64, 65, 67)):
        scale.tracks[0].append(Message("note_on", note=pitch, velocity=40 + 10 * i, time=0 if i == 0 else 24))
        scale.tracks[0].append(Message("note_on", note=pitch, velocity=0, time=48))  # velocity 0 ends it
    files["scale-format0.mid"] = _midi_bytes(scale)

    piece = mido.MidiFile(type=1, ticks_per_beat=480)
    piece.tracks.append(mido.MidiTrack([Meta("set_tempo", tempo=500_000), Meta("time_signature", numerator=3, denominator=4),
                                        Meta("set_tempo", tempo=400_000, time=960)]))
    piano = mido.MidiTrack([Meta("track_name", name="piano"), Message("program_change", program=0)])
    piano += [Message("note_on", note=60, velocity=90), Message("note_on", note=64, velocity=70, time=0),
              Message("control_change", control=64, value=127, time=120),
              Message("note_off", note=60, time=240), Message("note_off", note=64, time=0),
              Message("note_on", note=67, velocity=100, time=240), Message("control_change", control=64, value=0, time=480),
              Message("note_on", note=67, velocity=100, time=10), Message("note_off", note=67, time=300)]
    drums = mido.MidiTrack([Message("note_on", note=36, velocity=120, channel=9), Message("note_off", note=36, channel=9, time=120),
                            Message("pitchwheel", pitch=2000, channel=1), Message("sysex", data=[1, 2, 3], time=10)])
    piece.tracks += [piano, drums]
    files["pedal-drums-format1.mid"] = _midi_bytes(piece)

    from music21 import corpus

    files["bach-bwv66.6.mid"] = _written(lambda path: corpus.parse("bach/bwv66.6").write("midi", fp=path), ".mid")
    return files


def bundles() -> dict[str, bytes]:
    from mgf.contract import bundle

    made = {  # no .safetensors suffix: .gitignore keeps such files out of the repository
        "tokens-v8": bundle.random_bundle(8, (4,), seed=1),
        "tokens-v6-embedding-2layers": bundle.random_bundle(6, (3, 2), embedding_dim=2, seed=2),
        "notes": bundle.random_bundle(40, (2,), representation={"name": "notes", "config": {"min_pitch": 48, "max_pitch": 84}}),
    }
    return {name: _written(lambda path, made_bundle=made_bundle: bundle.write(made_bundle, path), ".safetensors")
            for name, made_bundle in made.items()}


PRIMERS = {
    "primer_notes": ["C4 - - E4 r G4", "60, 62, 64", "F#4 Bb3 E-4 _ rest", "corpus:bach/bwv66.6"],
    "primer_midi": ["VELOCITY_20 NOTE_ON_60 TIME_SHIFT_50 NOTE_OFF_60", "note_on_64,time_shift_100,388", "0 128 256"],
    "primer_audio": ["C4 E4", "song.wav"],
    "primer_tokens": ["1 2 3", "0,128, 5\n7"],
}
DECODES = {
    "decode_notes": ["2 0 0 1 14 0 0 0 5", "38 38 1 1 0"],
    "decode_midi": ["356 60 300 188 64 355 192", "60 64 67 255 188 192 195"],
    "decode_tokens": ["1 2 3 128", "0,5,\n9"],
    "decode_audio": ["0 1 2 3 255 254", "17,17,17"],
}


def draws() -> dict[str, bytes]:
    """Headers (temperature, top-k, top-p, rows, seed) and logits: plain, with -inf, with NaN and +inf."""
    import numpy as np

    rng = np.random.default_rng(0)
    plain = rng.normal(0, 3, 96).astype(np.float32)
    masked = plain.copy()
    masked[::3] = -np.inf
    broken = plain.copy()
    broken[5], broken[40] = np.nan, np.inf
    return {"plain": bytes([16, 0, 255, 1, 0, 0, 0, 0]) + plain.tobytes(),
            "masked-top-k-top-p": bytes([24, 7, 200, 2, 3, 0, 0, 0]) + masked.tobytes(),
            "nan-and-inf": bytes([8, 0, 128, 3, 9, 0, 0, 0]) + broken.tobytes()}


def generations() -> dict[str, bytes]:
    """Headers (constraint bits, then sampler and constraint options) and a primer of token ids (u16)."""
    import numpy as np

    chord = np.array([376, 60, 64, 67, 300, 188, 192, 195], "<u2").tobytes()  # VELOCITY, three NOTE_ONs, TIME_SHIFT, NOTE_OFFs
    return {"close-notes": bytes([1, 32, 0, 230, 4, 60, 1, 0, 20, 47]) + chord,
            "all-constraints-greedy": bytes([15, 0, 0, 255, 3, 20, 2, 1, 20, 30]) + chord,
            "no-primer-top-k": bytes([3, 40, 12, 255, 2, 10, 0, 2, 0, 40]),
            "motifs-close-notes": bytes([17, 32, 3, 230, 4, 40, 1, 0, 20, 47]) + chord * 3}


def dataset_files() -> dict[str, bytes]:
    """Dataset directories written by ``mgf.training.build.build`` (two shards), their files joined as ``dataset_read`` reads them."""
    from harnesses import DATASET_FILES, DATASET_PART, data_representation

    import numpy as np
    from mgf.training import shards
    from mgf.training.build import build

    made = {}
    with tempfile.TemporaryDirectory() as folder:
        os.environ["MGF_CACHE_DIR"] = os.path.join(folder, "cache")
        os.makedirs(os.path.join(folder, "music"))
        for i, text in enumerate(["1 2 3", "4 5 6 7 8 9", "10 11", "12 13 14 15", "39 0 39"]):
            with open(os.path.join(folder, "music", f"{i}.txt"), "w") as handle:
                handle.write(text)
        with open(os.path.join(folder, "music", "bad.txt"), "w") as handle:
            handle.write("1 x")
        saved, shards.SHARD_TOKENS = shards.SHARD_TOKENS, 8
        try:
            build(data_representation(), os.path.join(folder, "music"), os.path.join(folder, "ds"))
        finally:
            shards.SHARD_TOKENS = saved
        np.savez(os.path.join(folder, "ds", "representation.npz"), codebook=np.eye(3, dtype=np.float32))

        def joined(manifest_change=None) -> bytes:
            parts = []
            for name in DATASET_FILES:
                with open(os.path.join(folder, "ds", name), "rb") as handle:
                    content = handle.read()
                if name == "manifest.json" and manifest_change:
                    content = manifest_change(content)
                parts.append(content)
            return DATASET_PART.join(parts)

        made["two-shards"] = joined()
        made["with-tensors"] = joined(lambda text: text.replace(b'"tensors": null', b'"tensors": "representation.npz"'))
        del os.environ["MGF_CACHE_DIR"]
    return made


def cache_entries() -> dict[str, bytes]:
    """The cache entry of ``harnesses.CACHED_SOURCE`` as ``mgf.training.cache`` writes it, one of two pieces and one of an error."""
    import hashlib
    import json

    import numpy as np
    from harnesses import CACHED_SOURCE, data_representation
    from mgf.training.sources import load

    made = {}
    with tempfile.TemporaryDirectory() as folder:
        os.environ["MGF_CACHE_DIR"] = os.path.join(folder, "cache")
        os.makedirs(os.path.join(folder, "music"))
        with open(os.path.join(folder, "music", "one.txt"), "wb") as handle:
            handle.write(CACHED_SOURCE)
        load(data_representation(), os.path.join(folder, "music"))
        (entry,) = [os.path.join(d, n) for d, _, names in os.walk(os.path.join(folder, "cache")) for n in names]
        with open(entry, "rb") as handle:
            made["written"] = handle.read()
        del os.environ["MGF_CACHE_DIR"]
    digest = hashlib.sha256(CACHED_SOURCE).hexdigest()
    for name, meta, pieces in (("two-pieces", {"names": ["a", "b"], "error": None, "sha256": digest},
                                [np.array([1, 2], np.int32), np.array([3, 4, 5], np.int32)]),
                               ("an-error", {"names": [], "error": "cannot read it", "sha256": digest}, [])):
        buffer = io.BytesIO()
        np.savez(buffer, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8),
                 **{f"piece_{i}": piece for i, piece in enumerate(pieces)})
        made[name] = buffer.getvalue()
    return made


def keras_models() -> dict[str, bytes]:
    """Tiny ``.keras`` files as ``mgf train`` and hand-built models save them: an Embedding-LSTM network with its
    optimizer (a checkpoint), a one-hot GRU one, and one with layers ``mgf export`` refuses."""
    import keras
    import numpy as np

    def saved(layers, compiled):
        model = keras.Sequential([keras.Input(shape=(None,), dtype="int32"), *layers])
        if compiled:
            model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            model.fit(np.zeros((2, 3), np.int32), np.zeros((2, 3), np.int32), verbose=0)
        return _written(model.save, ".keras")

    def huge(data):  # the same archive, its config asking for LSTM(12000): issue 25's 754 s and 14.6 GB
        import json
        import zipfile

        source, target = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
        with zipfile.ZipFile(target, "w") as archive:
            for member in source.infolist():
                content = source.read(member)
                if member.filename == "config.json":
                    content = json.dumps(json.loads(content)).replace('"units": 4', '"units": 12000').encode()
                archive.writestr(member, content)
        return target.getvalue()

    keras.utils.set_random_seed(0)
    checkpoint = saved([keras.layers.Embedding(12, 3), keras.layers.LSTM(4, return_sequences=True), keras.layers.Dense(12)],
                       True)
    return {
        "lstm-checkpoint.keras": checkpoint,
        "huge-units.keras": huge(checkpoint),
        "gru-one-hot.keras": saved([keras.layers.CategoryEncoding(12, output_mode="one_hot"),
                                    keras.layers.GRU(3, return_sequences=True), keras.layers.Dense(12)], False),
        "conv.keras": saved([keras.layers.Embedding(12, 3), keras.layers.Conv1D(2, 2), keras.layers.Dense(12)], False),
    }


def main() -> None:
    for name, data in midi_files().items():
        _save(("midi_read", "notes_read"), name, data)
    for name, data in bundles().items():
        _save(("bundle_load",), name, data)
    for harness, made in (("draw", draws()), ("generate_midi", generations()), ("dataset_read", dataset_files()),
                          ("cache_read", cache_entries()), ("keras_export", keras_models())):
        for name, data in made.items():
            _save((harness,), name, data)
    for harness, texts in {**PRIMERS, **DECODES}.items():
        for number, text in enumerate(texts):
            _save((harness,), f"seed-{number}.txt", text.encode())
    print(f"seeds written under {SEEDS}", file=sys.stderr)


if __name__ == "__main__":
    main()
