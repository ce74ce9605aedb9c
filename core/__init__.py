"""mgf: plugin-based music generation with a fast native LSTM sampler.

``import mgf`` loads numpy and pluggy only; TensorFlow and music21 load when a plugin needs them.
"""

__version__ = "0.1.0"

from .api import generate, get_representation, load_model
from .errors import BundleError, InputError, MgfError, PluginError, UsageError
from .hookspecs import hookimpl
from .model import Model, ModelBackend, State
from .representation import Representation
from .sampler import Option, Sampler

__all__ = [
    "BundleError",
    "InputError",
    "MgfError",
    "Model",
    "ModelBackend",
    "Option",
    "PluginError",
    "Representation",
    "Sampler",
    "State",
    "UsageError",
    "generate",
    "get_representation",
    "hookimpl",
    "load_model",
]
