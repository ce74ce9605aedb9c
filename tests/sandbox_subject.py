"""Tests that write where a careless test would: the subject of ``test_meta_sandbox.py``, not collected on their own.

Each writes through the default locations (the user's cache, home, temporary and working directory),
in this process and in processes it starts, and leaves what it wrote; the sandbox of ``conftest.py``
must catch all of it.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import hypothesis
import hypothesis.strategies

from mgf import get_representation
from mgf.training.cache import cache_root
from mgf.training.sources import load

FUZZ = Path(__file__).parent / "fuzz"


def test_the_default_cache_in_this_process_and_a_child(tmp_path):
    (tmp_path / "one.txt").write_text("1 2 3\n")
    assert load(get_representation("tokens"), str(tmp_path)).cached == 0
    assert cache_root().startswith(os.environ["HOME"])  # platformdirs' folder, not MGF_CACHE_DIR
    done = subprocess.run([sys.executable, "-m", "mgf.cli.main", "dataset", str(tmp_path), "--repr", "tokens", "--quiet"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "1 files from the cache" in done.stdout, done.stdout + done.stderr


def test_leftovers_in_home_and_the_temporary_directory():
    tempfile.mkdtemp(prefix="mgf-leftover-")
    Path.home().joinpath(".mgf-leftover").write_text("kept")


@hypothesis.given(hypothesis.strategies.integers())
def test_hypothesis_keeps_its_example_database(number):
    """Hypothesis writes .hypothesis/ in the working directory unless told where."""
    assert number == number


def test_a_fuzz_harness_in_this_process():
    sys.path.insert(0, str(FUZZ))
    import harnesses

    harnesses.HARNESSES["midi_read"](next((FUZZ / "seeds" / "midi_read").iterdir()).read_bytes())
