"""``mgf generate`` goes once from its settings to the run (contract 3, "One pass from settings to run").

A third-party plugin, installed as pip leaves one (dist-info and entry point), logs each model load
with the process id and each primer call of its representation, so that the tests see what the
command does, in which process and in which order.
"""

import os
import subprocess
import sys
import textwrap

import pytest

from mgf.contract import bundle

PLUGIN = """
    import os

    import mgf
    from mgf.plugins.backends.numpy_reference import NumpyBackend
    from mgf.plugins.representations.tokens import Tokens


    def log(line):
        with open(os.environ["MGF_TEST_LOG"], "a") as handle:
            handle.write(line + "\\n")


    class Counting(NumpyBackend):
        name = "counting"

        def load(self, loaded):
            log(f"load {os.getpid()}")
            return super().load(loaded)


    class Tally(Tokens):
        name = "tally"
        read_suffixes = (".tok",)

        def read(self, path):
            log(f"read {os.path.basename(path)}")
            return super().read(path)

        def parse_primer(self, text):  # text only, as contract 2 documented it
            log(f"parse {text.strip()}")
            return self._parse(text, where="primer")


    @mgf.hookimpl
    def register_models(register):
        register(Counting)


    @mgf.hookimpl
    def register_representations(register):
        register(Tally)
"""


@pytest.fixture
def plugin(tmp_path):
    """``run(*args)``: ``mgf ARGS`` with the logging plugin installed; returns the process and its log lines."""
    site = tmp_path / "site"
    info = site / "mgf_counting-1.0.dist-info"
    info.mkdir(parents=True)
    (site / "mgf_counting.py").write_text(textwrap.dedent(PLUGIN))
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mgf-counting\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[mgf]\ncounting = mgf_counting\n")
    log = tmp_path / "log.txt"
    paths = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    environment = {**os.environ, "PYTHONPATH": paths, "MGF_LOAD_PLUGINS": "counting", "MGF_TEST_LOG": str(log)}

    def run(*args):
        process = subprocess.Popen([sys.executable, "-m", "mgf.cli.main", "generate", *map(str, args)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment, cwd=tmp_path)
        out, err = process.communicate(timeout=300)
        lines = log.read_text().splitlines() if log.exists() else []
        log.unlink(missing_ok=True)
        return process, out, err, lines

    return run


def _bundle(tmp_path, representation="tokens"):
    path = tmp_path / f"{representation}.safetensors"
    bundle.write(bundle.random_bundle(20, (8,), seed=1, representation={"name": representation,
                                                                        "config": {"vocab_size": 20}}), path)
    return path


def test_repr_is_checked_before_the_model_is_loaded(plugin, tmp_path):
    process, _, err, log = plugin("--bundle", _bundle(tmp_path), "--repr", "midi", "--model", "counting",
                                  "--steps", "4", "-o", tmp_path / "x.txt")
    assert process.returncode == 2
    assert err == "mgf: error: --repr midi disagrees with the bundle, which was trained for 'tokens'\n"
    assert log == []  # refused before any backend was asked to load
    process, _, err, log = plugin("--bundle", _bundle(tmp_path), "--repr", "tokens", "--model", "counting",
                                  "--steps", "4", "-o", tmp_path / "x.txt")
    assert process.returncode == 0, err
    assert log == [f"load {process.pid}"]


def test_the_workers_load_the_model_and_the_parent_does_not(plugin, tmp_path):
    process, out, err, log = plugin("--bundle", _bundle(tmp_path), "--model", "counting", "--steps", "3",
                                    "--num-outputs", "130", "--workers", "2", "--seed", "1", "-o", tmp_path / "t.txt")
    assert process.returncode == 0, err
    assert len(out.split()) == 130 and all((tmp_path / f"t-{i}.txt").exists() for i in range(1, 131))
    loads = [int(line.split()[1]) for line in log]
    assert process.pid not in loads
    assert 1 <= len(loads) <= 2 and len(set(loads)) == len(loads)  # once per worker process


def test_a_primer_file_is_detected_once_by_one_rule(plugin, tmp_path):
    path = _bundle(tmp_path, "tally")
    (tmp_path / "tune.tok").write_text("4 5 6\n")
    (tmp_path / "tune.txt").write_text("7 8\n")
    for primer, expected_log, first in [("tune.tok", ["read tune.tok"], "4 5 6"),  # a file the representation reads
                                        ("tune.txt", ["parse 7 8"], "7 8"),  # a text file: its text is the primer
                                        ("1 2", ["parse 1 2"], "1 2")]:  # text
        process, _, err, log = plugin("--bundle", path, "--model", "counting", "--primer", primer, "--steps", "2",
                                      "--seed", "1", "-o", tmp_path / "out.txt")
        assert process.returncode == 0, err
        assert log[1:] == expected_log, primer  # after the one load
        assert (tmp_path / "out.txt").read_text().startswith(first + " ")
