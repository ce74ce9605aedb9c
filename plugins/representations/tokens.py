"""``tokens``: token ids as text, one sequence per file.  For plumbing: testing plugins and bundles end to end."""

import re

import numpy as np

from mgf import InputError, Option, Representation, atomic_path, hookimpl, packaged_model
from mgf.music.scores import primer_source, quote


class Tokens(Representation):
    """Ids ``0 .. vocab_size - 2`` are free for the user; ``vocab_size - 1`` is the start token."""

    name = "tokens"
    suffix = ".txt"
    default_bundle = packaged_model("tokens.safetensors")
    options = (Option("vocab_size", int, 130, "number of token ids", low=2, high=1_000_000),)

    def __init__(self, vocab_size: int = 130) -> None:
        self._vocab_size = vocab_size

    def config(self):
        return {"vocab_size": self._vocab_size}

    @property
    def vocab_size(self):
        return self._vocab_size

    @property
    def start_token(self):
        return self._vocab_size - 1

    def read(self, path):
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError) as error:
            raise InputError(f"{path}: cannot read token file ({getattr(error, 'strerror', None) or error})") from None
        tokens = self._parse(text, where=str(path))
        if tokens.size == 0:
            raise InputError(f"{path}: no tokens in file")
        return tokens

    def write(self, tokens, path, **options):
        tokens = np.asarray(tokens)
        if tokens.size and (tokens.dtype.kind not in "iu" or tokens.min() < 0 or tokens.max() >= self.vocab_size):
            bad = tokens.ravel()[0] if tokens.dtype.kind not in "iu" else tokens[(tokens < 0) | (tokens >= self.vocab_size)][0]
            raise InputError(f"{path}: token id {bad} is outside the vocabulary [0, {self.vocab_size})")
        text = " ".join(str(int(t)) for t in tokens if t != self.start_token)
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")

    def parse_primer(self, text):
        """Token ids, or a file of them (see ``mgf.music.scores.primer_source``)."""
        path, text = primer_source(text, self.read_suffixes)
        return self.read(path) if path is not None else self._parse(text, where="primer")

    def _parse(self, text, where):
        values = []
        for part in re.split(r"[\s,]+", text.strip()):
            if not part:
                continue
            if not re.fullmatch(r"[0-9]+", part):  # not \d, which takes digits of every script
                raise InputError(f"{where}: {quote(part)} is not a token id")
            if len(part) > 10:  # 5,000 digits is no id, and int() would refuse it
                raise InputError(f"{where}: {quote(part)} is outside [0, {self.start_token})")
            value = int(part)
            if value >= self.start_token:
                raise InputError(f"{where}: token id {value} is outside [0, {self.start_token})")
            values.append(value)
        return np.asarray(values, dtype=np.int32)


@hookimpl
def register_representations(register):
    register(Tokens)
