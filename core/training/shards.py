"""Dataset directories, read one shard at a time: what training streams from, in bounded memory.

A directory holds ``shard-NNNNN.npz`` files (a flat int32 ``tokens`` array, int64 ``offsets`` with
one more entry than pieces, float64 split ``positions``), ``files.jsonl`` (each source file's path,
SHA-256, piece count or skip reason) and ``manifest.json`` (format, representation, shards with their
counts and hashes, the split).  :mod:`mgf.training.build` writes it; everything read back is checked
like input, since a dataset directory may come from anywhere.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

import numpy as np

from mgf.contract.representation import Representation
from mgf.errors import InputError
from mgf.training.cache import _config_key, _Limits, _longest, cache_root
from mgf.training.npz import Archive, Damaged, file_sha256, opened, save
from mgf.training.split import sides

DATASET_FORMAT = "mgf-dataset/1"
MANIFEST = "manifest.json"
SHARD_TOKENS = 1 << 22  # tokens per shard: 16 MB of int32, what training holds at once
MAX_MANIFEST_BYTES = 1 << 24  # a manifest of 100,000 shards takes about 10 MB
MAX_LINE_BYTES = 1 << 20  # one line of files.jsonl: a path and a reason
MAX_TENSOR_BYTES = 1 << 28  # a dataset's representation.npz (an audio codebook is at most 64 MB)


def is_dataset(path: str) -> bool:
    """Whether ``path`` is a dataset directory written by :func:`mgf.training.build.build`."""
    return os.path.isfile(os.path.join(os.path.expanduser(path), MANIFEST))


class Shards:
    """A dataset directory, read one shard at a time: what training streams from.

    What it holds is checked like input: the manifest's fields; that the files it names are
    regular files inside the directory; each shard against its manifest entry (counts, offsets,
    split positions, SHA-256) and its tokens against the representation, headers before data.
    The first reading of a shard reads it whole, so the split that training computes first finds
    a damaged shard before TensorFlow runs.  ``representation`` is the one the pieces were encoded
    with, if at hand (else rebuilt from the manifest when first needed).
    """

    def __init__(self, directory: str, manifest: dict | None = None,
                 representation: Representation | None = None) -> None:
        self.directory = os.path.expanduser(directory)
        if manifest is None:
            manifest = self._read_manifest()
        if not isinstance(manifest, dict) or manifest.get("format") != DATASET_FORMAT:
            raise InputError(f"{directory}: {MANIFEST} is not a dataset of this mgf version ({DATASET_FORMAT})")
        problem = _manifest_problem(manifest)
        if problem:
            raise InputError(f"{os.path.join(self.directory, MANIFEST)}: {problem}; {self._remedy()}")
        self.manifest = manifest
        longest = _longest(manifest["representation"]["config"])
        for entry in manifest["shards"]:
            if entry["tokens"] > SHARD_TOKENS + longest or entry["pieces"] > SHARD_TOKENS:
                raise InputError(f"{os.path.join(self.directory, entry['file'])}: the manifest gives it "
                                 f"{entry['tokens']:,} tokens in {entry['pieces']:,} pieces, more than a shard holds "
                                 f"({SHARD_TOKENS:,} and a piece of at most {longest:,}); {self._remedy()}")
        self._limits = None if representation is None else _Limits.of(representation)
        self._checked: set[int] = set()  # shards read whole and found sound

    def _read_manifest(self) -> dict:
        path = os.path.join(self.directory, MANIFEST)
        try:
            with opened(path) as handle:
                text = handle.read(MAX_MANIFEST_BYTES + 1)
        except (Damaged, OSError) as error:
            if isinstance(error, Damaged) and os.path.lexists(path):  # a FIFO, a directory
                raise InputError(f"{path}: {error}; {self._remedy()}") from None
            raise InputError(f"{self.directory}: not a dataset directory (no readable {MANIFEST})") from None
        if len(text) > MAX_MANIFEST_BYTES:
            raise InputError(f"{path}: more than {MAX_MANIFEST_BYTES:,} bytes; {self._remedy()}")
        try:
            return json.loads(text)
        except (ValueError, RecursionError) as error:
            raise InputError(f"{path}: not JSON ({str(error)[:200]}); {self._remedy()}") from None

    def _remedy(self) -> str:
        """What to do about a damaged dataset: rebuild it (the cache's own rebuilds itself once deleted)."""
        cached = os.path.join(os.path.realpath(cache_root()), "datasets") + os.sep
        if os.path.realpath(self.directory).startswith(cached):
            return f"delete {self.directory} (mgf's cache) and run again to rebuild it"
        return "rebuild the dataset with mgf dataset"

    def _file(self, name: str) -> str:
        """The path of the dataset's file ``name``, which must lie inside the directory (no ``..``, no link out)."""
        path = os.path.join(self.directory, name)
        root = os.path.realpath(self.directory)
        if not _relative(name) or os.path.commonpath([root, os.path.realpath(path)]) != root:
            raise InputError(f"{path}: outside the dataset directory {self.directory}, yet named in its {MANIFEST}; "
                             f"{self._remedy()}")
        return path

    def representation(self) -> Representation:
        """The representation the pieces were encoded with, its learned tensors included."""
        from mgf.generation.api import get_representation

        spec = self.manifest["representation"]
        representation = get_representation(spec["name"], **spec["config"])
        if spec["tensors"]:
            path = self._file(spec["tensors"])
            try:
                with Archive(path, 64, MAX_TENSOR_BYTES) as archive:
                    tensors = {name: archive.array(name) for name in sorted(archive.names)}
            except Damaged as error:
                raise InputError(f"{path}: damaged representation tensors ({error}); {self._remedy()}") from None
            representation.load_tensors(tensors)
        return representation

    def _piece_limits(self) -> _Limits:
        if self._limits is None:
            self._limits = _Limits.of(self.representation())
        return self._limits

    def matches(self, representation: Representation) -> bool:
        """Whether ``representation`` makes the tokens this dataset holds (same name, config and tensors)."""
        return _config_key(representation) == self.manifest["representation"]["key"]

    def skipped(self) -> list[tuple[str, str]]:
        """``(path, reason)`` of the source files that could not be encoded."""
        path = self._file(self.manifest["files"]["listing"])
        found = []
        try:
            with opened(path, "r", encoding="utf-8") as handle:
                while line := handle.readline(MAX_LINE_BYTES + 1):
                    if len(line) > MAX_LINE_BYTES:
                        raise ValueError(f"a line of more than {MAX_LINE_BYTES:,} characters")
                    entry = json.loads(line)
                    if not isinstance(entry, dict):
                        raise ValueError(f"a line holds {type(entry).__name__}, not an object")
                    if entry.get("error"):
                        found.append((str(entry.get("path")), str(entry["error"])))
        except (OSError, ValueError, RecursionError) as error:  # Damaged too: a FIFO, a missing file
            raise InputError(f"{path}: damaged file listing ({getattr(error, 'strerror', None) or error}); "
                             f"{self._remedy()}") from None
        return found

    def shard(self, index: int, *, tokens: bool = True) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
        """``(tokens, offsets, positions)`` of shard ``index``, checked (``tokens=False`` reads no tokens once the
        shard has been read whole)."""
        entry = self.manifest["shards"][index]
        path = self._file(entry["file"])
        whole = tokens or index not in self._checked
        limits = self._piece_limits() if whole else None
        try:
            with Archive(path, 8) as archive:
                offsets = archive.array("offsets", np.int64, (entry["pieces"] + 1,))
                positions = archive.array("positions", np.float64, (entry["pieces"],))
                _check_index(offsets, positions, entry["tokens"], _longest(self.manifest["representation"]["config"]))
                if limits is None:
                    archive.check("tokens", np.int32, (entry["tokens"],))
                    return None, offsets, positions
                stored = archive.array("tokens", np.int32, (entry["tokens"],))
                problem = limits.ids(stored)
                if problem:
                    raise Damaged(problem)
                if "sha256" in entry and archive.sha256() != entry["sha256"]:
                    raise Damaged("its SHA-256 is not the one in the manifest")
        except Damaged as error:
            raise InputError(f"{path}: damaged dataset shard ({error}); {self._remedy()}") from None
        self._checked.add(index)
        return (stored if tokens else None), offsets, positions

    def __len__(self) -> int:
        return len(self.manifest["shards"])

    def sides(self, validation: float) -> list[np.ndarray]:
        """Per shard, which pieces are held out at ``validation`` (the split of :meth:`Dataset.split`)."""
        return sides([self.shard(i, tokens=False)[2] for i in range(len(self))], validation)

    def split_counts(self, validation: float) -> dict:
        """Pieces and tokens on each side of the split at ``validation``."""
        sides: dict[str, dict[str, int]] = {"train": {"pieces": 0, "tokens": 0}, "validation": {"pieces": 0, "tokens": 0}}
        for index, held in enumerate(self.sides(validation)):
            lengths = np.diff(self.shard(index, tokens=False)[1])
            for side, mask in (("train", ~held), ("validation", held)):
                sides[side]["pieces"] += int(mask.sum())
                sides[side]["tokens"] += int(lengths[mask].sum())
        return {"validation_fraction": validation, **sides}

    def pieces(self, index: int, mask: np.ndarray | None = None) -> list[np.ndarray]:
        """The pieces of shard ``index`` (those where ``mask`` is true)."""
        tokens, offsets, _ = self.shard(index)
        assert tokens is not None
        chosen = range(len(offsets) - 1) if mask is None else np.flatnonzero(mask)
        return [tokens[offsets[i]:offsets[i + 1]] for i in chosen]


def stream(parts: list[tuple[Shards, int, np.ndarray]], transform=None, seed: int | None = None) -> Iterable[list[np.ndarray]]:
    """The chosen pieces of ``(dataset, shard, mask)`` parts, a shard's worth at a time.

    ``seed`` shuffles the order of the parts; ``transform`` maps a shard's list of pieces (augmentation).
    """
    order = range(len(parts)) if seed is None else np.random.default_rng(seed).permutation(len(parts))
    for i in order:
        shards, index, mask = parts[i]
        pieces = shards.pieces(index, mask)
        yield transform(pieces) if transform else pieces


class _ShardWriter:
    """Pieces in, ``shard-NNNNN.npz`` files out, one every :data:`SHARD_TOKENS` tokens."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.pieces: list[np.ndarray] = []
        self.positions: list[float] = []
        self.size = 0
        self.shards: list[dict] = []
        self.skipped = self.cached = 0

    def add(self, tokens: np.ndarray, where: float) -> None:
        self.pieces.append(tokens)
        self.positions.append(where)
        self.size += len(tokens)
        if self.size >= SHARD_TOKENS or len(self.pieces) >= SHARD_TOKENS:  # what Shards accepts
            self.flush()

    def flush(self) -> None:
        if not self.pieces:
            return
        name = f"shard-{len(self.shards):05d}.npz"
        offsets = np.zeros(len(self.pieces) + 1, np.int64)
        np.cumsum([len(p) for p in self.pieces], out=offsets[1:])
        tokens = np.concatenate(self.pieces).astype(np.int32, copy=False)
        path = os.path.join(self.directory, name)
        save(path, tokens=tokens, offsets=offsets, positions=np.array(self.positions, np.float64))
        self.shards.append({"file": name, "pieces": len(self.pieces), "tokens": int(offsets[-1]),
                            "sha256": file_sha256(path)})
        self.pieces, self.positions, self.size = [], [], 0


def _manifest_problem(manifest: dict) -> str | None:
    """What is wrong with the fields of a manifest of the right format, or None."""
    spec, listing, shards = manifest.get("representation"), manifest.get("files"), manifest.get("shards")
    if not (isinstance(spec, dict) and isinstance(spec.get("name"), str) and isinstance(spec.get("config"), dict)
            and isinstance(spec.get("key"), str) and isinstance(spec.get("tensors", 0), (str, type(None)))):
        return "no representation name, config, key and tensors file"
    if not (isinstance(listing, dict) and isinstance(listing.get("listing"), str)
            and all(_is_count(listing.get(key)) for key in ("count", "skipped", "from_cache"))):
        return "no file listing and counts"
    if not (isinstance(shards, list) and all(
            isinstance(s, dict) and isinstance(s.get("file"), str) and _is_count(s.get("pieces"))
            and _is_count(s.get("tokens")) and isinstance(s.get("sha256", ""), str) for s in shards)):
        return "its shards are not a list of files with piece and token counts"
    if manifest.get("pieces") != sum(s["pieces"] for s in shards) or manifest.get("tokens") != sum(s["tokens"] for s in shards):
        return "its piece and token counts are not the sums of its shards'"
    for name in (spec["tensors"], listing["listing"], *(s["file"] for s in shards)):
        if name is not None and not name.isprintable():
            return f"it names {name[:200]!r}, not a printable file name"
        if name is not None and not _relative(name):
            return f"it names {name[:200]!r}, outside the dataset directory"
    return None


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _relative(name: str) -> bool:
    """Whether ``name`` is a path below a directory as written: not absolute, no ``..``, no NUL."""
    return bool(name) and "\0" not in name and not os.path.isabs(name) and ".." not in name.replace("\\", "/").split("/")


def _check_index(offsets: np.ndarray, positions: np.ndarray, tokens: int, longest: int) -> None:
    """:class:`Damaged` unless ``offsets`` cut ``tokens`` tokens into pieces of at most ``longest`` and every
    split position is in [0, 1)."""
    lengths = np.diff(offsets)
    if offsets[0] != 0 or offsets[-1] != tokens or (lengths < 0).any() or lengths.max(initial=0) > longest:
        raise Damaged(f"its offsets do not cut its {tokens:,} tokens into pieces of 0 to {longest:,} tokens")
    if not ((positions >= 0) & (positions < 1)).all():  # false for NaN too
        raise Damaged("its split positions are not all in [0, 1)")
