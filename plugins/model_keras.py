"""The ``keras`` backend: runs a bundle through Keras's own layers.  Needs ``pip install 'mgf[keras]'``."""

from mgf import ModelBackend, PluginError, bundle, hookimpl


def keras_net():
    """``mgf.plugins.keras_net``, or a PluginError saying how to install TensorFlow."""
    try:
        from mgf.plugins import keras_net
    except ImportError as error:
        raise PluginError(f"Keras is not installed ({error}); install it with: pip install 'mgf[keras]'") from None
    return keras_net


class KerasBackend(ModelBackend):
    name = "keras"

    def load(self, path):
        net = keras_net()
        loaded = bundle.read(path)
        return net.KerasStepModel(loaded.arch, loaded.tensors)


@hookimpl
def register_models(register):
    register(KerasBackend)
