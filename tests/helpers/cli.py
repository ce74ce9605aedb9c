"""The ``mgf`` command run as a user runs it: a subprocess of the interpreter running the tests, output captured."""

import os
import shutil
import subprocess
import sys

#: the console script ``pip install`` put beside this interpreter
MGF = shutil.which("mgf") or os.path.join(os.path.dirname(sys.executable), "mgf")
#: the same command without the script: what a test that starts a process itself runs
MAIN = [sys.executable, "-m", "mgf.cli.main"]


def mgf_cli(*args, env=None, **kwargs) -> subprocess.CompletedProcess:
    """``mgf ARGS``, its text output captured; ``env`` adds to this process's environment; other keywords go to
    ``subprocess.run`` (``cwd``, ``timeout``)."""
    return _run(MAIN, args, env, kwargs)


def mgf_script(*args, env=None, **kwargs) -> subprocess.CompletedProcess:
    """:func:`mgf_cli` through the installed console script itself."""
    return _run([MGF], args, env, kwargs)


def _run(command, args, env, kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*command, *map(str, args)], capture_output=True, text=True,
                          env=None if env is None else {**os.environ, **env}, **kwargs)
