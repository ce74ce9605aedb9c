"""Dataset directories: shards and manifest written by `mgf dataset`, read back a shard at a time, trained from."""

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mgf import InputError, get_representation
from mgf.contract import bundle
from mgf.training.build import build
from mgf.training.shards import is_dataset, Shards
from mgf.training.sources import load
from mgf.plugins.representations.tokens import Tokens
from helpers.cli import mgf_cli


pytestmark = pytest.mark.usefixtures("cache_dir")  # conftest's: MGF_CACHE_DIR in tmp_path


@pytest.fixture
def folder(tmp_path):
    """60 pieces of 5 to 40 tokens, and one unreadable file."""
    root = tmp_path / "music"
    root.mkdir()
    rng = np.random.default_rng(1)
    for i in range(60):
        (root / f"{i:02d}.txt").write_text(" ".join(map(str, rng.integers(0, 40, rng.integers(5, 41)))))
    (root / "bad.txt").write_text("1 x")
    return root


def pieces_of(shards):
    return [p.tolist() for i in range(len(shards)) for p in shards.pieces(i)]


@pytest.mark.parametrize("shard_tokens", [1 << 22, 100])
def test_a_dataset_holds_every_piece_with_its_split(folder, tmp_path, monkeypatch, shard_tokens):
    monkeypatch.setattr("mgf.training.shards.SHARD_TOKENS", shard_tokens)
    tokens = get_representation("tokens", vocab_size=41)
    built = build(tokens, str(folder), str(tmp_path / "ds"), workers=2, validation=0.2)
    loaded = load(tokens, str(folder))
    assert pieces_of(built) == [s.tolist() for s in loaded.sequences]
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert len(manifest["shards"]) == (1 if shard_tokens > 10**6 else len(built))
    assert len(built) > 1 or shard_tokens > 10**6
    assert manifest["representation"] == {"name": "tokens", "config": {"vocab_size": 41}, "tensors": None,
                                          "key": manifest["representation"]["key"]}
    assert manifest["pieces"] == 60 and manifest["tokens"] == sum(len(s) for s in loaded.sequences)
    assert sum(s["tokens"] for s in manifest["shards"]) == manifest["tokens"]
    # the split is Dataset.split's, counted in the manifest
    train, held = loaded.split(0.2)
    sides = built.sides(0.2)
    assert [p.tolist() for i in range(len(built)) for p in built.pieces(i, sides[i])] == [s.tolist() for s in held.sequences]
    assert manifest["split"]["validation"] == {"pieces": len(held.sequences), "tokens": held.tokens}
    assert manifest["split"]["train"] == {"pieces": len(train.sequences), "tokens": train.tokens}
    # every file listed with the hash of its bytes; the unreadable one with its reason
    listed = [json.loads(line) for line in (tmp_path / "ds" / "files.jsonl").read_text().splitlines()]
    assert len(listed) == 61
    for entry in listed:
        with open(entry["path"], "rb") as handle:
            assert entry["sha256"] == hashlib.sha256(handle.read()).hexdigest()
    assert [(os.path.basename(p), "'x' is not a token id" in r) for p, r in built.skipped()] == [("bad.txt", True)]
    assert not [name for name in os.listdir(tmp_path) if ".mgf-tmp-" in name]


def test_the_cache_of_a_source_is_a_dataset_reused_until_a_file_changes(folder, counting_tokens):
    first = build(counting_tokens(vocab_size=41), str(folder))
    assert counting_tokens.reads == 61 and is_dataset(first.directory)
    again = build(counting_tokens(vocab_size=41), str(folder))
    assert again.directory == first.directory and counting_tokens.reads == 61
    (folder / "00.txt").write_text("1 2 3")
    changed = build(counting_tokens(vocab_size=41), str(folder))
    assert changed.directory != first.directory and counting_tokens.reads == 62  # the other files from the file cache
    assert [1, 2, 3] in pieces_of(changed)
    assert build(counting_tokens(vocab_size=50), str(folder)).directory != changed.directory


def test_a_dataset_is_never_half_written(folder, tmp_path):
    target = tmp_path / "ds"
    target.mkdir()
    with pytest.raises(InputError, match="exists"):
        build(get_representation("tokens"), str(folder), str(target))

    class Failing(Tokens):
        def read(self, path):
            if path.endswith("30.txt"):
                raise KeyboardInterrupt  # what SIGINT raises in the CLI
            return super().read(path)

    with pytest.raises(KeyboardInterrupt):
        build(Failing(), str(folder), str(tmp_path / "half"))
    assert sorted(os.listdir(tmp_path)) == sorted(["cache", "ds", "music"])
    # a build killed with SIGKILL leaves a temporary that the next build removes
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".old.mgf-tmp-{gone.stdout.strip()}"
    stale.mkdir()
    (stale / "shard-00000.npz").write_bytes(b"partial")
    build(get_representation("tokens"), str(folder), str(tmp_path / "new"))
    assert not stale.exists() and is_dataset(str(tmp_path / "new"))


def test_damaged_datasets_are_one_line_errors(folder, tmp_path):
    with pytest.raises(InputError, match="not a dataset directory"):
        Shards(str(tmp_path))
    built = build(get_representation("tokens"), str(folder), str(tmp_path / "ds"))
    (tmp_path / "ds" / built.manifest["shards"][0]["file"]).write_bytes(b"garbage")
    with pytest.raises(InputError, match="damaged dataset shard"):
        built.pieces(0)
    (tmp_path / "ds" / "manifest.json").write_text('{"format": "something else"}')
    with pytest.raises(InputError, match="not a dataset of this mgf version"):
        Shards(str(tmp_path / "ds"))


def test_cli_dataset_writes_a_directory_that_train_reads(folder, tmp_path, monkeypatch):
    pytest.importorskip("keras")
    result = mgf_cli("dataset", folder, "--repr", "tokens", "--config", "vocab_size=41", "--workers", "2",
                     "-o", tmp_path / "ds", "--val-split", "0.2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("60 pieces") and f"dataset: {tmp_path / 'ds'}" in result.stdout
    assert "bad.txt: 'x' is not a token id" in result.stdout
    again = mgf_cli("dataset", folder, "--repr", "tokens", "-o", tmp_path / "ds")
    assert again.returncode == 1 and "exists" in again.stderr and again.stderr.count("\n") == 1
    # several shards, written by the library with small shards, train the same pieces as one shard
    monkeypatch.setattr("mgf.training.shards.SHARD_TOKENS", 200)
    build(get_representation("tokens", vocab_size=41), str(folder), str(tmp_path / "small-shards"))
    common = ["train", "--hidden", "8", "--layers", "1", "--seq-len", "16", "--epochs", "2", "--val-split", "0.2",
              "--quiet"]
    trained = {}
    for name, data_args in (("ds", ["--data", tmp_path / "ds"]), ("small-shards", ["--data", tmp_path / "small-shards"]),
                            ("folder", ["--repr", "tokens", "--config", "vocab_size=41", "--data", folder])):
        out = tmp_path / f"{name}.safetensors"
        result = mgf_cli(*common, *data_args, "-o", out)
        assert result.returncode == 0, result.stderr
        trained[name] = bundle.read(out)
    assert trained["ds"].representation == {"name": "tokens", "config": {"vocab_size": 41}}
    pieces = trained["ds"].training["pieces"]
    assert pieces["train"] + pieces["validation"] == 60 and pieces["validation"] > 0 and pieces["skipped_files"] == 1
    assert all(t.training["pieces"] == pieces and t.training["tokens"] == trained["ds"].training["tokens"]
               for t in trained.values())
    for key, value in trained["ds"].tensors.items():  # a folder is trained from the cache's dataset: the same bundle
        np.testing.assert_array_equal(value, trained["folder"].tensors[key])
    wrong = mgf_cli(*common, "--repr", "tokens", "--data", tmp_path / "ds", "-o", tmp_path / "w.safetensors")
    assert wrong.returncode == 1 and "encoded with tokens {'vocab_size': 41}" in wrong.stderr
    assert wrong.stderr.count("\n") == 1
