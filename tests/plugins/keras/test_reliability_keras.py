"""What `mgf export` and `mgf train` read back or wait on is checked like input, and signals stop them (issue 25).

Rows 1, 2, 10 and 11 of the issue's table: hostile `.keras` files are refused before Keras sees them,
in bounded time and memory; a cluster that does not form ends after a documented timeout, saying
which worker is missing; a failed run leaves the previous outputs as they were; bad sidecars,
TF_CONFIG values and limits are one-line errors with the documented codes.  SIGINT and SIGTERM end
every such command within a second, also while TensorFlow blocks in C.
"""

import io
import json
import functools
import os
import signal
import socket
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
from helpers.cli import MAIN, mgf_cli

pytest.importorskip("keras")
pytest.importorskip("h5py")

MB = 1 << 20


mgf_cli = functools.partial(mgf_cli, timeout=300)


def high_water_mark(pid) -> int:
    """The peak resident size of process ``pid`` so far, in bytes (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            return next(int(line.split()[1]) * 1024 for line in handle if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return 0


def measured(args, folder, env=None):
    """``mgf ARGS``: its exit code, stderr, seconds and peak resident size in bytes, watched every 5 ms (the usage
    a child reports after ``wait`` includes the memory of this process, from which it was forked)."""
    with open(folder / "stderr", "w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen([*MAIN, *map(str, args)], stdout=subprocess.DEVNULL, stderr=err,
                                   env={**os.environ, **(env or {})})
        peak = 0
        while process.poll() is None:
            peak = max(peak, high_water_mark(process.pid), *map(high_water_mark, children(process.pid)))
            time.sleep(0.005)
        seconds = time.perf_counter() - started
        err.seek(0)
        return process.returncode, err.read(), seconds, peak


def write_archive(path, config, weights, extra=(), compressed=("config.json",), metadata=True):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in [*([("metadata.json", b'{"keras_version": "3"}')] if metadata else []), ("config.json", config),
                           ("model.weights.h5", weights), *extra]:
            archive.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED if name in compressed else zipfile.ZIP_STORED)


def lstm_config(units, vocab=30, embedding=8):
    layers = [{"class_name": "InputLayer", "config": {"name": "tokens", "batch_shape": [None, None], "dtype": "int32"}},
              {"class_name": "Embedding", "config": {"name": "embedding", "input_dim": vocab, "output_dim": embedding}},
              {"class_name": "LSTM", "config": {"name": "lstm", "units": units, "return_sequences": True}},
              {"class_name": "Dense", "config": {"name": "dense", "units": vocab}}]
    return json.dumps({"module": "keras", "class_name": "Sequential", "config": {"name": "s", "layers": layers}})


def weights_h5(shapes):
    """An HDF5 weights file laid out as Keras saves one: dataset name -> (shape, whether its data is written)."""
    import h5py

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        for name, (shape, written) in shapes.items():
            if written:
                handle.create_dataset(name, data=np.zeros(shape, np.float32))
            else:
                handle.create_dataset(name, shape=shape, dtype="f4")
    return buffer.getvalue()


def lstm_weights(units, vocab=30, embedding=8):
    shapes = {"layers/embedding/vars/0": (vocab, embedding), "layers/lstm/cell/vars/0": (embedding, 4 * units),
              "layers/lstm/cell/vars/1": (units, 4 * units), "layers/lstm/cell/vars/2": (4 * units,),
              "layers/dense/vars/0": (units, vocab), "layers/dense/vars/1": (vocab,)}
    return weights_h5({name: (shape, True) for name, shape in shapes.items()})


SMALL = lstm_weights(8)


def legacy_h5(path):
    import h5py

    with h5py.File(path, "w") as handle:
        handle.attrs["model_config"] = lstm_config(12000)
        handle.create_dataset("model_weights/lstm/kernel", shape=(8, 48000), dtype="f4")


HOSTILE = {
    # row 1: a 68 KB file whose config asks for LSTM(12000): 754 s and 14.6 GB
    "huge-units": (lambda p: write_archive(p, lstm_config(12000), SMALL), "576,"),
    # a 3.9 GiB config.json in a 4 MB file: 8.6 GB and exit 0 (here 200 MiB: the limit is 1 MiB)
    "config-bomb": (lambda p: write_archive(p, b" " * (200 * MB), SMALL), "config.json is 209,715,200 bytes"),
    # assets are extracted to $TMPDIR: 1.8 GB for 8 members
    "assets": (lambda p: write_archive(p, lstm_config(8), SMALL, [(f"assets/a{i}", b"\0" * MB) for i in range(8)]),
               "members"),
    "unknown-member": (lambda p: write_archive(p, lstm_config(8), SMALL, [("../../x", b"")], metadata=False),
                       "'../../x'"),
    # weights that declare 40 GB in a few kilobytes (HDF5's fill value)
    "declared-weights": (lambda p: write_archive(p, lstm_config(8), weights_h5({"layers/dense/vars/0": ((100000, 100000), False)})),
                         "declares 40,000,000,000 bytes"),
    "nested-config": (lambda p: write_archive(p, "[" * 100000 + "]" * 100000, SMALL), "config.json is not JSON"),
    "bad-units": (lambda p: write_archive(p, lstm_config(-3), SMALL), "units must be a positive integer"),
    # a 59 KB legacy .h5 listing huge weights: 31 s and 12.3 GB
    "legacy-h5": (legacy_h5, "not a .keras archive"),
    "not-a-zip": (lambda p: p.write_bytes(b"nope"), "not a .keras archive"),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_export_refuses_a_hostile_keras_file_before_building_it(tmp_path, case):
    make, message = HOSTILE[case]
    path = tmp_path / "m.keras"
    make(path)
    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    code, err, seconds, rss = measured(["export", path, "--repr", "tokens", "--config", "vocab_size=30"], scratch,
                                       env={"TMPDIR": str(scratch)})
    assert code == 1 and err.count("\n") == 1, err
    assert message in err and str(path) in err
    assert seconds < 15 and rss < 300 * MB, (seconds, rss)  # about 1 s and 130 MB here, TensorFlow never imported
    assert sorted(os.listdir(tmp_path)) == ["m.keras", "tmpdir"] and os.listdir(scratch) == ["stderr"]


def test_export_says_the_output_exists_without_importing_tensorflow(tmp_path):
    (tmp_path / "m.keras").write_bytes(b"")
    (tmp_path / "m.safetensors").write_bytes(b"kept")
    code = ("import sys\nfrom mgf.cli.main import main\n"
            f"code = main(['export', {str(tmp_path / 'm.keras')!r}, '--repr', 'tokens'])\n"
            "print('tensorflow' in sys.modules)\nsys.exit(code)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "--force" in result.stderr and result.stdout == "False\n"
    assert (tmp_path / "m.safetensors").read_bytes() == b"kept"


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(child) for child in handle.read().split()]
    except FileNotFoundError:
        return []


def stop_and_time(process, signum, after):
    """Send ``signum`` once ``after()`` holds (at most 120 s); the seconds until the process ended, and its child."""
    deadline = time.monotonic() + 120
    while not after():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "never got there"
        time.sleep(0.001)
    child = children(process.pid)
    sent = time.monotonic()
    process.send_signal(signum)
    try:
        process.wait(timeout=30)
    finally:
        process.kill()
    return time.monotonic() - sent, child


def busy_in_keras(path):
    """A valid model whose network takes Keras seconds to build (the orthogonal initialiser of LSTM(2048))."""
    write_archive(path, lstm_config(2048), lstm_weights(2048))


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 128 + signal.SIGTERM)])
def test_export_obeys_signals_while_keras_works(tmp_path, signum, code):
    busy_in_keras(tmp_path / "m.keras")
    process = subprocess.Popen([*MAIN, "export", str(tmp_path / "m.keras"), "--repr", "tokens", "--config", "vocab_size=30"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started = time.monotonic()
    # a few seconds into the child: importing TensorFlow, building the LSTM or loading its weights
    seconds, child = stop_and_time(process, signum, lambda: children(process.pid) and time.monotonic() - started > 6)
    _, err = process.communicate()
    assert process.returncode == code and seconds < 1.0, (process.returncode, seconds, err)
    assert err.strip().splitlines()[-1] in ("mgf: interrupted", "mgf: terminated")
    assert child and not os.path.exists(f"/proc/{child[0]}")
    assert sorted(os.listdir(tmp_path)) == ["m.keras"]


def accepts(address):
    """Whether a process listens at ``host:port``."""
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=0.5).close()
    except OSError:
        return False
    return True


def free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def two_worker_config(index=0):
    """A TF_CONFIG of two workers on free ports; the other one is never started."""
    ports = [free_port(), free_port()]
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}), f"localhost:{ports[1 - index]}"


def test_a_cluster_that_never_forms_ends_after_the_timeout_naming_the_missing_worker(progressions, tmp_path):
    """The timeout counts from the start of the training process, TensorFlow's import included (a few seconds)."""
    config, missing = two_worker_config()
    started = time.perf_counter()
    result = mgf_cli("train", "--repr", "tokens", "--config", "vocab_size=41", "--data", progressions, "--distributed",
                     "--peer-timeout", "3", "-o", tmp_path / "m.safetensors",
                     env={"TF_CONFIG": config, "MGF_CACHE_DIR": str(tmp_path / "cache")})
    seconds = time.perf_counter() - started
    lines = result.stderr.splitlines()
    assert result.returncode == 1 and len(lines) == 2, result.stderr
    assert lines[0].startswith("mgf: waiting up to 3 s (--peer-timeout)") and missing in lines[0]
    assert lines[1].startswith(f"mgf: error: --distributed: {missing} did not join within 3 s")
    assert 3 < seconds < 3 + 10, seconds  # about 1.5 s to start mgf on this machine, then the timeout
    assert not list(tmp_path.glob("m*"))


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 128 + signal.SIGTERM)])
def test_waiting_for_a_cluster_obeys_signals(progressions, tmp_path, signum, code):
    config, _ = two_worker_config()
    own = json.loads(config)["cluster"]["worker"][0]
    process = subprocess.Popen([*MAIN, "train", "--repr", "tokens", "--config", "vocab_size=41", "--data", str(progressions),
                                "--distributed", "-o", str(tmp_path / "m.safetensors")], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "TF_CONFIG": config})
    # once this worker's own port accepts, the child has started TensorFlow's server and waits inside
    # MultiWorkerMirroredStrategy for the worker that never comes (about 7 s here, TensorFlow's import)
    seconds, child = stop_and_time(process, signum, lambda: accepts(own))
    _, err = process.communicate()
    assert process.returncode == code and seconds < 1.0, (process.returncode, seconds, err)
    assert child and not os.path.exists(f"/proc/{child[0]}")


@pytest.mark.parametrize("config", ["{}", "[]", "", "null", '{"cluster": {}, "task": {}}',
                                    '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}',
                                    '{"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}',
                                    '{"cluster": {"worker": ["a:1"]}, "task": []}',
                                    '{"cluster": {"worker": ["a:1"]}, "task": {"type": ["worker"], "index": 0}}'])
def test_a_tf_config_without_this_worker_in_a_cluster_is_a_usage_error(progressions, tmp_path, config):
    result = mgf_cli("train", "--repr", "tokens", "--data", progressions, "--distributed", "-o", tmp_path / "m.safetensors",
                     env={"TF_CONFIG": config})
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "TF_CONFIG must name the cluster and this worker's task" in result.stderr


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_peer_timeout_must_be_positive(progressions, tmp_path, value):
    result = mgf_cli("train", "--repr", "tokens", "--data", progressions, f"--peer-timeout={value}",
                     "-o", tmp_path / "m.safetensors")
    assert result.returncode == 2 and "--peer-timeout must be a positive number" in result.stderr


def snapshot(folder):
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


@pytest.fixture
def finished(trained, tmp_path, monkeypatch):
    """A finished run (conftest's, copied): ``mgf train`` arguments that write it again, and its folder."""
    monkeypatch.setenv("MGF_CACHE_DIR", str(tmp_path / "cache"))
    return [*trained.args, "--quiet", "-o", trained.out / "m.safetensors"], trained.out


def test_training_that_diverges_leaves_the_previous_outputs(finished):
    base, out = finished
    before = snapshot(out)
    result = mgf_cli(*base, "--epochs", "2", "--lr", "1e6", "--val-split", "0")
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "training diverged in epoch 1 (loss" in result.stderr and "try a lower --lr (this run's: 1e+06)" in result.stderr
    assert snapshot(out) == before


def test_resume_of_sidecar_epochs_that_name_no_file(finished):
    base, out = finished
    sidecar = out / "m.ckpt.json"
    listed = json.loads(sidecar.read_text())
    for epoch in (10**9, -5):
        sidecar.write_text(json.dumps({"checkpoints": [{**entry, "epoch": epoch} for entry in listed["checkpoints"]]}))
        result = mgf_cli(*base, "--epochs", "3", "--resume")
        assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
        assert "no checkpoint listed in" in result.stderr
    sidecar.write_text(json.dumps(listed))
    before = snapshot(out)
    done = mgf_cli(*base, "--epochs", "2", "--resume")
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "m.ckpt-2.keras ended epoch 2, so --epochs 2 leaves nothing to train" in done.stderr
    assert snapshot(out) == before


def notes_midi(folder, count=12):
    """``count`` small MIDI files of scales: data that the `notes` representation reads and a card measures."""
    import mido

    folder.mkdir()
    for i in range(count):
        track = mido.MidiTrack()
        for j in range(24):
            pitch = 48 + (i + 2 * j) % 24
            track.append(mido.Message("note_on", note=pitch, velocity=80, time=0))
            track.append(mido.Message("note_off", note=pitch, velocity=0, time=240))
        song = mido.MidiFile()
        song.tracks.append(track)
        song.save(folder / f"s{i}.mid")
    return folder


def test_a_run_stopped_in_its_model_card_step_leaves_the_previous_outputs(tmp_path, monkeypatch):
    """Stopped in its last step, where the new Keras model is saved (to a temporary) and the new bundle is scored
    and its card measured in memory, then written once: the previous m.keras and m.safetensors stay."""
    monkeypatch.setenv("MGF_CACHE_DIR", str(tmp_path / "cache"))
    data, out = notes_midi(tmp_path / "data"), tmp_path / "out"
    out.mkdir()
    base = [*MAIN, "train", "--repr", "notes", "--data", str(data), "--hidden", "4", "--layers", "1", "--embedding", "4",
            "--seq-len", "40", "--epochs", "1", "--val-split", "0.3", "--quiet", "-o", str(out / "m.safetensors")]
    first = subprocess.run(base, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    kept = {name: (out / name).read_bytes() for name in ("m.safetensors", "m.keras")}

    def keras_staged():  # its temporary is made as the last step begins
        return any(".m.keras.mgf-tmp-" in entry.name for entry in os.scandir(out))

    process = subprocess.Popen([*base, "--seed", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seconds, _ = stop_and_time(process, signal.SIGTERM, keras_staged)
    assert process.returncode == 128 + signal.SIGTERM and seconds < 1.0, (process.returncode, seconds)
    # the signal lands before the two renames (the previous pair stays) or, held, just after them (the new pair):
    # never one new file beside an old one, never a temporary left
    now = {name: (out / name).read_bytes() for name in kept}
    changed = sorted(name for name in kept if now[name] != kept[name])
    assert changed in ([], sorted(kept)), f"only {changed} replaced"
    assert not [name for name in os.listdir(out) if ".mgf-tmp-" in name]


def test_max_steps_of_zero_is_a_usage_error(tmp_path):
    result = mgf_cli("generate", "--repr", "notes", "--steps", "5", "-o", tmp_path / "x.txt", env={"MGF_MAX_STEPS": "0"})
    assert result.returncode == 2 and "MGF_MAX_STEPS must be a positive integer" in result.stderr
    assert result.stderr.count("\n") == 1 and not (tmp_path / "x.txt").exists()


def test_a_top_k_beyond_any_vocabulary_is_a_usage_error(tmp_path):
    result = mgf_cli("generate", "--repr", "notes", "--steps", "5", "--top-k", "1099511627776", "-o", tmp_path / "x.txt")
    assert result.returncode == 2 and "--top-k" in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert not (tmp_path / "x.txt").exists()
