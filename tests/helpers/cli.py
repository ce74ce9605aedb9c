"""The ``mgf`` command run as a user runs it: a subprocess of the interpreter running the tests, output captured."""

import os
import shutil
import subprocess
import sys

#: the console script ``pip install`` put beside this interpreter
MGF = shutil.which("mgf") or os.path.join(os.path.dirname(sys.executable), "mgf")
#: the same command without the script: what a test that starts a process itself runs
MAIN = [sys.executable, "-m", "mgf.cli.main"]


def mgf_cli(*args, env=None, script=False, **kwargs) -> subprocess.CompletedProcess:
    """``mgf ARGS`` (``script``: through the installed console script), its text output captured; ``env`` adds to this
    process's environment; other keywords go to ``subprocess.run`` (``cwd``, ``timeout``)."""
    command = [MGF] if script else MAIN
    return subprocess.run([*command, *map(str, args)], capture_output=True, text=True,
                          env=None if env is None else {**os.environ, **env}, **kwargs)
