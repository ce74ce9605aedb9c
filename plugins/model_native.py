"""The ``native`` backend: the Cython LSTM and GRU kernel (mgf._lstm), fast on the CPU, no TensorFlow."""

from __future__ import annotations

import os

from mgf import InputError, Model, ModelBackend, Option, PluginError, State, UsageError, bundle, hookimpl


THREADS = Option("threads", int, None, "cores one step of the native backend uses (default: MGF_NUM_THREADS or 1)",
                 low=1, high=256)
PRECISION = Option("precision", str, "fp32",
                   "weights of the native backend's products: fp32, or bf16/int8 converted at load (smaller, faster)",
                   choices=("fp32", "bf16", "int8"))


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
            from mgf import _lstm
        except ImportError as error:
            raise PluginError(f"the native kernel is not built ({error}); reinstall mgf with pip") from None
        State.register(_lstm.KernelState)
        _kernel_module = _lstm
    return _kernel_module


class NativeModel(Model):
    """A bundle's weights laid out for the Cython step kernel."""

    def __init__(self, loaded: bundle.Bundle, threads: int, precision: str = "fp32") -> None:
        self.arch = loaded.arch
        self.kernel = _kernel().Kernel(loaded.tensors, loaded.arch.vocab_size, loaded.arch.hidden, threads,
                                       precision, cell=loaded.arch.cell)
        self._native_kernel = self.kernel  # lets mgf's generation loop run in C (core/_generate.pxi)

    @property
    def vocab_size(self) -> int:
        return self.arch.vocab_size

    @property
    def threads(self) -> int:
        """Cores a step uses (at most the requested number: no more chunks than units)."""
        return self.kernel.threads

    def initial_state(self, batch_size: int):
        return self.kernel.initial_state(batch_size)

    def step(self, tokens, state):
        return self.kernel.step(tokens, state)


class NativeBackend(ModelBackend):
    name = "native"
    options = (THREADS, PRECISION)

    def load(self, path):
        threads = _threads(self.options.get("threads"))
        return NativeModel(bundle.read(path), threads, self.options["precision"])


@hookimpl
def register_models(register):
    register(NativeBackend)
