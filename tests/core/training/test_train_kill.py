"""`mgf train` killed with SIGKILL at any moment, saves included, always resumes from an intact checkpoint.

Half of the kills land a few milliseconds after the output folder first changes (a checkpoint
save has begun), the others later at random.  ``MGF_TEST_KILLS`` sets how many (3: two in a save,
one later; each costs a TensorFlow start, about 6 s; set 20 for a longer look).
"""

import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from mgf.contract import bundle

keras = pytest.importorskip("keras")
net = pytest.importorskip("mgf.plugins.keras.net")

KILLS = int(os.environ.get("MGF_TEST_KILLS", "3"))


def snapshot(folder):
    return {entry.name: (entry.stat().st_size, entry.stat().st_mtime_ns) for entry in os.scandir(folder)}


def run_until_killed(command, folder, delay, log):
    """Start ``command``; SIGKILL it ``delay`` seconds after ``folder`` first changes.  Its exit code, or None if killed."""
    before = snapshot(folder)
    with open(log, "w") as err:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 120
    while snapshot(folder) == before and process.poll() is None:
        assert time.monotonic() < deadline, "training wrote nothing for 120 s"
        time.sleep(0.001)
    time.sleep(delay)
    if process.poll() is not None:
        return process.returncode
    process.send_signal(signal.SIGKILL)
    process.wait()
    return None


def checkpoint_epoch(sidecar):
    """The newest epoch the sidecar names, or 0 when there is none yet."""
    if not sidecar.exists():
        return 0
    return json.loads(sidecar.read_text())["checkpoints"][0]["epoch"]


def test_sigkill_at_any_moment_then_resume(tmp_path, monkeypatch):
    monkeypatch.setenv("MGF_CACHE_DIR", str(tmp_path / "cache"))
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    out.mkdir()
    rng = np.random.default_rng(0)
    for i in range(40):
        start, step = rng.integers(0, 40), rng.integers(1, 4)
        (data / f"p{i}.txt").write_text(" ".join(str((start + step * j) % 40) for j in range(60)))
    model, sidecar = out / "m.safetensors", out / "m.ckpt.json"
    base = [sys.executable, "-m", "mgf.cli.main", "train", "--repr", "tokens", "--config", "vocab_size=41", "--data", data,
            "--hidden", "8", "--layers", "1", "--seq-len", "30", "--batch-size", "16", "--val-split", "0.2",
            "--patience", "1000", "-o", model]
    chance = random.Random(int(os.environ.get("MGF_TEST_SEED", "0")))
    epochs = []
    for kill in range(KILLS):
        epoch = checkpoint_epoch(sidecar)
        command = [*map(str, base), "--epochs", str(epoch + 3), *(["--resume"] if epoch else [])]
        delay = chance.uniform(0, 0.02) if kill % 2 == 0 else chance.uniform(0, 1.0)
        code = run_until_killed(command, out, delay, tmp_path / f"kill{kill}.log")
        assert code in (None, 0), (tmp_path / f"kill{kill}.log").read_text()
        epochs.append(checkpoint_epoch(sidecar))
        assert epochs[-1] >= epoch, "a kill lost a checkpoint that was complete"
        for name in ("m.safetensors", "m.keras"):
            if (out / name).exists():
                (bundle.read if name.endswith("safetensors") else net.load_keras)(str(out / name))
    epoch = checkpoint_epoch(sidecar)
    assert epoch > 0, f"no checkpoint after {KILLS} kills ({epochs})"
    final = subprocess.run([*map(str, base), "--epochs", str(epoch + 2), "--resume"], capture_output=True, text=True)
    assert final.returncode == 0, final.stderr
    lines = [line.split(",")[0] for line in final.stderr.splitlines() if line.startswith("epoch ")]
    assert lines == [f"epoch {epoch + 1}/{epoch + 2}", f"epoch {epoch + 2}/{epoch + 2}"]
    assert bundle.read(model).training["epochs"] == epoch + 2
    assert not [name for name in os.listdir(out) if name.startswith("m.ckpt-")
                and name not in {c["file"] for c in json.loads(sidecar.read_text())["checkpoints"]}]


def test_resume_passes_over_a_checkpoint_that_does_not_match_its_sidecar(trained, tmp_path, monkeypatch):
    """conftest's session run, 2 epochs, copied: its newest checkpoint replaced, --resume goes on from the other."""
    monkeypatch.setenv("MGF_CACHE_DIR", str(tmp_path / "cache"))
    folder = trained.out
    base = [sys.executable, "-m", "mgf.cli.main", *trained.args, "-o", str(folder / "m.safetensors")]
    listed = json.loads((folder / "m.ckpt.json").read_text())["checkpoints"]
    assert [entry["epoch"] for entry in listed] == [2, 1]
    (folder / listed[0]["file"]).write_bytes(b"replaced by hand")
    result = subprocess.run([*base, "--epochs", "3", "--resume"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"{listed[0]['file']} does not match" in result.stderr and "continuing from epoch 1" in result.stderr
    assert [line.split(",")[0] for line in result.stderr.splitlines() if line.startswith("epoch ")] == ["epoch 2/3", "epoch 3/3"]
    (folder / "m.ckpt.json").write_text("{")
    damaged = subprocess.run([*base, "--epochs", "4", "--resume"], capture_output=True, text=True)
    assert damaged.returncode == 1 and "m.ckpt.json is not a checkpoint list" in damaged.stderr
    assert damaged.stderr.count("\n") == 1
