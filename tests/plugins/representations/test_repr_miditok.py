"""The ``miditok`` representation: MidiTok's tokenizers agree with MidiTok itself, train and generate end to end.

Runs where the ``miditok`` extra is installed (the ``test`` extra, which CI installs, includes it).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers.cli import mgf_cli

import mgf
import mgf.testing

miditok = pytest.importorskip("miditok")
symusic = pytest.importorskip("symusic")
from miditok.utils import merge_tracks  # noqa: E402

TOKENIZERS = ("REMI", "TSD", "MIDILike", "Structured")
CHORALES = ("bach/bwv66.6", "bach/bwv7.7", "bach/bwv10.7", "bach/bwv11.6")


def chorale_midi(folder, work="bach/bwv66.6"):
    """A chorale of the music21 corpus written to a MIDI file: four tracks, a real piece."""
    from music21 import corpus
    from music21.midi import translate

    path = folder / (work.replace("/", "-") + ".mid")
    path.write_bytes(translate.streamToMidiFile(corpus.parse(work)).writestr())
    return path


@pytest.fixture(scope="module")
def chorales(tmp_path_factory):
    folder = tmp_path_factory.mktemp("chorales")
    return [chorale_midi(folder, work) for work in CHORALES]


def midi_notes(score):
    """``[(tick, duration, pitch, velocity)]`` of every track of a ``symusic.Score``, sorted."""
    return sorted((n.time, n.duration, n.pitch, n.velocity) for track in score.tracks for n in track.notes)


def miditok_ids(tokenizer, path):
    """What MidiTok itself makes of ``path`` when its tracks are merged into one (as mgf does without programs)."""
    score = symusic.Score(str(path))
    score.tracks = [merge_tracks([track for track in score.tracks if not track.is_drum])]
    return list(tokenizer.encode(score)[0].ids)


# -- against MidiTok ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", TOKENIZERS)
def test_tokens_and_decoding_are_miditoks_own(name, chorales, tmp_path):
    representation = mgf.get_representation("miditok", tokenizer=name)
    tokenizer = getattr(miditok, name)()
    path = chorales[0]
    tokens = representation.read(path)
    ids = miditok_ids(tokenizer, path)
    assert representation.vocab_size == len(tokenizer) and representation.start_token == tokenizer["BOS_None"]
    assert tokens.tolist() == ids + [tokenizer["EOS_None"]]  # mgf ends a piece with EOS
    # decoded by mgf (to a file) and by MidiTok directly: the same notes, all 163 of the chorale, at its pitches
    representation.write(tokens, tmp_path / "mgf.mid")
    ours = midi_notes(symusic.Score(str(tmp_path / "mgf.mid")))
    theirs = midi_notes(tokenizer.decode([ids]))
    assert ours == theirs
    original = symusic.Score(str(path))
    assert len(ours) == original.note_num() == 163
    assert sorted(n[2] for n in ours) == sorted(n.pitch for track in original.tracks for n in track.notes)
    # and the file mgf wrote reads back to the same tokens
    np.testing.assert_array_equal(representation.read(tmp_path / "mgf.mid"), tokens)


def notes_per_id(tokenizer):
    """How many notes each id of a trained tokenizer starts, by MidiTok's own decomposition of its merged tokens."""
    counts = []
    for index in range(len(tokenizer)):
        sequence = miditok.TokSequence(ids=[index], are_ids_encoded=True)
        tokenizer.decode_token_ids(sequence)
        counts.append(sum(token.startswith(("Pitch_", "PitchDrum_")) for token in sequence.tokens))
    return counts


@pytest.mark.parametrize("name", ["REMI", "TSD"])
def test_a_bpe_tokenizer_saved_by_miditok_reads_and_decodes_as_miditok_does(name, chorales, tmp_path):
    tokenizer = getattr(miditok, name)()
    tokenizer.train(vocab_size=400, files_paths=list(chorales))
    tokenizer.save(tmp_path / "tokenizer.json")
    representation = mgf.get_representation("miditok", params=str(tmp_path / "tokenizer.json"))
    assert representation.vocab_size == 400 and representation.tokenizer.is_trained
    tokens = representation.read(chorales[1])
    ids = miditok_ids(tokenizer, chorales[1])
    assert max(ids) >= len(tokenizer.vocab), "the encoding uses merged tokens"
    assert tokens.tolist() == ids + [tokenizer["EOS_None"]]
    assert midi_notes(representation.decode(tokens)) == midi_notes(tokenizer.decode([ids]))
    # the bundle stores the tokenizer itself: the config rebuilds it without the file
    config = representation.config()
    os.remove(tmp_path / "tokenizer.json")
    again = mgf.get_representation("miditok", **config)
    np.testing.assert_array_equal(again.read(chorales[1]), tokens)
    # a merged token that starts several notes has no one pitch: then pitch constraints refuse the vocabulary
    pitches = representation.token_pitches()
    assert (pitches is None) == (max(notes_per_id(tokenizer)) > 1)
    if pitches is None:
        with pytest.raises(mgf.UsageError, match="which tokens start which pitch"):
            mgf.generate(mgf.load_model(_random_bundle(representation, tmp_path)), 10, constraints=["scale"], key="C major")
    else:
        started = pitches[tokens]
        assert sorted(started[started >= 0]) == sorted(p for p, *_ in representation.to_notes(tokens))
    assert representation.transpose(tokens, 1) is None  # merged tokens do not move with their notes


def _random_bundle(representation, folder):
    path = folder / "random.safetensors"
    spec = {"name": "miditok", "config": representation.config()}
    mgf.contract.bundle.write(mgf.contract.bundle.random_bundle(representation.vocab_size, (8,), representation=spec), path)
    return path


def test_token_pitches_name_the_pitch_tokens_and_transposition_moves_them(chorales):
    representation = mgf.get_representation("miditok", tokenizer="MIDILike")
    tokenizer = representation.tokenizer
    pitches = representation.token_pitches()
    assert pitches[tokenizer["NoteOn_60"]] == 60 and pitches[tokenizer["NoteOff_60"]] == -1
    assert pitches[tokenizer["TimeShift_1.0.8"]] == -1 and pitches[representation.start_token] == -1
    tokens = representation.read(chorales[0])
    up = representation.transpose(tokens, 3)
    notes, moved = representation.to_notes(tokens), representation.to_notes(up)
    assert [(p + 3, v, s, e) for p, v, s, e in notes] == moved
    assert representation.transpose(tokens, 40) is None  # past Pitch_108, the top of MidiTok's default range


def test_reading_is_bounded_by_the_limits(chorales, tmp_path):
    import mido

    midi = mido.MidiFile(ticks_per_beat=1)  # 44 bytes, one note 3 million quarter notes in: refused before symusic parses it
    midi.tracks.append(mido.MidiTrack([mido.Message("note_on", note=60, velocity=80, time=3_000_000),
                                       mido.Message("note_off", note=60, velocity=0, time=1)]))
    midi.save(tmp_path / "long.mid")
    with pytest.raises(mgf.InputError, match="lasts 3000001 quarter notes, more than max_tokens"):
        mgf.get_representation("miditok").read(tmp_path / "long.mid")
    tokens = mgf.get_representation("miditok", tokenizer="TSD").read(chorales[0])
    assert len(mgf.get_representation("miditok", tokenizer="TSD", max_tokens=len(tokens)).read(chorales[0])) == len(tokens)
    with pytest.raises(mgf.InputError, match=f"more than max_tokens={len(tokens) - 1} tokens"):
        mgf.get_representation("miditok", tokenizer="TSD", max_tokens=len(tokens) - 1).read(chorales[0])
    with pytest.raises(mgf.InputError, match="more than max_tracks=3"):
        mgf.get_representation("miditok", max_tracks=3).read(chorales[0])


# -- mgf's contract --------------------------------------------------------------------------


class _Contract(mgf.testing.RepresentationContract):
    name = "miditok"

    def canonical_sequences(self, representation, folder):
        return [representation.read(chorale_midi(folder, work)) for work in CHORALES[:2]]


class TestMidiTokREMI(_Contract):
    config = {"tokenizer": "REMI"}


class TestMidiTokMIDILike(_Contract):
    config = {"tokenizer": "MIDILike", "max_tokens": 5000}


# -- the command line: train, generate, constrain, errors ------------------------------------------


@pytest.mark.parametrize("name", ["REMI", "TSD"])
def test_train_and_generate_end_to_end(name, chorales, tmp_path, monkeypatch):
    pytest.importorskip("keras")
    monkeypatch.setenv("MGF_CACHE_DIR", str(tmp_path / "cache"))
    model = tmp_path / f"{name}.safetensors"
    trained = mgf_cli("train", "--repr", "miditok", "--config", f"tokenizer={name}", "--data", chorales[0].parent,
                      "--hidden", "32", "--layers", "1", "--embedding", "16", "--epochs", "8", "--lr", "0.01", "--seq-len", "32",
                      "--batch-size", "16", "--val-split", "0.25", "--workers", "1", "--quiet", "-o", model)
    assert trained.returncode == 0, trained.stderr
    loaded = mgf.load_model(model)
    assert loaded.representation.config() == {"tokenizer": name}
    assert loaded.representation.vocab_size == len(getattr(miditok, name)())
    out = tmp_path / "out.mid"
    generated = mgf_cli("generate", "--bundle", model, "--steps", "300", "--seed", "0", "-o", out)
    assert generated.returncode == 0, generated.stderr
    assert symusic.Score(str(out)).note_num() >= 3
    # pitch constraints hold on MidiTok's pitch tokens
    tokens = mgf.generate(loaded, 300, constraints=["scale", "pitch-range"], key="D major", low="C4", high="C6", seed=0)
    pitches = [pitch for pitch, *_ in loaded.representation.to_notes(tokens)]
    assert pitches and all(60 <= p <= 84 and p % 12 in {2, 4, 6, 7, 9, 11, 1} for p in pitches), pitches


def test_bad_config_is_one_line(chorales, tmp_path):
    path = chorales[0]
    unknown = mgf_cli("encode", path, "--repr", "miditok", "--config", "tokenizer=Octuple")
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1
    assert "tokenizer" in unknown.stderr and "REMI" in unknown.stderr
    missing = mgf_cli("encode", path, "--repr", "miditok", "--config", f"params={tmp_path / 'nope.json'}")
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1 and "nope.json" in missing.stderr
    (tmp_path / "bad.json").write_text("{not json")
    garbage = mgf_cli("encode", path, "--repr", "miditok", "--config", f"params={tmp_path / 'bad.json'}")
    assert garbage.returncode == 1 and garbage.stderr.count("\n") == 1 and "not JSON" in garbage.stderr
    (tmp_path / "multi.json").write_text(json.dumps({"config": {}, "tokenization": "Octuple"}))
    multi = mgf_cli("encode", path, "--repr", "miditok", "--config", f"params={tmp_path / 'multi.json'}")
    assert multi.returncode == 1 and multi.stderr.count("\n") == 1 and "'Octuple' is not one mgf reads" in multi.stderr
    both = mgf_cli("encode", path, "--repr", "miditok", "--config", "tokenizer=TSD", "--config", f"params={tmp_path / 'multi.json'}")
    assert both.returncode == 2 and both.stderr.count("\n") == 1 and "not both" in both.stderr


def test_encode_names_the_tokens(chorales):
    result = mgf_cli("encode", chorales[0], "--repr", "miditok", "--config", "tokenizer=TSD")
    assert result.returncode == 0, result.stderr
    tokens = [int(t) for t in result.stdout.split()]
    assert tokens == mgf.get_representation("miditok", tokenizer="TSD").read(chorales[0]).tolist()


MISSING = "import sys; sys.modules['miditok'] = None; from mgf.cli.main import main; sys.exit(main(sys.argv[1:]))"


def test_without_miditok_mgf_works_and_the_representation_says_what_to_install(chorales):
    plugins = subprocess.run([sys.executable, "-c", MISSING, "plugins"], capture_output=True, text=True)
    assert plugins.returncode == 0 and "miditok" in plugins.stdout, plugins.stderr
    encode = subprocess.run([sys.executable, "-c", MISSING, "encode", str(chorales[0]), "--repr", "miditok"],
                            capture_output=True, text=True)
    assert encode.returncode == 2 and encode.stderr.count("\n") == 1, encode.stderr
    assert "pip install 'mgf-music[miditok]'" in encode.stderr


def test_miditok_is_imported_only_when_used():
    code = ("import sys, mgf; mgf.contract.registry.load_plugins(); r = mgf.get_representation('miditok', tokenizer='TSD'); "
            "print('miditok' in sys.modules, 'symusic' in sys.modules); r.vocab_size; print('miditok' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.split() == ["False", "False", "True"], result.stderr
