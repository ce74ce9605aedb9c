"""The suite stays in its sandbox: run a few tests that write to the default places, with a private HOME,
TMPDIR and working directory, and find them empty afterwards (the sandbox is ``conftest.py``'s
``pytest_configure``)."""

import os
import re
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parents[1]
#: what writes where: the default cache (in-process and from a child), home, the temporary directory,
#: Hypothesis's database, a fuzz harness in-process, and a fuzzing process that libFuzzer ends
SUBJECT = [str(TESTS / "sandbox_subject.py"), str(TESTS / "meta" / "test_fuzz.py") +
           "::test_finding_stays_fixed[decode_midi/crash-963f8ce5714d7e4dd3479eba6d8aa08451c64f80]"]


def test_a_run_leaves_nothing_in_home_the_temporary_or_the_working_directory(tmp_path):
    home, temporary, here = tmp_path / "home", tmp_path / "tmp", tmp_path / "cwd"
    for folder in (home, temporary, here):
        folder.mkdir()
    outer = os.path.dirname(os.environ["HOME"])  # this session's sandbox: the child must make its own
    assert os.path.basename(outer).startswith("mgf-tests-") and os.environ["TMPDIR"].startswith(outer)
    env = {name: value for name, value in os.environ.items() if not value.startswith(outer) and name != "MGF_CACHE_DIR"}
    env.update(HOME=str(home), TMPDIR=str(temporary))  # and no XDG_*: the defaults under HOME
    root = TESTS.parent
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-c", root / "pyproject.toml", "--rootdir", root,
                           *SUBJECT], cwd=here, env=env, capture_output=True, text=True, timeout=300)
    passed = re.search(r"(\d+) passed", done.stdout)  # 5, or 4 and the fuzzing process skipped without atheris
    assert done.returncode == 0 and passed and int(passed[1]) >= 4, done.stdout[-3000:] + done.stderr[-3000:]
    assert sorted(home.rglob("*")) == [] and sorted(temporary.rglob("*")) == [] and sorted(here.rglob("*")) == []
