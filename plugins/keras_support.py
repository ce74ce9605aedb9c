"""Importing the Keras helpers (``mgf.plugins.keras_net``), shared by the ``keras`` backend and ``mgf train``.

A helper module, not a plugin; it exists so that importing it costs nothing when TensorFlow is absent.
"""

from mgf import PluginError


def keras_net():
    """``mgf.plugins.keras_net``, or a PluginError saying how to install TensorFlow."""
    try:
        from mgf.plugins import keras_net
    except ImportError as error:
        raise PluginError(f"Keras is not installed ({error}); install it with: pip install 'mgf-music[keras]'") from None
    return keras_net
