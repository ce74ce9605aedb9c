"""The representation suite: files round-trip, ids stay in the vocabulary, errors are one line naming the file."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pytest

from mgf.contract.representation import Representation
from mgf.errors import InputError, MgfError, UsageError
from mgf.generation.api import get_representation
from mgf.testing.suite import _Contract, _declared, bad_values


class RepresentationContract(_Contract):
    """What every representation promises: files round-trip, ids stay in the vocabulary, errors are one line naming the file."""

    kind = "representations"
    config: ClassVar[Mapping[str, Any]] = {}
    sequences: ClassVar[tuple[list[int], ...]] = ()
    lossless: ClassVar[bool] = True
    bad_primer: ClassVar[str | None] = "%%% not music %%%"

    def make_representation(self) -> Representation:
        """The instance under test; override when it needs more than its config (e.g. ``load_tensors``)."""
        return get_representation(self.name, **self.config)

    @pytest.fixture
    def representation(self):
        return self.make_representation()

    def _path(self, representation, folder, stem="piece"):
        return folder / f"{stem}{representation.suffix}"

    def _round_trip(self, representation, tokens, folder, stem="piece"):
        path = self._path(representation, folder, stem)
        representation.write(np.asarray(tokens, dtype=np.int32), path)
        return representation.read(path)

    def _check_tokens(self, representation, tokens, what):
        assert isinstance(tokens, np.ndarray) and tokens.dtype == np.int32 and tokens.ndim == 1, \
            f"{what}: expected int32 [n], got {getattr(tokens, 'dtype', type(tokens))} {getattr(tokens, 'shape', '')}"
        assert ((tokens >= 0) & (tokens < representation.vocab_size)).all(), f"{what}: ids outside the vocabulary"
        assert not (tokens == representation.start_token).any(), f"{what}: contains the start token"

    def canonical_sequences(self, representation, folder) -> list[np.ndarray]:
        """``sequences``, or (none given) random tokens after one ``write``/``read``, which a lossless representation must then keep."""
        if self.sequences:
            return [np.asarray(s, dtype=np.int32) for s in self.sequences]
        rng = np.random.default_rng(0)
        ids = np.setdiff1d(np.arange(representation.vocab_size), [representation.start_token])
        return [self._round_trip(representation, rng.choice(ids, 48), folder, f"derived-{i}") for i in range(3)]

    def test_vocabulary(self, representation):
        vocab, start = representation.vocab_size, representation.start_token
        assert isinstance(vocab, int) and vocab >= 2
        assert isinstance(start, int) and 0 <= start < vocab

    def test_write_then_read_round_trips(self, representation, tmp_path):
        for i, tokens in enumerate(self.canonical_sequences(representation, tmp_path)):
            self._check_tokens(representation, tokens, "sequence")
            back = self._round_trip(representation, tokens, tmp_path, f"trip-{i}")
            self._check_tokens(representation, back, f"read after write of sequence {i}")
            if self.lossless:
                np.testing.assert_array_equal(back, tokens, err_msg=f"sequence {i} changed through write and read")

    def test_start_token_is_never_written(self, representation, tmp_path):
        start = representation.start_token
        for i, tokens in enumerate(self.canonical_sequences(representation, tmp_path)):
            with_start = np.insert(tokens, [0, len(tokens) // 2], start)
            plain = self._round_trip(representation, tokens, tmp_path, f"plain-{i}")
            marked = self._round_trip(representation, with_start, tmp_path, f"marked-{i}")
            np.testing.assert_array_equal(marked, plain, err_msg="start tokens changed what was written")

    def test_out_of_vocabulary_ids_are_refused_and_leave_no_file(self, representation, tmp_path):
        for bad in (representation.vocab_size, -1):
            path = self._path(representation, tmp_path, f"bad{bad}")
            with pytest.raises(MgfError):
                representation.write(np.asarray([0, bad], dtype=np.int32), path)
            assert not path.exists(), f"a failed write left {path.name}"

    def test_unreadable_files_are_input_errors_naming_the_file(self, representation, tmp_path):
        missing = tmp_path / f"missing{representation.suffix}"
        garbage = tmp_path / f"garbage{representation.suffix}"
        garbage.write_bytes(bytes(range(256)) * 4)
        empty = tmp_path / f"empty{representation.suffix}"
        empty.write_bytes(b"")
        for path in (missing, garbage, empty):
            with pytest.raises(InputError) as error:
                representation.read(path)
            assert str(path) in str(error.value), f"the error does not name the file: {error.value}"
            assert "\n" not in str(error.value)

    def test_config_rebuilds_an_equal_representation(self, representation):
        config = representation.config()
        assert json.loads(json.dumps(config)) == config, "config() must be JSON-able"
        undeclared = set(config) - set(_declared(type(representation)))
        assert not undeclared, f"config keys {undeclared} are not declared in options"
        again = get_representation(self.name, **config)
        assert again.config() == config
        assert (again.vocab_size, again.start_token) == (representation.vocab_size, representation.start_token)

    def test_options_are_validated(self):
        cls = self.entry().cls
        with pytest.raises(UsageError, match="no_such_option"):
            get_representation(self.name, **self.config, no_such_option=1)
        for option in cls.options:
            if option.default is not None:
                assert option.check(option.default, self.name) == option.default, option
            for value in bad_values(option):
                with pytest.raises(UsageError):
                    get_representation(self.name, **{**self.config, option.name: value})

    def test_primer_text(self, representation):
        if self.bad_primer is None:
            pytest.skip("no bad_primer given")
        with pytest.raises(InputError):
            representation.parse_primer(self.bad_primer)

    def test_notes_are_valid_and_agree_with_token_pitches(self, representation, tmp_path):
        pitches = representation.token_pitches()
        if pitches is not None:
            pitches = np.asarray(pitches)
            assert pitches.shape == (representation.vocab_size,) and pitches.dtype.kind == "i"
            assert ((pitches >= -1) & (pitches <= 127)).all()
            assert pitches[representation.start_token] == -1
        checked = 0
        for tokens in self.canonical_sequences(representation, tmp_path):
            try:
                notes = representation.to_notes(tokens)
            except InputError:
                break  # this representation has no notes
            checked += 1
            for pitch, velocity, start, end in notes:
                assert 0 <= pitch <= 127 and 1 <= velocity <= 127 and 0 <= start < end, (pitch, velocity, start, end)
            if pitches is not None:
                started = pitches[tokens]
                assert sorted(p for p, *_ in notes) == sorted(started[started >= 0].tolist()), \
                    "to_notes and token_pitches disagree on which pitches start"
        if not checked and pitches is None:
            pytest.skip("neither to_notes nor token_pitches")

    def test_transpose_moves_pitches(self, representation, tmp_path):
        moved_any = False
        pitches = representation.token_pitches()
        for tokens in self.canonical_sequences(representation, tmp_path):
            same = representation.transpose(tokens, 0)
            if same is None:
                continue
            np.testing.assert_array_equal(same, tokens)
            up = representation.transpose(tokens, 1)
            if up is None:
                continue
            moved_any = True
            np.testing.assert_array_equal(representation.transpose(up, -1), tokens)
            if pitches is not None:
                before, after = pitches[tokens], pitches[up]
                np.testing.assert_array_equal(after[before >= 0], before[before >= 0] + 1)
        if not moved_any:
            pytest.skip("transpose is not implemented (or no sequence could move)")
