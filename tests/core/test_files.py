"""Output files are whole or absent: atomic_path and check_output against real directories, signals and full disks."""

import os
import signal
import subprocess
import sys

import pytest

from mgf import InputError
from mgf.files import atomic_path, check_output

SLOW_WRITER = """
import sys, time
from mgf.cli.main import main
from mgf.files import atomic_path
from mgf.plugins.representations.tokens import Tokens

def slow_write(self, tokens, path, **options):
    with atomic_path(path) as tmp:
        with open(tmp, "w") as handle:
            handle.write("1 2")
        print("writing", flush=True)
        for _ in range(600):  # short sleeps: a signal that reaches another thread is handled at the next one
            time.sleep(0.1)

Tokens.write = slow_write
sys.exit(main(sys.argv[1:]))
"""


def _write(path, text="data"):
    with atomic_path(path) as tmp, open(tmp, "w") as handle:
        handle.write(text)


def test_a_written_file_appears_whole_with_the_usual_permissions(tmp_path):
    target = tmp_path / "out.mid"
    _write(target, "hello")
    assert target.read_text() == "hello"
    assert os.listdir(tmp_path) == ["out.mid"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_the_temporary_keeps_the_suffix_and_is_named_for_the_target(tmp_path):
    with atomic_path(tmp_path / "out.mid") as tmp:
        name = os.path.basename(tmp)
        assert name.startswith(".out.mid.mgf-tmp-") and name.endswith(".mid")
        assert os.path.dirname(tmp) == str(tmp_path)


def test_a_failure_while_writing_leaves_nothing(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        with open(tmp, "w") as handle:
            handle.write("half")
        raise RuntimeError("writer failed")
    assert os.listdir(tmp_path) == ["out.txt"] and target.read_text() == "old"


@pytest.mark.parametrize("length", [200, 250, 255])
def test_long_valid_names_are_written(tmp_path, length):
    target = tmp_path / ("x" * (length - 4) + ".mid")
    _write(target)
    assert os.listdir(tmp_path) == [target.name]


@pytest.mark.parametrize(
    "target, message",
    [
        ("{dir}", "is a directory"),
        ("nonexistent/../x.mid", "does not exist"),
        ("missing/x.mid", "does not exist"),
        ("{file}/x.mid", "is not a directory"),
        ("x" * 300 + ".mid", "name is too long"),
        ("", "no output file named"),
    ],
)
def test_unwritable_targets_are_one_input_error_naming_the_path(tmp_path, monkeypatch, target, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("")
    target = target.replace("{dir}", "adir").replace("{file}", "afile")
    before = sorted(os.listdir(tmp_path))
    for attempt in (lambda: check_output(target), lambda: _write(target)):
        with pytest.raises(InputError) as error:
            attempt()
        assert message in str(error.value) and "\n" not in str(error.value)
        assert str(error.value).startswith(target[:40])
    assert sorted(os.listdir(tmp_path)) == before


def test_a_read_only_directory(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("this user writes to read-only directories (root)")
        with pytest.raises(InputError, match="not writable"):
            check_output(folder / "x.mid")
        with pytest.raises(InputError, match="cannot write"):
            _write(folder / "x.mid")
        assert os.listdir(folder) == []
    finally:
        folder.chmod(0o755)


def test_check_output_accepts_a_writable_target_and_creates_nothing(tmp_path):
    check_output(tmp_path / "new.mid")
    (tmp_path / "old.mid").write_text("x")
    check_output(tmp_path / "old.mid")
    assert os.listdir(tmp_path) == ["old.mid"]


def _cli(args, cwd, **kwargs):
    return subprocess.Popen([sys.executable, "-c", SLOW_WRITER, *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def _start_slow_write(tmp_path):
    process = _cli(["decode", "--repr", "tokens", "1 2 3", "-o", "out.txt"], tmp_path)
    assert process.stdout.readline() == "writing\n", process.stderr.read()
    assert [n for n in os.listdir(tmp_path) if ".mgf-tmp-" in n], "the temporary should exist while writing"
    return process


@pytest.mark.parametrize("sig, code, said", [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")])
def test_a_signal_while_writing_removes_the_temporary(tmp_path, sig, code, said):
    process = _start_slow_write(tmp_path)
    process.send_signal(sig)
    _, err = process.communicate(timeout=30)
    assert process.returncode == code
    assert err.strip().splitlines()[-1] == f"mgf: {said}" and "Traceback" not in err
    assert os.listdir(tmp_path) == []


def test_a_killed_writers_temporary_is_removed_by_the_next_write_beside_it(tmp_path):
    process = _start_slow_write(tmp_path)
    process.kill()
    process.wait(timeout=30)
    stale = [n for n in os.listdir(tmp_path) if ".mgf-tmp-" in n]
    assert len(stale) == 1
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        kept = f".other.mid.mgf-tmp-{alive.pid}.mid"  # a live process's temporary is not touched
        (tmp_path / kept).write_text("")
        _write(tmp_path / "next.txt")
        assert sorted(os.listdir(tmp_path)) == sorted([kept, "next.txt"])
    finally:
        alive.kill()
        alive.wait()


def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path):
    """RLIMIT_FSIZE makes every write past 0 bytes fail with EFBIG, as a full disk fails with ENOSPC."""
    limited = ("import resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0)); "
               "from mgf.cli.main import main; sys.exit(main(sys.argv[1:]))")
    result = subprocess.run([sys.executable, "-c", limited, "decode", "--repr", "tokens", "1 2 3", "-o", "out.txt"],
                            cwd=tmp_path, capture_output=True, text=True, check=False)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("mgf: error:")]
    assert errors == ["mgf: error: out.txt: cannot write (File too large)"], result.stderr
    assert "Traceback" not in result.stderr
    assert os.listdir(tmp_path) == []



def test_files_written_together_are_renamed_together_even_when_a_signal_comes_between(tmp_path, monkeypatch):
    """A stop signal during :func:`mgf.files.atomic_paths`' renames waits for the last one, then takes effect."""
    from mgf.files import atomic_paths

    first, second = tmp_path / "m.keras", tmp_path / "m.safetensors"
    for path in (first, second):
        path.write_text("old")
    replace = os.replace

    def replace_then_interrupt(source, target):
        replace(source, target)
        signal.raise_signal(signal.SIGINT)  # Ctrl-C right after the first rename

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal: a pytest-xdist worker ignores SIGINT
    try:
        with pytest.raises(KeyboardInterrupt):
            with atomic_paths(first, second) as temporaries:
                for temporary in temporaries:
                    with open(temporary, "w") as handle:
                        handle.write("new")
                monkeypatch.setattr(os, "replace", replace_then_interrupt)
    finally:
        signal.signal(signal.SIGINT, previous)
    monkeypatch.undo()
    assert (first.read_text(), second.read_text()) == ("new", "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras", "m.safetensors"]
