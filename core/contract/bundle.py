"""Bundle format v1: one model in one ``.safetensors`` file (see docs/bundle-format.md).

Reading never executes code from the file: safetensors holds raw arrays and string metadata,
and every shape, dtype, value and metadata field is checked before a backend sees it.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mgf.contract import transformer as transformers
from mgf.contract.transformer import Transformer
from mgf.contract.infill import FORMAT, NAMES, InfillTokens
from mgf.errors import BundleError
from mgf.files import NotRegularFile, atomic_path, open_regular

FORMAT_VERSION = "1"
CELLS = ("lstm", "gru", "transformer")
#: weight precisions a bundle may prefer (``mgf.precision``): the native backend's; the others run fp32 always
PRECISIONS = ("fp32", "bf16", "int8")


@dataclass(frozen=True)
class Arch:
    """The network's shape: ``vocab_size`` tokens in and out, optional embedding, stacked ``cell`` layers (lstm or gru),
    or a Transformer (``cell="transformer"``: ``transformer`` says how; its width is ``embedding_dim``, once per block
    in ``hidden``)."""

    vocab_size: int
    hidden: tuple[int, ...]
    embedding_dim: int | None = None
    cell: str = "lstm"
    transformer: Transformer | None = None

    @classmethod
    def of_transformer(cls, vocab_size: int, width: int, layers: int, **fields: Any) -> Arch:
        """A Transformer of ``layers`` blocks of ``width``; ``fields``: those of :class:`Transformer`."""
        return cls(vocab_size, (width,) * layers, width, "transformer", Transformer(**fields))

    def input_dim(self, layer: int) -> int:
        """Width of what layer ``layer`` reads: the embedding (or one-hot) for 0, else the layer below."""
        if layer == 0:
            return self.embedding_dim or self.vocab_size
        return self.hidden[layer - 1]

    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        """The model tensors this architecture must have, with their shapes."""
        if self.transformer is not None:
            return self.transformer.tensor_shapes(self.vocab_size, self.embedding_dim or 0, len(self.hidden))
        shapes: dict[str, tuple[int, ...]] = {}
        if self.embedding_dim is not None:
            shapes["embedding"] = (self.vocab_size, self.embedding_dim)
        for i, h in enumerate(self.hidden):
            if self.cell == "gru":  # Keras GRU(reset_after=True): gates z, r, h; input and recurrent bias rows
                shapes[f"gru.{i}.kernel"] = (self.input_dim(i), 3 * h)
                shapes[f"gru.{i}.recurrent_kernel"] = (h, 3 * h)
                shapes[f"gru.{i}.bias"] = (2, 3 * h)
            else:
                shapes[f"lstm.{i}.kernel"] = (self.input_dim(i), 4 * h)
                shapes[f"lstm.{i}.recurrent_kernel"] = (h, 4 * h)
                shapes[f"lstm.{i}.bias"] = (4 * h,)
        shapes["dense.kernel"] = (self.hidden[-1], self.vocab_size)
        shapes["dense.bias"] = (self.vocab_size,)
        return shapes

    def to_json(self) -> str:
        fields = {"cell": self.cell, "vocab_size": self.vocab_size, "embedding_dim": self.embedding_dim,
                  "hidden": list(self.hidden)}
        if self.transformer is not None:
            fields["transformer"] = self.transformer.as_dict()
        return json.dumps(fields)


@dataclass
class Bundle:
    """Weights, architecture, representation and provenance of one model, and how it is best sampled.

    ``defaults`` (optional; see :data:`DEFAULT_KEYS`) is what ``mgf generate`` and :func:`mgf.generate`
    use when the caller names no sampler, no constraints or leaves an option out.  ``precision``
    (optional): ``{"preferred": one of PRECISIONS, "held_out_cross_entropy": {precision: nats per token}}``,
    the weight precision a backend that has several loads by default, with the figures that justify it.
    ``infill`` (optional, see :data:`INFILL_KEYS`): the model was trained to fill gaps (``mgf train --infill``), with
    the four ids of :class:`mgf.InfillTokens` after its representation's own; None: it only continues.
    """

    arch: Arch
    tensors: dict[str, np.ndarray]
    representation: dict[str, Any]
    training: dict[str, Any] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    precision: dict[str, Any] = field(default_factory=dict)
    infill: dict[str, Any] | None = None
    #: ``mgf.controls``: the attribute controls the model was trained with (``mgf train --controls``), in the order of
    #: their token families after the representation's (and infilling's) ids: ``[{"name": ..., "values": [...]}]``
    controls: list[dict[str, Any]] | None = None
    #: the file it was read from, named in messages (None: made in memory)
    path: str | None = field(default=None, compare=False, repr=False)

    @property
    def repr_tensors(self) -> dict[str, np.ndarray]:
        """The representation's own tensors, keys without the ``repr.`` prefix."""
        return {k[len("repr."):]: v for k, v in self.tensors.items() if k.startswith("repr.")}

    def metadata(self) -> dict[str, str]:
        metadata = {
            "mgf.format": FORMAT_VERSION,
            "mgf.arch": self.arch.to_json(),
            "mgf.representation": json.dumps(self.representation),
            "mgf.training": json.dumps(self.training),
        }
        if self.defaults:
            metadata["mgf.defaults"] = json.dumps(self.defaults)
        if self.precision:
            metadata["mgf.precision"] = json.dumps(self.precision)
        if self.infill is not None:
            metadata["mgf.infill"] = json.dumps(self.infill)
        if self.controls is not None:
            metadata["mgf.controls"] = json.dumps(self.controls)
        return metadata


#: what ``defaults`` may hold: the sampler's name, the constraints' names (in order), option values, and per sampler
#: name, constraints that replace the general ones and options that override them when that sampler runs (a beam
#: search amplifies what a temperature draw only tilts, so a model may be best searched with other settings)
DEFAULT_KEYS = {"sampler": str, "constraints": list, "options": dict, "samplers": dict}

#: what ``infill`` holds: the order of an example (``"spm"``: :func:`mgf.contract.infill.sequence`), the four ids by
#: name, the share of training windows made examples, the context kept on each side of a gap (tokens), and whether
#: gaps were whole bars or spans of time
INFILL_KEYS = ("format", "tokens", "rate", "context", "gap")
INFILL_GAPS = ("bars", "tokens")


# Limits a reader applies before parsing anything (docs/bundle-format.md, "Limits").
MAX_HEADER_BYTES = 4 * 2**20  # mgf's headers are a few KB; safetensors itself allows 100 MB
MAX_FIELD_BYTES = 2**20  # one metadata value (a JSON text)
MAX_DEPTH = 32  # nesting of each metadata JSON value (the header itself nests 3 deep)
MAX_WEIGHT = 1e4  # |w| of every model tensor: see docs/bundle-format.md for why
_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64", "I32": "int32",
           "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}


@dataclass(frozen=True)
class _Header:
    """A parsed safetensors header: metadata strings, ``{name: (shape, begin, end, dtype)}`` in bytes of the data
    section."""

    metadata: dict[str, str]
    entries: dict[str, tuple[tuple[int, ...], int, int, str]]
    data_start: int


#: bytes per element of the float dtypes a safetensors file may hold, and what each is read as
_FLOATS = {"F32": (4, "<f4"), "F16": (2, "<f2"), "BF16": (2, "<u2")}


def _parse_header(path, handle, dtypes=("F32",)) -> _Header:
    """Check and parse the header of the open safetensors file ``handle`` (a bundle's tensors are all ``F32``; other
    files may hold ``dtypes`` of :data:`_FLOATS`): size and nesting before ``json.loads``, then every entry."""
    size = os.fstat(handle.fileno()).st_size
    prefix = handle.read(8)
    if len(prefix) < 8:
        raise BundleError(f"{path}: not a safetensors file (shorter than its 8-byte header size)")
    length = int.from_bytes(prefix, "little")
    if length > MAX_HEADER_BYTES or length > size - 8:
        limit = "larger than the file" if length <= MAX_HEADER_BYTES else f"over the limit of {MAX_HEADER_BYTES} bytes"
        raise BundleError(f"{path}: not a safetensors file (header of {length} bytes, {limit})")
    try:
        text = handle.read(length).decode("utf-8")
    except UnicodeDecodeError:
        raise BundleError(f"{path}: not a safetensors file (header is not UTF-8)") from None
    raw = _loads(path, "header", text, depth=3)
    if not isinstance(raw, dict):
        raise BundleError(f"{path}: not a safetensors file (header is not a JSON object)")
    metadata = raw.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise BundleError(f"{path}: not a safetensors file (__metadata__ must map strings to strings)")
    entries, end = {}, 0
    for (begin, stop), name, entry in sorted((_offsets(path, name, entry), name, entry) for name, entry in raw.items()):
        dtype, shape = entry.get("dtype"), entry.get("shape")
        if not isinstance(shape, list) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
            raise BundleError(f"{path}: tensor {name!r} has a malformed shape {shape!r:.40}")
        if dtype not in dtypes:
            expected = "float32" if dtypes == ("F32",) else " or ".join(_dtype_name(d) for d in dtypes)
            raise BundleError(f"{path}: tensor {name!r} is {_dtype_name(dtype)}, expected {expected}")
        if begin != end or stop - begin != _FLOATS[dtype][0] * int(np.prod(shape, dtype=object)):
            raise BundleError(f"{path}: tensor {name!r} does not match its place in the file (shape {shape!r:.40}, "
                              f"bytes {begin}..{stop})")
        entries[name], end = (tuple(shape), begin, stop, dtype), stop
    if 8 + length + end != size:
        raise BundleError(f"{path}: the tensors take {end} bytes but the file holds {size - 8 - length} after the header")
    return _Header(metadata, entries, 8 + length)


def _dtype_name(dtype: Any) -> str:
    """numpy's name for a safetensors dtype code (``F64`` -> ``float64``), else the value as given, shortened."""
    return _DTYPES.get(dtype, f"{dtype!r:.20}") if isinstance(dtype, str) else f"{dtype!r:.20}"


def _offsets(path, name, entry) -> tuple[int, int]:
    offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(isinstance(n, int) and not isinstance(n, bool) for n in offsets) or not 0 <= offsets[0] <= offsets[1]):
        raise BundleError(f"{path}: tensor {name!r} has malformed data_offsets {offsets!r:.40}")
    return offsets[0], offsets[1]


def _loads(path, what: str, text: str, depth: int) -> Any:
    """``json.loads(text)`` after checking that it nests at most ``depth`` deep, so that no input can exhaust the stack."""
    deepest = _nesting(text)
    if deepest > depth:
        raise BundleError(f"{path}: {what} nests deeper than {depth} levels")
    try:
        return json.loads(text)
    except ValueError:
        raise BundleError(f"{path}: {what} is not JSON") from None


def _nesting(text: str) -> int:
    """How deep ``[``/``{`` nest in the JSON ``text``, brackets inside strings not counted; linear time (no regex)."""
    codes = np.frombuffer(text.encode("utf-8"), np.uint8)
    index = np.arange(len(codes), dtype=np.int32)
    last_other = np.maximum.accumulate(np.where(codes == ord("\\"), -1, index))  # last non-backslash up to i
    backslashes = index - 1 - np.concatenate(([-1], last_other[:-1]))  # how many backslashes stand right before i
    quotes = (codes == ord('"')) & (backslashes % 2 == 0)  # the quotes that open or close a string
    outside = np.cumsum(quotes, dtype=np.int32) % 2 == 0
    opens = ((codes == ord("[")) | (codes == ord("{"))) & outside
    closes = ((codes == ord("]")) | (codes == ord("}"))) & outside
    steps = opens.astype(np.int32) - closes
    return int(np.cumsum(steps, dtype=np.int32).max(initial=0))


def _open(path):
    _check_file(path)
    try:
        return open_regular(path)  # a FIFO would block for ever
    except NotRegularFile as error:
        raise BundleError(str(error)) from None
    except OSError as error:
        raise BundleError(f"{path}: cannot read ({error.strerror})") from None


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The parsed metadata of a bundle (``arch`` as :class:`Arch`), without loading its tensors."""
    with _open(path) as handle:
        return _parse_metadata(path, _parse_header(path, handle).metadata)


def read(path: str | os.PathLike, weights: bool = True) -> Bundle:
    """Load and validate a bundle; every problem is a :class:`BundleError` naming the file.

    ``weights=False`` reads the metadata and the representation's ``repr.*`` tensors only (checked as
    finite): what describes the model, for a process that hands the model to others; no backend loads it.
    """
    with _open(path) as handle:
        header = _parse_header(path, handle)
        meta = _parse_metadata(path, header.metadata)
        names = list(header.entries) if weights else [name for name in header.entries if name.startswith("repr.")]
        tensors = _read_tensors(path, handle, header, names)
    loaded = Bundle(meta["arch"], tensors, meta["representation"], meta["training"], meta["defaults"], meta["precision"],
                    meta["infill"], meta["controls"], path=os.fspath(path))
    if weights:
        validate(loaded, where=str(path))
    else:
        for name, array in tensors.items():
            if not np.isfinite(array).all():
                raise BundleError(f"{path}: tensor {name!r} has non-finite values")
    return loaded


def _read_tensors(path, handle, header: _Header, names) -> dict[str, np.ndarray]:
    """The tensors ``names`` of the open bundle: one read of the bytes they span, arrays viewing it (little-endian)."""
    if not names:
        return {}
    first = min(header.entries[name][1] for name in names)
    last = max(header.entries[name][2] for name in names)
    data = np.empty(last - first, np.uint8)
    handle.seek(header.data_start + first)
    if handle.readinto(data.data) != last - first:
        raise BundleError(f"{path}: the file is shorter than its header says (truncated?)")
    return {name: _as_float32(data[begin - first:stop - first], dtype).reshape(shape)
            for name in names for shape, begin, stop, dtype in [header.entries[name]]}


def _as_float32(raw: np.ndarray, dtype: str) -> np.ndarray:
    """Little-endian bytes of safetensors ``dtype`` (:data:`_FLOATS`) as float32: a view where they already are."""
    array = raw.view(_FLOATS[dtype][1])
    if dtype == "BF16":  # bf16 is the high half of a float32
        return (array.astype(np.uint32) << 16).view(np.float32)
    return array.astype(np.float32, copy=False)


def read_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file that is not a bundle (a Hugging Face checkpoint), float32, F16 and BF16
    read as float32; checked as a bundle is (bounded header, contiguous entries, the file's size), values unchecked."""
    with _open(path) as handle:
        header = _parse_header(path, handle, tuple(_FLOATS))
        return _read_tensors(path, handle, header, list(header.entries))


def write(bundle: Bundle, path: str | os.PathLike) -> None:
    """Validate and write ``bundle`` to ``path`` atomically (a temporary file renamed into place)."""
    from safetensors.numpy import save_file

    validate(bundle, where=str(path))
    metadata = bundle.metadata()
    for key, text in metadata.items():
        _field(path, key, text)  # never write what a reader refuses
    tensors = {k: np.ascontiguousarray(v) for k, v in bundle.tensors.items()}
    with atomic_path(path) as tmp:
        mode = os.stat(tmp).st_mode  # the umask's: safetensors writes a new file, readable by its owner only
        save_file(tensors, tmp, metadata=metadata)
        os.chmod(tmp, stat.S_IMODE(mode))


def validate(bundle: Bundle, where: str = "bundle") -> None:
    """Check tensors against the architecture (names, shapes, float32, finite values within ``MAX_WEIGHT``) and the defaults."""
    _check_defaults(where, bundle.defaults)
    _check_precision(where, bundle.precision)
    _check_infill(where, bundle.infill, bundle.arch, _check_controls(where, bundle.controls))
    expected = bundle.arch.tensor_shapes()
    missing = sorted(set(expected) - set(bundle.tensors))
    if missing:
        raise BundleError(f"{where}: missing tensor(s) {', '.join(missing)}")
    for name, array in bundle.tensors.items():
        if name not in expected and not name.startswith("repr."):
            raise BundleError(f"{where}: unexpected tensor {name!r}")
        if not isinstance(array, np.ndarray) or array.dtype != np.float32:
            dtype = getattr(array, "dtype", type(array).__name__)
            raise BundleError(f"{where}: tensor {name!r} is {dtype}, expected float32")
        if name in expected and array.shape != expected[name]:
            raise BundleError(f"{where}: tensor {name!r} has shape {list(array.shape)}, expected {list(expected[name])}")
        if not np.isfinite(array).all():
            raise BundleError(f"{where}: tensor {name!r} has non-finite values")
        if name in expected and array.size and max(-array.min(), array.max()) > MAX_WEIGHT:
            raise BundleError(f"{where}: tensor {name!r} has values up to {np.abs(array).max():.0e}, "
                              f"beyond the bound of {MAX_WEIGHT:g} on weights (a diverged or damaged model)")


def _parse_metadata(path, raw: dict[str, str]) -> dict[str, Any]:
    version = raw.get("mgf.format")
    if version is None:
        raise BundleError(f"{path}: not an mgf bundle (no mgf.format metadata)")
    if version != FORMAT_VERSION:
        raise BundleError(f"{path}: bundle format {version!r} is not supported (this mgf reads {FORMAT_VERSION!r})")
    arch = _json_field(path, raw, "mgf.arch", dict)
    representation = _json_field(path, raw, "mgf.representation", dict)
    training = _json_field(path, raw, "mgf.training", dict)
    defaults = _json_field(path, raw, "mgf.defaults", dict) if "mgf.defaults" in raw else {}
    precision = _json_field(path, raw, "mgf.precision", dict) if "mgf.precision" in raw else {}
    infill = _json_field(path, raw, "mgf.infill", dict) if "mgf.infill" in raw else None
    controls = _json_field(path, raw, "mgf.controls", list) if "mgf.controls" in raw else None
    parsed = _parse_arch(path, arch)
    return {"arch": parsed, "representation": _parse_repr(path, representation), "training": training,
            "defaults": _check_defaults(path, defaults), "precision": _check_precision(path, precision),
            "infill": _check_infill(path, infill, parsed, _check_controls(path, controls)), "controls": controls}


def _check_controls(where, controls: Any) -> list[dict[str, Any]] | None:
    """``controls`` if a non-empty list of ``{"name", "values"}`` with unique names and labels (mgf.contract.controls);
    whether each is installed is checked when the representation is rebuilt."""
    from mgf.contract.controls import check_values

    if controls is None:
        return None
    if not isinstance(controls, list) or not 1 <= len(controls) <= 64:
        raise BundleError(f"{where}: metadata mgf.controls must be a list of 1 to 64 controls")
    for entry in controls:
        if not isinstance(entry, dict) or set(entry) != {"name", "values"} or not isinstance(entry["name"], str) \
                or not 0 < len(entry["name"]) <= 64:
            raise BundleError(f"{where}: each entry of metadata mgf.controls must be {{\"name\": ..., \"values\": [...]}}")
        check_values(entry["name"], entry["values"])
    if len({entry["name"] for entry in controls}) < len(controls):
        raise BundleError(f"{where}: metadata mgf.controls names a control twice")
    return controls


def _check_infill(where, infill: Any, arch: Arch, controls: list | None = None) -> dict[str, Any] | None:
    """``infill`` if it has every key of :data:`INFILL_KEYS`, valid, and the ids that follow the representation's."""
    if infill is None:
        return None
    if not isinstance(infill, dict):
        raise BundleError(f"{where}: metadata mgf.infill must be a JSON object")
    if set(infill) != set(INFILL_KEYS):
        wrong = sorted(set(infill) ^ set(INFILL_KEYS))[0]
        raise BundleError(f"{where}: metadata mgf.infill {'has an unknown key' if wrong in infill else 'lacks the key'} "
                          f"{wrong!r} (it takes {', '.join(INFILL_KEYS)})")
    if infill["format"] != FORMAT:
        raise BundleError(f"{where}: metadata mgf.infill format {infill['format']!r:.40} is not supported (this mgf "
                          f"reads {FORMAT!r})")
    controlled = sum(len(entry["values"]) + 1 for entry in controls or [])  # the controls' ids follow infilling's
    expected = InfillTokens.after(arch.vocab_size - controlled - len(NAMES)).as_dict()
    if infill["tokens"] != expected or arch.vocab_size - controlled <= len(NAMES):
        raise BundleError(f"{where}: metadata mgf.infill tokens must be {json.dumps(expected)} for a model of "
                          f"{arch.vocab_size} ids (the four after its representation's own"
                          f"{', then the controls' if controlled else ''}), got {infill['tokens']!r:.80}")
    rate, context = infill["rate"], infill["context"]
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 1:
        raise BundleError(f"{where}: metadata mgf.infill rate must be a number in (0, 1], got {rate!r:.40}")
    if not _positive_int(context):
        raise BundleError(f"{where}: metadata mgf.infill context must be a positive integer (tokens), got {context!r:.40}")
    if infill["gap"] not in INFILL_GAPS:
        raise BundleError(f"{where}: metadata mgf.infill gap must be one of {', '.join(INFILL_GAPS)}, "
                          f"got {infill['gap']!r:.40}")
    return infill


def _check_precision(where, precision: Any) -> dict[str, Any]:
    """``precision`` if it names one of :data:`PRECISIONS` and gives cross-entropies as numbers by precision."""
    if not isinstance(precision, dict):
        raise BundleError(f"{where}: metadata mgf.precision must be a JSON object")
    unknown = sorted(set(precision) - {"preferred", "held_out_cross_entropy"})
    if unknown:
        raise BundleError(f"{where}: metadata mgf.precision has an unknown key {unknown[0]!r} "
                          "(it takes preferred, held_out_cross_entropy)")
    if precision and precision.get("preferred") not in PRECISIONS:
        raise BundleError(f"{where}: metadata mgf.precision preferred must be one of {', '.join(PRECISIONS)}, "
                          f"got {precision.get('preferred')!r:.40}")
    scores = precision.get("held_out_cross_entropy", {})
    if not isinstance(scores, dict) or not all(
            k in PRECISIONS and isinstance(v, (int, float)) and not isinstance(v, bool) for k, v in scores.items()):
        raise BundleError(f"{where}: metadata mgf.precision held_out_cross_entropy must map precisions to numbers")
    return precision


def _check_defaults(where, defaults: Any, nested: bool = False) -> dict[str, Any]:
    """``defaults`` if it has the shape of :data:`DEFAULT_KEYS` (values are checked by the plugins that take them)."""
    field_name = "mgf.defaults samplers entry" if nested else "mgf.defaults"
    if not isinstance(defaults, dict):
        raise BundleError(f"{where}: metadata {field_name} must be a JSON object")
    allowed = ("constraints", "options") if nested else tuple(DEFAULT_KEYS)
    for key, value in defaults.items():
        kind = DEFAULT_KEYS.get(key) if key in allowed else None
        if kind is None:
            raise BundleError(f"{where}: metadata {field_name} has an unknown key {key!r} (it takes {', '.join(allowed)})")
        if not isinstance(value, kind) or (key == "constraints" and not all(isinstance(v, str) for v in value)):
            raise BundleError(f"{where}: metadata {field_name} {key} must be a JSON "
                              f"{'list of names' if key == 'constraints' else kind.__name__}")
        if key == "options" and not all(isinstance(v, (bool, int, float, str)) for v in value.values()):
            raise BundleError(f"{where}: metadata {field_name} options must be numbers, strings or booleans")
        if key == "samplers":
            for own in value.values():
                _check_defaults(where, own, nested=True)
    return defaults


def _json_field(path, raw: dict[str, str], key: str, kind: type) -> Any:
    if key not in raw:
        raise BundleError(f"{path}: metadata {key} is missing")
    value = _field(path, key, raw[key])
    if not isinstance(value, kind):
        raise BundleError(f"{path}: metadata {key} must be a JSON {kind.__name__}")
    return value


def _field(path, key: str, text: str) -> Any:
    """One metadata value parsed, after the checks that keep a crafted one from taking the stack or the memory."""
    size = len(text.encode("utf-8"))
    if size > MAX_FIELD_BYTES:
        raise BundleError(f"{path}: metadata {key} is {size} bytes, over the limit of {MAX_FIELD_BYTES}")
    return _loads(path, f"metadata {key}", text, MAX_DEPTH)


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _parse_arch(path, arch: dict[str, Any]) -> Arch:
    cell = arch.get("cell")
    if cell not in CELLS:
        raise BundleError(f"{path}: mgf.arch cell {cell!r} is not supported (supported: {', '.join(CELLS)})")
    vocab_size: Any = arch.get("vocab_size")
    embedding_dim, hidden = arch.get("embedding_dim"), arch.get("hidden")
    if not _positive_int(vocab_size):
        raise BundleError(f"{path}: mgf.arch vocab_size must be a positive integer, got {vocab_size!r}")
    if embedding_dim is not None and not _positive_int(embedding_dim):
        raise BundleError(f"{path}: mgf.arch embedding_dim must be a positive integer or null, got {embedding_dim!r}")
    if not isinstance(hidden, list) or not hidden or not all(_positive_int(h) for h in hidden):
        raise BundleError(f"{path}: mgf.arch hidden must be a non-empty list of positive integers, got {hidden!r}")
    if cell != "transformer":
        if "transformer" in arch:
            raise BundleError(f"{path}: mgf.arch has a transformer object but its cell is {cell!r}, not 'transformer'")
        return Arch(vocab_size=vocab_size, hidden=tuple(hidden), embedding_dim=embedding_dim, cell=cell)
    if embedding_dim is None or any(h != embedding_dim for h in hidden):
        raise BundleError(f"{path}: mgf.arch of a transformer needs every hidden width equal to embedding_dim (the model "
                          f"width), got {hidden!r:.60} and {embedding_dim!r}")
    try:
        shape = transformers.parse(arch.get("transformer"), embedding_dim)
    except ValueError as error:
        raise BundleError(f"{path}: mgf.arch {error}") from None
    return Arch(vocab_size=vocab_size, hidden=tuple(hidden), embedding_dim=embedding_dim, cell=cell, transformer=shape)


def _parse_repr(path, representation: dict[str, Any]) -> dict[str, Any]:
    name, config = representation.get("name"), representation.get("config", {})
    if not isinstance(name, str) or not name:
        raise BundleError(f"{path}: mgf.representation has no name")
    if not isinstance(config, dict):
        raise BundleError(f"{path}: mgf.representation config must be a JSON object")
    return {"name": name, "config": config}


def _check_file(path) -> None:
    if not os.path.exists(path):
        raise BundleError(f"{path}: no such bundle file")
    if os.path.isdir(path):
        raise BundleError(f"{path}: is a directory, not a bundle file")


def random_bundle(
    vocab_size: int,
    hidden: tuple[int, ...] | list[int],
    embedding_dim: int | None = None,
    representation: dict[str, Any] | None = None,
    seed: int = 0,
    scale: float = 1.0,
    cell: str = "lstm",
    transformer: Transformer | None = None,
) -> Bundle:
    """A bundle of random weights (Keras-like init, times ``scale``) for tests, benchmarks and smoke runs; with
    ``transformer``, a Transformer of ``len(hidden)`` blocks of width ``hidden[0]`` (LayerNorm scales near 1)."""
    if transformer is not None:
        arch = Arch.of_transformer(vocab_size, hidden[0], len(hidden), **transformer.as_dict())
    else:
        arch = Arch(vocab_size=vocab_size, hidden=tuple(hidden), embedding_dim=embedding_dim, cell=cell)
    rng = np.random.default_rng(seed)
    tensors = {}
    for name, shape in arch.tensor_shapes().items():
        limit = scale * (0.1 if name.endswith(("bias", "beta", "gamma")) else np.sqrt(6.0 / (shape[0] + shape[-1])))
        tensors[name] = (rng.uniform(-limit, limit, shape) + name.endswith("gamma")).astype(np.float32)
    if representation is None:
        representation = {"name": "tokens", "config": {"vocab_size": vocab_size}}
    return Bundle(arch, tensors, representation, {"source": "random", "seed": seed})


def read_repr_tensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Only the representation's ``repr.*`` tensors of a bundle (prefix removed), checked as finite; the rest is not read."""
    return read(path, weights=False).repr_tensors
