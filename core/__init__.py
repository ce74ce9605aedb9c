"""mgf: plugin-based music generation with a fast native LSTM sampler.

``import mgf`` loads numpy and pluggy only; TensorFlow and music21 load when a plugin needs them, and the
modules that ``mgf generate`` does not need on first import, so that a cold ``mgf generate`` starts fast.
Everything in ``__all__`` (and the module ``mgf.testing``) is the public API that plugins, built-in ones
included, build on.  The layers are subpackages: ``mgf.contract`` (hook specs, registry, boundary, options,
the base classes, bundles), ``mgf.generation`` (the API, the run, rules and processors), ``mgf.kernel``
(the C kernel and its numpy reference), ``mgf.music`` (scores, corpus, synthesis, plots, metrics) and
``mgf.training`` (data, baselines, cards); their modules are public in what they do not prefix with ``_``.
See docs/contract.md.
"""

__version__ = "0.3.0"

import importlib
import importlib.abc
import importlib.machinery
import sys

from mgf.generation.api import (check_limit, generate, generation_settings, get_representation, installed, installed_commands,
                  load_model, plugin_class, read_notes)
from mgf.contract.constraint import Constraint, token_pitches
from mgf.contract.controls import BarNotes, Conditioned, Control
from mgf.contract.boundary import printable
from mgf.contract.clock import Clock, TokenKind
from mgf.contract.events import Decoder, Event
from mgf.errors import BundleError, ContractWarning, InputError, MgfError, PluginError, UsageError
from mgf.files import STOP_SIGNALS, OutputError, atomic_path, check_output, open_regular, output_beside
from mgf.contract.hookspecs import hookimpl
from mgf.contract.infill import Infilling, InfillTokens
from mgf.generation.infill import infill, infill_piece
from mgf.contract.model import Model, ModelBackend, State, as_tokens
from mgf.contract.options import Option
from mgf.contract.registry import PluginWarning
from mgf.contract.representation import Representation, packaged_model
from mgf.contract.sampler import Context, Policy, Sampler, Search, log_softmax
from mgf.generation import processors
from mgf.generation.processors import (MinP, RepetitionPenalty, Temperature, TopK, TopP, allowed_probabilities, draw,
                                       draw_from_logits)
from mgf.generation import rules
from mgf.generation.stream import Stream, stream
from mgf.generation.rules import Automaton, BarBias, BarBudget, BarMask, BarTokens, CloseNotes, Forbid, NgramBonus, RunLimit, TimeLimit

#: Contract-2 module names and where contract 3 put them (docs/contract.md, "The layout"): old imports keep
#: working through :class:`_MovedModules`, with a DeprecationWarning that names the new module.
MOVED = {
    **{name: f"contract.{name}" for name in ("boundary", "bundle", "constraint", "context", "hookspecs", "model", "options",
                                             "registry", "representation", "sampler")},
    "api": "generation.api", "generation": "generation.run", "_lstm": "kernel._native", "lstm": "kernel.reference",
    **{name: f"music.{name}" for name in ("corpus", "metrics", "plot", "scores", "synth")},
    **{name: f"training.{name}" for name in ("baselines", "card", "data", "npz")},
}


def _moved(name: str):
    import warnings

    new = f"{__name__}.{MOVED[name]}"
    warnings.warn(f"mgf.{name} is now {new} (contract 3); import that instead", ContractWarning, stacklevel=3)
    return importlib.import_module(new)


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``import mgf.scores`` (contract 2) gives the module that now lives at ``mgf.music.scores``."""

    def find_spec(self, fullname, path=None, target=None):
        prefix, _, name = fullname.partition(".")
        if prefix != __name__ or name not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec):
        return _moved(spec.name.partition(".")[2])

    def exec_module(self, module):
        """Nothing to run: the module was imported at its new place."""


sys.meta_path.append(_MovedModules())


def __getattr__(name):
    """``mgf.scores`` and the other contract-2 module attributes, at their new place (PEP 562)."""
    if name in MOVED:
        return _moved(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BarNotes",
    "Conditioned",
    "Control",
    "STOP_SIGNALS",
    "BundleError",
    "Clock",
    "Constraint",
    "Context",
    "Decoder",
    "Event",
    "InfillTokens",
    "Infilling",
    "InputError",
    "MgfError",
    "MinP",
    "Model",
    "ModelBackend",
    "Option",
    "OutputError",
    "PluginError",
    "PluginWarning",
    "Policy",
    "RepetitionPenalty",
    "Representation",
    "Sampler",
    "Search",
    "State",
    "Stream",
    "Temperature",
    "TokenKind",
    "TopK",
    "TopP",
    "UsageError",
    "allowed_probabilities",
    "as_tokens",
    "atomic_path",
    "check_limit",
    "check_output",
    "draw",
    "draw_from_logits",
    "generate",
    "generation_settings",
    "get_representation",
    "hookimpl",
    "infill",
    "infill_piece",
    "installed",
    "installed_commands",
    "load_model",
    "log_softmax",
    "open_regular",
    "output_beside",
    "packaged_model",
    "plugin_class",
    "printable",
    "processors",
    "read_notes",
    "stream",
    "token_pitches",
    "Automaton",
    "BarBudget",
    "BarMask",
    "BarTokens",
    "BarBias",
    "CloseNotes",
    "Forbid",
    "NgramBonus",
    "RunLimit",
    "TimeLimit",
    "rules",
]
