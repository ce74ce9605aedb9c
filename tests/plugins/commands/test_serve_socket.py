"""``mgf serve``'s WebSocket ``/api/stream`` through Starlette's TestClient: streamed events, a jam, and its bounds."""

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mgf
from mgf.plugins.commands import serve_app, serve_socket
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

NOTES, MIDI = mgf.packaged_model("notes.safetensors"), mgf.packaged_model("midi.safetensors")


@pytest.fixture(scope="module")
def client():
    with TestClient(serve_app.create_app(workers=1, idle=20)) as client:  # one worker, started once, for every session
        yield client


def talk(ws, until_end=True):
    """The messages the server sends until it closes: ``(messages, close code)``."""
    messages = []
    while True:
        try:
            messages.append(ws.receive_json())
        except WebSocketDisconnect as closed:
            return messages, closed.code
        if not until_end and messages[-1].get("type") != "ready":
            return messages, None


def answer(ws):
    """The messages of the next answer of a jam, up to its ``answer`` message."""
    messages = [ws.receive_json()]
    while messages[-1].get("type") != "answer":
        messages.append(ws.receive_json())
    return messages


def one_line(message):
    assert set(message) == {"error"} and message["error"] and "\n" not in message["error"]
    return message["error"]


def events_of(messages):
    return [(e["time"], e["type"], e["pitch"], e["velocity"]) for m in messages if m.get("type") == "events" for e in m["events"]]


def decoded(representation, tokens, primer=()):
    """The events of ``tokens`` after ``primer``, by the representation's own decoder (what a client of the stream gets)."""
    decoder = representation.decoder()
    for token in primer:
        decoder.feed(token)
    events = [event for token in tokens for event in decoder.feed(token)] + decoder.close()
    return [(round(e.seconds, 6), e.kind, e.pitch, e.velocity) for e in events]


@pytest.mark.parametrize("bundle,name,options", [(NOTES, "notes", {}), (MIDI, "midi", {"temperature": 0.9})])
def test_a_stream_sends_the_events_of_the_tokens_generate_gives(client, bundle, name, options):
    with client.websocket_connect("/api/stream") as ws:
        ws.send_json({"model": name, "steps": 96, "seed": 11, **options})
        messages, code = talk(ws)
    assert code == 1000 and messages[0] == {"type": "ready", "mode": "stream", "model": name, "repr": name, "seed": 11}
    assert messages[-1] == {"type": "end", "counts": {}}
    model = mgf.load_model(bundle)
    expected = decoded(model.representation, mgf.generate(model, 96, seed=11, **options).tolist())
    assert events_of(messages) == expected and len(expected) > 10


def test_a_client_that_leaves_midway_leaves_the_worker_clean_for_the_next(client):
    for _ in range(3):
        with client.websocket_connect("/api/stream") as ws:
            ws.send_json({"steps": 4096, "seed": 1})
            assert ws.receive_json()["type"] == "ready"  # and gone, while the worker streams
    with client.websocket_connect("/api/stream") as ws:  # the same worker (there is one): nothing of those is left in its pipe
        ws.send_json({"steps": 64, "seed": 2})
        messages, code = talk(ws)
    model = mgf.load_model(NOTES)
    assert code == 1000 and events_of(messages) == decoded(model.representation, mgf.generate(model, 64, seed=2).tolist())


def test_a_stream_continues_an_uploaded_midi_file(client, tmp_path):
    primer = client.post("/api/generate", json={"steps": 32, "seed": 4}).content
    (tmp_path / "call.mid").write_bytes(primer)
    model = mgf.load_model(NOTES)
    tokens = model.representation.read(str(tmp_path / "call.mid"))
    with client.websocket_connect("/api/stream") as ws:
        ws.send_json({"steps": 40, "seed": 5, "primer_midi": base64.b64encode(primer).decode()})
        messages, code = talk(ws)
    whole = mgf.generate(model, 40, primer=tokens, seed=5).tolist()
    assert code == 1000 and events_of(messages) == decoded(model.representation, whole[len(tokens):], whole[:len(tokens)])


def play_call(ws, pitches, clock, gap=0.05):
    """Play ``pitches`` one after another, ``gap`` seconds each, with times of ``clock``; the time of the last message."""
    for pitch in pitches:
        ws.send_json({"type": "note_on", "pitch": pitch, "velocity": 90, "time": clock()})
        time.sleep(gap)
        ended = clock()
        ws.send_json({"type": "note_off", "pitch": pitch, "time": ended})
    return ended


@pytest.mark.parametrize("name", ["notes", "midi"])
def test_a_call_gets_an_answer_after_the_pause_in_the_clients_clock(client, name):
    def clock():  # a client's clock, far from the server's
        return time.perf_counter() + 5000.0

    with client.websocket_connect("/api/stream") as ws:
        ws.send_json({"mode": "call-response", "model": name, "seed": 3, "qpm": 240, "pause_beats": 1})
        assert ws.receive_json()["type"] == "ready"
        last = play_call(ws, [60, 64, 67, 72], clock, gap=0.1)
        first = ws.receive_json()
        arrived = clock()
        answered = [first, *answer(ws)] if first["type"] != "answer" else [first]
        ws.send_json({"type": "end"})
        messages, code = talk(ws)
    events = events_of(answered)
    assert first["type"] == "events" and events and events[0][1] == "note_on"
    assert 0.25 <= arrived - last < 1.0  # a beat at 240 qpm is 0.25 s: the pause, then the answer
    assert last + 0.2 < events[0][0] <= arrived  # when to play it, in the client's clock: now
    assert abs(answered[-1]["time"] - events[0][0]) < 0.01 and answered[-1]["seconds"] == 0.5  # as long as the call: 0.4 s, 2 beats
    assert all(0 <= pitch <= 127 for _, _, pitch, _ in events)
    assert code == 1000 and messages[-1]["type"] == "end" and messages[-1]["counts"]["calls answered"] == 1


def test_a_handover_answers_at_once_and_accompany_plays_along(client):
    with client.websocket_connect("/api/stream") as ws:
        ws.send_json({"mode": "call-response", "seed": 1, "qpm": 120, "pause_beats": 8})
        ws.receive_json()
        play_call(ws, [60, 62], time.perf_counter, gap=0.02)
        began = time.perf_counter()
        ws.send_json({"type": "handover"})
        answer(ws)
        assert time.perf_counter() - began < 1.0  # well before 8 beats (4 s)
        ws.send_json({"type": "end"})
        assert talk(ws)[0][-1]["counts"]["handovers"] == 1
    with client.websocket_connect("/api/stream") as ws:
        ws.send_json({"mode": "accompany", "seed": 1, "qpm": 480, "window_beats": 1})
        ws.receive_json()
        assert answer(ws)[-1]["seconds"] == 0.125  # it plays a window without being called
        ws.send_json({"type": "end"})
        assert talk(ws)[1] == 1000


BAD_MESSAGES = [
    "not json", "[1]", "{}", '{"type": "note_on"}', '{"type": "note_on", "pitch": 128}', '{"type": "note_on", "pitch": 60.0}',
    '{"type": "note_on", "pitch": true}', '{"type": "note_on", "pitch": 60, "velocity": 300}',
    '{"type": "note_off", "pitch": 60, "time": "now"}', '{"type": "note_off", "pitch": 60, "time": 1e300}',
    '{"type": "note_on", "pitch": 60, "path": "/etc/passwd"}', '{"type": "jump"}', '{"type": ["note_on"]}',
    "x" * (serve_socket.MAX_MESSAGE + 1),
]


def test_bad_messages_get_a_one_line_error_are_counted_and_the_jam_goes_on(client):
    with client.websocket_connect("/api/stream") as ws:
        ws.send_json({"mode": "call-response", "seed": 2, "qpm": 240})
        ws.receive_json()
        for text in BAD_MESSAGES:
            ws.send_text(text)
            one_line(ws.receive_json())
        ws.send_bytes(b'{"type": "handover"}')
        assert "binary" in one_line(ws.receive_json())
        play_call(ws, [60], time.perf_counter)
        ws.send_json({"type": "handover"})
        answer(ws)
        ws.send_json({"type": "end"})
        messages, code = talk(ws)
    assert code == 1000 and messages[-1]["counts"]["bad messages"] == len(BAD_MESSAGES) + 1


def test_a_flood_is_dropped_and_counted_and_the_jam_still_answers(client):
    with client.websocket_connect("/api/stream") as ws:
        ws.send_json({"mode": "call-response", "seed": 2, "qpm": 240})
        ws.receive_json()
        began = time.perf_counter()
        for _ in range(3000):
            ws.send_json({"type": "note_off", "pitch": 1})
        flooded = time.perf_counter() - began
        time.sleep(0.3)  # the bucket fills again
        play_call(ws, [60], time.perf_counter)
        ws.send_json({"type": "handover"})
        answer(ws)
        ws.send_json({"type": "end"})
        messages, code = talk(ws)
    counts = messages[-1]["counts"]
    passed = serve_socket.jam_engine.FLOOD_BURST + serve_socket.jam_engine.FLOOD_RATE * flooded
    assert code == 1000 and 3000 - passed <= counts["dropped (flood)"] <= 3000 and counts["calls answered"] == 1


def closed_with(client, first, code, word, path="/api/stream"):
    with client.websocket_connect(path) as ws:
        ws.send_text(first if isinstance(first, str) else json.dumps(first))
        messages, closed = talk(ws)
    assert closed == code and len(messages) == 1, messages
    assert word.lower() in one_line(messages[0]).lower()


BAD_FIRST = [
    ("{not json", "JSON"), ("[1, 2]", "object"), ({"steps": 10**6}, "limit"), ({"steps": 0}, "steps"), ({"model": "nope"}, "model"),
    ({"model": NOTES}, "model"), ({"mode": "karaoke"}, "mode"), ({"qpm": 120}, "jam"), ({"mode": "call-response", "steps": 9}, "steps"),
    ({"mode": "call-response", "qpm": -1}, "qpm"), ({"mode": "accompany", "pause_beats": 1}, "apply"), ({"format": "wav"}, "format"),
    ({"num_outputs": 4}, "num_outputs"), ({"primer_midi": "!!"}, "primer_midi"), ({"sampler": "nope"}, "sampler"),
    ({"sampler": "beam"}, "stream"), ({"temperature": -1}, "temperature"), ({"mode": "call-response", "qpm": 5000}, "qpm"),
]


@pytest.mark.parametrize("first,word", BAD_FIRST, ids=[str(f)[:40] for f, _ in BAD_FIRST])
def test_bad_settings_close_with_a_policy_code_after_a_one_line_error(client, first, word):
    closed_with(client, first, 1008, word)


def test_an_oversize_first_message_and_a_busy_server_close_with_their_codes():
    with TestClient(serve_app.create_app(workers=1, queue=0, max_body=2000)) as small:
        closed_with(small, {"primer_midi": "A" * 4000}, 1009, "2000 bytes")
        with small.websocket_connect("/api/stream") as jam:
            jam.send_json({"mode": "call-response"})
            assert jam.receive_json()["type"] == "ready"
            closed_with(small, {"steps": 8}, 1013, "busy")  # the only worker is the jam's
            jam.send_json({"type": "end"})
            assert talk(jam)[1] == 1000
        with small.websocket_connect("/api/stream") as again:  # the worker is free again
            again.send_json({"steps": 8})
            assert talk(again)[1] == 1000


def test_a_stream_past_the_job_timeout_is_stopped_and_a_quiet_jam_ends():
    with TestClient(serve_app.create_app(workers=1, timeout=0.3, max_steps=100_000)) as slow:
        with slow.websocket_connect("/api/stream") as ws:
            ws.send_json({"steps": 100_000, "seed": 1})
            messages, code = talk(ws)
        assert code == 1011 and "longer than" in one_line(messages[-1])
    with TestClient(serve_app.create_app(workers=1, idle=0.3)) as quiet:
        with quiet.websocket_connect("/api/stream") as ws:
            ws.send_json({"mode": "call-response"})
            messages, code = talk(ws)
        assert code == 1000 and [m["type"] for m in messages if "type" in m] == ["ready", "end"]
        assert "no message for 0.3 s" in one_line(next(m for m in messages if "error" in m))


def test_a_token_is_needed_in_the_first_message_the_query_or_a_header():
    with TestClient(serve_app.create_app(workers=1, token="s3cret")) as guarded:
        closed_with(guarded, {"steps": 8}, 1008, "token")
        closed_with(guarded, {"steps": 8, "token": "wrong"}, 1008, "token")
        closed_with(guarded, {"steps": 8}, 1008, "token", "/api/stream?token=wrong")
        for path, first, headers in (("/api/stream", {"token": "s3cret"}, {}), ("/api/stream?token=s3cret", {}, {}),
                                     ("/api/stream", {}, {"Authorization": "Bearer s3cret"})):
            with guarded.websocket_connect(path, headers=headers) as ws:
                ws.send_json({"steps": 8, **first})
                assert talk(ws)[1] == 1000


def test_the_command_serves_the_socket_through_uvicorn(tmp_path):
    """A real ``mgf serve`` on loopback (uvicorn with the ``websockets`` library of the serve extra) and a real client."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    process = subprocess.Popen([sys.executable, "-m", "mgf.cli.main", "serve", "--port", "0", "--jobs", "1"],
                               stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        found = None
        while found is None and (line := process.stderr.readline()):
            found = re.search(r"serving on http://(\S+)", line)
        assert found, "mgf serve did not start"
        url = f"ws://{found.group(1)}/api/stream"
        with connect(url, max_size=2**22) as ws:
            ws.send(json.dumps({"steps": 64, "seed": 9}))
            messages = []
            with pytest.raises(ConnectionClosed):
                while True:
                    messages.append(json.loads(ws.recv(timeout=30)))
            assert ws.close_code == 1000 and messages[-1]["type"] == "end"
        model = mgf.load_model(NOTES)
        assert events_of(messages) == decoded(model.representation, mgf.generate(model, 64, seed=9).tolist())
        with connect(url, max_size=2**22) as ws:  # past the bound of a first message, refused before it is all read
            ws.send(json.dumps({"primer_midi": "A" * 2_000_000}))
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=30)
            assert ws.close_code == 1009
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(10)


def scratch_left():
    return sorted(n for n in os.listdir(serve_app.SCRATCH or "/tmp") if n.startswith("mgf-serve-"))


@pytest.fixture(scope="module")
def fuzz_client():
    with TestClient(serve_app.create_app(workers=1, max_steps=64)) as client:
        yield client


VALUES = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True), st.text(max_size=20),
                   st.lists(st.integers(0, 200), max_size=3))
SETTINGS = st.dictionaries(st.sampled_from([*serve_app.FIELDS, "mode", "token", "temperature", "qpm", "pause_beats", "path"])
                           | st.text(max_size=8), VALUES, max_size=5)
JAMS = st.builds(lambda mode, qpm: {"mode": mode, "qpm": qpm}, st.sampled_from(serve_socket.jam_engine.MODES), st.integers(30, 960))
PLAYED = st.one_of(st.sampled_from(["note_on", "note_off", "handover", "end"]), st.integers(0, 127), VALUES)
MESSAGES = st.one_of(st.dictionaries(st.sampled_from(["type", "pitch", "velocity", "time", "x"]), PLAYED, max_size=4).map(json.dumps),
                     st.text(max_size=30))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=st.one_of(SETTINGS, JAMS), later=st.lists(MESSAGES, max_size=8))
def test_fuzzed_messages_get_events_or_one_line_errors_and_write_nothing(fuzz_client, tmp_path, monkeypatch, first, later):
    monkeypatch.chdir(tmp_path)
    before = set(scratch_left())
    with fuzz_client.websocket_connect("/api/stream") as ws:
        ws.send_text(json.dumps(first))
        ready = ws.receive_json()
        if "error" in ready:
            one_line(ready)
            return
        if ready["mode"] != "stream":  # a stream ends by itself, and may have ended
            for text in later:
                ws.send_text(text)
            ws.send_text('{"type": "end"}')
        messages, code = talk(ws)
    assert code in (1000, 1008), messages
    for message in messages:
        assert message.get("type") in ("events", "end") or one_line(message)
    assert not set(scratch_left()) - before and os.listdir(tmp_path) == []
