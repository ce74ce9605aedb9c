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
import sys

import atheris
from atheris.import_hook import HookManager

ADDRESS_SPACE = 8 << 30  # bytes: far above the 1 GB RSS limit, which is the real bound

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# atheris.instrument_imports also traces comparisons, and keeps the result of every numpy array
# comparison alive: 7-18 KB per input in the decode harnesses, a false out-of-memory within minutes
with HookManager({"mgf", "mido"}, set(), enable_loader_override=True, trace_dataflow=False):
    import harnesses
    import mido  # noqa: F401 - mgf imports it on first use: here, so that it is instrumented
    from mgf import registry

    registry.load_plugins()  # imports the built-in plugins here, so that they are instrumented too
import music21.converter  # noqa: F401, E402 - imported before fuzzing starts, so that its slow import is not a hang


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in harnesses.HARNESSES:
        sys.exit(f"usage: fuzz.py HARNESS [libFuzzer flags]; harnesses: {', '.join(harnesses.HARNESSES)}")
    target = harnesses.HARNESSES[sys.argv[1]]
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
