"""The ``keras`` backend: runs a bundle through Keras's own layers.  Needs ``pip install 'mgf-music[keras]'``."""

from mgf import ModelBackend, hookimpl

from mgf.plugins.keras.support import keras_net


class KerasBackend(ModelBackend):
    name = "keras"

    def load(self, loaded):
        return keras_net().KerasStepModel(loaded.arch, loaded.tensors)


@hookimpl
def register_models(register):
    register(KerasBackend)
