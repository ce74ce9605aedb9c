"""The data pipeline: sources, skipping, the on-disk cache, the split; with the `tokens` representation."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from mgf import InputError, UsageError, get_representation
from mgf.training.build import build
from mgf.training.sources import augment, Dataset, files, load
from mgf.training.split import held_out_files
from mgf.training.windows import windows
from mgf.plugins.representations.tokens import Tokens


pytestmark = pytest.mark.usefixtures("cache_dir")  # conftest's: MGF_CACHE_DIR in tmp_path


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "music"
    (root / "a" / "b").mkdir(parents=True)
    (root / "one.txt").write_text("1 2 3\n")
    (root / "a" / "two.txt").write_text("4 5\n")
    (root / "a" / "b" / "three.txt").write_text("6\n")
    (root / "a" / "bad.txt").write_text("1 x 3\n")
    (root / "a" / "notes.md").write_text("not picked: wrong suffix\n")
    return root


def test_files_from_folder_glob_and_file(folder):
    suffixes = (".txt",)
    assert [os.path.relpath(p, folder) for p in files(str(folder), suffixes)] == [
        "a/b/three.txt", "a/bad.txt", "a/two.txt", "one.txt"]
    assert len(files(str(folder / "**" / "t*.txt"), suffixes)) == 2
    assert files(str(folder / "one.txt"), suffixes) == [str(folder / "one.txt")]
    with pytest.raises(InputError, match="no such file, folder"):
        files(str(folder / "absent"), suffixes)
    with pytest.raises(InputError, match="no files with suffix .mid"):
        files(str(folder), (".mid",))


def test_unreadable_files_are_skipped_and_listed(folder):
    loaded = load(get_representation("tokens"), str(folder))
    assert sorted(s.tolist() for s in loaded.sequences) == [[1, 2, 3], [4, 5], [6]]
    assert len(loaded.skipped) == 1
    path, reason = loaded.skipped[0]
    assert path.endswith("bad.txt") and "'x' is not a token id" in reason


def test_second_load_reads_the_cache_not_the_files(folder, cache_dir, counting_tokens):
    representation = counting_tokens()
    first = load(representation, str(folder))
    assert counting_tokens.reads == 4 and first.cached == 0
    second = load(representation, str(folder))
    assert counting_tokens.reads == 4 and second.cached == 4
    assert [s.tolist() for s in second.sequences] == [s.tolist() for s in first.sequences]
    assert second.skipped == first.skipped
    assert any(cache_dir.rglob("*.npz"))


def test_cache_is_keyed_by_content_and_config(folder, counting_tokens):
    load(counting_tokens(), str(folder))
    (folder / "one.txt").write_text("7 7\n")
    changed = load(counting_tokens(), str(folder))
    assert counting_tokens.reads == 5
    assert [7, 7] in [s.tolist() for s in changed.sequences]
    load(counting_tokens(vocab_size=10), str(folder))
    assert counting_tokens.reads == 9
    load(counting_tokens(), str(folder), cache=False)
    assert counting_tokens.reads == 13


def test_damaged_cache_entry_is_re_encoded(folder, cache_dir):
    load(get_representation("tokens"), str(folder))
    for entry in cache_dir.rglob("*.npz"):
        entry.write_bytes(b"garbage")
    again = load(get_representation("tokens"), str(folder))
    assert sorted(s.tolist() for s in again.sequences) == [[1, 2, 3], [4, 5], [6]]


def test_split_is_by_piece_and_stable():
    rng = np.random.default_rng(0)
    dataset = Dataset([rng.integers(0, 50, 10) for _ in range(400)], [f"piece-{i}" for i in range(400)])
    train, held = dataset.split(0.1)
    assert len(train.names) + len(held.names) == 400 and 20 < len(held.names) < 60
    assert not set(train.names) & set(held.names)
    bigger = Dataset(dataset.sequences + [rng.integers(0, 50, 10) for _ in range(50)],
                          dataset.names + [f"new-{i}" for i in range(50)])
    assert set(held.names) <= set(bigger.split(0.1)[1].names)
    with pytest.raises(InputError):
        dataset.split(1.0)


@pytest.mark.parametrize("count", [2, 3, 5, 30])
def test_split_of_few_pieces_holds_out_at_least_one(count):
    dataset = Dataset([np.array([i, i + 1]) for i in range(count)], [f"p{i}" for i in range(count)])
    train, held = dataset.split(0.01)
    assert len(held.sequences) >= 1 and len(train.sequences) >= 1
    assert len(train.sequences) + len(held.sequences) == count
    assert dataset.split(0.0)[1].sequences == []
    single = Dataset([np.array([1, 2])], ["only"])
    assert len(single.split(0.5)[0].sequences) == 1


def test_split_follows_file_content_not_the_path_spelling(tmp_path, monkeypatch):
    folder = tmp_path / "music"
    folder.mkdir()
    for i in range(60):
        (folder / f"{i}.txt").write_text(f"{i} {i + 1} {i + 2}\n")
    tokens = get_representation("tokens")
    monkeypatch.chdir(tmp_path)
    spellings = [str(folder), "music", "./music/", str(tmp_path / "music" / ".." / "music")]
    sides = [sorted(tuple(s.tolist()) for s in load(tokens, spelling).split(0.2)[1].sequences)
             for spelling in spellings]
    assert sides[0] and all(side == sides[0] for side in sides)
    # renaming every file keeps every piece on its side
    for i in range(60):
        (folder / f"{i}.txt").rename(folder / f"renamed-{i}.txt")
    assert sorted(tuple(s.tolist()) for s in load(tokens, "music").split(0.2)[1].sequences) == sides[0]
    held = held_out_files(files("music", (".txt",)), 0.2)
    assert sorted(tuple(tokens.read(p).tolist()) for p, out in held.items() if out) == sides[0]


def run(*args):
    return subprocess.run([sys.executable, "-m", "mgf.cli.main", *map(str, args)], capture_output=True, text=True,
                          env=os.environ)


def test_cli_encode_decode_dataset(folder, tmp_path):
    result = run("encode", folder / "one.txt", "--repr", "tokens")
    assert result.returncode == 0 and result.stdout == "1 2 3\n"
    result = run("decode", "5 6 7", "--repr", "tokens", "--config", "vocab_size=20", "-o", tmp_path / "d.txt")
    assert result.returncode == 0 and (tmp_path / "d.txt").read_text() == "5 6 7\n"
    result = run("decode", "5 25", "--repr", "tokens", "--config", "vocab_size=20", "-o", tmp_path / "e.txt")
    assert result.returncode == 1 and "token id 25 is outside" in result.stderr and "[0, 20)" in result.stderr
    assert not (tmp_path / "e.txt").exists()
    result = run("dataset", folder, "--repr", "tokens")
    assert result.returncode == 0
    assert result.stdout.startswith("3 pieces, 6 tokens") and "bad.txt: " in result.stdout
    result = run("encode", folder / "absent.txt", "--repr", "tokens")
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    result = run("encode", folder / "one.txt", "--repr", "tokens", "--config", "vocab_size")
    assert result.returncode == 2 and "KEY=VALUE" in result.stderr


def test_windows_predict_every_token_once_from_the_start_token():
    x, y, w = windows([np.array([1, 2, 3, 4, 5]), np.array([6])], start=9, length=3)
    assert x.tolist() == [[9, 1, 2], [3, 4, 0], [9, 0, 0]]
    assert y.tolist() == [[1, 2, 3], [4, 5, 0], [6, 0, 0]]
    assert w.tolist() == [[1, 1, 1], [1, 1, 0], [1, 0, 0]]
    predicted = sorted(y[w > 0].tolist())
    assert predicted == [1, 2, 3, 4, 5, 6]
    with pytest.raises(InputError):
        windows([np.array([1])], start=9, length=0)


def test_augment_transposes_with_the_representation():
    class Shifting(Tokens):
        def transpose(self, tokens, semitones):
            moved = tokens + semitones
            return moved if moved.min() >= 0 and moved.max() < self.start_token else None

    dataset = Dataset([np.array([0, 5]), np.array([100, 128])], ["low", "high"])
    out = augment(dataset, Shifting(), range(-1, 2))
    assert out.names == ["low", "low (+1)", "high (-1)", "high"]
    assert [s.tolist() for s in out.sequences] == [[0, 5], [1, 6], [99, 127], [100, 128]]


def test_a_folder_of_midi_files_with_a_broken_one(tmp_path):
    midi = get_representation("midi")
    folder = tmp_path / "midi"
    (folder / "sub").mkdir(parents=True)
    chorale = midi.read("corpus:bach/bwv66.6")
    midi.write(chorale, folder / "a.mid")
    midi.write(chorale[:200], folder / "sub" / "b.MID")
    (folder / "broken.mid").write_bytes(b"MThd garbage")
    loaded = load(midi, str(folder))
    assert sorted(len(s) for s in loaded.sequences) == sorted([len(chorale), len(midi.read(folder / "sub" / "b.MID"))])
    assert [os.path.basename(path) for path, _ in loaded.skipped] == ["broken.mid"]
    assert "not a readable MIDI file" in loaded.skipped[0][1]


def test_corpus_sources_expand_multi_tune_files():
    loaded = load(get_representation("notes"), "corpus:essenFolksong/teste.abc")
    assert len(loaded.sequences) > 1 and all(name.count("#") == 1 for name in loaded.names)


def test_without_a_terminal_encoding_reports_progress_in_lines(folder, capsys):
    load(get_representation("tokens"), str(folder), every=0)
    lines = capsys.readouterr().err.splitlines()
    assert [re.fullmatch(rf"encoding {re.escape(str(folder))}: (\d)/4 files, [0-9.]+ files/s, ETA \d+ s", line)[1]
            for line in lines] == ["1", "2", "3"]
    load(get_representation("tokens"), str(folder), progress=False, every=0)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("workers", [2, 3])
def test_worker_processes_encode_what_one_process_does(folder, workers, cache_dir):
    """Workers rebuild the representation from its name and config (vocab_size=10 here) and send tokens back."""
    (folder / "big.txt").write_text("9 12\n")  # 12 is outside vocab_size=10: skipped the same way everywhere
    representation = get_representation("tokens", vocab_size=10)
    one = load(representation, str(folder), cache=False)
    many = load(representation, str(folder), cache=False, workers=workers)
    assert [s.tolist() for s in many.sequences] == [s.tolist() for s in one.sequences]
    assert many.keys == one.keys and many.names == one.names and many.skipped == one.skipped
    assert [os.path.basename(path) for path, _ in many.skipped] == ["bad.txt", "big.txt"]
    assert not cache_dir.exists()
    warm = load(representation, str(folder), workers=workers)
    assert warm.cached == 0 and load(representation, str(folder), workers=workers).cached == 5


def test_workers_refuse_a_representation_they_cannot_rebuild_by_name(folder, counting_tokens):
    with pytest.raises(UsageError, match="workers rebuild representations by name"):
        load(counting_tokens(), str(folder), workers=2)


def test_workers_use_the_learned_tensors_of_the_representation(tmp_path):
    """A codebook learned in this process reaches the workers as arrays: they encode with it."""
    import wave

    audio = get_representation("audio", sample_rate=8000, n_fft=256, hop=128, n_mels=16, codebook_size=8)
    rng = np.random.default_rng(0)
    for i in range(3):
        with wave.open(str(tmp_path / f"{i}.wav"), "wb") as handle:
            handle.setnchannels(1)
            handle.setsampwidth(2)
            handle.setframerate(8000)
            handle.writeframes((rng.normal(0, 0.1 * (i + 1), 8000) * 32767).clip(-32767, 32767).astype("<i2").tobytes())
    audio.fit([str(tmp_path / f"{i}.wav") for i in range(3)])
    one = load(audio, str(tmp_path), cache=False)
    two = load(audio, str(tmp_path), cache=False, workers=2)
    assert len(one.sequences) == 3 and not one.skipped
    assert [s.tolist() for s in two.sequences] == [s.tolist() for s in one.sequences]


def test_a_dask_cluster_encodes_what_one_process_does(folder, cache_dir):
    """Files sent to the workers of a real (local) Dask scheduler come back as the same tokens, in order."""
    distributed = pytest.importorskip("distributed")
    representation = get_representation("tokens", vocab_size=10)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        remote = load(representation, str(folder), scheduler=cluster.scheduler_address)
        built = build(representation, str(folder), str(folder.parent / "ds"), scheduler=cluster.scheduler_address)
    local = load(representation, str(folder))
    assert [s.tolist() for s in remote.sequences] == [s.tolist() for s in local.sequences]
    assert remote.keys == local.keys and remote.skipped == local.skipped and local.cached == 4
    assert [p.tolist() for p in built.pieces(0)] == [s.tolist() for s in local.sequences]


def test_scheduler_errors_are_one_line(folder):
    pytest.importorskip("distributed")
    with pytest.raises(InputError, match="cannot connect"):
        load(get_representation("tokens"), str(folder), scheduler="tcp://127.0.0.1:1")


def test_cli_worker_options_are_checked(folder):
    for args, message in ((["--workers", "-1"], "--workers must be >= 0"),
                          (["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "exclude each other")):
        result = run("dataset", folder, "--repr", "tokens", *args)
        assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1


# Contract 2 documented these names of ``mgf.data``; contract 3 split the module by what each part does.
CONTRACT_2_DATA = {
    "sources": ["Dataset", "Encoded", "augment", "encode", "files", "load"],
    "cache": ["cache_root"],
    "shards": ["SHARD_TOKENS", "Shards", "is_dataset", "stream"],
    "build": ["build"],
    "split": ["held_out", "held_out_files", "piece_key", "position", "sides"],
    "windows": ["windows"],
    "workers": ["SCHEDULER_TIMEOUT", "check_scheduler", "dask_client", "exit_with_parent", "local_cores", "worker_context"],
    "progress": ["LINE_SECONDS", "duration"],
}


def test_a_contract_2_plugin_still_finds_every_name_of_mgf_data_with_a_warning():
    script = f"""
import importlib, warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    from mgf import data
assert any(issubclass(w.category, DeprecationWarning) and "mgf.data" in str(w.message) for w in caught), caught
for module, names in {CONTRACT_2_DATA!r}.items():
    home = importlib.import_module("mgf.training." + module)
    for name in names:
        assert getattr(data, name) is getattr(home, name), (module, name)
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout == "ok\n", result.stderr
