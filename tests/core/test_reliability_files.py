"""What mgf reads back or shares is checked like input (issues 24 and 25): FIFOs refused, concurrent writers of one
dataset refused, temporaries of live writers kept even when their PID means nothing here (another PID namespace),
nothing left or warned about after a SIGKILL, primers bounded, and mgf's own failures told from plugins', escaped."""

import fcntl
import os
import subprocess
import sys
import time

import pytest

from mgf import InputError
from mgf.files import open_regular


def test_open_regular_reads_a_regular_file_in_blocking_mode(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"abc")
    with open_regular(path) as handle:
        assert handle.read() == b"abc"
        assert not fcntl.fcntl(handle.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK
    with open_regular(path, "r") as handle:
        assert handle.read() == "abc"


def test_open_regular_refuses_a_fifo_at_once(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(InputError) as error:
        open_regular(fifo)
    assert time.monotonic() - started < 1
    assert str(error.value) == f"{fifo}: is a FIFO, not a regular file"
    with pytest.raises(InputError, match="is a directory, not a regular file"):
        open_regular(tmp_path)
    with pytest.raises(InputError, match="is a character device, not a regular file"):
        open_regular("/dev/null")
    with pytest.raises(FileNotFoundError):
        open_regular(tmp_path / "missing")


def _mgf(args, cwd, timeout=60, **kwargs):
    return subprocess.run([sys.executable, "-m", "mgf.cli.main", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, check=False, **kwargs)


def test_a_fifo_as_bundle_is_one_line_at_once(tmp_path):
    import mgf

    fifo = tmp_path / "m.safetensors"
    os.mkfifo(fifo)
    for attempt in (lambda: mgf.load_model(fifo), lambda: mgf.contract.bundle.read_metadata(fifo)):
        with pytest.raises(mgf.BundleError, match=r"m.safetensors: is a FIFO, not a regular file"):
            attempt()
    for args in (["card", str(fifo)], ["generate", "--bundle", str(fifo), "-o", "x.mid"]):
        result = _mgf(args, tmp_path, timeout=30)
        assert result.returncode == 1, result.stderr
        assert result.stderr.strip() == f"mgf: error: {fifo}: is a FIFO, not a regular file", result.stderr


def test_a_fifo_as_checkpoint_list_is_one_line_at_once(tmp_path):
    pytest.importorskip("tensorflow")
    from mgf.plugins.keras.train import Checkpoints

    os.mkfifo(tmp_path / "m.ckpt.json")
    with pytest.raises(InputError) as error:
        Checkpoints(str(tmp_path / "m.safetensors"), progress=None).resume()
    assert str(error.value) == f"--resume: {tmp_path / 'm.ckpt.json'}: is a FIFO, not a regular file"


def test_a_huge_primer_is_refused_before_any_work(make_bundle, monkeypatch):
    import mgf

    model = mgf.load_model(make_bundle(20, (8,)))
    start = model.representation.start_token
    token = (start + 1) % 20
    huge = [token] * 10_000_000
    began = time.monotonic()
    with pytest.raises(mgf.UsageError) as error:
        mgf.generate(model, 1, primer=huge, seed=0)
    assert time.monotonic() - began < 2
    assert str(error.value) == ("primer_tokens 10000000 exceeds the limit 100000 "
                                "(raise it with MGF_MAX_PRIMER_TOKENS)")
    monkeypatch.setenv("MGF_MAX_PRIMER_TOKENS", "5")
    with pytest.raises(mgf.UsageError, match="primer_tokens 6 exceeds the limit 5"):
        mgf.generate(model, 1, primer=[token] * 6, seed=0)
    assert len(mgf.generate(model, 1, primer=[token] * 5, seed=0)) == 6


HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()
"""


def _unused_pid():
    """A PID no process has here: what a writer in another PID namespace looks like from this one."""
    pid = 4_000_000
    while os.path.exists(f"/proc/{pid}"):
        pid += 1
    return pid


def _hold(path):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    assert holder.stdout.readline() == "held\n"
    return holder


@pytest.mark.parametrize("folder", [False, True])
def test_a_live_writers_temporary_is_kept_even_when_its_pid_is_not_visible(tmp_path, folder):
    """A writer in another PID namespace (a container sharing the folder) holds its temporary's lock: kept."""
    from mgf.files import atomic_path

    pid = _unused_pid()
    live, abandoned = tmp_path / f".a.mid.mgf-tmp-{pid}.mid", tmp_path / f".b.mid.mgf-tmp-{pid}.mid"
    for path in (live, abandoned):
        path.mkdir() if folder else path.write_text("")
    holder = _hold(live)
    try:
        with atomic_path(tmp_path / "next.txt") as tmp, open(tmp, "w") as handle:
            handle.write("x")
        assert sorted(os.listdir(tmp_path)) == sorted([live.name, "next.txt"])
    finally:
        holder.communicate("")
    with atomic_path(tmp_path / "next.txt") as tmp, open(tmp, "w") as handle:  # its holder is gone now
        handle.write("y")
    assert os.listdir(tmp_path) == ["next.txt"]


def test_a_live_dataset_build_in_another_pid_namespace_is_not_deleted(tmp_path):
    from mgf import get_representation
    from mgf.training.build import build

    source = tmp_path / "src"
    source.mkdir()
    (source / "a.txt").write_text("1 2 3 4")
    live = tmp_path / f".other.mgf-tmp-{_unused_pid()}"
    live.mkdir()
    (live / "shard-00000.npz").write_bytes(b"work in progress")
    holder = _hold(live)
    try:
        build(get_representation("tokens", vocab_size=8), str(source), str(tmp_path / "mine"))
        assert (live / "shard-00000.npz").read_bytes() == b"work in progress"
    finally:
        holder.communicate("")
    build(get_representation("tokens", vocab_size=8), str(source), str(tmp_path / "again"))
    assert not live.exists()


def _sources(tmp_path, count):
    made = []
    for name, token in (("one", "1"), ("two", "2")):
        folder = tmp_path / name
        folder.mkdir()
        for index in range(count):
            (folder / f"{index}.txt").write_text(" ".join([token] * (index % 50 + 5)))
        made.append(folder)
    return made


def test_two_datasets_written_at_once_to_one_place_never_both_claim_it(tmp_path):
    """Exit 0 only when the dataset at -o holds what that run reported: the other run fails in one line."""
    import json

    sources = _sources(tmp_path, 400)
    env = {**os.environ, "MGF_CACHE_DIR": str(tmp_path / "cache")}
    runs = [subprocess.Popen([sys.executable, "-m", "mgf.cli.main", "dataset", str(source), "--repr", "tokens",
                              "--config", "vocab_size=8", "-o", "X"], cwd=tmp_path, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE) for source in sources]
    errors = [run.communicate(timeout=120)[1] for run in runs]
    results = [(run.returncode, err) for run, err in zip(runs, errors)]
    written = json.loads((tmp_path / "X" / "manifest.json").read_text())["source"]
    winners = [source for source, (code, _) in zip(sources, results) if code == 0]
    assert [str(w) for w in winners] == [written], results
    for code, err in results:
        if code:
            assert code == 1 and len(err.strip().splitlines()) == 1 and err.startswith("mgf: error: X: "), err
    assert [n for n in os.listdir(tmp_path) if ".mgf-" in n] == []


def test_a_dataset_refuses_at_once_while_another_run_writes_the_same_place(tmp_path):
    source, _ = _sources(tmp_path, 3)
    live = tmp_path / f".X.mgf-tmp-{_unused_pid()}"
    live.mkdir()
    holder = _hold(live)
    try:
        result = _mgf(["dataset", str(source), "--repr", "tokens", "--config", "vocab_size=8", "-o", "X"], tmp_path,
                      env={**os.environ, "MGF_CACHE_DIR": str(tmp_path / "cache")})
    finally:
        holder.communicate("")
    assert result.returncode == 1
    assert result.stderr == ("mgf: error: X: another mgf dataset is writing it; "
                             "wait for it to finish or name another directory\n")
    assert sorted(os.listdir(tmp_path)) == sorted([live.name, "one", "two"])  # no work done


def test_after_kill_9_the_next_run_leaves_no_temporaries_and_nothing_warns_of_leaks(tmp_path):
    """`mgf generate --workers 2` killed with SIGKILL: its pool's semaphores are cleaned up without a warning about
    'leaked semaphore objects' (multiprocessing's resource tracker), and the re-run leaves no hidden temporary."""
    import signal

    command = [sys.executable, "-m", "mgf.cli.main", "generate", "--repr", "notes", "--num-outputs", "300",
               "--steps", "300", "--seed", "1", "--workers", "2", "--quiet", "-o", "t.mid"]
    with open(tmp_path / "killed.err", "w") as err:  # the tracker outlives the run and writes here
        run = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 120
        while len(list(tmp_path.glob("t-*.mid"))) < 70 and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.02)
        with open(f"/proc/{run.pid}/task/{run.pid}/children") as handle:
            started = [int(child) for child in handle.read().split()]  # the workers and the resource tracker
        run.send_signal(signal.SIGKILL)
        run.wait()
    deadline = time.monotonic() + 15
    while any(os.path.exists(f"/proc/{pid}") for pid in started) and time.monotonic() < deadline:
        time.sleep(0.1)  # the tracker cleans up once the workers have ended
    assert len(started) >= 3 and not any(os.path.exists(f"/proc/{pid}") for pid in started)
    killed = (tmp_path / "killed.err").read_text()
    assert "leaked" not in killed and "Traceback" not in killed, killed
    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "leaked" not in again.stderr
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["killed.err", *(f"t-{i}.mid" for i in range(1, 301))])


PATCHED = """
import sys
import mgf
import mgf.training.progress
from mgf.cli.main import main
from mgf.plugins.representations.tokens import Tokens

def fault(self, text):
    kind = sys.argv[1]
    if kind == "bug":
        return mgf.training.progress.duration("soon")  # a bug in mgf's own code: raised inside core/training/progress.py
    if kind == "file":
        open("/nonexistent-mgf/dir/cache.npz", "rb")
    if kind == "escape":
        raise ValueError("a \\x1b[2J cleared screen and \\x1b]0;title\\x07 and \\u202e reversed")
    raise mgf.InputError("bad primer \\x1b[31mred\\r")

Tokens.parse_primer = fault
sys.exit(main(sys.argv[2:]))
"""


def _faulty(kind, tmp_path, *extra):
    bundle = tmp_path / "t.safetensors"
    if not bundle.exists():
        from mgf.contract import bundle as bundles

        bundles.write(bundles.random_bundle(20, [8]), bundle)
    return subprocess.run([sys.executable, "-c", PATCHED, kind, "generate", "--bundle", str(bundle), "--steps", "3",
                           "--primer", "1 2", "-o", str(tmp_path / "o.txt"), *extra], capture_output=True, text=True,
                          timeout=60, check=False)


def test_a_bug_in_mgfs_own_code_is_an_internal_error_not_a_plugins(tmp_path):
    import re

    result = _faulty("bug", tmp_path)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "plugin mgf" not in result.stderr
    assert re.fullmatch(r"mgf: error: internal error in mgf \S+ \(representation 'tokens', parse_primer, at "
                        r"\S*progress\.py:\d+\): TypeError: .*; MGF_DEBUG=1 shows the traceback, please report it\n",
                        result.stderr), result.stderr
    assert not (tmp_path / "o.txt").exists()


def test_a_file_mgfs_own_code_cannot_use_is_an_input_error_naming_it(tmp_path):
    result = _faulty("file", tmp_path)
    assert (result.returncode, result.stderr) == (
        1, "mgf: error: /nonexistent-mgf/dir/cache.npz: cannot use it (No such file or directory)\n")


def test_what_an_error_prints_is_escaped(tmp_path):
    result = _faulty("escape", tmp_path)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr and "\u202e" not in result.stderr
    assert r"a \x1b[2J cleared screen and \x1b]0;title\x07 and \u202e reversed" in result.stderr
    result = _faulty("input", tmp_path)
    assert (result.returncode, result.stderr) == (1, "mgf: error: bad primer \\x1b[31mred\\r\n")


def test_a_skipped_files_reason_and_name_are_printed_escaped(tmp_path):
    """A reason quoted from a file (and kept in the cache) is listed escaped, first run and cached run alike."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "good.txt").write_text("1 2 3")
    (source / "bad\x1b[2J.txt").write_text("1 \x1b[2J 3")
    env = {**os.environ, "MGF_CACHE_DIR": str(tmp_path / "cache")}
    for run in ("first", "cached"):
        result = _mgf(["dataset", str(source), "--repr", "tokens", "--config", "vocab_size=8", "--quiet",
                       "-o", str(tmp_path / run)], tmp_path, env=env)
        assert result.returncode == 0, result.stderr
        assert "\x1b" not in result.stdout + result.stderr, (run, result.stdout)
        assert "bad\\x1b[2J.txt: " in result.stdout and "\\x1b[2J" in result.stdout.split("bad\\x1b[2J.txt: ")[1]


def test_a_dataset_whose_place_is_taken_while_it_builds_fails_in_one_line(tmp_path, monkeypatch):
    """Another writer (no lock to see) creates -o while this build encodes: the build does not claim it."""
    from mgf import get_representation
    from mgf.training.build import build

    source = tmp_path / "src"
    source.mkdir()
    (source / "a.txt").write_text("1 2 3")
    representation = get_representation("tokens", vocab_size=8)
    read = type(representation).read

    def read_and_race(self, path):
        (tmp_path / "X").mkdir(exist_ok=True)
        (tmp_path / "X" / "manifest.json").write_text("{}")  # someone else's dataset
        return read(self, path)

    monkeypatch.setattr(type(representation), "read", read_and_race)
    with pytest.raises(InputError) as error:
        build(representation, str(source), str(tmp_path / "X"), cache=False)
    assert str(error.value) == f"{tmp_path / 'X'}: another run wrote it meanwhile; name a new directory"
    assert os.listdir(tmp_path / "X") == ["manifest.json"]
    assert sorted(os.listdir(tmp_path)) == ["X", "src"]
