"""What a ``.keras`` file may hold, checked before Keras reads it, and what a network needs in memory.

Keras trusts the archive: a 68 KB file whose config asks for an LSTM of 12,000 units took 754 s
and 14.6 GB to build, a 4 MB file holding a 3.9 GiB ``config.json`` was read whole, asset members
were extracted to ``$TMPDIR``, and weights files may declare datasets far larger than they hold.
So the zip is read here first, with limits: only the members mgf's networks have, each of a
bounded size; the config describes a network of supported layers whose parameters fit this
machine; and the weights hold about as many bytes as those parameters need.  No TensorFlow here:
a bad file is refused in a fraction of a second.
"""

from __future__ import annotations

import io
import json
import math
import os
import stat
import struct
import zipfile

from mgf import InputError

SUPPORTED = ("Embedding or CategoryEncoding(one_hot), then LSTM layers or GRU(reset_after=True) layers (default activations), "
             "then Dense (linear or softmax); or a Transformer made by mgf train --arch transformer")

#: float32 weights, gradients and Adam's two moments when training; when exporting, the weights as Keras
#: initialises them, as read from the file, as float32 arrays and as the bundle: four copies too
BYTES_PER_PARAMETER = 16
#: the members a saved model has (Keras extracts any other, its assets, to disk): name -> largest size in bytes
MEMBERS = {"metadata.json": 1 << 16, "config.json": 1 << 20, "model.weights.h5": None}
CENTRAL_DIRECTORY_BYTES = 1 << 16  # three entries take about 200 bytes; the listing is parsed before any check
WEIGHTS_SLACK = 1 << 20  # HDF5's own structures: about 20 KB for a one-layer network
WEIGHT_COPIES = 3  # a checkpoint holds the weights and Adam's two moments
H5_OBJECTS = 10_000  # groups and datasets in the weights file; a 64-layer network has about 300
MAX_SIZE = 2**31 - 1  # units, vocabulary, embedding width


def memory() -> int:
    """This machine's physical memory in bytes."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_memory(need: int, what: str, purpose: str, error: type[InputError] = InputError) -> None:
    """Refuse, in one line, work that needs more than this machine's memory: ``what`` needs it for ``purpose``."""
    have = memory()
    if need > have:
        raise error(f"{what} need about {need / 2**30:,.1f} GiB {purpose}; this machine has {have / 2**30:.1f} GiB")


def check(path: str) -> int:
    """Check the ``.keras`` archive at ``path`` as above; the number of parameters its network has.

    Raises :class:`InputError` (one line, naming ``path``) for anything Keras should not be given.
    """
    try:
        with open(path, "rb", buffering=0) as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise InputError(f"{path}: not a regular file")
            return _check_archive(path, handle)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read ({error.strerror or error})") from None


def _refuse(path: str, why: str) -> InputError:
    return InputError(f"{path}: not a loadable Keras model ({why})")


def _check_archive(path: str, handle) -> int:
    end = zipfile._EndRecData(handle)  # the end record alone: its counts come before the listing is parsed
    if end is None:
        raise _refuse(path, "not a .keras archive; save the model with model.save('NAME.keras')")
    if end[zipfile._ECD_ENTRIES_TOTAL] > len(MEMBERS) or end[zipfile._ECD_SIZE] > CENTRAL_DIRECTORY_BYTES:
        raise _refuse(path, f"{end[zipfile._ECD_ENTRIES_TOTAL]} members; a saved network has {', '.join(MEMBERS)}")
    try:
        archive = zipfile.ZipFile(handle)
        members = archive.infolist()
        names = [member.filename for member in members]
        extra = sorted(set(names) - set(MEMBERS))
        if extra or len(set(names)) != len(names):
            shown = ", ".join(repr(name[:60]) for name in extra[:3]) or "a member twice"
            raise _refuse(path, f"it holds {shown}; a saved network has only {', '.join(MEMBERS)}")
        for required in ("config.json", "model.weights.h5"):
            if required not in names:
                raise _refuse(path, f"no {required}")
        sizes = {member.filename: member.file_size for member in members}
        weights = archive.getinfo("model.weights.h5")
        if weights.compress_type != zipfile.ZIP_STORED:
            raise _refuse(path, "model.weights.h5 is compressed; Keras stores it as it is")
        for name, limit in MEMBERS.items():
            if limit is not None and sizes.get(name, 0) > limit:
                raise _refuse(path, f"its {name} is {sizes[name]:,} bytes, more than a network's ({limit:,})")
        try:
            config = json.loads(archive.read("config.json"))
        except (ValueError, RecursionError):
            raise _refuse(path, "config.json is not JSON") from None
        parameters, layers = _parameters(path, config)
        least, most = 2 * parameters, 4 * WEIGHT_COPIES * parameters + WEIGHTS_SLACK * (1 + layers // 16)
        if not least <= weights.file_size <= most:
            raise _refuse(path, f"model.weights.h5 holds {weights.file_size:,} bytes, but the network in config.json has "
                                f"{parameters:,} parameters")
        _check_weights(path, handle, weights)
    except InputError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, NotImplementedError) as error:
        raise _refuse(path, f"a damaged archive: {str(error).splitlines()[0][:200] if str(error) else type(error).__name__}") \
            from None
    except OSError as error:  # zlib errors and truncated members surface as these
        raise _refuse(path, f"a damaged archive: {error.strerror or type(error).__name__}") from None
    check_memory(BYTES_PER_PARAMETER * parameters, f"{path}: its {parameters:,} parameters", "to load")
    return parameters


def _integer(path: str, layer: str, key: str, value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_SIZE:
        raise _refuse(path, f"layer {layer!r}: {key} must be a positive integer, got {str(value)[:40]}")
    return value


def _parameters(path: str, config) -> tuple[int, int]:
    """Parameters and layers of the network a Keras ``config.json`` describes, counted as its layers build them."""
    layers = config.get("config", {}).get("layers") if isinstance(config, dict) and isinstance(config.get("config"), dict) \
        else None
    if not isinstance(layers, list) or not all(isinstance(layer, dict) for layer in layers):
        raise _refuse(path, "config.json lists no layers")
    parameters, width = 0, None
    for layer in layers:
        kind, options = layer.get("class_name"), layer.get("config")
        options = options if isinstance(options, dict) else {}
        name = str(options.get("name", layer.get("name", "?")))[:60]
        if kind in ("InputLayer", "Dropout"):
            continue
        if kind == "Embedding":
            vocab, width = (_integer(path, name, key, options.get(key)) for key in ("input_dim", "output_dim"))
            parameters += vocab * width
        elif kind == "CategoryEncoding":
            width = _integer(path, name, "num_tokens", options.get("num_tokens"))
        elif kind in ("Add", "LayerNormalization") and width is not None:  # a Transformer's (keras/transformer.py)
            parameters += 2 * width if kind == "LayerNormalization" else 0
        elif kind == "Positions" and width is not None:
            parameters += _integer(path, name, "context", options.get("context")) * width
        elif kind == "MultiHeadAttention" and width is not None:
            inner = _integer(path, name, "num_heads", options.get("num_heads")) * _integer(
                path, name, "key_dim", options.get("key_dim"))
            parameters += 3 * (width + 1) * inner + (inner + 1) * width
        elif kind in ("LSTM", "GRU", "Dense") and width is not None:
            units = _integer(path, name, "units", options.get("units"))
            if kind == "Dense":
                parameters += (width + 1) * units
            else:  # LSTM: 4 gates, one bias; GRU (reset_after): 3 gates, two biases
                gates, biases = (4, 1) if kind == "LSTM" else (3, 2)
                parameters += gates * units * (width + units + biases)
            width = units
        else:
            raise InputError(f"unsupported {'first ' if width is None else ''}layer {name!r} ({str(kind)[:60]}): "
                             f"expected {SUPPORTED}")
    return parameters, len(layers)


class _Member(io.RawIOBase):
    """A stored (uncompressed) member of a zip, read in place: h5py seeks back and forth, and a ``ZipExtFile``
    rereads the member from its start at each backward seek."""

    def __init__(self, handle, member: zipfile.ZipInfo) -> None:
        super().__init__()
        handle.seek(member.header_offset)
        header = handle.read(30)
        if len(header) != 30 or header[:4] != b"PK\x03\x04":
            raise zipfile.BadZipFile("a member's header is missing")
        name_length, extra_length = struct.unpack("<HH", header[26:30])
        self.handle, self.start, self.size, self.position = handle, member.header_offset + 30 + name_length + extra_length, \
            member.file_size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self.position = max(0, offset + {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence])
        return self.position

    def tell(self) -> int:
        return self.position

    def readinto(self, buffer) -> int:
        count = max(0, min(len(buffer), self.size - self.position))
        self.handle.seek(self.start + self.position)
        data = self.handle.read(count)
        buffer[:len(data)] = data
        self.position += len(data)
        return len(data)


def _check_weights(path: str, handle, member: zipfile.ZipInfo) -> None:
    """The weights file's datasets, as declared, together hold no more than the file does: a dataset of a
    declared shape but no data (HDF5's fill value) made Keras allocate gigabytes from a file of kilobytes."""
    import h5py

    declared, objects = 0, 0

    def visit(name, item):
        nonlocal declared, objects
        objects += 1
        if objects > H5_OBJECTS:
            raise _refuse(path, f"model.weights.h5 holds more than {H5_OBJECTS:,} objects")
        if isinstance(item, h5py.Dataset):
            if item.dtype.kind not in "fiub":
                raise _refuse(path, f"model.weights.h5: {name[:80]!r} holds {item.dtype.kind!r} data, not numbers")
            declared += math.prod(item.shape or ()) * item.dtype.itemsize
        return None

    try:
        with h5py.File(_Member(handle, member), "r") as weights:
            weights.visititems(visit)
    except InputError:
        raise
    except Exception as error:  # h5py raises OSError, KeyError, ValueError, RuntimeError... for a damaged file
        raise _refuse(path, f"model.weights.h5 is not a weights file ({type(error).__name__})") from None
    if declared > member.file_size:
        raise _refuse(path, f"model.weights.h5 declares {declared:,} bytes of weights but holds {member.file_size:,}")
