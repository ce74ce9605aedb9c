"""The ``keras`` backend: runs a bundle through Keras's own layers.  Needs ``pip install 'mgf-music[keras]'``."""

from mgf import BundleError, ModelBackend, hookimpl

from mgf.plugins.keras.support import keras_net


class KerasBackend(ModelBackend):
    name = "keras"

    def load(self, loaded):
        if loaded.arch.transformer is not None:  # before TensorFlow is imported
            raise BundleError(f"{loaded.path or 'bundle'}: the keras backend runs LSTM and GRU bundles, not this "
                              "Transformer; run it with --model native or --model numpy")
        return keras_net().KerasStepModel(loaded.arch, loaded.tensors)


@hookimpl
def register_models(register):
    register(KerasBackend)
