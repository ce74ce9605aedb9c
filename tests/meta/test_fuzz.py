"""Fuzzing as a standing test: a short fuzzing run, every seed, and every input the fuzzers ever broke mgf with.

Each finding in ``tests/fuzz/crashes/<harness>/`` is replayed in a process of its own under the
fuzzers' limits (5 s per input, 1 GB), and must meet the contract of ``tests/fuzz/harnesses.py``.
Findings not fixed yet are listed in ``OPEN`` with where they fail: their replays are expected
to fail just there, and the fuzzing run does not count them; remove an entry once its fix lands.
``-m "not fuzz"`` leaves out the timed fuzzing run.
"""

import subprocess
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).parents[1] / "fuzz"
sys.path.insert(0, str(FUZZ))  # the fuzz scripts import each other as top-level modules, as fuzz.py does

import harnesses  # noqa: E402 - from the fuzz folder put on sys.path just above
import run  # noqa: E402

#: findings not fixed yet: ``harness/file`` -> (how its replay still fails: the start of its signature, why);
#: a hang is anywhere music21 happens to be when the time is up, so hangs are matched as hangs
OPEN: dict[str, tuple[str, str]] = {}


class StillOpen(AssertionError):
    """A finding listed in OPEN that fails as listed there."""


def _findings():
    for path in sorted((FUZZ / "crashes").glob("*/*")):
        key = f"{path.parent.name}/{path.name}"
        marks = ()
        if key in OPEN:
            marks = pytest.mark.xfail(raises=StillOpen, strict=False, reason=f"open: {OPEN[key][1]}")
        yield pytest.param(path, id=key, marks=marks)


@pytest.mark.parametrize("path", list(_findings()))
def test_finding_stays_fixed(path, tmp_path):
    pytest.importorskip("atheris")
    key = f"{path.parent.name}/{path.name}"
    done = subprocess.run(run.command(path.parent.name, *run.limits(5, 1024), str(path)), cwd=tmp_path,  # a crash-* copy
                          capture_output=True, text=True, errors="replace", timeout=120, check=False)
    if done.returncode:
        output = done.stdout + done.stderr
        signature = run.signature(output)
        listed = key in OPEN and signature.startswith(OPEN[key][0])
        raise (StillOpen if listed else AssertionError)("\n".join([signature, *run.trace(output)]))


@pytest.mark.parametrize("path", sorted((FUZZ / "seeds").glob("*/*")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_seeds_meet_the_contract(path):
    harnesses.HARNESSES[path.parent.name](path.read_bytes())


@pytest.mark.fuzz
def test_fuzzing_finds_nothing_new(capsys):
    pytest.importorskip("atheris")
    known = [arg for key, (how, _) in OPEN.items() for arg in ("--known", f"{key.split('/')[0]}={how}")]
    code = run.main(["--seconds", "60", "--seed", "1", *known])
    assert code == 0, capsys.readouterr().out
