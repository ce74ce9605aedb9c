"""``POST /api/infill`` of ``mgf serve``: a piece with bars refilled by a model that can infill, the rest as it was.

The reference is :func:`mgf.infill_piece` run here on the same tokens, and the piece the server wrote read back
with the representation; the model is one of random weights over ``notes`` and ``midi``, as ``mgf train
--infill`` shapes one.
"""

import base64
import json
import os
import threading
import time

import pytest
from helpers.infill import infill_bundle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mgf
from mgf.plugins.commands import serve_app
from starlette.testclient import TestClient


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bundles")
    return {"fill": infill_bundle(folder / "fill.safetensors"),
            "fill-midi": infill_bundle(folder / "fill-midi.safetensors", "midi", seed=1)}


@pytest.fixture(scope="module")
def client(bundles):
    with TestClient(serve_app.create_app({name: str(path) for name, path in bundles.items()}, max_steps=1024)) as client:
        yield client


@pytest.fixture(scope="module")
def piece(client):
    """A piece of 8 bars of ``notes`` (2 s each) that the infilling model generated, as JSON."""
    return client.post("/api/generate", json={"model": "fill", "steps": 128, "seed": 1, "format": "json"}).json()


def one_line_error(response, status):
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert "\n" not in response.text and set(response.json()) == {"error"} and response.json()["error"]
    return response.json()["error"]


def outside(notes, start, end):
    """The music of ``notes`` outside ``start``-``end`` seconds: the notes before it, cut at ``start``, and those after."""
    before = [(n["pitch"], n["velocity"], n["start"], min(n["end"], start)) for n in notes if n["start"] < start]
    return sorted(before) + sorted((n["pitch"], n["velocity"], n["start"], n["end"]) for n in notes if n["start"] >= end)


def scratch_left():
    return sorted(n for n in os.listdir(serve_app.SCRATCH or "/tmp") if n.startswith("mgf-serve-"))


def test_models_say_which_can_infill(client):
    models = {m["name"]: m["infill"] for m in client.get("/api/models").json()["models"]}
    assert models["fill"] and models["fill-midi"] and models["notes"] and not models["midi"]  # shipped notes: --infill


def test_the_notes_outside_the_bars_are_the_originals_and_the_tokens_infill_pieces(client, piece, bundles):
    filled = client.post("/api/infill", json={"model": "fill", "tokens": piece["tokens"], "bars": [3, 5], "seed": 2,
                                              "format": "json"}).json()
    assert filled["filled"] == {"bars": [3, 5], "start": 4.0, "end": 10.0} and filled["seed"] == 2
    assert outside(filled["notes"], 4.0, 10.0) == outside(piece["notes"], 4.0, 10.0)
    inside = [n for n in filled["notes"] if 4.0 <= n["start"] < 10.0]
    assert inside and inside != [n for n in piece["notes"] if 4.0 <= n["start"] < 10.0]
    assert filled["seconds"] == piece["seconds"] == 16.0 and filled["bars"] == piece["bars"] == [2.0 * b for b in range(9)]
    model = mgf.load_model(str(bundles["fill"]))
    expected = mgf.infill_piece(model, piece["tokens"], bars=(3, 5), seed=2, max_tokens=1024)
    assert filled["tokens"] == expected.tolist()
    midi = base64.b64decode(filled["file"]["base64"])
    assert midi == client.post("/api/infill", json={"model": "fill", "tokens": piece["tokens"], "bars": [3, 5], "seed": 2}).content


@pytest.mark.parametrize("name", ["fill", "fill-midi"])
def test_a_midi_file_in_base64_or_uploaded_is_filled_and_written_back_as_read(client, name, tmp_path):
    original = client.post("/api/generate", json={"model": name, "steps": 256, "seed": 3, "format": "json"}).json()
    midi = base64.b64decode(original["file"]["base64"])
    request = {"model": name, "seconds": [1.0, 2.5], "seed": 4, "format": "json"}
    as_json = client.post("/api/infill", json={**request, "piece_midi": original["file"]["base64"]}).json()
    as_form = client.post("/api/infill", data={"request": json.dumps(request)}, files={"piece": ("p.mid", midi, "audio/midi")})
    assert as_form.json()["tokens"] == as_json["tokens"] and as_json["filled"]["seconds"] == [1.0, 2.5]
    start, end = as_json["filled"]["start"], as_json["filled"]["end"]  # the gap's tokens: no earlier than asked
    assert 1.0 <= start < end and end >= 2.5
    (tmp_path / "piece.mid").write_bytes(midi)  # what the representation reads of the file, the reference
    written = tmp_path / "filled.mid"
    written.write_bytes(base64.b64decode(as_json["file"]["base64"]))
    representation = mgf.get_representation(original["repr"], **({"dynamics": "none"} if name == "fill-midi" else {}))
    notes = [{"pitch": p, "velocity": v, "start": round(s, 6), "end": round(e, 6)} for p, v, s, e in
             representation.to_notes(representation.read(str(written)))]
    before = [{"pitch": p, "velocity": v, "start": round(s, 6), "end": round(e, 6)} for p, v, s, e in
              representation.to_notes(representation.read(str(tmp_path / "piece.mid")))]
    assert outside(notes, start, end) == outside(before, start, end) and outside(before, start, end)
    assert outside(as_json["notes"], start, end) == outside(before, start, end)


def test_the_answer_is_midi_wav_or_json_as_generate_answers(client, piece):
    request = {"model": "fill", "tokens": piece["tokens"], "bars": [2, 2], "seed": 5}
    midi = client.post("/api/infill", json=request)
    assert midi.headers["content-type"] == "audio/midi" and midi.content[:4] == b"MThd" and midi.headers["x-mgf-seed"] == "5"
    wav = client.post("/api/infill", json=request, headers={"Accept": "audio/wav"})
    assert wav.headers["content-type"] == "audio/wav" and wav.content[:4] == b"RIFF"
    with_audio = client.post("/api/infill", json={**request, "format": "json", "audio": True}).json()
    assert base64.b64decode(with_audio["wav"])[:4] == b"RIFF" and base64.b64decode(with_audio["file"]["base64"]) == midi.content


def test_read_answers_a_midi_file_as_the_representation_reads_it(client, bundles, tmp_path):
    midi = client.post("/api/generate", json={"model": "fill-midi", "steps": 200, "seed": 6}).content
    (tmp_path / "p.mid").write_bytes(midi)
    expected = mgf.load_model(str(bundles["fill-midi"])).representation.read(str(tmp_path / "p.mid")).tolist()
    read = client.post("/api/read", json={"model": "fill-midi", "piece_midi": base64.b64encode(midi).decode()}).json()
    assert read["tokens"] == expected and read["notes"] and read["bars"][:2] == [0.0, 2.0] and "wav" not in read
    uploaded = client.post("/api/read", data={"request": json.dumps({"model": "fill-midi", "audio": True})},
                           files={"piece": ("p.mid", midi)}).json()
    assert uploaded["tokens"] == expected and base64.b64decode(uploaded["wav"])[:4] == b"RIFF"
    assert "not a field" in one_line_error(client.post("/api/read", json={"model": "fill", "tokens": [1, 2]}), 400)
    assert "not a field" in one_line_error(client.post("/api/read", json={"piece_midi": "TVRoZA==", "seed": 1}), 400)
    assert "piece once" in one_line_error(client.post("/api/read", json={}), 400)
    one_line_error(client.post("/api/read", json={"repr": "tokens", "piece_midi": base64.b64encode(midi).decode()}), 400)


BAD = [
    ({"model": "midi"}, "cannot infill"), ({"model": "nope"}, "no model"), ({"bars": [2, 9]}, "past the piece"),
    ({"bars": [3, 2]}, "first no later"), ({"bars": [0, 2]}, "from 1"), ({"bars": [1]}, "bars must be"),
    ({"bars": "1-2"}, "bars must be"), ({"bars": [1.5, 2]}, "whole numbers"), ({"bars": [True, 2]}, "bars must be"),
    ({"seconds": [2, 1]}, "seconds"), ({"seconds": [1, 99]}, "past the piece"), ({"seconds": [-1, 1]}, "seconds"),
    ({"seconds": [1, 2], "bars": [1, 2]}, "one of them"), ({"bars": None}, "one of them"), ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": 2000}, "limit"), ({"steps": 64}, "not a request field"), ({"primer_midi": "TVRoZA=="}, "not a request"),
    ({"piece_midi": "TVRoZA=="}, "piece once"), ({"tokens": []}, "tokens must"), ({"tokens": [1, "2"]}, "tokens must"),
    ({"tokens": [1, 999]}, "not a token"), ({"tokens": [1, 39]}, "not a token"), ({"tokens": [1, -1]}, "not a token"),
    ({"seed": -1}, "seed"), ({"sampler": "nope"}, "sampler"), ({"temperature": "hot"}, "temperature"),
    ({"constraints": ["nope"]}, "constraint"), ({"format": "mp3"}, "format"), ({"num_outputs": 2}, "not a request field"),
    ({"model": "fill", "repr": "midi"}, "trained for"),
]


@pytest.mark.parametrize("change,word", BAD, ids=[json.dumps(c)[:40] for c, _ in BAD])
def test_bad_requests_are_one_line_4xx(client, piece, change, word):
    body = {"model": "fill", "tokens": piece["tokens"], "bars": [2, 3], "seed": 1, **change}
    if "seconds" in change and "bars" not in change:
        del body["bars"]
    body = {k: v for k, v in body.items() if v is not None}
    assert word.lower() in one_line_error(client.post("/api/infill", json=body), 400).lower()


def test_bad_pieces_are_one_line_4xx(client, piece):
    request = {"model": "fill", "bars": [1, 1]}
    assert "piece once" in one_line_error(client.post("/api/infill", json=request), 400)
    assert "piece_midi" in one_line_error(client.post("/api/infill", json={**request, "piece_midi": "not base64!"}), 400)
    junk = base64.b64encode(b"MThd junk").decode()
    one_line_error(client.post("/api/infill", json={**request, "piece_midi": junk}), 400)
    form = client.post("/api/infill", data={"request": json.dumps({**request, "tokens": piece["tokens"]})},
                       files={"piece": ("p.mid", b"MThd")})
    assert "piece once" in one_line_error(form, 400)
    one_line_error(client.post("/api/infill", data={"request": "{}"}, files={"primer": ("p.mid", b"MThd")}), 400)
    one_line_error(client.get("/api/infill"), 405)


def test_limits_body_size_time_and_jobs(bundles, piece):
    small = TestClient(serve_app.create_app({"fill": str(bundles["fill"])}, max_body=2000, timeout=0.001, max_steps=64))
    body = {"model": "fill", "tokens": piece["tokens"], "bars": [2, 3]}
    assert "2000 bytes" in one_line_error(small.post("/api/infill", json={**body, "tokens": piece["tokens"] * 10}), 413)
    assert "64" in one_line_error(small.post("/api/infill", json={**body, "max_tokens": 65}), 400)
    assert "longer than" in one_line_error(small.post("/api/infill", json=body), 504)


def test_a_full_server_answers_503(bundles, piece):
    app = serve_app.create_app({"fill": str(bundles["fill"])}, workers=1, queue=0, max_steps=100_000)
    with TestClient(app) as busy:  # one event loop for both requests
        before = set(scratch_left())
        long = threading.Thread(target=busy.post, args=("/api/generate",), kwargs={"json": {"steps": 100_000}}, daemon=True)
        long.start()
        deadline = time.monotonic() + 30
        while not set(scratch_left()) - before and time.monotonic() < deadline:  # its worker is lent: the job admitted
            time.sleep(0.01)
        answer = busy.post("/api/infill", json={"model": "fill", "tokens": piece["tokens"], "bars": [2, 3]})
        assert long.is_alive() and "busy" in one_line_error(answer, 503) and answer.headers["retry-after"] == "1"
        long.join(60)


def test_mgf_max_steps_binds_an_infill_too(client, piece, monkeypatch):
    monkeypatch.setenv("MGF_MAX_STEPS", "100")
    body = {"model": "fill", "tokens": piece["tokens"], "bars": [2, 3], "format": "json"}
    assert "MGF_MAX_STEPS" in one_line_error(client.post("/api/infill", json={**body, "max_tokens": 101}), 400)
    assert client.post("/api/infill", json=body).status_code == 200  # the default bound is the lower one


VALUES = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True), st.text(max_size=30),
                   st.lists(st.one_of(st.integers(-3, 40), st.floats(-1, 20), st.text(max_size=3)), max_size=3),
                   st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from([*serve_app.INFILL_FIELDS, "steps", "temperature", "top_k", "primer_midi", "path"])
                       | st.text(max_size=12), VALUES, max_size=5))
def test_fuzzed_requests_get_a_piece_or_a_one_line_4xx_and_leave_nothing(client, piece, tmp_path, monkeypatch, change):
    monkeypatch.chdir(tmp_path)
    before = set(scratch_left())
    body = {"model": "fill", "tokens": piece["tokens"][:64], "bars": [2, 3], **change}
    response = client.post("/api/infill", content=json.dumps(body), headers={"Content-Type": "application/json"})
    if response.status_code != 200:
        assert 400 <= response.status_code < 500
        one_line_error(response, response.status_code)
    assert not set(scratch_left()) - before and os.listdir(tmp_path) == []
