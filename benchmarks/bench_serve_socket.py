"""A jam over ``mgf serve``'s WebSocket: from the last note of a call to the first answer event received, on loopback.

Run: ``python benchmarks/bench_serve_socket.py [--calls 300] [--ends pause,handover]``.  It starts ``mgf serve --port 0`` (uvicorn with the
``websockets`` library) and jams with each shipped music model through a WebSocket client in this process.  Each
call is four short notes played 2 ms apart, each message sent as it is played with its ``time`` (this process's
clock, which the server maps to its own); the server's worker quantizes the call and, when the pause (10 ms) is
over, answers a beat at 120 qpm.  (A call is short so that a few hundred take seconds: what it holds changes little
of the compute, which ``bench_jam.py`` measures in-process with calls of four sixteenths.)
"after the pause" is the time from sending the call's last note-off to receiving the answer's first event, less
the pause: the part a player waits for beyond the silence that tells the model it is its turn, socket, server
process, pipe, worker and back included.  "handover" ends each call with ``{"type": "handover"}`` instead, which
answers at once: from sending it to the first event.  An answer that is silence (no event before its ``answer``
message) is counted and left out.
"""

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time

from websockets.sync.client import connect

QPM, PAUSE_BEATS = 120.0, 0.02  # a pause of 10 ms, as in bench_jam.py
GAP = 0.002  # seconds between two messages of a call


def serve() -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, "-m", "mgf.cli.main", "serve", "--port", "0", "--jobs", "1"],
                               stderr=subprocess.PIPE, text=True)
    for line in process.stderr:
        found = re.search(r"serving on http://(\S+)", line)
        if found:
            return process, f"ws://{found.group(1)}/api/stream"
    raise SystemExit("mgf serve did not start")


def first_event(ws) -> tuple[float | None, int]:
    """When the next answer's first event came (None: a silent answer), and its number of note-ons."""
    came, notes = None, 0
    while True:
        message = json.loads(ws.recv(timeout=10))
        if message.get("type") == "events":
            came = came or time.perf_counter()
            notes += sum(event["type"] == "note_on" for event in message["events"])
        elif message.get("type") == "answer":
            return came, notes
        elif "error" in message:
            raise SystemExit(f"the server said: {message['error']}")


def call(ws, number: int, handover: bool) -> float:
    """Play a call, in real time; the time its last message went."""
    for index, pitch in enumerate((60, 64, 67, 72 - number % 5)):
        if index:
            time.sleep(GAP)
        ws.send(json.dumps({"type": "note_on", "pitch": pitch, "velocity": 90, "time": time.perf_counter()}))
        time.sleep(GAP)
        sent = time.perf_counter()
        ws.send(json.dumps({"type": "note_off", "pitch": pitch, "time": sent}))
    if handover:
        sent = time.perf_counter()
        ws.send('{"type": "handover"}')
    return sent


def bench(url: str, model: str, calls: int, handover: bool) -> dict:
    latencies, silent = [], 0
    with connect(url, max_size=2**20) as ws:
        ws.send(json.dumps({"mode": "call-response", "model": model, "seed": 1, "qpm": QPM,
                            "pause_beats": 8 if handover else PAUSE_BEATS}))
        assert json.loads(ws.recv(timeout=30))["type"] == "ready"
        for number in range(calls + 10):  # the first 10 warm up
            sent = call(ws, number, handover)
            came, _ = first_event(ws)
            if came is None:
                silent += number >= 10
            elif number >= 10:
                latencies.append(came - sent - (0 if handover else PAUSE_BEATS * 60 / QPM))
        ws.send('{"type": "end"}')
        counts = json.loads(ws.recv(timeout=10))["counts"]
    cuts = statistics.quantiles(latencies, n=100)
    return {"model": model, "ends by": "handover" if handover else f"pause ({PAUSE_BEATS * 60 / QPM * 1e3:.0f} ms)",
            "calls": len(latencies), "silent": silent, "p50 ms": round(cuts[49] * 1e3, 2), "p99 ms": round(cuts[98] * 1e3, 2),
            "dropped": counts.get("dropped (flood)", 0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--models", default="notes,midi")
    parser.add_argument("--ends", default="pause,handover", help="how calls end: pause, handover or both")
    args = parser.parse_args()
    process, url = serve()
    try:
        print(f"load average at the start: {os.getloadavg()[0]:.2f}")
        for model in args.models.split(","):
            for ending in args.ends.split(","):
                print(bench(url, model, args.calls, ending == "handover"), flush=True)
        print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(10)


if __name__ == "__main__":
    main()
