"""mgf: plugin-based music generation with a fast native LSTM sampler.

``import mgf`` loads numpy and pluggy only; TensorFlow and music21 load when a plugin needs them, and the
public modules that ``mgf generate`` does not need (``baselines``, ``card``, ``data``, ...) on first use, so
that a cold ``mgf generate`` starts fast.
Everything in ``__all__`` (and the module ``mgf.testing``) is the public API that plugins,
built-in ones included, build on; the rest is private.  The public modules (``bundle``, ``data``,
``scores``, ...) are public in what they do not prefix with ``_``.  See docs/contract.md.
"""

__version__ = "0.2.0"

import importlib

from . import bundle, options
from .api import (check_limit, generate, generation_settings, get_representation, installed, installed_commands,
                  load_model, plugin_class, read_notes)
from .constraint import Constraint, token_pitches
from .boundary import printable
from .errors import BundleError, InputError, MgfError, PluginError, UsageError
from .files import STOP_SIGNALS, OutputError, atomic_path, check_output, open_regular, output_beside
from .hookspecs import hookimpl
from .model import Model, ModelBackend, State, as_tokens
from .options import Option
from .registry import PluginWarning
from .representation import Representation, packaged_model
from .sampler import Context, Sampler, allowed_probabilities, draw, draw_from_logits, log_softmax

_LAZY = {"baselines", "card", "data", "lstm", "metrics", "plot", "scores", "synth"}


def __getattr__(name):
    """The public modules of _LAZY, imported on first use (PEP 562)."""
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "STOP_SIGNALS",
    "BundleError",
    "Constraint",
    "Context",
    "InputError",
    "MgfError",
    "Model",
    "ModelBackend",
    "Option",
    "OutputError",
    "PluginError",
    "PluginWarning",
    "Representation",
    "Sampler",
    "State",
    "UsageError",
    "allowed_probabilities",
    "as_tokens",
    "atomic_path",
    "baselines",
    "bundle",
    "card",
    "check_limit",
    "check_output",
    "data",
    "draw",
    "draw_from_logits",
    "generate",
    "generation_settings",
    "get_representation",
    "hookimpl",
    "installed",
    "installed_commands",
    "load_model",
    "log_softmax",
    "lstm",
    "metrics",
    "open_regular",
    "options",
    "output_beside",
    "plot",
    "packaged_model",
    "plugin_class",
    "printable",
    "read_notes",
    "scores",
    "synth",
    "token_pitches",
]
