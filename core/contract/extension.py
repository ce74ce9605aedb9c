"""A representation with ids the framework appends after its own: what :class:`mgf.Infilling` (four ids that frame a
gap) and :class:`mgf.Conditioned` (a token family per control) have in common.

The extension is its base in everything (name, config, start token, files, primers, tensors) but its vocabulary:
the appended ids move no time on the clock, start no pitch, and are no music, so ``write``, ``to_notes`` and the
decoder see the base's tokens only, through :meth:`Extension.music`, which each extension defines (refusing the ids,
or passing over them).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from mgf.contract.clock import Clock, TokenKind, clock_of
from mgf.contract.events import Decoder, Event
from mgf.contract.representation import Representation


class Extension(Representation):
    """``base`` with ``vocab_size - base.vocab_size`` ids of the framework's after its own."""

    def __init__(self, base: Representation) -> None:
        self.base = base
        # what the base's class declares: read per instance (Representation declares them per class)
        self.__dict__.update(name=base.name, suffix=base.suffix, read_suffixes=base.read_suffixes,
                             default_bundle=base.default_bundle, options=base.options)

    def music(self, tokens: ArrayLike) -> np.ndarray:
        """The base's tokens of ``tokens``: the appended ids refused (``InputError``) or left out."""
        raise NotImplementedError

    @property
    def added(self) -> int:
        """How many ids follow the base's."""
        return self.vocab_size - self.base.vocab_size

    def config(self) -> dict[str, Any]:
        return self.base.config()

    @property
    def start_token(self) -> int:
        return self.base.start_token

    def read(self, path: str | os.PathLike) -> np.ndarray:
        return self.base.read(path)

    def read_pieces(self, path: str | os.PathLike) -> Iterator[tuple[str, np.ndarray]]:
        return self.base.read_pieces(path)

    def parse_primer(self, text: str) -> np.ndarray:
        return self.base.parse_primer(text)

    def write(self, tokens: np.ndarray, path: str | os.PathLike, **options: Any) -> None:
        self.base.write(self.music(tokens), path, **options)

    def to_notes(self, tokens: np.ndarray) -> list[tuple[int, int, float, float]]:
        return self.base.to_notes(self.music(tokens))

    def decoder(self) -> Decoder:
        return _MusicDecoder(self, self.base.decoder())

    def token_pitches(self) -> np.ndarray | None:
        pitches = self.base.token_pitches()
        return None if pitches is None else np.concatenate([np.asarray(pitches), np.full(self.added, -1)])

    def clock(self) -> Clock | None:
        """The base's clock (checked), the appended ids added as OTHER tokens that move no time."""
        clock = clock_of(self.base)
        if clock is None:
            return None
        added = self.added
        return Clock(np.concatenate([clock.kinds, np.full(added, TokenKind.OTHER, np.int8)]),
                     np.concatenate([clock.pitches, np.full(added, -1, np.int16)]),
                     np.concatenate([clock.advance, np.zeros(added, np.int32)]),
                     clock.step_seconds, clock.steps_per_beat, clock.beats_per_bar)

    def fit(self, sequences: Any) -> None:
        self.base.fit(sequences)

    def tensors(self) -> dict[str, np.ndarray]:
        return self.base.tensors()

    def load_tensors(self, tensors: dict[str, np.ndarray]) -> None:
        self.base.load_tensors(tensors)


class _MusicDecoder(Decoder):
    """The base's decoder, fed what :meth:`Extension.music` keeps of each token (an appended id: refused, or no events)."""

    def __init__(self, representation: Extension, base: Decoder) -> None:
        super().__init__(representation)
        self.representation, self.base = representation, base

    def feed(self, token: int) -> list[Event]:
        token = self.check(token)
        if not self.representation.music(np.array([token])).size:
            return []
        return self.base.feed(token)

    def close(self) -> list[Event]:
        self.closed = True
        return self.base.close()
