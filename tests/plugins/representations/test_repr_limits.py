"""Reading within limits: crafted files are refused fast, in one line and bounded memory; the limits can be raised.

Each bomb is read in a fresh interpreter, which reports the CPU seconds and the peak RSS of the
read (imports done before the clock starts), so that a regression is a failing test rather than
a machine out of memory.
"""

import gc
import json
import os
import signal
import struct
import subprocess
import sys

import numpy as np
import pytest

from mgf import InputError, get_representation
from mgf.music import corpus
from mgf.music.scores import ReadTimeout, bounded

SLOWEST_TEMPO = b"\x00\xff\x51\x03\xff\xff\xff"  # 0xFFFFFF microseconds per beat
END = b"\x00\xff\x2f\x00"


def vlq(number):
    """A MIDI variable-length quantity, as long as ``number`` needs (the format allows 4 bytes)."""
    out = [number & 0x7F]
    number >>= 7
    while number:
        out.append(0x80 | (number & 0x7F))
        number >>= 7
    return bytes(reversed(out))


def smf(tracks, ticks_per_beat=1, kind=0):
    data = b"MThd" + struct.pack(">IHHH", 6, kind, len(tracks), ticks_per_beat)
    return data + b"".join(b"MTrk" + struct.pack(">I", len(track)) + track for track in tracks)


def note(pitch, length, gap=0):
    """Delta ``gap``, note-on of ``pitch``, and its note-off ``length`` ticks later."""
    return vlq(gap) + bytes([0x90, pitch, 64]) + vlq(length) + bytes([0x80, pitch, 64])


BOMBS = {
    # 44 bytes: one note of 2^28 beats of 16.8 s each
    "slow.mid": smf([SLOWEST_TEMPO + note(60, 0x0FFFFFFF) + END]),
    # 1.7 kB: 150 notes of 2^24 slowest beats
    "many-long-notes.mid": smf([SLOWEST_TEMPO + b"".join(note(40 + i % 40, 0x0FFFFFF) for i in range(150)) + END]),
    # a delta time of 2^1127 ticks: an over-long variable-length quantity
    "overlong-delta.mid": smf([note(60, 2**1127) + END], ticks_per_beat=480),
    # 100 kB of one delta time: mido takes time quadratic in its length
    "overlong-delta-100kB.mid": smf([b"\x00\x90\x3c\x40" + b"\xff" * 100_000 + b"\x7f\x80\x3c\x40" + END], ticks_per_beat=480),
    # 300 tracks of one note each
    "tracks.mid": smf([note(60, 96) + END] * 300, ticks_per_beat=96, kind=1),
}

RUN = """
import json, resource, sys, time
import mgf
representation = mgf.get_representation(sys.argv[1], **json.loads(sys.argv[3]))
import mido, music21.converter  # loaded before the clock starts: the read is measured, not the imports
start = time.process_time()
try:
    outcome = f"{len(representation.read(sys.argv[2]))} tokens"
except mgf.MgfError as error:
    outcome = f"{type(error).__name__}: {error}"
children = resource.getrusage(resource.RUSAGE_CHILDREN)  # a score is parsed in a child process
print(json.dumps({"cpu": time.process_time() - start + children.ru_utime + children.ru_stime, "outcome": outcome,
                  "rss_mb": max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, children.ru_maxrss) / 1024}))
"""


def read_in_subprocess(name, path, **config):
    """``{"cpu", "rss_mb", "outcome"}`` of reading ``path`` with representation ``name`` in a fresh interpreter."""
    small_parent = os.path.join(os.path.dirname(__file__), "..", "..", "small_parent.py")  # see there: RSS is not the parent's
    result = subprocess.run([sys.executable, small_parent, str(path) + ".rss", sys.executable, "-c", RUN, name, str(path),
                             json.dumps(config)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("representation", ["midi", "notes"])
@pytest.mark.parametrize("bomb, limit", [("slow.mid", "max_tokens"), ("many-long-notes.mid", "max_tokens"),
                                         ("overlong-delta.mid", "variable-length quantity of 162 bytes; MIDI allows 4"),
                                         ("overlong-delta-100kB.mid", "of 100001 bytes"), ("tracks.mid", "max_tracks=256")])
def test_bombs_are_refused_fast_in_one_line_and_bounded_memory(tmp_path, representation, bomb, limit):
    path = tmp_path / bomb
    path.write_bytes(BOMBS[bomb])
    report = read_in_subprocess(representation, path)
    assert report["outcome"].startswith(f"InputError: {path}: ")
    assert limit in report["outcome"] and "\n" not in report["outcome"]
    assert report["cpu"] < 2.0, report
    assert report["rss_mb"] < 300, report


def test_a_file_larger_than_max_file_mb_is_refused_before_parsing(tmp_path):
    path = tmp_path / "big.mid"
    path.write_bytes(smf([note(60, 96) * 5000 + END], ticks_per_beat=96))  # 40 kB
    for name in ("midi", "notes"):
        with pytest.raises(InputError, match=r"big.mid: 0.04 MB, more than max_file_mb=0.01$"):
            get_representation(name, max_file_mb=0.01).read(path)
        assert len(get_representation(name).read(path)) > 5000
    with pytest.raises(InputError, match=r"bwv66.6.mxl: 0.052 MB unpacked, more than max_file_mb=0.05$"):
        get_representation("notes", max_file_mb=0.05).read("corpus:bach/bwv66.6")  # 2 kB packed


def test_a_five_byte_delta_is_malformed(tmp_path):
    path = tmp_path / "five.mid"
    path.write_bytes(smf([note(60, 2**30) + END], ticks_per_beat=480))
    with pytest.raises(InputError, match=r"five.mid: not a readable MIDI file \(a delta time of 31 bits; MIDI allows 28\)$"):
        get_representation("midi").read(path)


def test_raising_a_limit_reads_the_file(tmp_path):
    path = tmp_path / "tracks.mid"
    path.write_bytes(BOMBS["tracks.mid"])
    for name in ("midi", "notes"):
        assert len(get_representation(name, max_tracks=300).read(path)) > 0
    chorale = get_representation("midi").read("corpus:bach/bwv66.6")
    with pytest.raises(InputError, match="bwv66.6: more than max_tokens=100 tokens$"):
        get_representation("midi", max_tokens=100).read("corpus:bach/bwv66.6")
    assert len(get_representation("midi", max_tokens=len(chorale)).read("corpus:bach/bwv66.6")) == len(chorale)
    with pytest.raises(InputError, match="max_tokens"):
        get_representation("midi", max_tokens=len(chorale) - 1).read("corpus:bach/bwv66.6")
    with pytest.raises(InputError, match="a melody of 144 steps, more than max_tokens=100$"):
        get_representation("notes", max_tokens=100).read("corpus:bach/bwv66.6")


def test_long_silences_are_cut_to_max_silence_seconds(tmp_path):
    # at 120 quarter notes per minute: a note of a beat, an hour's silence, a note of a beat
    path = tmp_path / "silence.mid"
    path.write_bytes(smf([b"\x00\xff\x51\x03\x07\xa1\x20" + note(60, 96) + note(62, 96, gap=96 * 2 * 3600) + END],
                         ticks_per_beat=96))
    midi = get_representation("midi")
    assert [(p, round(s, 3), round(e, 3)) for p, _, s, e in midi.to_notes(midi.read(path))] == [
        (60, 0.0, 0.5), (62, 10.5, 11.0)]
    short = get_representation("midi", max_silence_seconds=2.0)
    assert short.config()["max_silence_seconds"] == 2.0 and "max_silence_seconds" not in midi.config()
    assert [round(s, 3) for _, _, s, _ in short.to_notes(short.read(path))] == [0.0, 2.5]
    # a note that sounds is no silence: the chord of a held note and a late one keeps its time
    held = short.encode([(60, 80, 0.0, 30.0), (64, 80, 20.0, 21.0)])
    assert [(p, round(s, 3), round(e, 3)) for p, _, s, e in short.to_notes(held)] == [(60, 0.0, 30.0), (64, 20.0, 21.0)]


def test_leading_silence_is_cut_too():
    midi = get_representation("midi")
    assert [round(s, 3) for _, _, s, _ in midi.to_notes(midi.encode([(60, 80, 100.0, 101.0)]))] == [10.0]


@pytest.mark.parametrize("name", ["notes", "midi"])
def test_music21_parsing_stops_at_max_read_seconds(name):
    with pytest.raises(ReadTimeout, match=r"bwv66.6: reading took more than max_read_seconds=0.01 s of CPU time$"):
        get_representation(name, max_read_seconds=0.01).read("corpus:bach/bwv66.6")
    assert signal.getitimer(signal.ITIMER_PROF) == (0.0, 0.0)  # the limit was the child's, not this process's
    assert len(get_representation(name).read("corpus:bach/bwv66.6")) > 0


def test_the_limit_holds_while_this_process_runs_its_own_cpu_timer():
    """A profiler's ITIMER_PROF used to switch the limit off; and whatever gc does, the child ends."""
    ticks = []
    previous = signal.signal(signal.SIGPROF, lambda *_: ticks.append(1))
    gc.callbacks.append(lambda *_: None)  # where a signal-raised timeout used to be swallowed
    signal.setitimer(signal.ITIMER_PROF, 0.001, 0.001)
    try:
        with pytest.raises(ReadTimeout):
            get_representation("notes", max_read_seconds=0.01).read("corpus:bach/bwv66.6")
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)
        gc.callbacks.pop()


def test_a_bounded_read_returns_what_the_child_returned_or_raised(tmp_path):
    assert bounded(5, "x", lambda a, b: (a, np.arange(b)), "name", 3)[1].tolist() == [0, 1, 2]
    with pytest.raises(InputError, match="^bad file$"):
        bounded(5, "x", lambda: (_ for _ in ()).throw(InputError("bad file")))
    with pytest.raises(ZeroDivisionError) as error:
        bounded(5, "x", lambda: 1 / 0)
    assert "ZeroDivisionError" in error.value.__notes__[0]  # the child's traceback, for whoever debugs it
    with pytest.raises(InputError, match=r"^x: reading ended without a result \(exit code 3\)$"):
        bounded(5, "x", os._exit, 3)
    with pytest.raises(InputError, match=r"^x: reading ended without a result \(killed by SIGKILL\)$"):
        bounded(5, "x", lambda: os.kill(os.getpid(), signal.SIGKILL))  # the child kills itself: as an OOM kill does


@pytest.mark.parametrize("reference", ["corpus:../../..", "corpus:bach/../../../..", "corpus:/etc", "corpus://etc/passwd",
                                       "corpus:..\\..\\windows", "corpus:C:/Windows"])
def test_corpus_references_stay_inside_the_corpus(reference):
    with pytest.raises(InputError) as error:
        corpus.resolve(reference)
    assert repr(reference) in str(error.value)


def test_limits_are_options_with_bounds():
    for name in ("notes", "midi"):
        for bad in ({"max_tokens": 0}, {"max_file_mb": 1e308}, {"max_tracks": 70000}, {"max_read_seconds": -1}):
            with pytest.raises(InputError, match=f"option {next(iter(bad))} of representation '{name}'"):
                get_representation(name, **bad)
    raised = get_representation("notes", max_tokens=5000)
    assert raised.config()["max_tokens"] == 5000 and get_representation("notes", **raised.config()).max_tokens == 5000


def test_a_piece_within_the_limits_is_unchanged():
    """The bounds cost nothing on real music: a chorale reads as it always did."""
    notes, midi = get_representation("notes"), get_representation("midi")
    assert np.array_equal(notes.read("corpus:bach/bwv66.6"), get_representation("notes", max_tokens=10**9).read("corpus:bach/bwv66.6"))
    assert np.array_equal(midi.read("corpus:bach/bwv66.6"),
                          get_representation("midi", max_silence_seconds=3600).read("corpus:bach/bwv66.6"))


# ---- primers: every built-in representation quotes the bad part in one line

LONG = "1" * 5000


@pytest.mark.parametrize("name, text, bad", [
    ("notes", "C4 ² D4", "²"), ("notes", LONG, LONG), ("notes", "C" + LONG, "C" + LONG), ("notes", "E4 " + "9" * 20, "9" * 20),
    ("midi", "NOTE_ON_60 ²", "²"), ("midi", LONG, LONG), ("midi", "NOTE_ON_" + LONG, "NOTE_ON_" + LONG),
    ("midi", "9" * 20, "9" * 20), ("tokens", "1 ² 2", "²"), ("tokens", LONG, LONG), ("tokens", "9" * 20, "9" * 20),
    ("tokens", "1 ١٢", "١٢"),
])
def test_bad_primer_items_are_one_line_input_errors_quoting_them(name, text, bad):
    """Digits that str.isdigit() takes and int() refuses, 5,000 digits, ids beyond int64."""
    with pytest.raises(InputError) as error:
        get_representation(name).parse_primer(text)
    message = str(error.value)
    assert "\n" not in message and len(message) < 200
    assert repr(bad)[:30] in message


@pytest.mark.parametrize("name", ["notes", "midi", "tokens", "audio"])
def test_a_primer_that_names_a_missing_file_says_so(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    representation = get_representation(name)
    (tmp_path / "folder").mkdir()
    for missing in [f"missing{suffix}" for suffix in representation.read_suffixes] + ["missing.txt", "folder/missing", "./C4"]:
        with pytest.raises(InputError, match=f"^primer: {missing}: no such file$"):
            representation.parse_primer(missing)
    with pytest.raises(InputError, match="^primer: folder/: is a directory$"):
        representation.parse_primer("folder/")


@pytest.mark.parametrize("name, text", [("notes", "C4 - r E4\n"), ("midi", "VELOCITY_20 NOTE_ON_60\nTIME_SHIFT_50"),
                                        ("tokens", "1 2\n3\n")])
def test_a_txt_primer_file_is_read_as_primer_text(tmp_path, name, text):
    representation = get_representation(name)
    path = tmp_path / "primer.txt"
    path.write_text(text)
    np.testing.assert_array_equal(representation.parse_primer(str(path)), representation.parse_primer(text))


def test_a_music_file_primer_is_read(tmp_path):
    for name in ("notes", "midi"):
        representation = get_representation(name)
        tokens = representation.read("corpus:bach/bwv66.6")
        representation.write(tokens, tmp_path / f"{name}.mid")
        np.testing.assert_array_equal(representation.parse_primer(str(tmp_path / f"{name}.mid")),
                                      representation.read(tmp_path / f"{name}.mid"))
    with pytest.raises(InputError, match="primer: .*other.json: reads .mid"):
        (tmp_path / "other.json").write_text("{}")
        get_representation("midi").parse_primer(str(tmp_path / "other.json"))


@pytest.mark.parametrize("fragment", ["ucc", "0351", "oh"])
def test_a_corpus_reference_names_a_work_not_a_fragment_of_one(fragment):
    """music21's getWork matches fragments: corpus:ucc would parse essenFolksong/zuccal0.abc, 50 tunes, for one primer."""
    with pytest.raises(InputError, match=f"'corpus:{fragment}': no such work or collection"):
        corpus.resolve(f"corpus:{fragment}")
    assert corpus.resolve("corpus:bwv66.6") == corpus.resolve("corpus:bach/bwv66.6")
