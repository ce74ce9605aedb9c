"""The ``keras`` backend: runs a bundle through Keras's own layers.  Needs ``pip install 'mgf-music[keras]'``."""

from mgf import ModelBackend, bundle, hookimpl

from .keras_support import keras_net


class KerasBackend(ModelBackend):
    name = "keras"

    def load(self, path):
        net = keras_net()
        loaded = bundle.read(path)
        return net.KerasStepModel(loaded.arch, loaded.tensors)


@hookimpl
def register_models(register):
    register(KerasBackend)
