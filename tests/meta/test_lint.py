"""The project's own checks, run by the one test command: ruff on the tree, mypy on the core."""

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


@pytest.mark.parametrize("command", [["ruff", "check", "."], ["mypy"]], ids=["ruff", "mypy"])
def test_the_tree_passes(command):
    if shutil.which(command[0]) is None and not os.path.exists(os.path.join(os.path.dirname(sys.executable), command[0])):
        pytest.fail(f"{command[0]} is not installed: it is part of the test extra (pip install -e '.[test]')")
    program = shutil.which(command[0]) or os.path.join(os.path.dirname(sys.executable), command[0])
    result = subprocess.run([program, *command[1:]], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
