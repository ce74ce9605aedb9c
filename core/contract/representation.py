"""The contract of a representation: music in, tokens out, and back."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np

from mgf.contract.clock import Clock
from mgf.contract.events import Decoder, ReplayDecoder
from mgf.contract.options import Option


def packaged_model(file_name: str) -> str:
    """Path of a bundle shipped in mgf's own ``models/`` folder (the built-ins' defaults)."""
    from importlib.resources import files

    return str(files("mgf") / "models" / file_name)


class Representation(ABC):
    """Turns music into a 1-D sequence of int32 token ids in ``[0, vocab_size)`` and back.

    Subclasses take their configuration as keyword arguments and must be able to rebuild
    themselves from ``config()`` (a JSON-able dict), because that dict is what a bundle stores.
    Construction must stay cheap and import nothing heavy (music21, ...): import inside
    ``read``/``write`` so that sampling stays light.
    """

    #: unique name, used by ``--repr`` and in bundles
    name: ClassVar[str]
    #: default suffix of files ``write`` produces, e.g. ``".mid"``
    suffix: ClassVar[str] = ".txt"
    #: suffixes of the files ``read`` understands; ``mgf.training.sources`` picks files in folders by them
    read_suffixes: ClassVar[tuple[str, ...]] = (".txt",)
    #: model bundle used by ``mgf generate`` when none is given (a path), or None
    default_bundle: ClassVar[str | None] = None
    #: the config keys ``__init__`` takes, with types, defaults and bounds; checked before construction,
    #: from ``--config``, ``mgf.get_representation`` and a bundle's metadata alike
    options: ClassVar[tuple[Option, ...]] = ()

    @classmethod
    def _contract_problem(cls, subclass: type) -> str | None:
        """Why ``subclass`` cannot be registered as a representation, or None."""
        return None

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this representation."""

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of token ids, the start token included."""

    @property
    @abstractmethod
    def start_token(self) -> int:
        """Id reserved for start-of-sequence: prepended in training and generation, skipped by ``write``."""

    @abstractmethod
    def read(self, path: str | os.PathLike) -> np.ndarray:
        """Tokens (int32, 1-D, without the start token) of the music in ``path``; ``InputError`` if unreadable."""

    def read_pieces(self, path: str | os.PathLike) -> Iterator[tuple[str, np.ndarray]]:
        """Every piece in ``path`` as ``(name, tokens)``: a file may hold several (a multi-tune ABC file)."""
        yield str(path), self.read(path)

    @abstractmethod
    def write(self, tokens: np.ndarray, path: str | os.PathLike, **options: Any) -> None:
        """Write ``tokens`` as music to ``path`` (format chosen by its suffix)."""

    @abstractmethod
    def parse_primer(self, text: str) -> np.ndarray:
        """Tokens of a primer given as text on the command line; ``InputError`` quoting the bad part."""

    def to_notes(self, tokens: np.ndarray) -> list[tuple[int, int, float, float]]:
        """The music of ``tokens`` as ``[(midi_pitch, velocity, start_seconds, end_seconds)]``, for rendering and metrics."""
        from mgf.errors import InputError

        raise InputError(f"representation {self.name!r} has no notes to render or measure")

    def decoder(self) -> Decoder:
        """A new :class:`mgf.Decoder` of one sequence: token in, the note events it makes certain out (live playback).

        The default decodes the whole prefix again with ``to_notes`` at each token (:class:`mgf.contract.events.ReplayDecoder`:
        O(n) per token); override it with an exact, O(1) one where the representation's rules allow (``notes``, ``midi``).
        A representation without ``to_notes`` has no note events: ``UsageError``.
        """
        from mgf.errors import UsageError

        to_notes = type(self).to_notes
        if getattr(to_notes, "__wrapped__", to_notes) is Representation.to_notes:  # (under the registry's guard)
            raise UsageError(f"representation {self.name!r} has no note events to decode (it has no to_notes)")
        return ReplayDecoder(self)

    def token_pitches(self) -> np.ndarray | None:
        """int ``[vocab_size]``: the MIDI pitch each token starts (-1 for tokens that start no note), or None if pitch means nothing here.

        Pitch constraints (``scale``, ``pitch-range``, ``no-repeat``) need it.
        """
        return None

    def clock(self) -> Clock | None:
        """Where each token falls in steps, beats and bars (:class:`mgf.Clock`), or None (the default) if nothing here says.

        Rules keyed on musical time (bars, a time limit, close-notes) need it and refuse a representation
        without one; it must agree with ``write``: each note-on token falls where ``write`` puts its note.
        """
        return None

    def transpose(self, tokens: np.ndarray, semitones: int) -> np.ndarray | None:
        """``tokens`` moved by ``semitones``, or None if a note would leave the vocabulary (or pitch means nothing here)."""
        return None

    def fit(self, sequences: Any) -> None:  # noqa: B027 - optional hook, no-op by default
        """Learn what the representation needs from training data (e.g. a codebook)."""

    def tensors(self) -> dict[str, np.ndarray]:
        """Learned arrays to store in the bundle under ``repr.``; none by default."""
        return {}

    def load_tensors(self, tensors: dict[str, np.ndarray]) -> None:  # noqa: B027
        """Restore what ``tensors()`` returned (keys without the ``repr.`` prefix)."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"
