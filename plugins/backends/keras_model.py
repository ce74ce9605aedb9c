"""The ``keras`` backend: runs a bundle through Keras's own layers.  Needs ``pip install 'mgf-music[keras]'``."""

from mgf import ModelBackend, hookimpl
from mgf.contract import bundle

from mgf.plugins.keras.support import keras_net


class KerasBackend(ModelBackend):
    name = "keras"

    def load(self, path):
        net = keras_net()
        loaded = bundle.read(path)
        return net.KerasStepModel(loaded.arch, loaded.tensors)


@hookimpl
def register_models(register):
    register(KerasBackend)
