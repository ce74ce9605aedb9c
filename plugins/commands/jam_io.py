"""Where ``mgf jam`` hears and plays: OSC over UDP (python-osc) or MIDI ports (mido with python-rtmidi).

Inputs give ``read(timeout) -> [(kind, args)]`` (``kind``: ``note_on`` ``(pitch, velocity)``, ``note_off``
``(pitch,)``, ``handover`` ``()``), outputs ``send(kind, pitch, velocity)``: the engine
(:mod:`mgf.plugins.commands.jam_engine`) needs no more, so tests give it any port with mido's interface.
What cannot be understood is dropped and counted in ``counts``, never raised: a stray packet must not end a jam.
"""

from __future__ import annotations

import os
import select
import socket
import sys
import time
from collections import Counter

from mgf import InputError, UsageError

OSC_ADDRESSES = {"/note_on": 2, "/note_off": 1, "/handover": 0}  # address -> the arguments it needs
BATCH = 256  # messages taken per read; the rest wait (in the socket's buffer, or the port's queue)
LIVE_HINT = "pip install 'mgf-music[live]'"


def address(text: str, option: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``PORT``, on 127.0.0.1) as ``(host, port)``; a ``UsageError`` naming ``option`` if not."""
    host, _, port = text.rpartition(":")
    if not port.isascii() or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"{option}: expected HOST:PORT with a port in 0..65535, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def _osc():
    try:
        from pythonosc import osc_packet, udp_client
    except ImportError:
        raise UsageError(f"mgf jam over OSC needs python-osc: {LIVE_HINT}") from None
    return osc_packet, udp_client


def _pitch(value) -> int | None:
    """A MIDI number 0..127 from an OSC int or a whole float (what Max and Pure Data send), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or int(value) != value:
        return None
    return int(value) if 0 <= value <= 127 else None


class OscIn:
    """OSC messages ``/note_on pitch velocity``, ``/note_off pitch``, ``/handover`` on a UDP socket (bundles too)."""

    def __init__(self, host: str, port: int) -> None:
        self._packet = _osc()[0]
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self.socket.bind((host, port))
        except OSError as error:
            self.socket.close()
            raise InputError(f"cannot listen for OSC on {host}:{port}: {error.strerror or error}") from None
        self.socket.setblocking(False)
        self.address = self.socket.getsockname()[:2]
        self.counts: Counter[str] = Counter()

    def read(self, timeout: float) -> list:
        if not select.select([self.socket], [], [], timeout)[0]:
            return []
        found: list = []
        for _ in range(BATCH):
            try:
                data = self.socket.recv(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # e.g. ICMP port unreachable reported on a later recv
                continue
            found += self._messages(data)
        return found

    def _messages(self, data: bytes) -> list:
        try:
            messages = [timed.message for timed in self._packet.OscPacket(data).messages]
        except Exception:  # python-osc raises ParseError, and others on some truncated packets
            self.counts["malformed OSC packets"] += 1
            return []
        found = []
        for message in messages:
            arity = OSC_ADDRESSES.get(message.address)
            args = [_pitch(value) for value in message.params[:arity]] if arity is not None else []
            if arity is None or len(args) < arity or None in args:
                self.counts["OSC messages not understood"] += 1
            else:
                found.append((message.address[1:], tuple(args)))
        return found

    def close(self) -> None:
        self.socket.close()


class OscOut:
    """``/note_on pitch velocity`` and ``/note_off pitch`` to ``host:port``."""

    def __init__(self, host: str, port: int) -> None:
        self.client = _osc()[1].SimpleUDPClient(host, port)

    def send(self, kind: str, pitch: int, velocity: int) -> None:
        self.client.send_message(f"/{kind}", [pitch, velocity] if kind == "note_on" else [pitch])

    def close(self) -> None:
        self.client.close()


class PortIn:
    """A mido input port (an rtmidi port, or any object with ``poll()``): notes, and a control change that hands over."""

    def __init__(self, port, handover_cc: int | None = None) -> None:
        self.port, self.handover_cc = port, handover_cc
        self.counts: Counter[str] = Counter()

    def read(self, timeout: float) -> list:
        until = time.perf_counter() + timeout
        found: list = []
        while len(found) < BATCH:
            message = self.port.poll()
            if message is None:
                if found or time.perf_counter() >= until:
                    break
                time.sleep(min(0.0005, max(0.0, until - time.perf_counter())))
                continue
            if message.type == "note_on" and message.velocity > 0:
                found.append(("note_on", (message.note, message.velocity)))
            elif message.type in ("note_on", "note_off"):
                found.append(("note_off", (message.note,)))
            elif message.type == "control_change" and message.control == self.handover_cc and message.value >= 64:
                found.append(("handover", ()))
        return found

    def close(self) -> None:
        self.port.close()


class PortOut:
    """A mido output port: each event a ``mido.Message`` on ``channel`` (0-based)."""

    def __init__(self, port, channel: int = 0) -> None:
        self.port, self.channel = port, channel

    def send(self, kind: str, pitch: int, velocity: int) -> None:
        import mido

        self.port.send(mido.Message(kind, note=pitch, velocity=velocity, channel=self.channel))

    def close(self) -> None:
        self.port.close()


def _rtmidi():
    """mido's rtmidi backend, or one line on why there are no MIDI ports here (ALSA itself would print to stderr)."""
    if sys.platform.startswith("linux") and not os.path.exists("/dev/snd/seq"):
        raise InputError("no ALSA sequencer on this machine (/dev/snd/seq): no MIDI ports; jam over OSC (--osc-in, --osc-out)")
    try:
        import rtmidi  # noqa: F401 - mido's default backend needs it
    except ImportError:
        raise UsageError(f"MIDI ports need python-rtmidi: {LIVE_HINT}") from None
    import mido

    return mido


def port_names() -> tuple[list[str], list[str]]:
    """The MIDI input and output ports of this machine."""
    mido = _rtmidi()
    try:
        return mido.get_input_names(), mido.get_output_names()
    except Exception as error:  # rtmidi's SystemError: no MIDI system after all
        raise InputError(f"cannot list MIDI ports: {error}") from None


def open_port(direction: str, name: str, virtual: bool = False):
    """The mido ``input``/``output`` port ``name`` (a new one others can connect to when ``virtual``)."""
    mido = _rtmidi()
    opener = mido.open_input if direction == "input" else mido.open_output
    try:
        return opener(name, virtual=virtual) if virtual else opener(name)
    except Exception as error:  # mido: OSError 'unknown port'; rtmidi: its own errors
        raise InputError(f"cannot open MIDI {direction} port {name!r}: {error} (mgf jam --list lists them)") from None
