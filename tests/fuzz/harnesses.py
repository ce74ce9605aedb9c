"""The fuzz targets: one function per parser, bytes in, and the contract every input must meet.

The contract (docs/contract.md): whatever the bytes, the call returns or raises an
:class:`mgf.MgfError` whose message is one line, and a failed write leaves no file behind.
Anything else raises here and is a crash.  The built-in plugins run behind mgf's error boundary,
which turns their bugs into one-line ``PluginError``s; for the fuzzer those are bugs of mgf
itself, so the exception the boundary caught is raised again.

``fuzz.py`` drives these with atheris; ``tests/meta/test_fuzz.py`` replays the crash files through them.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import io
import os
import shutil
import tempfile

import mgf
import numpy as np
from mgf.cli.main import build_parser
from mgf.training.shards import Shards
from mgf.training.sources import load


class ContractViolation(AssertionError):
    """An input that ended in something other than a return or a clean one-line MgfError."""


@contextlib.contextmanager
def clean():
    """Let a one-line MgfError through silently; re-raise what the error boundary caught from built-in code."""
    try:
        yield
    except mgf.PluginError as error:
        if error.__cause__ is not None:
            raise error.__cause__ from None  # a bug in plugin code is a crash, not a tidy error
        _one_line(error)
    except mgf.MgfError as error:
        _one_line(error)


def _one_line(error: mgf.MgfError) -> None:
    if "\n" in str(error) or "\r" in str(error):
        raise ContractViolation(f"{type(error).__name__} message is not one line: {str(error)!r}") from error


def _check_tokens(tokens, representation, what: str) -> None:
    """A representation's tokens: 1-D int32 ids in ``[0, vocab_size)`` without the start token."""
    if not isinstance(tokens, np.ndarray) or tokens.ndim != 1 or tokens.dtype != np.int32:
        raise ContractViolation(f"{what} returned {type(tokens).__name__} {getattr(tokens, 'dtype', '')}, not int32[n]")
    if tokens.size and (tokens.min() < 0 or tokens.max() >= representation.vocab_size):
        raise ContractViolation(f"{what} returned ids outside [0, {representation.vocab_size})")
    if (tokens == representation.start_token).any():
        raise ContractViolation(f"{what} returned the start token")


@functools.cache
def _scratch() -> str:
    """A private folder for this process's input and output files, removed when it exits.

    Under libFuzzer, which ends the process without exit handlers, in ``tempfile.tempdir``:
    a folder that ``fuzz.py`` made for the fuzzing process and removes when it ends.
    """
    folder = tempfile.mkdtemp(prefix="mgf-fuzz-")
    atexit.register(shutil.rmtree, folder, True)
    return folder


def _as_file(data: bytes, name: str) -> str:
    path = os.path.join(_scratch(), name)
    with open(path, "wb") as handle:
        handle.write(data)
    return path


def _on_text(function, name: str):
    """``function(name, text)`` as a harness of bytes, decoded as the CLI sees ``sys.argv`` (bad bytes as lone surrogates)."""
    return lambda data: function(name, data.decode("utf-8", "surrogateescape"))


@functools.cache
def representation(name: str) -> mgf.Representation:
    """A built-in representation as ``mgf generate`` uses it: audio with its default bundle's codebook."""
    if name == "audio":
        return mgf.load_model(mgf.get_representation("audio").default_bundle).representation
    return mgf.get_representation(name)


def read(name: str, data: bytes) -> None:
    """``representation.read`` of a MIDI file holding ``data``."""
    chosen = representation(name)
    with clean():
        _check_tokens(chosen.read(_as_file(data, "input.mid")), chosen, f"{name} read")


def load_bundle(data: bytes) -> None:
    """A bundle file holding ``data``: ``mgf.contract.bundle.read``, ``mgf.load_model`` and one step of the model."""
    path = _as_file(data, "input.safetensors")
    with clean():
        mgf.contract.bundle.read(path)
    with clean():
        model = mgf.load_model(path)
        logits, _ = model.step(np.array([model.representation.start_token], np.int32), model.initial_state(1))
        if logits.shape != (1, model.vocab_size):
            raise ContractViolation(f"a step gave logits of shape {logits.shape}, expected (1, {model.vocab_size})")


def parse_primer(name: str, text: str) -> None:
    """``parse_primer`` of ``text``."""
    chosen = representation(name)
    with clean():
        _check_tokens(chosen.parse_primer(text), chosen, f"{name} parse_primer")


@functools.cache
def _parser():
    return build_parser()


def decode(name: str, text: str) -> None:
    """``mgf decode TEXT --repr NAME -o OUT`` in-process: the whole output file, or an error and no file."""
    output = os.path.join(_scratch(), "decoded", f"out{mgf.get_representation(name).suffix}")
    folder = os.path.dirname(output)
    os.makedirs(folder, exist_ok=True)
    for leftover in os.listdir(folder):
        os.unlink(os.path.join(folder, leftover))
    args = _parser().parse_args(["decode", "--repr", name, "-o", output, "--", text])
    failed = True
    with clean(), contextlib.redirect_stdout(io.StringIO()):
        args.run(args)
        failed = False
    left = os.listdir(folder)
    if failed and left:
        raise ContractViolation(f"decode failed but left {left}")
    if not failed and left != [os.path.basename(output)]:
        raise ContractViolation(f"decode succeeded but the folder holds {left}")


def draw(data: bytes) -> None:
    """``mgf.draw_from_logits`` of rows of float32 logits made of the bytes (NaN and infinities too), with a
    temperature, top-k and top-p from the first bytes: tokens whose logit is finite, or a one-line error."""
    if len(data) < 8:
        return
    rows = 1 + data[3] % 4
    width = (len(data) - 8) // 4 // rows
    if width == 0:
        return
    logits = np.frombuffer(data[8:8 + 4 * rows * width], np.float32).reshape(rows, width).copy()
    with clean():
        chosen = mgf.draw_from_logits(logits, np.random.default_rng(data[4]), 0.05 + data[0] / 16, data[1] % 40,
                                      (data[2] + 1) / 256)
        if chosen.dtype != np.int32 or chosen.shape != (rows,) or not (0 <= chosen).all() or not (chosen < width).all():
            raise ContractViolation(f"drew {chosen!r} for {rows} rows of {width} logits")
        if not np.isfinite(logits[np.arange(rows), chosen]).all():
            raise ContractViolation(f"drew a token whose logit is not finite: {logits[np.arange(rows), chosen]}")


@functools.cache
def _midi_model() -> mgf.Model:
    model = mgf.load_model(representation("midi").default_bundle, backend="native")
    model.defaults = {}
    return model


def generate_midi(data: bytes) -> None:
    """``mgf.generate`` on the shipped midi model with a primer, constraints (close-notes, motifs) and sampler
    options from the bytes: the loop in C must give the Python loop's tokens, or the same one-line error."""
    if len(data) < 10:
        return
    h, primer = data[:10], np.frombuffer(data[10:10 + 2 * ((len(data) - 10) // 2)][:64], "<u2")
    model = _midi_model()
    names = ("close-notes", "no-repeat", "scale", "pitch-range", "motifs")
    constraints = [name for bit, name in enumerate(names) if h[0] >> bit & 1]
    options = {"max_polyphony": h[4] % 9 or None, "max_note_seconds": 0.01 + h[5] / 20, "max_repeats": 1 + h[6] % 4,
               "key": ("C major", "D minor", "F# dorian", "Eb pentatonic")[h[7] % 4], "low": 40 + h[8] % 40,
               "high": 40 + h[8] % 40 + h[9] % 30, "length": 1 + h[2] % 12, "bonus": h[5] / 16,
               "max_run": 1 + h[7] % 40}
    options = {key: value for key, value in options.items()
               if key in {o.name for c in constraints for o in mgf.plugin_class("constraints", c).options}}
    sampler = "greedy" if h[1] == 0 else "temperature"
    if sampler == "temperature":
        options.update(temperature=0.1 + h[1] / 32, top_k=h[2] % 50, top_p=max(1, h[3]) / 255)
    kwargs = dict(sampler=sampler, constraints=constraints, primer=(primer % model.vocab_size).astype(np.int32),
                  seed=h[6], num_outputs=1 + h[4] % 3, **options)
    results = []
    for python_loop in ("", "1"):
        os.environ["MGF_PYTHON_LOOP"] = python_loop
        try:
            results.append(mgf.generate(model, 1 + h[9] % 48, **kwargs))
        except mgf.MgfError as error:
            if isinstance(error, mgf.PluginError) and error.__cause__ is not None:
                raise error.__cause__ from None  # as clean(): a bug in built-in code is a crash
            _one_line(error)
            results.append(str(error))
        finally:
            os.environ.pop("MGF_PYTHON_LOOP")
    fast, slow = results
    if type(fast) is not type(slow) or (isinstance(fast, str) and fast != slow) or (
            not isinstance(fast, str) and not np.array_equal(fast, slow)):
        raise ContractViolation(f"the C loop and the Python loop differ: {fast!r} against {slow!r}")


# -- what mgf wrote and reads back: dataset directories and the encoding cache ---------------------------------

#: the files of a dataset directory that a ``dataset_read`` input holds, in order, separated by ``DATASET_PART``
DATASET_FILES = ("manifest.json", "files.jsonl", "shard-00000.npz", "shard-00001.npz", "representation.npz")
DATASET_PART = b"\n--mgf-file--\n"
CACHED_SOURCE = b"1 2 3 4\n"  # the file whose cache entry a ``cache_read`` input is


@functools.cache
def data_representation() -> mgf.Representation:
    """The representation the seeds of ``dataset_read`` and ``cache_read`` were encoded with."""
    return mgf.get_representation("tokens", vocab_size=41)


@contextlib.contextmanager
def _cache_in(folder: str):
    """``MGF_CACHE_DIR`` set to ``folder`` for the block: replays run inside pytest, whose environment stays as found."""
    saved = os.environ.get("MGF_CACHE_DIR")
    os.environ["MGF_CACHE_DIR"] = folder
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("MGF_CACHE_DIR")
        else:
            os.environ["MGF_CACHE_DIR"] = saved


def read_dataset(data: bytes) -> None:
    """A dataset directory of the files in ``data``, read as ``mgf train`` reads it (manifest, tensors, listing,
    split, every shard): each piece meets the dataset's representation, or a one-line error."""
    folder = os.path.join(_scratch(), "dataset")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    for name, part in zip(DATASET_FILES, data.split(DATASET_PART)):
        with open(os.path.join(folder, name), "wb") as handle:
            handle.write(part)
    with _cache_in(os.path.join(_scratch(), "cache")), clean():
        shards = Shards(folder)
        chosen = shards.representation()
        shards.skipped()
        held = shards.sides(0.2)
        for index in range(len(shards)):
            for piece in shards.pieces(index, held[index]) + shards.pieces(index, ~held[index]):
                _check_tokens(piece, chosen, "Shards.pieces")


@functools.cache
def _cached_entry() -> tuple[str, str]:
    """``(folder, entry)``: a folder holding one source file, and the path of that file's cache entry."""
    root = os.path.join(_scratch(), "cache-entry")
    os.makedirs(os.path.join(root, "music"))
    with open(os.path.join(root, "music", "one.txt"), "wb") as handle:
        handle.write(CACHED_SOURCE)
    with _cache_in(os.path.join(root, "cache")):
        load(data_representation(), os.path.join(root, "music"))
    (entry,) = [os.path.join(d, n) for d, _, names in os.walk(os.path.join(root, "cache")) for n in names if n.endswith(".npz")]
    return os.path.join(root, "music"), entry


def read_cache_entry(data: bytes) -> None:
    """``data`` as the cache entry of a file: ``mgf.training.sources.load`` never fails, and gives the file's own piece or,
    from an entry that passed its checks, pieces that meet the representation."""
    folder, entry = _cached_entry()
    os.makedirs(os.path.dirname(entry), exist_ok=True)
    with open(entry, "wb") as handle:
        handle.write(data)
    chosen = data_representation()
    with _cache_in(os.path.join(os.path.dirname(folder), "cache")):
        try:
            loaded = load(chosen, folder)
        except mgf.MgfError as error:
            raise ContractViolation(f"a cache entry was fatal: {error}") from error
    if not loaded.cached:
        if [s.tolist() for s in loaded.sequences] != [[1, 2, 3, 4]] or loaded.skipped:
            raise ContractViolation(f"re-encoding gave {loaded.sequences!r}, skipped {loaded.skipped!r}")
    for piece in loaded.sequences:
        _check_tokens(piece, chosen, "a cached piece")


HARNESSES = {
    "midi_read": functools.partial(read, "midi"),
    "notes_read": functools.partial(read, "notes"),
    "bundle_load": load_bundle,
    **{f"primer_{name}": _on_text(parse_primer, name) for name in ("notes", "midi", "audio", "tokens")},
    **{f"decode_{name}": _on_text(decode, name) for name in ("notes", "midi", "audio", "tokens")},
    "draw": draw,
    "generate_midi": generate_midi,
    "dataset_read": read_dataset,
    "cache_read": read_cache_entry,
}


# -- `mgf export`'s Keras reader ---------------------------------------------------------------------------------

def load_keras(data: bytes) -> None:
    """A ``.keras`` file holding ``data``, read as ``mgf export`` reads it: the archive checked before Keras sees it,
    then (if it passes) loaded by Keras and converted to bundle tensors, or a one-line error.  What passes the
    check must fit the memory and time limits the fuzzer sets: the check is what bounds them."""
    from mgf.plugins.keras import archive as keras_archive

    path = _as_file(data, "input.keras")
    with clean():
        keras_archive.check(path)
        net = keras_network()
        arch, tensors = net.to_tensors(net.load_keras(path))
        shapes = {name: tensor.shape for name, tensor in tensors.items()}
        if shapes != arch.tensor_shapes():
            raise ContractViolation(f"to_tensors gave {shapes} for {arch}")


@functools.cache
def keras_network():
    """``mgf.plugins.keras.net``: TensorFlow's import takes seconds, so ``fuzz.py`` calls this before fuzzing."""
    from mgf.plugins.keras.support import keras_net

    return keras_net()


HARNESSES["keras_export"] = load_keras
#: what a harness imports before fuzzing starts, so that the import does not count as the first input's time
PRELOAD = {"keras_export": keras_network}
