"""Encoding a source into a dataset directory (``mgf dataset``): complete, or not there at all."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from typing import Any

from mgf.contract.representation import Representation
from mgf.errors import InputError
from mgf.files import check_output, directory_locked, synced, temporary_directory, writing_elsewhere
from mgf.training.cache import _config_key, cache_root
from mgf.training.npz import save
from mgf.training.shards import DATASET_FORMAT, MANIFEST, Shards, _ShardWriter, is_dataset
from mgf.training.sources import encode, files
from mgf.training.split import piece_key, position


def build(representation: Representation, source: str, directory: str | None = None, *, workers: int = 1,
          scheduler: str | None = None, cache: bool = True, progress: bool | None = None,
          every: float | None = None, validation: float = 0.1) -> Shards:
    """Encode ``source`` into a dataset directory and open it; ``directory=None`` means the cache's own.

    The directory holds what :class:`~mgf.training.shards.Shards` reads, ``manifest.json`` (with the
    split at ``validation``) written last.  It is built beside its place under a temporary name and
    renamed when complete, so a dataset directory is never half-written.  Pieces arrive one file at a
    time and leave in shards of :data:`~mgf.training.shards.SHARD_TOKENS`, so encoding too holds one
    shard at a time.
    """
    paths = files(source, representation.read_suffixes)
    key = _config_key(representation)
    shared = directory is None  # the cache's: runs building it at once build the same thing, one of them is kept
    if directory is None:
        directory = _cached_dataset(representation.name, key, paths)
        if is_dataset(directory):
            try:
                return Shards(directory, representation=representation)
            except InputError:  # damaged: rebuilt, as a damaged cache entry is re-encoded
                shutil.rmtree(directory, ignore_errors=True)
    elif os.path.exists(directory):
        raise InputError(f"{directory}: exists; name a new directory for the dataset")
    parent = os.path.dirname(os.path.abspath(directory))
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as error:
        raise InputError(f"{directory}: cannot create {parent} ({error.strerror or error})") from None
    check_output(os.path.join(directory + ".manifest"))  # the parent is writable: before any work
    place = os.path.join(parent, os.path.basename(directory))
    with directory_locked(parent):
        tmp, claim = temporary_directory(place)
        elsewhere = not shared and writing_elsewhere(place, tmp)
    try:
        if elsewhere:
            raise InputError(f"{directory}: another mgf dataset is writing it; "
                             "wait for it to finish or name another directory")
        writer = _ShardWriter(tmp)
        with open(os.path.join(tmp, "files.jsonl"), "w", encoding="utf-8") as listing:
            for done in encode(representation, paths, workers=workers, scheduler=scheduler, cache=cache,
                               progress=progress, every=every, label=source):
                writer.cached += done.cached
                if done.error is None:
                    for index, (_, tokens) in enumerate(done.pieces):
                        writer.add(tokens, position(piece_key(done.digest, index)))
                else:
                    writer.skipped += 1
                entry = {"path": done.path, "sha256": done.digest, "pieces": len(done.pieces)}
                listing.write(json.dumps({**entry, "error": done.error} if done.error else entry) + "\n")
            synced(listing)
        writer.flush()
        tensors: dict[str, Any] = representation.tensors()
        if tensors:
            save(os.path.join(tmp, "representation.npz"), **tensors)
        manifest = {
            "format": DATASET_FORMAT,
            "source": source,
            "representation": {"name": representation.name, "config": representation.config(),
                               "tensors": "representation.npz" if tensors else None, "key": key},
            "files": {"listing": "files.jsonl", "count": len(paths), "skipped": writer.skipped,
                      "from_cache": writer.cached},
            "shards": writer.shards,
            "pieces": sum(s["pieces"] for s in writer.shards),
            "tokens": sum(s["tokens"] for s in writer.shards),
        }
        opened = Shards(tmp, manifest, representation)
        manifest["split"] = opened.split_counts(validation)
        with open(os.path.join(tmp, MANIFEST), "w", encoding="utf-8") as handle:
            json.dump(manifest, handle, indent=1)
            synced(handle)
        try:
            os.rename(tmp, directory)
        except OSError:
            if not shared and os.path.exists(directory):
                raise InputError(f"{directory}: another run wrote it meanwhile; name a new directory") from None
            if not is_dataset(directory):  # else another run built the same cache entry first: use it
                raise InputError(f"{directory}: cannot create the dataset directory") from None
    except OSError as error:
        raise InputError(f"{directory}: cannot write the dataset ({error.strerror or error})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        os.close(claim)
    return Shards(directory, representation=representation)


def _cached_dataset(name: str, key: str, paths: list[str]) -> str:
    """Where the cache keeps the dataset of these files (by path, size and modification time) for this config.

    Where the cache cannot be written, a temporary directory removed at exit: it only costs speed.
    """
    stamp = hashlib.sha256(key.encode())
    for path in paths:
        try:
            info = os.stat(path)
            stamp.update(f"{path}\0{info.st_size}\0{info.st_mtime_ns}\0".encode())
        except OSError:
            stamp.update(f"{path}\0unreadable\0".encode())  # encoding reports it
    folder = os.path.join(cache_root(), "datasets", name)
    try:
        os.makedirs(folder, exist_ok=True)
        check_output(os.path.join(folder, "probe"))
    except OSError:
        import atexit
        import tempfile

        folder = tempfile.mkdtemp(prefix="mgf-dataset-")
        atexit.register(shutil.rmtree, folder, True)
    return os.path.join(folder, stamp.hexdigest()[:24])
