"""The ``native`` backend: the Cython LSTM kernel (mgf._lstm), fast on the CPU, no TensorFlow."""

from __future__ import annotations

import os

from mgf import InputError, Model, ModelBackend, PluginError, State, bundle, hookimpl


def _threads(value) -> int:
    """Cores one step may use: the ``threads`` option, else ``MGF_NUM_THREADS``, else 1."""
    source = "threads" if value is not None else "MGF_NUM_THREADS"
    if value is None:
        value = os.environ.get("MGF_NUM_THREADS", "1")
    try:
        threads = int(value)
    except (TypeError, ValueError):
        threads = 0
    if threads < 1:
        raise InputError(f"{source} must be a positive integer, got {value!r}")
    return threads


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

    def __init__(self, loaded: bundle.Bundle, threads: int) -> None:
        self.arch = loaded.arch
        self.kernel = _kernel().LSTMKernel(loaded.tensors, loaded.arch.vocab_size, loaded.arch.hidden, threads)

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

    def load(self, path):
        threads = _threads(self.options.get("threads"))
        return NativeModel(bundle.read(path), threads)


@hookimpl
def register_models(register):
    register(NativeBackend)
