"""What the data pipeline reads back is checked like input: encoding-cache entries, dataset shards, manifests.

Issue 25, rows 6-9: a damaged cache entry is re-encoded, never fatal; entries and shards are checked
against the manifest and the representation (dtype, shape, ids, counts, hashes) before their arrays
are read; only regular files are opened; a manifest names files inside its dataset only.  Every
error is one line naming the file and the remedy, in bounded time and memory.
"""

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

from mgf import InputError, get_representation
from mgf.training.build import build
from mgf.training.cache import _Limits
from mgf.training.shards import Shards
from mgf.training.sources import load

VOCAB = 41  # the tokens representation's start token is 40


pytestmark = pytest.mark.usefixtures("cache_dir")  # conftest's: MGF_CACHE_DIR in tmp_path


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "music"
    root.mkdir()
    (root / "one.txt").write_text("1 2 3\n")
    (root / "two.txt").write_text("4 5\n")
    (root / "three.txt").write_text("6 7 8 9\n")
    return root


TRUE = sorted([[1, 2, 3], [4, 5], [6, 7, 8, 9]])


def tokens():
    return get_representation("tokens", vocab_size=VOCAB)


def entries(cache_dir):
    return sorted((cache_dir / "sequences").rglob("*.npz"))


def entry_of(cache_dir, path):
    """The cache entry of the source file ``path`` (named by the SHA-256 of its bytes)."""
    import hashlib

    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    (found,) = [e for e in entries(cache_dir) if e.name == f"{digest}.npz"]
    return found


class Overtime(BaseException):
    """Raised by the timer of :func:`bounded`: no ``except OSError`` (TimeoutError) or ``except Exception`` takes it."""


@contextlib.contextmanager
def bounded(seconds=2.0, megabytes=300):
    """Fail unless the block ends within ``seconds`` (a blocked ``open`` included) and allocates under ``megabytes``."""

    def expire(*_):
        raise Overtime(f"still running after {seconds + 5} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds + 5)  # a hard stop for a block that would wait for ever
    tracemalloc.start()
    started = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    elapsed = time.monotonic() - started
    assert elapsed < seconds, f"took {elapsed:.1f} s"
    assert peak < megabytes * 2**20, f"allocated {peak / 2**20:.0f} MB"


def npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def bomb_header(items: int) -> bytes:
    """The ``.npy`` header of ``items`` int32s: what a compression bomb's member starts with."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<i4", "fortran_order": False, "shape": (items,)})
    return buffer.getvalue()


def rewrite(archive, members: dict[str, bytes]):
    """Replace (or add) members of the ``.npz`` file ``archive``, keeping the others."""
    with zipfile.ZipFile(archive) as old:
        kept = {info.filename: old.read(info) for info in old.infolist() if info.filename not in members}
    with zipfile.ZipFile(archive, "w") as new:
        for name, content in {**kept, **members}.items():
            new.writestr(name, content)


def write_deflated(archive, name, items):
    """Replace member ``name`` of ``archive`` by a compression bomb of ``items`` int32 zeros."""
    with zipfile.ZipFile(archive) as old:
        kept = {info.filename: old.read(info) for info in old.infolist() if info.filename != name}
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as new:
        for key, content in kept.items():
            new.writestr(key, content)
        with new.open(name, "w", force_zip64=True) as member:
            member.write(bomb_header(items))
            zeros = bytes(1 << 22)
            for _ in range(items * 4 // len(zeros)):
                member.write(zeros)


# -- row 6: a damaged cache entry is re-encoded, never fatal ---------------------------------------------------


@pytest.mark.parametrize("damage", ["empty", "truncated", "fifo", "directory"])
def test_a_damaged_cache_entry_is_re_encoded_and_replaced(folder, cache_dir, damage):
    load(tokens(), str(folder))
    for entry in entries(cache_dir):
        content = entry.read_bytes()
        entry.unlink()
        if damage == "empty":
            entry.write_bytes(b"")
        elif damage == "truncated":
            entry.write_bytes(content[: len(content) // 2])
        elif damage == "fifo":
            os.mkfifo(entry)
        else:
            entry.mkdir()
    with bounded():
        again = load(tokens(), str(folder))
    assert sorted(s.tolist() for s in again.sequences) == TRUE and again.cached == 0 and not again.skipped
    if damage in ("empty", "truncated"):  # replaced by a good entry: the next run reads it
        assert load(tokens(), str(folder)).cached == 3


def test_cache_entries_are_synced_to_disk_before_they_are_renamed(folder, cache_dir, monkeypatch):
    synced = []
    real = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    load(tokens(), str(folder))
    names = {os.path.basename(e) for e in map(str, entries(cache_dir))}
    assert len(names) == 3
    assert {name for name in names if any(name in os.path.basename(path) and ".mgf-tmp-" in path for path in synced)} \
        == names


def test_cli_dataset_survives_empty_cache_entries(folder, cache_dir, tmp_path):
    load(tokens(), str(folder))
    for entry in entries(cache_dir):
        entry.write_bytes(b"")
    done = subprocess.run([sys.executable, "-m", "mgf.cli.main", "dataset", str(folder), "--repr", "tokens",
                           "--config", f"vocab_size={VOCAB}", "-o", str(tmp_path / "ds")],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "MGF_CACHE_DIR": str(cache_dir)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("3 pieces")


# -- row 7: entries checked against the representation, before their arrays are read ----------------------------


@pytest.mark.parametrize("bad", [
    np.array([3, 41], np.int32),                # beyond the vocabulary
    np.array([-1, 2], np.int32),                # negative
    np.array([3, 40], np.int32),                # the start token inside a piece
    np.array([1.5, 2.0], np.float32),           # floats
    np.array([2**32 + 3, 2], np.int64),         # int64 beyond int32
    np.array([[1, 2], [3, 4]], np.int32),       # not 1-D
], ids=["vocab", "negative", "start", "float", "int64", "2d"])
def test_a_cache_entry_with_bad_ids_is_re_encoded(folder, cache_dir, bad):
    load(tokens(), str(folder))
    rewrite(entry_of(cache_dir, folder / "one.txt"), {"piece_0.npy": npy(bad)})
    again = load(tokens(), str(folder))
    assert sorted(s.tolist() for s in again.sequences) == TRUE and again.cached == 2
    assert all(s.dtype == np.int32 for s in again.sequences)


def test_a_cache_entry_of_another_file_is_not_used(folder, cache_dir):
    load(tokens(), str(folder))
    shutil.copyfile(entry_of(cache_dir, folder / "one.txt"), entry_of(cache_dir, folder / "two.txt"))
    again = load(tokens(), str(folder))
    assert sorted(s.tolist() for s in again.sequences) == TRUE


@pytest.mark.parametrize("how", ["deflated", "header"])
def test_a_cache_entry_of_400_mb_is_refused_before_reading_it(folder, cache_dir, how):
    load(tokens(), str(folder))
    entry = entry_of(cache_dir, folder / "one.txt")
    if how == "deflated":  # 400 MB of zeros in 400 KB
        write_deflated(entry, "piece_0.npy", 100_000_000)
    else:  # a header that announces 100M tokens
        rewrite(entry, {"piece_0.npy": bomb_header(100_000_000) + bytes(1 << 20)})
    assert entry.stat().st_size < 2**21
    with bounded(seconds=2, megabytes=300):
        again = load(tokens(), str(folder))
    assert sorted(s.tolist() for s in again.sequences) == TRUE


def test_a_cache_entry_longer_than_max_tokens_is_re_encoded(tmp_path, cache_dir):
    midi = get_representation("midi", max_tokens=1000)
    folder = tmp_path / "midi"
    folder.mkdir()
    chorale = get_representation("midi").read("corpus:bach/bwv66.6")[:300]
    midi.write(chorale, folder / "a.mid")
    first = load(midi, str(folder))
    (entry,) = entries(cache_dir)
    long = np.resize(first.sequences[0], 5000)
    rewrite(entry, {"piece_0.npy": npy(long)})
    again = load(midi, str(folder))
    assert [len(s) for s in again.sequences] == [len(first.sequences[0])] and again.cached == 0


# -- row 7: shards checked against the manifest and the representation ------------------------------------------


@pytest.fixture
def dataset(folder, tmp_path):
    build(tokens(), str(folder), str(tmp_path / "ds"))
    return tmp_path / "ds"


def shard_path(dataset):
    return dataset / json.loads((dataset / "manifest.json").read_text())["shards"][0]["file"]


def edit_manifest(dataset, change):
    manifest = json.loads((dataset / "manifest.json").read_text())
    change(manifest)
    (dataset / "manifest.json").write_text(json.dumps(manifest))


def refused(dataset, *words):
    """The one-line error of reading the dataset's first shard, checked for the file's name and ``words``."""
    with bounded(), pytest.raises(InputError) as raised:
        opened = Shards(str(dataset))
        opened.shard(0, tokens=False)
        opened.pieces(0)
    message = str(raised.value)
    assert "\n" not in message
    for word in words:
        assert word in message
    return message


@pytest.mark.parametrize("member, array, why", [
    ("tokens", np.array([1, 2, 3, 4, 41, 6, 7, 8, 9], np.int32), "outside the vocabulary"),
    ("tokens", np.array([1, 2, 3, 4, 5, 6, 7, 8, 40], np.int32), "start token"),
    ("tokens", np.arange(9, dtype=np.float32), "float32"),
    ("tokens", np.array([2**32 + 1] * 9, np.int64), "int64"),
    ("tokens", np.arange(10, dtype=np.int32), "tokens"),
    ("offsets", np.array([0, 3, 2, 9], np.int64), "offsets"),
    ("offsets", np.array([0, 3, 5, 10], np.int64), "offsets"),
    ("positions", np.array([0.5, np.nan, 0.1]), "positions"),
], ids=["vocab", "start", "float", "int64", "count", "decreasing", "end", "nan"])
def test_a_shard_that_disagrees_with_its_manifest_or_representation_is_refused(dataset, member, array, why):
    shard = shard_path(dataset)
    rewrite(shard, {f"{member}.npy": npy(array)})
    message = refused(dataset, str(shard), why, "rebuild")
    assert message.startswith(str(shard))


def test_a_shard_of_another_dataset_is_refused_by_its_hash(dataset, tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "a.txt").write_text("9 8 7\n")
    (tmp_path / "other" / "b.txt").write_text("1\n")
    (tmp_path / "other" / "c.txt").write_text("2 3 4 5 6\n")
    other = build(tokens(), str(tmp_path / "other"), str(tmp_path / "ds2"))
    shutil.copyfile(shard_path(tmp_path / "ds2"), shard_path(dataset))
    assert other.manifest["tokens"] == 9
    refused(dataset, str(shard_path(dataset)), "SHA-256")


def test_a_manifest_claiming_a_huge_shard_is_refused_before_reading_it(dataset):
    shard = shard_path(dataset)
    write_deflated(shard, "tokens.npy", 100_000_000)

    def claim(manifest):
        manifest["shards"][0]["tokens"] = manifest["tokens"] = 100_000_000
        manifest["shards"][0].pop("sha256", None)

    edit_manifest(dataset, claim)
    refused(dataset, str(shard))


def test_a_shard_holding_more_than_its_manifest_says_is_refused_from_its_header(dataset):
    shard = shard_path(dataset)
    rewrite(shard, {"tokens.npy": bomb_header(100_000_000) + bytes(4000)})
    edit_manifest(dataset, lambda m: m["shards"][0].pop("sha256", None))
    assert "(100000000,), not (9,)" in refused(dataset, str(shard), "tokens")


def test_a_compressed_shard_is_refused(dataset):
    shard = shard_path(dataset)
    write_deflated(shard, "tokens.npy", 9)
    edit_manifest(dataset, lambda m: m["shards"][0].pop("sha256", None))
    refused(dataset, str(shard), "is compressed")


@pytest.mark.parametrize("damage", ["vocabulary", "FIFO"])
def test_cli_train_refuses_a_damaged_shard_in_one_line(dataset, tmp_path, damage):
    pytest.importorskip("keras")
    shard = shard_path(dataset)
    if damage == "FIFO":
        fifo_instead(shard)
    else:
        rewrite(shard, {"tokens.npy": npy(np.array([1, 2, 3, 4, 41, 6, 7, 8, 9], np.int32))})
        edit_manifest(dataset, lambda m: m["shards"][0].pop("sha256", None))
    done = subprocess.run([sys.executable, "-m", "mgf.cli.main", "train", "--data", str(dataset), "--hidden", "4",
                           "--layers", "1", "--epochs", "1", "--val-split", "0", "--quiet", "-o",
                           str(tmp_path / "m.safetensors")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"mgf: error: {shard}: damaged dataset shard") and damage in done.stderr
    assert "rebuild the dataset with mgf dataset" in done.stderr and not (tmp_path / "m.safetensors").exists()


# -- row 8: regular files only -----------------------------------------------------------------------------------


def fifo_instead(path):
    path.unlink()
    os.mkfifo(path)


def test_a_fifo_as_shard_is_refused_in_one_line(dataset):
    shard = shard_path(dataset)
    fifo_instead(shard)
    refused(dataset, str(shard), "FIFO")


def test_a_fifo_as_manifest_or_listing_is_refused_in_one_line(dataset):
    fifo_instead(dataset / "files.jsonl")
    with bounded(), pytest.raises(InputError, match="files.jsonl.*FIFO"):
        Shards(str(dataset)).skipped()
    fifo_instead(dataset / "manifest.json")
    with bounded(), pytest.raises(InputError, match="manifest.json.*FIFO"):
        Shards(str(dataset))


def test_a_fifo_as_the_manifest_tensors_is_refused_in_one_line(dataset):
    os.mkfifo(dataset / "representation.npz")
    edit_manifest(dataset, lambda m: m["representation"].update(tensors="representation.npz"))
    with bounded(), pytest.raises(InputError, match=r"representation\.npz.*FIFO"):
        Shards(str(dataset)).representation()


def test_a_fifo_among_the_source_files_is_skipped(folder):
    os.mkfifo(folder / "pipe.txt")
    with bounded():
        loaded = load(tokens(), str(folder))
    assert sorted(s.tolist() for s in loaded.sequences) == TRUE
    assert [(os.path.basename(p), "FIFO" in why) for p, why in loaded.skipped] == [("pipe.txt", True)]


# -- row 9: paths confined to the dataset directory --------------------------------------------------------------


@pytest.mark.parametrize("where", ["../other/shard-00000.npz", "/etc/passwd", "link.npz"])
def test_a_shard_outside_the_dataset_is_refused(dataset, tmp_path, where):
    outside = tmp_path / "other"
    outside.mkdir()
    shutil.copyfile(shard_path(dataset), outside / "shard-00000.npz")
    if where == "link.npz":
        (dataset / where).symlink_to(outside / "shard-00000.npz")
    edit_manifest(dataset, lambda m: m["shards"][0].update(file=where))
    refused(dataset, where, "outside the dataset")


@pytest.mark.parametrize("field", ["tensors", "listing"])
def test_manifest_files_outside_the_dataset_are_refused(dataset, field):
    def point_outside(manifest):
        if field == "tensors":
            manifest["representation"]["tensors"] = "/etc/passwd"
        else:
            manifest["files"]["listing"] = "../../etc/passwd"

    edit_manifest(dataset, point_outside)
    with bounded(), pytest.raises(InputError, match="outside the dataset"):
        opened = Shards(str(dataset))
        opened.representation()
        opened.skipped()


@pytest.mark.parametrize("manifest", [
    "[]", '{"format": "mgf-dataset/1"}', '{"format": "mgf-dataset/1", "shards": [{"file": 3}]}',
    "[" * 100000 + "]" * 100000,
])
def test_malformed_manifests_are_one_line_errors(dataset, manifest):
    (dataset / "manifest.json").write_text(manifest)
    with bounded(), pytest.raises(InputError) as raised:
        Shards(str(dataset))
    assert "\n" not in str(raised.value) and "manifest.json" in str(raised.value)


def test_a_dataset_is_checked_against_the_representation_it_was_built_with(folder):
    from mgf.plugins.representations.tokens import Tokens

    class Unregistered(Tokens):
        name = "unregistered-tokens"

    for _ in range(2):  # built, then from the cache
        built = build(Unregistered(vocab_size=VOCAB), str(folder))
        assert sorted(p.tolist() for i in range(len(built)) for p in built.pieces(i)) == TRUE


def test_a_file_name_with_a_line_break_in_the_manifest_is_a_one_line_error(dataset):
    edit_manifest(dataset, lambda m: m["shards"][0].update(file="shard\n.npz"))
    with pytest.raises(InputError, match="not a printable file name") as raised:
        Shards(str(dataset))
    assert "\n" not in str(raised.value)


def test_an_empty_piece_given_as_a_list_is_no_bad_dtype():
    """``[]`` is float64 to numpy: a representation that reads an empty piece as a list must not be told its tokens are floats."""
    limits = _Limits(10, 9, 100)
    assert limits.checked([]).dtype == np.int32 and limits.checked([]).size == 0
    with pytest.raises(InputError, match="float64"):
        limits.checked([1.5])


@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_a_dataset_built_by_workers_stops_within_a_second(cache_dir, tmp_path, signum, code):
    """A signal ends ``mgf dataset --workers 2`` at once: the workers are stopped, not waited for to end their chunks."""
    run = subprocess.Popen([sys.executable, "-m", "mgf.cli.main", "dataset", "corpus:bach", "--repr", "notes", "--workers", "2",
                            "-o", str(tmp_path / "ds")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(cache_dir.rglob("*.npz")):  # the workers are encoding
        time.sleep(0.05)
    assert run.poll() is None, run.stderr.read()
    run.send_signal(signum)
    sent = time.monotonic()
    try:
        code_seen = run.wait(timeout=10)
    finally:
        run.kill()
    assert time.monotonic() - sent < 1.0 and code_seen == code
    assert run.stderr.read().strip().splitlines()[-1] in ("mgf: interrupted", "mgf: terminated")
