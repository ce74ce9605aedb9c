"""Progress bars: shown on a terminal, silent with --quiet and when stderr is not a terminal."""

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios


def run_on_terminal(*args):
    """Run `mgf` with stderr on a pseudo-terminal; return what it printed there."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a new pty is 0 columns wide
    process = subprocess.Popen([sys.executable, "-m", "mgf.cli.main", *map(str, args)], stdout=subprocess.DEVNULL,
                               stderr=slave)
    chunks = []
    # the slave stays open here until the child is gone and the master drained: closing it early
    # lets a fast child's last output be lost when the pty hangs up
    while True:
        ready, _, _ = select.select([master], [], [], 0.05)
        if ready:
            chunks.append(os.read(master, 4096))
        elif process.poll() is not None:
            break
    os.close(slave)
    os.close(master)
    assert process.returncode == 0
    return b"".join(chunks).decode(errors="replace")


def test_generate_shows_progress_on_a_terminal_only(tmp_path):
    args = ["generate", "--repr", "tokens", "--steps", "3000", "--num-outputs", "4", "--overwrite", "-o", tmp_path / "o.txt"]
    shown = run_on_terminal(*args)
    assert "generating" in shown and "step" in shown
    assert run_on_terminal(*args, "--quiet") == ""
    piped = subprocess.run([sys.executable, "-m", "mgf.cli.main", *map(str, args)], capture_output=True, text=True)
    assert piped.returncode == 0 and piped.stderr == ""


def test_dataset_shows_progress_on_a_terminal(tmp_path, monkeypatch):
    monkeypatch.setenv("MGF_CACHE_DIR", str(tmp_path / "cache"))
    for i in range(30):
        (tmp_path / f"{i}.txt").write_text("1 2 3")
    assert "encoding" in run_on_terminal("dataset", tmp_path, "--repr", "tokens")
    assert run_on_terminal("dataset", tmp_path, "--repr", "tokens", "--quiet") == ""
