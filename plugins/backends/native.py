"""The ``native`` backend: the Cython LSTM, GRU and Transformer kernel (mgf.kernel._native), fast on the CPU, no
TensorFlow."""

from __future__ import annotations

import os

from mgf import InputError, Model, ModelBackend, Option, PluginError, State, UsageError, hookimpl
from mgf.contract import bundle


THREADS = Option("threads", int, None, "cores one step of the native backend uses (default: MGF_NUM_THREADS or 1)",
                 low=1, high=256)
PRECISION = Option("precision", str, None,
                   "weights of the native backend's products: fp32 (the numpy and keras backends' tokens), or bf16/int8 "
                   "converted at load (smaller; a Transformer's KV cache is then bf16 too); default: the bundle's preferred "
                   "precision (mgf card) where the CPU has its fast products (int8: AVX-512 VNNI, bf16: AVX-512 BF16), "
                   "else fp32", choices=bundle.PRECISIONS)


def _threads(value) -> int:
    """Cores one step may use: the ``threads`` option, else ``MGF_NUM_THREADS``, else 1."""
    if value is not None:
        return value
    text = os.environ.get("MGF_NUM_THREADS", "1")
    try:
        return THREADS.check(text, "MGF_NUM_THREADS")
    except UsageError:
        raise InputError(f"MGF_NUM_THREADS must be an integer in {THREADS.bounds()}, got {text!r}") from None


_kernel_module = None


def _kernel():
    """The compiled kernel, imported on first use."""
    global _kernel_module
    if _kernel_module is None:
        try:
            from mgf.kernel import _native
        except ImportError as error:
            raise PluginError(f"the native kernel is not built ({error}); reinstall mgf with pip") from None
        State.register(_native.KernelState)
        State.register(_native.TransformerState)
        _kernel_module = _native
    return _kernel_module


#: the instructions (named as in the kernel's ``isa``) without which a precision's products are emulated, slower than
#: fp32: shipped midi on AVX2 alone, 53 us a step at fp32 against 76 us at int8; with AVX-512 VNNI, 41.7 against 10.8
FAST_WITH = {"fp32": "", "bf16": "bf16", "int8": "vnni"}


def default_precision(preferred: str, isa: str) -> str:
    """The precision to load a bundle that prefers ``preferred`` with, on a kernel of instruction set ``isa``:
    ``preferred`` where ``isa`` has its fast products (``FAST_WITH``), else fp32."""
    return preferred if FAST_WITH[preferred] in isa else "fp32"


def _precision(chosen: str | None, loaded: bundle.Bundle) -> str:
    """``chosen``, else the bundle's preferred precision where this CPU runs it fast (a probe kernel tells the ISA)."""
    preferred = loaded.precision.get("preferred", "fp32")
    if chosen is not None or preferred == "fp32":
        return chosen or preferred
    probe = bundle.random_bundle(3, (1,))
    isa = _kernel().Kernel(probe.tensors, 3, (1,), 1, "fp32").isa  # honours MGF_ISA, as the real kernel does
    return default_precision(preferred, isa)


class NativeModel(Model):
    """A bundle's weights laid out for the Cython step kernel."""

    def __init__(self, loaded: bundle.Bundle, threads: int, precision: str = "fp32") -> None:
        self.arch = loaded.arch
        if loaded.arch.transformer is not None:
            self.kernel = _kernel().TransformerKernel(loaded.tensors, loaded.arch, precision, threads=threads)
        else:
            self.kernel = _kernel().Kernel(loaded.tensors, loaded.arch.vocab_size, loaded.arch.hidden, threads,
                                           precision, cell=loaded.arch.cell)

    @property
    def vocab_size(self) -> int:
        return self.arch.vocab_size

    @property
    def precision(self) -> str:
        """The precision of the weights in the products: fp32, bf16 or int8."""
        return self.kernel.precision

    @property
    def threads(self) -> int:
        """Cores a step uses (at most the requested number: no more chunks than units)."""
        return self.kernel.threads

    def initial_state(self, batch_size: int):
        return self.kernel.initial_state(batch_size)

    def step(self, tokens, state):
        return self.kernel.step(tokens, state)

    def prime(self, tokens, state):
        return self.kernel.prime(tokens, state)


class NativeBackend(ModelBackend):
    name = "native"
    options = (THREADS, PRECISION)

    def load(self, loaded):
        return NativeModel(loaded, _threads(self.options.get("threads")), _precision(self.options["precision"], loaded))


@hookimpl
def register_models(register):
    register(NativeBackend)
