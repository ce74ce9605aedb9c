"""`--scheduler` at a peer that is not a Dask scheduler: one line within the timeout (issue 25, row 3).

A peer that accepted and never answered hung `mgf dataset`, `train` and `generate` for ever (Dask's
``timeout=10`` covers the connection, not the handshake); an HTTP server's reply made Dask ask for
3.07 EiB, reported as a plugin's MemoryError.  The tests give the peer 1 s (``MGF_SCHEDULER_TIMEOUT``)
instead of the default 10.
"""

import http.server
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

import mgf
from mgf.training.workers import check_scheduler, dask_client, scheduler_timeout

pytest.importorskip("distributed")


@pytest.fixture
def silent_peer():
    """A TCP server that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted = []

    def accept():
        while True:
            try:
                accepted.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"tcp://127.0.0.1:{server.getsockname()[1]}"
    server.close()
    for connection in accepted:
        connection.close()


@pytest.fixture
def http_peer():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"tcp://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def commands(tmp_path):
    music = tmp_path / "music"
    music.mkdir(exist_ok=True)
    for i in range(3):
        (music / f"{i}.txt").write_text("1 2 3 4")
    return {
        "dataset": ["dataset", "--repr", "tokens", str(music), "-o", str(tmp_path / "ds")],
        "train": ["train", "--repr", "tokens", "--data", str(music), "--epochs", "1", "-o", str(tmp_path / "m.safetensors")],
        "generate": ["generate", "--repr", "notes", "--steps", "4", "--num-outputs", "2", "-o", str(tmp_path / "out.txt")],
    }


TIMEOUT = 1  # seconds the tests give a peer to answer


@pytest.mark.parametrize("command", ["dataset", "train", "generate"])
@pytest.mark.parametrize("peer, message", [("silent_peer", f"no answer within {TIMEOUT} s"), ("http_peer", "no answer within")])
def test_a_scheduler_that_is_no_dask_scheduler_is_one_line_within_the_timeout(tmp_path, request, command, peer, message):
    address = request.getfixturevalue(peer)
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "mgf.cli.main", *commands(tmp_path)[command], "--scheduler", address],
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "MGF_CACHE_DIR": str(tmp_path / "cache"), "MGF_SCHEDULER_TIMEOUT": str(TIMEOUT)})
    seconds = time.perf_counter() - started
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert f"--scheduler {address}: {message}" in result.stderr and "is it a Dask scheduler?" in result.stderr
    assert seconds < TIMEOUT + 8, seconds  # mgf starts in about 1.5 s here
    assert not {"ds", "m.safetensors", "out.txt"} & set(os.listdir(tmp_path))


def test_the_timeout_is_10_s_unless_mgf_scheduler_timeout_says_otherwise(monkeypatch, silent_peer):
    monkeypatch.delenv("MGF_SCHEDULER_TIMEOUT", raising=False)
    assert scheduler_timeout() == 10
    monkeypatch.setenv("MGF_SCHEDULER_TIMEOUT", "0.2")
    started = time.perf_counter()
    with pytest.raises(mgf.InputError, match=r"no answer within 0.2 s; is it a Dask scheduler\?$"):
        check_scheduler(silent_peer)
    assert time.perf_counter() - started < 5
    for bad in ("0", "-1", "nan", "inf", "ten", "", "1e9"):
        monkeypatch.setenv("MGF_SCHEDULER_TIMEOUT", bad)
        with pytest.raises(mgf.UsageError, match=f"^MGF_SCHEDULER_TIMEOUT must be a number of seconds in .0, 3600., got {bad!r}$"):
            check_scheduler(silent_peer)


def test_a_real_scheduler_passes_the_check(tmp_path):
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        check_scheduler(cluster.scheduler_address)
        client = dask_client(cluster.scheduler_address)
        assert client.submit(sum, [1, 2]).result() == 3
        client.close()
