"""``mgf jam``: the engine over OSC on loopback and over an in-process pair of mido ports, and the command's errors."""

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time

import mido
import pytest
from pythonosc import osc_packet
from pythonosc.udp_client import SimpleUDPClient

import mgf
from mgf.plugins.commands import jam_engine, jam_io
from helpers.cli import mgf_cli

QPM = 240.0  # a beat of 0.25 s keeps each test short
BEAT = 60 / QPM
HAS_SEQ = os.path.exists("/dev/snd/seq")


@pytest.fixture(scope="module")
def notes_model():
    return mgf.load_model(mgf.packaged_model("notes.safetensors"))


class QueuePort:
    """One end of an in-process MIDI cable with mido's port interface: ``send`` puts, ``poll`` takes (real ``mido.Message``\\ s)."""

    def __init__(self):
        self.queue: queue.Queue = queue.Queue()
        self.closed = False

    def send(self, message):
        assert isinstance(message, mido.Message)
        self.queue.put((time.perf_counter(), message))

    def poll(self):
        try:
            return self.queue.get_nowait()[1]
        except queue.Empty:
            return None

    def close(self):
        self.closed = True


class Session:
    """A running :func:`jam_engine.run` in a thread, stopped and closed on leaving."""

    def __init__(self, model, source, output, folder, **options):
        self.source, self.output = source, output
        self.jam = jam_engine.Jam(model, jam_engine.Scheduler(output.send), str(folder), qpm=QPM, seed=1, **options)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=jam_engine.run, args=(self.jam, source, self.stop))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=5)
        assert not self.thread.is_alive()
        self.jam.close()
        self.source.close()


@pytest.fixture
def osc(notes_model, tmp_path):
    """An OSC jam on 127.0.0.1: ``(session, player, listen)``; ``listen(seconds)`` gives ``[(time, address, args)]`` it played."""
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.settimeout(0.02)
    source = jam_io.OscIn("127.0.0.1", 0)
    output = jam_io.OscOut(*sink.getsockname())

    def listen(seconds):
        heard, until = [], time.perf_counter() + seconds
        while time.perf_counter() < until:
            try:
                data = sink.recv(4096)
            except socket.timeout:
                continue
            message = osc_packet.OscPacket(data).messages[0].message
            heard.append((time.perf_counter(), message.address, tuple(message.params)))
        return heard

    with Session(notes_model, source, output, tmp_path) as session:
        yield session, SimpleUDPClient(*source.address), listen
    output.close()
    sink.close()


def play_call(send, pitches):
    """The player plays one beat per pitch; the time of the last note-off."""
    for pitch in pitches:
        send("note_on", pitch)
        time.sleep(BEAT)
        send("note_off", pitch)
    return time.perf_counter()


def test_osc_call_response_answers_after_the_pause_for_as_long_as_the_call(osc):
    session, player, listen = osc

    def send(kind, pitch):
        player.send_message(f"/{kind}", [pitch, 100] if kind == "note_on" else [pitch])

    last = play_call(send, [60, 62, 64, 65])
    heard = listen(BEAT * 7)
    assert session.jam.counts["calls answered"] == 1
    ons = [t for t, address, _ in heard if address == "/note_on"]
    assert ons and {address for _, address, _ in heard} <= {"/note_on", "/note_off"}
    # the answer starts once the player has paused a beat, and lasts the call's four beats
    assert last + BEAT - 0.02 <= heard[0][0] <= last + BEAT + 0.15
    start, seconds = session.jam.answers[0]
    assert seconds == pytest.approx(4 * BEAT)
    assert heard[-1][0] <= start + 4 * BEAT + 0.1
    offs = [args[0] for _, address, args in heard if address == "/note_off"]
    assert sorted(offs) == sorted(args[0] for _, address, args in heard if address == "/note_on")  # nothing left hanging
    assert max(session.jam.compute) < 0.1 and max(session.jam.scheduler.lateness) < 0.1  # loose: CI machines are busy


def test_osc_handover_answers_at_once(osc):
    session, player, listen = osc
    player.send_message("/note_on", [67, 90])
    time.sleep(2 * BEAT)
    player.send_message("/handover", [])
    sent = time.perf_counter()
    heard = listen(BEAT * 3)
    assert session.jam.counts["handovers"] == 1 and session.jam.counts["calls answered"] == 1
    assert heard and heard[0][0] - sent < BEAT / 2  # no pause waited for
    assert session.jam.answers[0][1] == pytest.approx(2 * BEAT)


def test_malformed_osc_and_floods_are_dropped_and_counted_and_the_jam_goes_on(osc):
    session, player, listen = osc
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for junk in (b"", b"\x00\x01garbage", b"/note_on\x00\x00\x00\x00,ii\x00\x00\x00"):  # the last: its ints cut off
        raw.sendto(junk, session.source.address)
    raw.close()
    player.send_message("/note_on", [300, 90])  # not a MIDI pitch
    player.send_message("/volume", [3])  # not ours
    for _ in range(30):  # a flood: 3,000 messages in a few ms
        for _ in range(100):
            player.send_message("/note_off", [61])
        time.sleep(0.001)
    time.sleep(0.2)
    counts = session.source.counts
    assert counts["malformed OSC packets"] == 3 and counts["OSC messages not understood"] == 2
    assert session.jam.counts["dropped (flood)"] > 0
    time.sleep(jam_engine.FLOOD_BURST / jam_engine.FLOOD_RATE)  # the rate allows a player again

    def send(kind, pitch):
        player.send_message(f"/{kind}", [pitch, 100] if kind == "note_on" else [pitch])

    play_call(send, [72, 71])
    assert any(address == "/note_on" for _, address, _ in listen(BEAT * 4))
    assert session.jam.counts["calls answered"] == 1


def test_port_pair_accompany_plays_along_and_the_handover_cc_mutes(notes_model, tmp_path):
    inbound, outbound = QueuePort(), QueuePort()
    with Session(notes_model, jam_io.PortIn(inbound, handover_cc=64), jam_io.PortOut(outbound), tmp_path,
                 mode="accompany") as session:
        inbound.send(mido.Message("note_on", note=60, velocity=80))
        time.sleep(BEAT)
        inbound.send(mido.Message("note_off", note=60))
        time.sleep(3 * BEAT)
        inbound.send(mido.Message("control_change", control=64, value=127))
        time.sleep(BEAT * 1.5)  # the window under way when it came still sounds
        muted = time.perf_counter()
        time.sleep(3 * BEAT)
    played = list(outbound.queue.queue)  # (when sent, message)
    assert all(isinstance(message, mido.Message) and message.channel == 0 for _, message in played)
    assert any(message.type == "note_on" for when, message in played if when < muted)
    assert not any(message.type == "note_on" for when, message in played if when > muted)
    assert session.jam.counts["handovers"] == 1 and session.jam.played == []  # the player's note was fed


def mgf_jam(*args, **kwargs):
    return mgf_cli("jam", *args, timeout=60, **kwargs)


@pytest.mark.skipif(HAS_SEQ, reason="this machine has an ALSA sequencer: --list lists its ports")
def test_list_without_a_sequencer_is_one_line():
    done = mgf_jam("--list")
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "no ALSA sequencer" in done.stderr


def test_unknown_port_and_bad_address_are_one_line():
    done = mgf_jam("--in", "no such port")
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and done.stderr.startswith("mgf: error:")
    done = mgf_jam("--osc-in", "127.0.0.1:99999")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "--osc-in" in done.stderr
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", 0))
    try:
        done = mgf_jam("--osc-in", f"127.0.0.1:{taken.getsockname()[1]}", "--seconds", "5")
    finally:
        taken.close()
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "cannot listen for OSC" in done.stderr


def test_without_python_osc_the_hint_is_one_line():
    blocked = "import sys; sys.modules['pythonosc'] = None; from mgf.cli.main import main; sys.exit(main(['jam', '--seconds', '1']))"
    done = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr == "mgf: error: mgf jam over OSC needs python-osc: pip install 'mgf-music[live]'\n"


def test_ctrl_c_ends_cleanly_with_130(tmp_path):
    process = subprocess.Popen([sys.executable, "-m", "mgf.cli.main", "jam", "--osc-in", "127.0.0.1:0", "--osc-out",
                                "127.0.0.1:9"], stderr=subprocess.PIPE, text=True)
    try:
        assert "listening to OSC on 127.0.0.1:" in process.stderr.readline()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 130
        rest = process.stderr.read()
    finally:
        process.kill()
        process.wait()
    assert "Traceback" not in rest and "mgf: jam: " in rest and "mgf: interrupted" in rest


@pytest.mark.skipif(not HAS_SEQ, reason="no ALSA sequencer (/dev/snd/seq): the rtmidi ports cannot be opened here")
def test_rtmidi_virtual_ports_carry_the_answer(notes_model, tmp_path):
    source = jam_io.PortIn(jam_io.open_port("input", "mgf test in", virtual=True))
    output = jam_io.PortOut(jam_io.open_port("output", "mgf test out", virtual=True))
    inputs, outputs = jam_io.port_names()  # ALSA names a port after its client: "...mgf test in 128:0"
    player = mido.open_output(next(name for name in outputs if "mgf test in" in name))
    sink = mido.open_input(next(name for name in inputs if "mgf test out" in name))
    try:
        with Session(notes_model, source, output, tmp_path):
            play_call(lambda kind, pitch: player.send(mido.Message(kind, note=pitch, velocity=90)), [60, 64])
            time.sleep(4 * BEAT)
        assert any(message.type == "note_on" for message in sink.iter_pending())
    finally:
        output.close()
        sink.close()
        player.close()
