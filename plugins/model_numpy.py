"""The ``numpy`` backend: the plain reference LSTM, slow but obviously right."""

from mgf import ModelBackend, bundle, hookimpl
from mgf.lstm import NumpyLSTM


class NumpyBackend(ModelBackend):
    name = "numpy"

    def load(self, path):
        return NumpyLSTM(bundle.read(path))


@hookimpl
def register_models(register):
    register(NumpyBackend)
