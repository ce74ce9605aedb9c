"""Hostile input through the real `mgf` process: one error line, the right exit code, bounded memory, nothing left."""

import json
import os
import struct
import subprocess
import sys
import threading

import pytest
from safetensors.numpy import save_file

from mgf import get_representation, load_model
from mgf.contract import bundle
from mgf.music import synth

MAX_RSS_MB = 300
SMALL_PARENT = os.path.join(os.path.dirname(__file__), "..", "..", "small_parent.py")
BACH = "corpus:bach/bwv66.6"


LIMITED = ("import resource, sys; limit = int(sys.argv.pop(1)); resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)); "
           "from mgf.cli.main import main; sys.exit(main(sys.argv[1:]))")


def run(args, cwd, fsize=None):
    """``(exit code, stdout, stderr, peak RSS in MB)`` of ``python -m mgf.cli.main args`` in ``cwd``.

    With ``fsize``, no file may grow past that many bytes (RLIMIT_FSIZE): writes fail with EFBIG as on a full disk.
    """
    start = ["-m", "mgf.cli.main"] if fsize is None else ["-c", LIMITED, str(fsize)]
    rss_file = os.path.join(os.path.dirname(cwd), f".rss-{os.path.basename(cwd)}")
    process = subprocess.Popen([sys.executable, SMALL_PARENT, rss_file, sys.executable, *start, *map(str, args)],
                               cwd=cwd, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    streams = {}
    readers = [threading.Thread(target=lambda k, s: streams.__setitem__(k, s.read()), args=(k, s))
               for k, s in (("out", process.stdout), ("err", process.stderr))]
    for reader in readers:
        reader.start()
    _, status, _ = os.wait4(process.pid, 0)
    for reader in readers:
        reader.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    with open(rss_file) as handle:
        peak_kib = int(handle.read())
    os.unlink(rss_file)
    return process.returncode, streams["out"], streams["err"], peak_kib / 1024


def fails_cleanly(args, tmp_path, code, message, fsize=None):
    """Run in an empty folder ``out``; assert one error line with ``message``, exit ``code``, and no file left."""
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    before = set(os.listdir(tmp_path))
    returncode, _, err, rss = run(args, out, fsize)
    errors = [line for line in err.splitlines() if line.startswith("mgf:") and "warning" not in line]
    assert returncode == code, err
    assert len(errors) == 1 and message in errors[0], err
    assert "Traceback" not in err
    assert os.listdir(out) == [] and set(os.listdir(tmp_path)) == before
    assert rss < MAX_RSS_MB
    return errors[0]


def _valid_bundle():
    made = bundle.random_bundle(6, (4,), seed=0)
    return dict(made.tensors), made.metadata()


def _raw(path, header: bytes, data: bytes = b""):
    path.write_bytes(struct.pack("<Q", len(header)) + header + data)
    return path


@pytest.fixture
def crafted(tmp_path):
    """Bundles that break one rule each, by name."""
    folder = tmp_path / "bundles"
    folder.mkdir()
    made = {}
    tensors, meta = _valid_bundle()
    meta["mgf.arch"] = "[" * 100_000
    save_file(tensors, str(folder / "nested-arch.safetensors"), metadata=meta)
    tensors, meta = _valid_bundle()
    meta["mgf.training"] = json.dumps({"note": "x" * 2_000_000})
    save_file(tensors, str(folder / "big-metadata.safetensors"), metadata=meta)
    tensors, meta = _valid_bundle()
    tensors["dense.kernel"][:] = 3e38
    save_file(tensors, str(folder / "huge-weights.safetensors"), metadata=meta)
    _raw(folder / "nested-header.safetensors", b"[" * 100_000)
    (folder / "header-2e60.safetensors").write_bytes(struct.pack("<Q", 2**60) + b"{}")
    header = json.dumps({"dense.bias": {"dtype": "F32", "shape": [10**9], "data_offsets": [0, 4 * 10**9]}}).encode()
    _raw(folder / "lying-shape.safetensors", header, b"\0" * 16)
    for path in folder.iterdir():
        made[path.stem] = path
    return made


@pytest.mark.parametrize(
    "name, message",
    [
        ("nested-arch", "metadata mgf.arch nests deeper than"),
        ("big-metadata", "metadata mgf.training is 2000012 bytes"),
        ("huge-weights", "tensor 'dense.kernel' has values up to 3e+38"),
        ("nested-header", "header nests deeper than"),
        ("header-2e60", "header of 1152921504606846976 bytes"),
        ("lying-shape", "the tensors take 4000000000 bytes but the file holds 16"),
    ],
)
def test_crafted_bundles(crafted, tmp_path, name, message):
    line = fails_cleanly(["generate", "--bundle", crafted[name], "--steps", "4", "--quiet"], tmp_path, 1, message)
    assert str(crafted[name]) in line


@pytest.mark.parametrize(
    "tokens, message",
    [
        ("1 99999999999999999999999", "token id 99999999999999999999999 is outside the vocabulary [0, 40)"),
        ("1 " + "9" * 5000, "token id " + "9" * 30 + "... is outside the vocabulary [0, 40)"),
        ("1 -3", "token id -3 is outside the vocabulary [0, 40)"),
        ("1 40", "token id 40 is outside the vocabulary [0, 40)"),
        ("1 \u0661\u0662", "'\u0661\u0662' is not a token id"),
        ("1 \u00b2", "'\u00b2' is not a token id"),
        ("", "no tokens to decode"),
    ],
)
def test_decode_bad_token_ids(tmp_path, tokens, message):
    fails_cleanly(["decode", "--repr", "notes", tokens, "-o", "x.mid"], tmp_path, 1, message)


@pytest.mark.parametrize(
    "config, message",
    [
        ("nope=1", "representation 'notes' takes no option nope"),
        ("qpm=fast", "option qpm of representation 'notes' must be"),
        ("qpm", "--config takes KEY=VALUE, got 'qpm'"),
        ("qpm=[" + "[" * 100_000, "option qpm of representation 'notes' must be"),
    ],
)
def test_bad_config_is_a_usage_error(tmp_path, config, message):
    fails_cleanly(["decode", "--repr", "notes", "--config", config, "1 2", "-o", "x.mid"], tmp_path, 2, message)


@pytest.mark.parametrize(
    "transpose, code, message",
    [
        (["--transpose", "-3:x"], 2, "--transpose takes LOW:HIGH semitones"),
        (["--transpose", "-3:-5"], 2, "--transpose: -3 is above -5"),
        (["--transpose", "-3:3"], 1, "does not exist"),  # a range: argparse alone reads "-3:3" as an option
        (["--transpose=-3:3"], 1, "does not exist"),
        (["--lr", "0"], 2, "--lr must be a positive number, got 0.0"),
        (["--lr", "-1"], 2, "--lr must be a positive number, got -1.0"),
        (["--lr", "nan"], 2, "--lr must be a positive number, got nan"),
        (["--lr", "inf"], 2, "--lr must be a positive number, got inf"),
        (["--patience", "-1"], 2, "--patience must be >= 0, got -1"),
        (["--layers", "100000"], 2, "--layers must be at most 64, got 100000"),
    ],
)
def test_train_checks_transpose_and_output_before_training(tmp_path, transpose, code, message):
    fails_cleanly(["train", "--repr", "tokens", "--data", tmp_path, *transpose, "-o", "missing/m.safetensors"],
                  tmp_path, code, message)


SUFFIX = {"decode": ".mid", "render": ".wav", "plot": ".png"}


@pytest.fixture
def command(request, tmp_path):
    """The arguments of a command that writes ``-o``: decode, or render/plot of a small MIDI file."""
    midi = get_representation("midi")
    midi.write(midi.encode([(60, 100, 0.0, 0.5), (64, 90, 0.5, 1.0), (67, 80, 1.0, 2.0)]), tmp_path / "in.mid")
    inputs = {"decode": ["decode", "--repr", "notes", " ".join(["25 0 27 0 30 0"] * 40)],
              "render": ["render", tmp_path / "in.mid"], "plot": ["plot", tmp_path / "in.mid"]}
    return request.param, inputs[request.param]


WRITERS = pytest.mark.parametrize("command", sorted(SUFFIX), indirect=True)


@WRITERS
def test_output_to_an_existing_directory(tmp_path, command):
    name, args = command
    target = tmp_path / f"taken{SUFFIX[name]}"
    target.mkdir()
    fails_cleanly(args + ["-o", target], tmp_path, 1, f"{target}: is a directory")


@WRITERS
def test_output_through_a_missing_directory(tmp_path, command):
    name, args = command
    fails_cleanly(args + ["-o", f"nonexistent/../x{SUFFIX[name]}"], tmp_path, 1, "does not exist")


@WRITERS
def test_output_on_a_full_disk(tmp_path, command):
    """RLIMIT_FSIZE of 100 bytes: the output's writes fail with EFBIG, as on a full disk with ENOSPC."""
    name, args = command
    fails_cleanly(args + ["-o", f"x{SUFFIX[name]}"], tmp_path, 1, "cannot write (File too large)", fsize=100)


@WRITERS
def test_output_with_a_250_character_name(tmp_path, command):
    name, args = command
    target = "n" * (250 - len(SUFFIX[name])) + SUFFIX[name]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, out, err, _ = run(args + ["-o", target], out_dir)
    assert code == 0, err
    assert out.split() == [target] and os.listdir(out_dir) == [target]


def test_decode_and_encode_audio_use_the_default_codebook(tmp_path):
    code, out, err, _ = run(["decode", "--repr", "audio", "1 2 3 4", "-o", "a.wav"], tmp_path)
    assert code == 0, err
    synth.write_wav(synth.render([(60, 100, 0.0, 0.5), (67, 100, 0.5, 1.0)]), tmp_path / "b.wav")
    code, out, err, _ = run(["encode", "--repr", "audio", "b.wav"], tmp_path)
    assert code == 0, err
    default = load_model(get_representation("audio").default_bundle).representation  # its config: 1,024 codewords
    assert [int(t) for t in out.split()] == default.read(tmp_path / "b.wav").tolist()


def test_data_commands_take_the_representation_from_a_bundle(tmp_path):
    audio = get_representation("audio").default_bundle
    code, out, err, _ = run(["decode", "--bundle", audio, "1 2 3 4", "-o", "a.wav"], tmp_path)
    assert code == 0 and out.split() == ["a.wav"], err
    fails_cleanly(["decode", "--bundle", audio, "--repr", "notes", "1 2"], tmp_path, 2,
                  "--repr notes disagrees with the bundle, which was trained for 'audio'")
    fails_cleanly(["encode", "x.mid"], tmp_path, 2, "give --repr or --bundle")
    fails_cleanly(["decode", "--bundle", tmp_path / "absent.safetensors", "1"], tmp_path, 1, "no such bundle file")


def test_dataset_names_each_skipped_file_once(tmp_path):
    folder = tmp_path / "music"
    folder.mkdir()
    (folder / "good.txt").write_text("1 2 3\n")
    (folder / "bad.txt").write_text("1 x 3\n")
    code, out, err, _ = run(["dataset", "--repr", "tokens", folder, "--no-cache", "--quiet"], tmp_path)
    assert code == 0, err
    skipped = [line.strip() for line in out.splitlines() if "bad.txt" in line]
    assert skipped == [f"{folder / 'bad.txt'}: 'x' is not a token id"]
    code, out, err, _ = run(["dataset", "--repr", "tokens", folder, "--no-cache", "--json"], tmp_path)
    assert json.loads(out)["skipped"] == [{"file": str(folder / "bad.txt"), "reason": "'x' is not a token id"}]


@pytest.mark.parametrize("command", [["plugins"], ["card", "--repr", "notes"]])
def test_a_reader_that_leaves_the_pipe_is_no_error(command):
    """`mgf plugins | head`: the reader closes stdout early; mgf finishes without a word on stderr, and exits 0
    (the reader took what it wanted; issue 24: exit 1 with nothing said looked like a failure)."""
    child = subprocess.Popen([sys.executable, "-m", "mgf.cli.main", *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    child.stdout.close()
    err = child.stderr.read().decode()
    assert child.wait(timeout=120) == 0 and err == ""
