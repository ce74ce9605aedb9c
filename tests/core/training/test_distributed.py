"""`mgf train --distributed`: two worker processes on loopback under MultiWorkerMirroredStrategy.

They must train exactly what one process trains with the same global batch (losses within 1%),
only the chief may write checkpoints and the bundle, and ``--resume`` must go on from them.
"""

import json
import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest

from mgf import get_representation
from mgf.contract import bundle
from mgf.training.build import build

pytest.importorskip("keras")

LIMIT = 600  # seconds for a run of both workers; a hang fails the test instead of the suite


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def losses(stderr):
    """``[(loss, val_loss)]`` of each epoch line."""
    return [tuple(map(float, m.groups())) for m in re.finditer(r"^epoch \d+/\d+, loss ([0-9.]+), val_loss ([0-9.]+)",
                                                                 stderr, re.MULTILINE)]


def run_workers(command, count, env):
    """Run ``command`` as ``count`` workers of one cluster; their ``(returncode, stdout, stderr)``."""
    cluster = {"worker": [f"localhost:{port}" for port in free_ports(count)]}
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env={**env, "TF_CONFIG": json.dumps({"cluster": cluster,
                                                                       "task": {"type": "worker", "index": i}})})
                 for i in range(count)]
    try:
        outputs = [p.communicate(timeout=LIMIT) for p in processes]
        return [(p.returncode, out, err) for p, (out, err) in zip(processes, outputs)]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()


@pytest.mark.parametrize("arch", [[], ["--arch", "transformer", "--heads", "2"]], ids=["lstm", "transformer"])
def test_two_workers_train_what_one_does(tmp_path, arch):
    env = {**os.environ, "MGF_CACHE_DIR": str(tmp_path / "cache")}
    music = tmp_path / "music"
    music.mkdir()
    rng = np.random.default_rng(0)
    for i in range(40):
        start, step = rng.integers(0, 40), rng.integers(1, 4)
        (music / f"p{i}.txt").write_text(" ".join(str((start + step * j) % 40) for j in range(60)))
    build(get_representation("tokens", vocab_size=41), str(music), str(tmp_path / "ds"))
    base = [sys.executable, "-m", "mgf.cli.main", "train", "--data", str(tmp_path / "ds"), "--hidden", "16",
            "--layers", "1", "--seq-len", "30", "--batch-size", "8", "--val-split", "0.2", "--lr", "0.01", *arch]
    one = subprocess.run([*base, "--epochs", "2", "-o", str(tmp_path / "one.safetensors")], capture_output=True,
                         text=True, env=env, timeout=LIMIT)
    assert one.returncode == 0, one.stderr
    two = tmp_path / "two"
    two.mkdir()
    workers = run_workers([*base, "--epochs", "2", "--distributed", "-o", str(two / "m.safetensors")], 2, env)
    assert all(code == 0 for code, _, _ in workers), [err[-3000:] for _, _, err in workers]
    (_, chief_out, chief_err), (_, other_out, other_err) = workers
    assert "m.safetensors: 2 epochs" in chief_out and other_out == ""
    assert [line.split(" (")[0] for line in other_err.splitlines()] == ["mgf: waiting up to 300 s"]  # then nothing
    expected, got = losses(one.stderr), losses(chief_err)
    assert len(expected) == len(got) == 2
    np.testing.assert_allclose(got, expected, rtol=0.01)
    trained = bundle.read(two / "m.safetensors")
    assert trained.training["workers"] == 2 and bundle.read(tmp_path / "one.safetensors").training["workers"] == 1
    assert trained.training["best_val_loss"] == pytest.approx(expected[-1][1], rel=0.01)
    assert sorted(os.listdir(two)) == ["m.ckpt-1.keras", "m.ckpt-2.keras", "m.ckpt.json", "m.keras", "m.safetensors"]
    # the chief's checkpoints carry a resumed run on, on every worker
    workers = run_workers([*base, "--epochs", "3", "--distributed", "--resume", "-o", str(two / "m.safetensors")], 2, env)
    assert all(code == 0 for code, _, _ in workers), [err[-3000:] for _, _, err in workers]
    assert [line.split(",")[0] for line in workers[0][2].splitlines() if line.startswith("epoch ")] == ["epoch 3/3"]
    assert bundle.read(two / "m.safetensors").training["epochs"] == 3


def test_distributed_without_tf_config_is_a_usage_error(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "TF_CONFIG"}
    result = subprocess.run([sys.executable, "-m", "mgf.cli.main", "train", "--repr", "tokens", "--data", str(tmp_path),
                             "--distributed", "-o", str(tmp_path / "m.safetensors")], capture_output=True, text=True,
                            env=env)
    assert result.returncode == 2 and "TF_CONFIG" in result.stderr and result.stderr.count("\n") == 1
