"""The ``numpy`` backend: the plain reference LSTM, GRU or Transformer, slow but obviously right."""

from mgf import ModelBackend, hookimpl
from mgf.kernel.reference import NumpyGRU, NumpyLSTM, NumpyTransformer

MODELS = {"lstm": NumpyLSTM, "gru": NumpyGRU, "transformer": NumpyTransformer}  # bundle.CELLS -> the class that runs it


class NumpyBackend(ModelBackend):
    name = "numpy"

    def load(self, loaded):
        return MODELS[loaded.arch.cell](loaded)


@hookimpl
def register_models(register):
    register(NumpyBackend)
