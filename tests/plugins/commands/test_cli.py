"""The `mgf` command as a user runs it: the installed console script, real files, exit codes."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import mgf
from helpers.cli import MGF
from helpers.cli import mgf_script as mgf_cli  # the console script itself


def test_version():
    result = mgf_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"mgf {mgf.__version__}"


def test_plugins_lists_every_kind_with_its_origin():
    result = mgf_cli("plugins")
    assert result.returncode == 0
    for word in ("Representations", "tokens", "vocab_size", "Model backends:", "native", "--threads", "numpy",
                 "Samplers:", "beam", "--top-p", "int in [0, 1000000], default 0", "Constraints", "scale", "--key",
                 "Commands:", "generate  (mgf.plugins.commands.generate)"):
        assert word in result.stdout
    listing = json.loads(mgf_cli("plugins", "--json").stdout)
    native = [row for row in listing["models"] if row["name"] == "native"][0]
    assert (native["distribution"], native["version"]) == ("mgf", mgf.__version__)
    temperature = [row for row in listing["samplers"] if row["name"] == "temperature"][0]
    assert [o["name"] for o in temperature["options"]] == ["temperature", "top_k", "top_p"]
    assert temperature["options"][1] == {"name": "top_k", "type": "int", "default": 0, "low": 0, "high": 1_000_000,
                                         "help": "sample only among the k most likely tokens (0: all)"}
    midi = [row for row in listing["representations"] if row["name"] == "midi"][0]
    assert "time_shift_ms" in [o["name"] for o in midi["options"]]
    assert {"plugin": "mgf.plugins.commands.data", "commands": ["encode", "decode", "dataset"]} in listing["commands"]


def test_generate_with_the_default_model(tmp_path):
    result = mgf_cli("generate", "--repr", "tokens", "--steps", "64", "--seed", "3", "-o", tmp_path / "out.txt")
    assert result.returncode == 0, result.stderr
    tokens = [int(t) for t in (tmp_path / "out.txt").read_text().split()]
    assert len(tokens) == 64 and all(0 <= t < 130 for t in tokens)


def test_generate_writes_what_the_api_generates(make_bundle, tmp_path):
    path = make_bundle(30, (16,), 4, seed=1)
    result = mgf_cli("generate", "--bundle", path, "--primer", "1 2 3", "--steps", "20", "--seed", "9",
                     "--top-k", "5", "-o", tmp_path / "a.txt")
    assert result.returncode == 0, result.stderr
    expected = mgf.generate(mgf.load_model(path), 20, primer=[1, 2, 3], seed=9, num_outputs=1, top_k=5)[0]
    assert (tmp_path / "a.txt").read_text().split() == [str(t) for t in expected]


def test_primer_from_a_file_and_backends_agree(make_bundle, tmp_path):
    path = make_bundle(30, (16, 8), None, seed=4)
    (tmp_path / "primer.txt").write_text("5 6 7\n")
    outputs = []
    for backend in ("native", "numpy"):
        out = tmp_path / f"{backend}.txt"
        result = mgf_cli("generate", "--bundle", path, "--model", backend, "--sampler", "beam", "--beam-size", "3",
                         "--primer", tmp_path / "primer.txt", "--steps", "30", "-o", out)
        assert result.returncode == 0, result.stderr
        outputs.append(out.read_text())
    assert outputs[0] == outputs[1] and outputs[0].startswith("5 6 7 ")


def test_num_outputs_writes_numbered_files(make_bundle, tmp_path):
    result = mgf_cli("generate", "--bundle", make_bundle(), "--num-outputs", "3", "--steps", "8", "--seed", "1",
                     "-o", tmp_path / "piece.txt")
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(tmp_path)) == ["model-0.safetensors", "piece-1.txt", "piece-2.txt", "piece-3.txt"]
    assert result.stdout.split() == [str(tmp_path / f"piece-{i}.txt") for i in (1, 2, 3)]


def test_default_output_name(make_bundle, tmp_path):
    result = mgf_cli("generate", "--bundle", make_bundle(), "--steps", "4", cwd=tmp_path)
    assert result.returncode == 0 and (tmp_path / "generated.txt").exists()


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["generate", "--bundle", "{missing}"], 1, "no such bundle file"),
        (["generate", "--bundle", "{bad}"], 1, "not a safetensors file"),
        (["generate", "--bundle", "{good}", "--repr", "midi"], 2, "--repr midi disagrees with the bundle"),
        (["generate", "--bundle", "{good}", "--model", "tf"], 2, "no model named 'tf'"),
        (["generate", "--bundle", "{good}", "--sampler", "greedy", "--beam-size", "3"], 2,
         "option --beam-size is not taken by model backend 'native', sampler 'greedy'"),
        (["generate", "--bundle", "{good}", "--temperature", "-1"], 2, "--temperature -1: Temperature: value must be in"),
        (["generate", "--bundle", "{good}", "--temperature", "warm"], 2, "--temperature must be a number, got 'warm'"),
        (["generate", "--bundle", "{good}", "--seed", "-1"], 2, "--seed must be a non-negative integer"),
        (["generate", "--bundle", "{good}", "--sampler", "nope"], 2, "no sampler named 'nope'"),
        (["generate", "--bundle", "{good}", "--constrain", "nope"], 2, "no constraint named 'nope'"),
        (["generate", "--bundle", "{good}", "--constrain", "scale"], 2,
         "constraint 'scale' needs to know which tokens start which pitch"),
        (["generate", "--bundle", "{good}", "--primer", "1 two"], 1, "primer: 'two' is not a token id"),
        (["generate", "--bundle", "{good}", "--primer", "19"], 1, "token id 19 is outside [0, 19)"),
        (["generate", "--bundle", "{good}", "--steps", "0"], 2, "--steps must be at least 1"),
        (["generate", "--bundle", "{good}", "--steps", "many"], 2, "invalid int value: 'many'"),
        (["generate", "--bundle", "{good}", "-o", "{nodir}"], 1, "does not exist"),
        (["generate", "--bundle", "{good}", "--threads", "0"], 2, "option --threads of model backend 'native' must be in [1, 256]"),
        (["generate"], 2, "give --repr"),
        (["generate", "--repr", "nope"], 2, "no representation named 'nope'"),
        (["frobnicate"], 2, "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(make_bundle, tmp_path, args, code, message):
    files = {
        "{missing}": tmp_path / "missing.safetensors",
        "{bad}": tmp_path / "bad.safetensors",
        "{good}": make_bundle(),
        "{nodir}": tmp_path / "no" / "such" / "out.txt",
    }
    (tmp_path / "bad.safetensors").write_text("hello")
    before = set(os.listdir(tmp_path))
    extra = ["-o", tmp_path / "out.txt"] if "-o" not in args else ["--seed", "1"]
    result = mgf_cli(*[files.get(a, a) for a in args], *extra, cwd=tmp_path)
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert set(os.listdir(tmp_path)) == before


def test_a_failed_write_leaves_no_partial_file(make_bundle, tmp_path, monkeypatch):
    """The representation fails half-way through writing: the output path never appears."""
    from mgf.plugins.representations.tokens import Tokens

    def failing_write(self, tokens, path, **options):
        from mgf.files import atomic_path

        with atomic_path(path) as tmp:
            open(tmp, "w").write("1 2 3")
            raise mgf.InputError("disk full")

    monkeypatch.setattr(Tokens, "write", failing_write)
    from mgf.cli.main import main

    assert main(["generate", "--bundle", str(make_bundle()), "-o", str(tmp_path / "out.txt")]) == 1
    assert sorted(os.listdir(tmp_path)) == ["model-0.safetensors"]


def test_register_commands_adds_subcommands(register_plugin, capsys):
    from mgf import hookimpl
    from mgf.cli.main import main

    class Plugin:
        @hookimpl
        def register_commands(self, cli):
            parser = cli.command("count", "Count to n.")
            parser.add_argument("n", type=int)
            parser.set_defaults(run=lambda args: print(*np.arange(1, args.n + 1)))

    register_plugin(Plugin(), "count-plugin")
    assert main(["count", "3"]) == 0
    assert capsys.readouterr().out == "1 2 3\n"


def test_many_outputs_are_written_batch_after_batch(make_bundle, tmp_path):
    """More outputs than one batch: every file is written, the first batch equals a run of that size alone."""
    bundle = make_bundle()
    result = mgf_cli("generate", "--bundle", bundle, "--num-outputs", "70", "--steps", "6", "--seed", "2",
                     "-o", tmp_path / "many.txt")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.split()) == 70 and (tmp_path / "many-70.txt").exists()
    result = mgf_cli("generate", "--bundle", bundle, "--num-outputs", "64", "--steps", "6", "--seed", "2",
                     "-o", tmp_path / "alone.txt")
    assert (tmp_path / "alone-64.txt").read_text() == (tmp_path / "many-64.txt").read_text()
    assert (tmp_path / "many-65.txt").read_text() != (tmp_path / "many-1.txt").read_text()


@pytest.mark.parametrize("args, message", [(["--steps", "10000000"], "steps 10000000 exceeds the limit 100000 "
                                            "(raise it with MGF_MAX_STEPS)"),
                                           (["--num-outputs", "1000000"], "outputs 1000000 exceeds the limit 100000")])
def test_runaway_requests_are_refused_before_any_work(make_bundle, tmp_path, args, message):
    result = mgf_cli("generate", "--bundle", make_bundle(), *args, "-o", tmp_path / "x.txt")
    assert result.returncode == 2 and message in result.stderr


@pytest.mark.parametrize("target", ["dir", "dir/take-2.txt"])
def test_an_unwritable_output_fails_before_any_work(make_bundle, tmp_path, target):
    """-o naming a directory, or one numbered output being a directory: one line, nothing written, no model loaded."""
    (tmp_path / "dir").mkdir()
    if target != "dir":
        (tmp_path / target).mkdir()
    output, outputs = (tmp_path / "dir", "1") if target == "dir" else (tmp_path / "dir" / "take.txt", "3")
    result = mgf_cli("generate", "--bundle", make_bundle(), "--num-outputs", outputs, "--steps", "4", "-o", output)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "is a directory" in result.stderr
    assert sorted(p.name for p in (tmp_path / "dir").iterdir()) == ([] if target == "dir" else ["take-2.txt"])


def _children(pid: int) -> list[int]:
    """The processes ``pid`` started (Linux's /proc)."""
    with open(f"/proc/{pid}/task/{pid}/children") as handle:
        return [int(child) for child in handle.read().split()]


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, which nobody reaped yet, has ended)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_parallel_run_rerun_writes_only_the_missing_outputs(tmp_path):
    """Issue 13: 200 outputs on 2 workers, killed halfway; the re-run completes them, identical to an uninterrupted run."""
    import signal
    import time

    out = tmp_path / "run"
    out.mkdir()
    command = [MGF, "generate", "--repr", "notes", "--num-outputs", "200", "--steps", "32", "--seed", "5",
               "--workers", "2", "--quiet", "-o", str(out / "take.mid")]
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while len(list(out.glob("take-*.mid"))) < 70 and time.time() < deadline and run.poll() is None:
        time.sleep(0.05)
    started = _children(run.pid)  # the workers and the resource tracker
    run.send_signal(signal.SIGKILL)
    run.wait()
    deadline = time.time() + 10
    while any(_alive(pid) for pid in started) and time.time() < deadline:  # orphaned workers end with the run
        time.sleep(0.1)
    assert started and not [pid for pid in started if _alive(pid)], "workers outlived the killed run"
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("take-*.mid")}
    assert 0 < len(before) < 200
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    written = {os.path.basename(p) for p in result.stdout.split()}
    assert written == {f"take-{i}.mid" for i in range(1, 201)} - set(before)
    assert all(out.joinpath(name).stat().st_mtime_ns == mtime for name, mtime in before.items())
    assert sorted(p.name for p in out.iterdir()) == sorted(f"take-{i}.mid" for i in range(1, 201))  # no temporaries
    whole = tmp_path / "whole"
    whole.mkdir()
    subprocess.run(command[:-1] + [str(whole / "take.mid")], capture_output=True, check=True)
    for name in ("take-1.mid", "take-130.mid", "take-200.mid"):
        assert (out / name).read_bytes() == (whole / name).read_bytes()


def test_generation_on_a_dask_cluster_writes_what_local_workers_write(tmp_path):
    """`mgf generate --scheduler`: the same files as a local run, each worker loading the bundle once."""
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        for where, options in (("dask", ["--scheduler", cluster.scheduler_address]), ("local", ["--workers", "2"])):
            (tmp_path / where).mkdir()
            result = mgf_cli("generate", "--repr", "notes", "--num-outputs", "130", "--steps", "16", "--seed", "4",
                             *options, "-o", tmp_path / where / "t.mid")
            assert result.returncode == 0, result.stderr
            assert len(result.stdout.split()) == 130
    for name in ("t-1.mid", "t-70.mid", "t-130.mid"):
        assert (tmp_path / "dask" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
