import json
import subprocess
import sys

import mgf
from mgf.contract import bundle as bundles
import mgf.testing
import mgf_abc
import numpy as np
import pytest
from mgf_abc import abc_pitch


class TestContract(mgf.testing.RepresentationContract):
    name = "abc"
    plugin = mgf_abc
    sequences = ([2, 0, 0, 1, 9, 0, 14, 0, 0, 0, 1, 0, 2], [30, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 31, 1, 0, 4])


@pytest.fixture(autouse=True)
def abc():
    with mgf.testing.registered(mgf_abc):
        yield


def test_pitch_spelling():
    assert [abc_pitch(p) for p in (48, 59, 60, 61, 71, 72, 84)] == ["=C,", "=B,", "=C", "^C", "=B", "=c", "=c'"]


@pytest.mark.parametrize("piece", ["corpus:bach/bwv66.6", "corpus:essenFolksong/teste.abc"])
def test_round_trip_through_abc_text(piece, tmp_path):
    abc = mgf.get_representation("abc")
    tokens = abc.read(piece) if piece.endswith(".6") else next(iter(abc.read_pieces(piece)))[1]
    abc.write(tokens, tmp_path / "tune.abc")
    text = (tmp_path / "tune.abc").read_text()
    assert text.startswith("X:1\nT:mgf\nM:4/4\nL:1/16\n") and "|" in text
    np.testing.assert_array_equal(abc.read(tmp_path / "tune.abc"), tokens)


def test_ties_across_bar_lines(tmp_path):
    abc = mgf.get_representation("abc")
    tokens = abc.parse_primer("C4 - - - - - - - - - - - - - - D4 - - - - - -")  # C for 15 sixteenths, D across the bar
    abc.write(tokens, tmp_path / "t.abc")
    assert "=C15 =D- | =D6" in (tmp_path / "t.abc").read_text()
    np.testing.assert_array_equal(abc.read(tmp_path / "t.abc"), tokens)


def test_listed_and_generates(tmp_path):
    listing = json.loads(subprocess.run([sys.executable, "-m", "mgf.cli.main", "plugins", "--json"],
                                        capture_output=True, text=True, check=True).stdout)
    assert [r["distribution"] for r in listing["representations"] if r["name"] == "abc"] == ["mgf-abc"]
    abc = mgf.get_representation("abc")
    model = tmp_path / "m.safetensors"
    bundles.write(bundles.random_bundle(abc.vocab_size, (16,), 8, representation={"name": "abc", "config": abc.config()}), model)
    out = tmp_path / "gen.abc"
    result = subprocess.run([sys.executable, "-m", "mgf.cli.main", "generate", "--bundle", str(model), "--primer", "C4 E4 G4",
                             "--steps", "48", "--seed", "3", "-o", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert len(abc.read(out)) > 0
