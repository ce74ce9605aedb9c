"""The ``.npz`` files mgf writes (cache entries, dataset shards), synced, and read back as untrusted input.

``numpy.load`` reads a member whole before anyone sees its shape, so a 1.5 MB file can unpack
to gigabytes, and it fails with whatever the zip or the ``.npy`` header gives (``EOFError``,
``BadZipFile``, ``zlib.error``).  :class:`Archive` opens regular files only, bounds the zip
directory before parsing it, checks each member's header (dtype, shape) against what the caller
expects before reading exactly that many bytes, and never unpickles.  Members must be stored
uncompressed, as mgf writes them, and no more bytes of arrays are read than the file holds, so
memory is bounded by the file's size.  Every damage is a :class:`Damaged` saying what is wrong;
the caller names the file and the remedy.
"""

from __future__ import annotations

import hashlib
import math
import os
import struct
import tokenize
import zipfile
import zlib

import numpy as np

from mgf.files import NotRegularFile, open_regular, synced

MAX_HEADER = 10_000  # bytes of one member's .npy header (numpy's own limit)
_EOCD = struct.Struct("<4s4H2LH")  # the zip's end-of-central-directory record
_BROKEN = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError, NotImplementedError,
           RuntimeError, struct.error, OverflowError)


class Damaged(ValueError):
    """A file that is not the archive it should be (the message says why, without the path)."""


class Archive:
    """An ``.npz`` file opened for checked reading: at most ``members`` arrays, at most ``max_bytes`` in all."""

    def __init__(self, path: str, members: int, max_bytes: int | None = None) -> None:
        self.handle = opened(path)
        try:
            self.size = os.fstat(self.handle.fileno()).st_size
            if max_bytes is not None and self.size > max_bytes:
                raise Damaged(f"{self.size:,} bytes, more than the limit of {max_bytes:,}")
            self._check_directory(members)
            self.zip = zipfile.ZipFile(self.handle)
            self.names = {n.removesuffix(".npy") for n in self.zip.namelist()}
        except Damaged:
            self.handle.close()
            raise
        except _BROKEN as error:
            self.handle.close()
            raise Damaged(f"not a readable .npz file ({type(error).__name__}: {error})") from None
        self.read = 0  # bytes of arrays read so far: at most the file's size

    def _check_directory(self, members: int) -> None:
        """Refuse a zip directory of more than ``members`` entries before zipfile parses it (all of it, in memory)."""
        tail = min(self.size, _EOCD.size + 65535)
        self.handle.seek(self.size - tail)
        end = self.handle.read(tail)
        at = end.rfind(b"PK\x05\x06")
        if at < 0 or len(end) - at < _EOCD.size:
            raise Damaged("not a .npz file (no zip directory)")
        _, _, _, _, count, size, _, _ = _EOCD.unpack_from(end, at)
        if count > members or size > 256 * members:  # mgf's entries are under 100 bytes; zip64 counts are 0xFFFF
            raise Damaged(f"a zip directory of {count} entries in {size} bytes, more than the {members} it may hold")
        self.handle.seek(0)

    def check(self, name: str, dtype=None, shape: tuple[int | None, ...] | None = None,
              limit: int | None = None) -> None:
        """Check member ``name``'s header as :meth:`array` does, reading none of its data."""
        with self._open(name) as member:
            self._expected(member, name, dtype, shape, limit)

    def array(self, name: str, dtype=None, shape: tuple[int | None, ...] | None = None,
              limit: int | None = None) -> np.ndarray:
        """Member ``name``, of exactly ``dtype`` (None: any number type) and ``shape`` (None: any; a None
        length: any, with at most ``limit`` values in all).

        The header is checked first; then exactly the bytes it announces are read, never more than
        the file could hold uncompressed.
        """
        try:
            with self._open(name) as member:
                found, kind, fortran = self._expected(member, name, dtype, shape, limit)
                size = math.prod(found) * kind.itemsize
                if self.read + size > self.size:
                    raise Damaged(f"{name[:80]!r} would unpack to {size:,} bytes, more than the file holds")
                self.read += size
                content = member.read(size)
                if len(content) != size or member.read(1):  # reading to the end checks the member's CRC
                    raise Damaged(f"{name[:80]!r} has {len(content):,} bytes of data, not {size:,}")
        except Damaged:
            raise
        except _BROKEN as error:
            raise Damaged(f"{name[:80]!r} is unreadable ({type(error).__name__}: {error})") from None
        return np.frombuffer(bytearray(content), kind).reshape(found, order="F" if fortran else "C")

    def sha256(self) -> str:
        """The SHA-256 of the file's bytes."""
        return _sha256(self.handle)

    def _open(self, name: str):
        if name not in self.names:
            raise Damaged(f"no array {name!r}")
        try:
            if self.zip.getinfo(f"{name}.npy").compress_type != zipfile.ZIP_STORED:
                # mgf writes arrays uncompressed; bzip2 and LZMA would unpack a chunk whole, however large
                raise Damaged(f"{name[:80]!r} is compressed")
            return self.zip.open(f"{name}.npy")
        except Damaged:
            raise
        except _BROKEN as error:
            raise Damaged(f"{name[:80]!r} is unreadable ({type(error).__name__}: {error})") from None

    @staticmethod
    def _expected(member, name: str, dtype, shape, limit) -> tuple[tuple[int, ...], np.dtype, bool]:
        """``(shape, dtype, fortran_order)`` from the header of ``member``, or :class:`Damaged` unless as expected."""
        try:
            version = np.lib.format.read_magic(member)
            if version == (1, 0):
                found, fortran, kind = np.lib.format.read_array_header_1_0(member, max_header_size=MAX_HEADER)
            elif version == (2, 0):
                found, fortran, kind = np.lib.format.read_array_header_2_0(member, max_header_size=MAX_HEADER)
            else:
                raise Damaged(f"{name[:80]!r} is a .npy file of version {version}")
        except Damaged:
            raise
        except _BROKEN + (TypeError, SyntaxError, tokenize.TokenError) as error:  # numpy tokenizes old headers
            raise Damaged(f"{name[:80]!r} has no readable .npy header ({type(error).__name__}: {error})") from None
        if kind != (kind if dtype is None else np.dtype(dtype)) or kind.kind not in "biuf" or kind.hasobject:
            raise Damaged(f"{name[:80]!r} is {kind.name}, not {'numbers' if dtype is None else np.dtype(dtype).name}")
        if any(n < 0 for n in found):
            raise Damaged(f"{name[:80]!r} has shape {found}")
        if shape is not None and (len(found) != len(shape) or any(w is not None and w != n for w, n in zip(shape, found))):
            wanted = ", ".join("n" if w is None else str(w) for w in shape) + ("," if len(shape) == 1 else "")
            raise Damaged(f"{name[:80]!r} has shape {found}, not ({wanted})")
        if limit is not None and math.prod(found) > limit:
            raise Damaged(f"{name[:80]!r} holds {math.prod(found):,} values, more than the limit of {limit:,}")
        return found, kind, fortran

    def close(self) -> None:
        self.handle.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def opened(path: str, mode: str = "rb", **kwargs):
    """``open_regular(path, mode, **kwargs)``, or :class:`Damaged` saying why not (a FIFO, a missing file).

    Raised outside the ``except`` clause: an exception whose context holds a ``NotRegularFile``
    cannot be pickled back from ``mgf train``'s TensorFlow process (tblib).
    """
    try:
        return open_regular(path, mode, **kwargs)
    except NotRegularFile as error:
        reason = str(error).removeprefix(f"{path}: ")
    except OSError as error:
        reason = error.strerror or str(error)
    raise Damaged(reason)


def _sha256(handle) -> str:
    digest = hashlib.sha256()
    handle.seek(0)
    while chunk := handle.read(1 << 20):
        digest.update(chunk)
    handle.seek(0)
    return digest.hexdigest()


def file_sha256(path: str) -> str:
    """The SHA-256 of the regular file ``path``'s bytes, read a MB at a time."""
    with open_regular(path) as handle:
        return _sha256(handle)


def save(path: str, **arrays) -> None:
    """``np.savez`` to ``path``, synced to disk: a rename after it never publishes a file whose bytes are not there yet."""
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)
        synced(handle)
