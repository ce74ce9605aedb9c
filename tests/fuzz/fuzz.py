"""Run one harness under atheris: ``python tests/fuzz/fuzz.py HARNESS [libFuzzer flags] [corpus dirs or files]``.

mgf and mido are instrumented for coverage (edges, not comparisons: see below); music21 is not
(it is large, and mgf's own code is what is under test), but it is imported up front: mgf
imports it on first use, and that import must not count against the first input's time.  The
address space is capped so that a runaway allocation fails fast as a MemoryError crash instead
of eating a shared machine; libFuzzer's ``-rss_limit_mb`` catches slower growth.
``run.py`` starts one of these per harness.
"""

import os
import resource
import shutil
import sys
import tempfile

import atheris
from atheris.import_hook import HookManager

ADDRESS_SPACE = 8 << 30  # bytes: far above the 1 GB RSS limit, which is the real bound

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# atheris.instrument_imports also traces comparisons, and keeps the result of every numpy array
# comparison alive: 7-18 KB per input in the decode harnesses, a false out-of-memory within minutes
with HookManager({"mgf", "mido"}, set(), enable_loader_override=True, trace_dataflow=False):
    import harnesses
    import mido  # noqa: F401 - mgf imports it on first use: here, so that it is instrumented
    from mgf.contract import registry
    from mgf.training.workers import exit_with_parent

    registry.load_plugins()  # imports the built-in plugins here, so that they are instrumented too
import music21.converter  # noqa: F401, E402 - imported before fuzzing starts, so that its slow import is not a hang


def main() -> None:
    """Fuzz in a child process, and remove the harnesses' scratch folder when it ends.

    libFuzzer ends its process without Python's exit handlers (a finding, a hang, the time
    limit), so the child cannot clean up after itself: this process makes the folder, waits,
    and removes it.  The child ends when this process does (PR_SET_PDEATHSIG).
    """
    if len(sys.argv) < 2 or sys.argv[1] not in harnesses.HARNESSES:
        sys.exit(f"usage: fuzz.py HARNESS [libFuzzer flags]; harnesses: {', '.join(harnesses.HARNESSES)}")
    target = harnesses.HARNESSES[sys.argv[1]]
    scratch = tempfile.mkdtemp(prefix="mgf-fuzz-")
    sys.stdout.flush()
    child = os.fork()
    if child == 0:
        exit_with_parent()
        tempfile.tempdir = scratch  # where the harnesses write their files
        harnesses.PRELOAD.get(sys.argv[1], lambda: None)()  # a slow import (TensorFlow's) is not the first input's hang
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
        atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
        atheris.Fuzz()
    try:
        _, status = os.waitpid(child, 0)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    sys.exit(128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status))


if __name__ == "__main__":
    main()
