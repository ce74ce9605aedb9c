"""Bundle format v1: one model in one ``.safetensors`` file (see docs/bundle-format.md).

Reading never executes code from the file: safetensors holds raw arrays and string metadata,
and every shape, dtype, value and metadata field is checked before a backend sees it.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import BundleError
from .files import atomic_path

FORMAT_VERSION = "1"
CELLS = ("lstm",)


@dataclass(frozen=True)
class Arch:
    """The network's shape: ``vocab_size`` tokens in and out, optional embedding, stacked layers."""

    vocab_size: int
    hidden: tuple[int, ...]
    embedding_dim: int | None = None
    cell: str = "lstm"

    def input_dim(self, layer: int) -> int:
        """Width of what layer ``layer`` reads: the embedding (or one-hot) for 0, else the layer below."""
        if layer == 0:
            return self.embedding_dim or self.vocab_size
        return self.hidden[layer - 1]

    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        """The model tensors this architecture must have, with their shapes."""
        shapes: dict[str, tuple[int, ...]] = {}
        if self.embedding_dim is not None:
            shapes["embedding"] = (self.vocab_size, self.embedding_dim)
        for i, h in enumerate(self.hidden):
            shapes[f"lstm.{i}.kernel"] = (self.input_dim(i), 4 * h)
            shapes[f"lstm.{i}.recurrent_kernel"] = (h, 4 * h)
            shapes[f"lstm.{i}.bias"] = (4 * h,)
        shapes["dense.kernel"] = (self.hidden[-1], self.vocab_size)
        shapes["dense.bias"] = (self.vocab_size,)
        return shapes

    def to_json(self) -> str:
        return json.dumps(
            {"cell": self.cell, "vocab_size": self.vocab_size, "embedding_dim": self.embedding_dim, "hidden": list(self.hidden)}
        )


@dataclass
class Bundle:
    """Weights, architecture, representation and provenance of one model."""

    arch: Arch
    tensors: dict[str, np.ndarray]
    representation: dict[str, Any]
    training: dict[str, Any] = field(default_factory=dict)

    @property
    def repr_tensors(self) -> dict[str, np.ndarray]:
        """The representation's own tensors, keys without the ``repr.`` prefix."""
        return {k[len("repr."):]: v for k, v in self.tensors.items() if k.startswith("repr.")}

    def metadata(self) -> dict[str, str]:
        return {
            "mgf.format": FORMAT_VERSION,
            "mgf.arch": self.arch.to_json(),
            "mgf.representation": json.dumps(self.representation),
            "mgf.training": json.dumps(self.training),
        }


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The parsed metadata of a bundle (``arch`` as :class:`Arch`), without loading its tensors."""
    from safetensors import safe_open

    _check_file(path)
    try:
        with safe_open(os.fspath(path), framework="np") as handle:
            raw = handle.metadata() or {}
    except Exception as error:
        raise BundleError(f"{path}: not a safetensors file ({_first_line(error)})") from None
    return _parse_metadata(path, raw)


_shared = threading.local()  # .current: (path, Bundle) while a `reading` block of this thread runs


@contextmanager
def reading(path: str | os.PathLike) -> Iterator[Bundle]:
    """Read ``path`` once; inside the block, :func:`read` of the same path returns that bundle instead of reading again."""
    loaded = read(path)
    _shared.current = (os.fspath(path), loaded)
    try:
        yield loaded
    finally:
        _shared.current = None


def read(path: str | os.PathLike) -> Bundle:
    """Load and validate a bundle; every problem is a :class:`BundleError` naming the file."""
    from safetensors.numpy import load_file

    current = getattr(_shared, "current", None)
    if current is not None and current[0] == os.fspath(path):
        return current[1]

    meta = read_metadata(path)
    try:
        tensors = load_file(os.fspath(path))
    except Exception as error:
        raise BundleError(f"{path}: unreadable tensors ({_first_line(error)})") from None
    bundle = Bundle(meta["arch"], tensors, meta["representation"], meta["training"])
    validate(bundle, where=str(path))
    return bundle


def write(bundle: Bundle, path: str | os.PathLike) -> None:
    """Validate and write ``bundle`` to ``path`` atomically (a temporary file renamed into place)."""
    from safetensors.numpy import save_file

    validate(bundle, where=str(path))
    tensors = {k: np.ascontiguousarray(v) for k, v in bundle.tensors.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=bundle.metadata())


def validate(bundle: Bundle, where: str = "bundle") -> None:
    """Check tensors against the architecture: names, shapes, float32, finite values."""
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


def _parse_metadata(path, raw: dict[str, str]) -> dict[str, Any]:
    version = raw.get("mgf.format")
    if version is None:
        raise BundleError(f"{path}: not an mgf bundle (no mgf.format metadata)")
    if version != FORMAT_VERSION:
        raise BundleError(f"{path}: bundle format {version!r} is not supported (this mgf reads {FORMAT_VERSION!r})")
    arch = _json_field(path, raw, "mgf.arch", dict)
    representation = _json_field(path, raw, "mgf.representation", dict)
    training = _json_field(path, raw, "mgf.training", dict)
    return {"arch": _parse_arch(path, arch), "representation": _parse_repr(path, representation), "training": training}


def _json_field(path, raw: dict[str, str], key: str, kind: type) -> Any:
    if key not in raw:
        raise BundleError(f"{path}: metadata {key} is missing")
    try:
        value = json.loads(raw[key])
    except ValueError:
        raise BundleError(f"{path}: metadata {key} is not JSON") from None
    if not isinstance(value, kind):
        raise BundleError(f"{path}: metadata {key} must be a JSON {kind.__name__}")
    return value


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _parse_arch(path, arch: dict[str, Any]) -> Arch:
    cell = arch.get("cell")
    if cell not in CELLS:
        raise BundleError(f"{path}: mgf.arch cell {cell!r} is not supported (supported: {', '.join(CELLS)})")
    vocab_size, embedding_dim, hidden = arch.get("vocab_size"), arch.get("embedding_dim"), arch.get("hidden")
    if not _positive_int(vocab_size):
        raise BundleError(f"{path}: mgf.arch vocab_size must be a positive integer, got {vocab_size!r}")
    if embedding_dim is not None and not _positive_int(embedding_dim):
        raise BundleError(f"{path}: mgf.arch embedding_dim must be a positive integer or null, got {embedding_dim!r}")
    if not isinstance(hidden, list) or not hidden or not all(_positive_int(h) for h in hidden):
        raise BundleError(f"{path}: mgf.arch hidden must be a non-empty list of positive integers, got {hidden!r}")
    return Arch(vocab_size=vocab_size, hidden=tuple(hidden), embedding_dim=embedding_dim, cell=cell)


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


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def random_bundle(
    vocab_size: int,
    hidden: tuple[int, ...] | list[int],
    embedding_dim: int | None = None,
    representation: dict[str, Any] | None = None,
    seed: int = 0,
    scale: float = 1.0,
) -> Bundle:
    """A bundle of random weights (Keras-like init, times ``scale``) for tests, benchmarks and smoke runs."""
    arch = Arch(vocab_size=vocab_size, hidden=tuple(hidden), embedding_dim=embedding_dim)
    rng = np.random.default_rng(seed)
    tensors = {}
    for name, shape in arch.tensor_shapes().items():
        limit = scale * (np.sqrt(6.0 / (shape[0] + shape[-1])) if len(shape) == 2 else 0.1)
        tensors[name] = rng.uniform(-limit, limit, shape).astype(np.float32)
    if representation is None:
        representation = {"name": "tokens", "config": {"vocab_size": vocab_size}}
    return Bundle(arch, tensors, representation, {"source": "random", "seed": seed})


def read_repr_tensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Only the representation's ``repr.*`` tensors of a bundle (prefix removed), checked as float32 and finite."""
    from safetensors import safe_open

    found = {}
    try:
        with safe_open(os.fspath(path), framework="np") as handle:
            for key in handle.keys():
                if key.startswith("repr."):
                    found[key[len("repr."):]] = handle.get_tensor(key)
    except Exception as error:
        raise BundleError(f"{path}: unreadable tensors ({_first_line(error)})") from None
    for key, array in found.items():
        if array.dtype != np.float32 or not np.isfinite(array).all():
            raise BundleError(f"{path}: tensor 'repr.{key}' must be finite float32")
    return found
