"""``mgf serve``: the API through Starlette's TestClient, a real server on loopback, and the page in headless Chromium."""

import base64
import json
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from helpers.infill import infill_bundle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mgf
from mgf.plugins.commands import serve_app
from starlette.testclient import TestClient

NOTES = mgf.packaged_model("notes.safetensors")


@pytest.fixture(scope="module")
def client():
    return TestClient(serve_app.create_app({"mine": NOTES}))


def one_line_error(response, status):
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert "\n" not in response.text and set(response.json()) == {"error"} and response.json()["error"]
    return response.json()["error"]


def test_models_lists_the_shipped_ones_and_the_named_bundles(client):
    models = {m["name"]: m for m in client.get("/api/models").json()["models"]}
    assert {"notes", "midi", "mine"} <= set(models)
    assert models["notes"]["shipped"] and models["notes"].get("default") and not models["mine"]["shipped"]
    assert models["mine"]["repr"] == "notes"
    assert not any("/" in json.dumps(m) for m in models.values())  # no server path leaks out


def test_generate_answers_midi_by_default_the_same_for_the_same_seed(client):
    first = client.post("/api/generate", json={"repr": "notes", "steps": 128, "seed": 1})
    assert first.status_code == 200 and first.headers["content-type"] == "audio/midi"
    assert first.content[:4] == b"MThd" and first.headers["x-mgf-seed"] == "1"
    assert client.post("/api/generate", json={"model": "mine", "steps": 128, "seed": 1}).content == first.content
    assert client.post("/api/generate", json={"repr": "notes", "steps": 128, "seed": 2}).content != first.content


def test_a_representation_without_notes_answers_its_file_and_tokens(client):
    text = client.post("/api/generate", json={"repr": "tokens", "steps": 16, "seed": 1})
    assert text.status_code == 200 and text.headers["content-type"].startswith("text/plain")
    piece = client.post("/api/generate", json={"repr": "tokens", "steps": 16, "seed": 1, "format": "json"}).json()
    assert len(piece["tokens"]) == 16 and "notes" not in piece and base64.b64decode(piece["file"]["base64"]) == text.content
    assert "no notes" in one_line_error(client.post("/api/generate", json={"repr": "tokens", "format": "wav"}), 400)


def test_generate_answers_wav_and_json_by_format_or_accept(client):
    wav = client.post("/api/generate", json={"steps": 64, "seed": 3}, headers={"Accept": "audio/wav"})
    assert wav.headers["content-type"] == "audio/wav" and wav.content[:4] == b"RIFF" and len(wav.content) > 10_000
    piece = client.post("/api/generate", json={"steps": 64, "seed": 3, "format": "json", "temperature": 0.8}).json()
    model = mgf.load_model(NOTES)
    tokens = mgf.generate(model, 64, seed=3, temperature=0.8)
    assert piece["tokens"] == tokens.tolist() and piece["seed"] == 3
    assert [(n["pitch"], n["start"]) for n in piece["notes"]] == [(p, round(s, 6)) for p, _, s, _ in
                                                                    model.representation.to_notes(tokens)]
    assert base64.b64decode(piece["file"]["base64"])[:4] == b"MThd" and "wav" not in piece


def test_continues_an_uploaded_midi_file_as_json_base64_or_multipart(client, tmp_path):
    primer = client.post("/api/generate", json={"steps": 48, "seed": 4}).content
    (tmp_path / "call.mid").write_bytes(primer)
    expected = mgf.load_model(NOTES).representation.read(str(tmp_path / "call.mid")).tolist()
    as_json = client.post("/api/generate", json={"steps": 32, "seed": 5, "format": "json",
                                                 "primer_midi": base64.b64encode(primer).decode()}).json()
    as_form = client.post("/api/generate", data={"request": json.dumps({"steps": 32, "seed": 5, "format": "json"})},
                          files={"primer": ("call.mid", primer, "audio/midi")}).json()
    assert as_json["tokens"][:len(expected)] == expected and len(as_json["tokens"]) == len(expected) + 32
    assert as_form["tokens"] == as_json["tokens"]
    one_line_error(client.post("/api/generate", data={"request": "{}", "other": "x"}, files={"primer": ("a.mid", primer)}), 400)
    one_line_error(client.post("/api/generate", files={"request": ("request.json", b'{"steps": 8}')}), 400)  # a file, not a field


BAD = [
    ({"steps": 0}, "steps"), ({"steps": "128"}, "steps"), ({"steps": True}, "steps"), ({"steps": 10**9}, "limit"),
    ({"seed": -1}, "seed"), ({"seed": 1.5}, "seed"), ({"sampler": "nope"}, "sampler"), ({"sampler": 3}, "sampler"),
    ({"constraints": "motifs"}, "constraints"), ({"constraints": ["nope"]}, "constraint"),
    ({"temperature": -1}, "temperature"), ({"temperature": [1]}, "temperature"), ({"top_k": "many"}, "top_k"),
    ({"bogus": 1}, "bogus"), ({"format": "mp3"}, "format"), ({"model": "nope"}, "model"), ({"repr": "nope"}, "representation"),
    ({"model": "notes", "repr": "midi"}, "trained for"), ({"primer_midi": "not base64!"}, "primer_midi"),
    ({"primer_midi": base64.b64encode(b"not a midi file").decode()}, "MIDI"), ({"repr": "tokens", "format": "midi"}, "not MIDI"),
    ({"num_outputs": 64}, "num_outputs"), ({"progress": True}, "progress"), ({"primer": "C4 E4"}, "primer"),
]


@pytest.mark.parametrize("body,word", BAD, ids=[json.dumps(b)[:40] for b, _ in BAD])
def test_bad_requests_are_one_line_4xx(client, body, word):
    assert word.lower() in one_line_error(client.post("/api/generate", json=body), 400).lower()


def test_malformed_bodies_and_routes_are_one_line_4xx(client):
    one_line_error(client.post("/api/generate", content=b"{not json"), 400)
    one_line_error(client.post("/api/generate", content=b"[1, 2]"), 400)
    one_line_error(client.post("/api/generate", content=b"\xff\xfe"), 400)
    one_line_error(client.get("/api/generate"), 405)
    one_line_error(client.get("/etc/passwd"), 404)
    one_line_error(client.get("/../core/api.py"), 404)


@pytest.mark.parametrize("name", [NOTES, os.path.basename(NOTES), "../models/notes.safetensors", "file://" + NOTES])
def test_no_request_names_a_file_on_the_server(client, name):
    for body in ({"model": name}, {"repr": name}, {"bundle": name}, {"primer": name}):
        one_line_error(client.post("/api/generate", json=body), 400)


def jobs_running():
    return sorted(p.pid for p in multiprocessing.active_children() if p.name == "mgf-serve-job")


def test_limits_body_size_steps_and_job_time():
    small = TestClient(serve_app.create_app(max_body=2000, max_steps=256, timeout=0.001))
    assert "2000 bytes" in one_line_error(small.post("/api/generate", json={"primer_midi": "A" * 4000}), 413)
    assert "256" in one_line_error(small.post("/api/generate", json={"steps": 257}), 400)
    before = jobs_running()
    assert "longer than" in one_line_error(small.post("/api/generate", json={"steps": 256}), 504)
    assert jobs_running() == before  # the job's process is stopped, not left to finish


def test_mgf_max_steps_binds_the_server_too(client, monkeypatch):
    monkeypatch.setenv("MGF_MAX_STEPS", "100")
    assert "MGF_MAX_STEPS" in one_line_error(client.post("/api/generate", json={"steps": 101}), 400)


def test_a_token_guards_the_api_but_not_the_page():
    guarded = TestClient(serve_app.create_app(token="s3cret"))
    one_line_error(guarded.get("/api/models"), 401)
    one_line_error(guarded.post("/api/generate", json={}, headers={"Authorization": "Bearer wrong"}), 401)
    assert guarded.get("/api/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert guarded.post("/api/generate", json={"steps": 8}, headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert guarded.get("/").status_code == 200


def scratch_left():
    return sorted(n for n in os.listdir(serve_app.SCRATCH or "/tmp") if n.startswith("mgf-serve-"))


def jobs_left(folder):
    """The jobs' folders under the workers' scratch roots in ``folder`` (a test's own: other tests' servers run beside)."""
    return sorted(os.path.join(root, job) for root in os.listdir(folder) for job in os.listdir(os.path.join(folder, root)))


def test_a_job_stopped_midway_leaves_no_scratch_behind(tmp_path, monkeypatch):
    """A job past its time is killed inside its writing: its scratch folder (in memory, /dev/shm) goes with it."""
    monkeypatch.setattr(serve_app, "SCRATCH", str(tmp_path))
    worker = serve_app.Worker(({}, 100_000))
    job = ("generate", "notes", {"steps": 100_000, "seed": 1, "sampler": None, "constraints": []}, None, "file", False)
    calling = threading.Thread(target=worker.call, args=(job,), daemon=True)
    calling.start()
    deadline = time.monotonic() + 60
    while not jobs_left(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert jobs_left(tmp_path), "the job never made its scratch folder"
    time.sleep(0.5)  # well inside the job: 100,000 steps take seconds
    worker.stop()
    calling.join(10)
    assert os.listdir(tmp_path) == []  # the job's folder and the worker's root


def test_nothing_is_left_on_disk(tmp_path, monkeypatch):
    scratch, work = tmp_path / "scratch", tmp_path / "work"
    scratch.mkdir()
    work.mkdir()
    monkeypatch.setattr(serve_app, "SCRATCH", str(scratch))
    monkeypatch.chdir(work)
    client = TestClient(serve_app.create_app({"mine": NOTES}))
    primer = client.post("/api/generate", json={"steps": 32, "seed": 1}).content
    client.post("/api/generate", json={"steps": 32, "primer_midi": base64.b64encode(primer).decode(), "format": "json",
                                       "audio": True})
    client.post("/api/generate", json={"primer_midi": base64.b64encode(b"MThd junk").decode()})
    assert os.listdir(scratch) and jobs_left(scratch) == [] and os.listdir(work) == []  # roots only, empty


def test_the_page_and_its_assets_fetch_nothing_from_elsewhere(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for asset in ("/app.js", "/style.css"):
        assert client.get(asset).status_code == 200
    text = page.text + client.get("/app.js").text + client.get("/style.css").text
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text.replace("http://127.0.0.1", ""), re.IGNORECASE)


# --- a real server on loopback -----------------------------------------------------------------------------------

@pytest.fixture
def serve(tmp_path):
    """Start ``mgf serve --port 0 ARGS``; yields ``(url, process)`` and stops it."""
    started = []

    def start(*args):
        process = subprocess.Popen([sys.executable, "-m", "mgf.cli.main", "serve", "--port", "0", *args],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
        started.append(process)
        lines = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            lines.append(line)
            found = re.search(r"serving on (http://\S+)", line)
            if found:
                return found.group(1), process, lines
            if not line and process.poll() is not None:
                break
        raise AssertionError(f"mgf serve did not start: {lines}")

    yield start
    for process in started:
        process.send_signal(signal.SIGTERM)
        process.wait(10)


def post(url, body, timeout=30, path="/api/generate"):
    request = urllib.request.Request(url + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def test_the_command_serves_and_warns_on_a_public_address(serve):
    url, process, lines = serve("--host", "0.0.0.0")
    assert any("no authentication" in line for line in lines) and sum("warning" in line for line in lines) == 1
    status, headers, body = post(url.replace("0.0.0.0", "127.0.0.1"), {"steps": 32, "seed": 1})
    assert status == 200 and body[:4] == b"MThd"
    process.send_signal(signal.SIGTERM)
    assert process.wait(10) == 128 + signal.SIGTERM  # the documented exit code, after a graceful shutdown


def test_the_command_refuses_a_bad_bundle_in_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mgf.cli.main", "serve", "--bundle", str(tmp_path / "none.safetensors")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stderr.startswith("mgf: error:") and len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("missing", ["starlette", "websockets"])
def test_the_command_without_the_extra_says_how_to_install_it(tmp_path, missing):
    blocked = f"import sys; sys.modules[{missing!r}] = None; from mgf.cli.main import main; sys.exit(main(['serve']))"
    result = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2 and result.stderr == f"mgf: error: mgf serve needs {missing}: pip install 'mgf-music[serve]'\n"


def test_load_200_requests_from_16_clients_then_a_flood_gets_503(serve):
    url, _, _ = serve("--jobs", "2", "--queue", "16")
    with ThreadPoolExecutor(2) as pool:  # each job process starts with the first job it gets, and loads the model
        list(pool.map(lambda i: post(url, {"steps": 8, "seed": i}), range(4)))
    latencies, statuses = [], []

    def one(i):
        began = time.perf_counter()
        status, _, body = post(url, {"repr": "notes", "steps": 128, "seed": i})
        latencies.append(time.perf_counter() - began)
        statuses.append((status, body[:4]))

    began = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(200)))
    wall = time.perf_counter() - began
    assert statuses == [(200, b"MThd")] * 200
    p50, p99 = np.percentile(latencies, [50, 99]) * 1000
    print(f"\nserve load: 200 requests, 16 clients: p50 {p50:.1f} ms, p99 {p99:.1f} ms, {200 / wall:.0f} requests/s")

    flood_url, _, _ = serve("--jobs", "1", "--queue", "2")
    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(lambda i: post(flood_url, {"steps": 4096, "seed": i}), range(64)))
    refused = [headers for status, headers, _ in answers if status == 503]
    assert refused and all(headers["Retry-After"] == "1" for headers in refused)
    assert {status for status, _, _ in answers} == {200, 503}
    status, _, body = post(flood_url, {"steps": 32})
    assert status == 200 and body[:4] == b"MThd"


# --- the page in a real browser --------------------------------------------------------------------------------------

@pytest.fixture
def browser(tmp_path):
    """Debian's headless Chromium through Selenium (nothing downloaded at run time)."""
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        assert not os.environ.get("CI"), "CI must run the page test: .ci/run installs chromium and chromium-driver"
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; .ci/run does)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,1000",
                     "--autoplay-policy=no-user-gesture-required", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    driver.set_script_timeout(30)
    yield driver
    driver.quit()


#: records every message the page's sockets receive in ``window.received``, apart from the page's own code
RECORD_SOCKETS = """
    window.received = [];
    const Socket = window.WebSocket;
    window.WebSocket = class extends Socket {
        constructor(...args) { super(...args); this.addEventListener('message', (m) => window.received.push(JSON.parse(m.data))); }
    };"""


def open_page(browser, url):
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    browser.execute_script(RECORD_SOCKETS)
    wait = WebDriverWait(browser, 30)
    wait.until(lambda b: b.execute_script("return document.getElementById('model').value") == "notes")
    return wait


def test_the_page_streams_draws_the_notes_and_can_play_them(serve, browser):
    from selenium.webdriver.common.by import By

    url, _, _ = serve()
    wait = open_page(browser, url)
    browser.find_element(By.ID, "seed").send_keys("7")
    browser.find_element(By.ID, "steps").clear()
    browser.find_element(By.ID, "steps").send_keys("128")
    browser.find_element(By.ID, "generate").click()
    wait.until(lambda b: b.find_element(By.ID, "status").text.endswith("seed 7."))
    drawn = int(browser.find_element(By.ID, "roll").get_attribute("data-notes-drawn"))
    _, _, body = post(url, {"model": "notes", "steps": 128, "seed": 7, "format": "json"})
    assert drawn == len(json.loads(body)["notes"]) > 0
    assert browser.find_element(By.ID, "status").text.startswith(f"{drawn} notes")
    streamed = browser.execute_script("return window.received")  # the notes came over the socket first
    assert streamed[0]["type"] == "ready" and streamed[-1]["type"] == "end"
    assert sum(e["type"] == "note_on" for m in streamed if m.get("type") == "events" for e in m["events"]) == drawn
    ready = browser.execute_async_script("""
        const done = arguments[arguments.length - 1], audio = document.getElementById('audio');
        if (audio.readyState >= 3) { done([audio.readyState, audio.duration]); return; }
        audio.addEventListener('canplay', () => done([audio.readyState, audio.duration]));
        audio.addEventListener('error', () => done([-1, 0]));""")
    assert ready[0] >= 3 and ready[1] > 1
    assert browser.execute_script("return document.getElementById('download').href").startswith("blob:")


def test_the_page_jams_from_the_keyboard(serve, browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    url, _, _ = serve()
    wait = open_page(browser, url)
    browser.find_element(By.ID, "seed").send_keys("3")
    for field, value in (("qpm", "240"), ("pause", "0.5")):
        browser.find_element(By.ID, field).clear()
        browser.find_element(By.ID, field).send_keys(value)
    browser.find_element(By.ID, "jam-start").click()
    wait.until(lambda b: b.find_element(By.ID, "jam-status").text.startswith("Jamming"))
    roll = browser.find_element(By.ID, "roll")
    for call in range(1, 6):  # an answer may be silence: call again, a few times at most
        keys = ActionChains(browser)
        for key in "adgk":  # C4 E4 G4 C5
            keys.key_down(key).pause(0.1).key_up(key).pause(0.05)
        keys.perform()
        wait.until(lambda b, call=call: int(b.find_element(By.ID, "jam-status").get_attribute("data-answers")) >= call)
        if int(roll.get_attribute("data-answer-notes")) > 0:
            break
    received = browser.execute_script("return window.received")
    answered = [e for m in received if m.get("type") == "events" for e in m["events"]]
    assert int(roll.get_attribute("data-answer-notes")) == sum(e["type"] == "note_on" for e in answered) > 0
    assert int(roll.get_attribute("data-notes-drawn")) >= 4 * call + len(answered) // 2  # the player's notes too
    assert not [m for m in received if "error" in m]
    shot = str(tmp_path / "jam.png")
    assert browser.save_screenshot(shot)
    with open(shot, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    browser.find_element(By.ID, "jam-start").click()
    wait.until(lambda b: b.find_element(By.ID, "jam-status").text.startswith("Jam over"))
    assert browser.execute_script("return window.received")[-1]["type"] == "end"


def outside(notes, start, end):
    """The music of ``notes`` outside ``start``-``end`` seconds: the notes before it, cut at ``start``, and those after."""
    before = [(n["pitch"], n["velocity"], n["start"], min(n["end"], start)) for n in notes if n["start"] < start]
    return sorted(before) + sorted((n["pitch"], n["velocity"], n["start"], n["end"]) for n in notes if n["start"] >= end)


def test_the_page_fills_the_bars_dragged_over(serve, browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    url, _, _ = serve("--bundle", f"fill={infill_bundle(tmp_path / 'fill.safetensors')}")
    wait = open_page(browser, url)
    fill = browser.find_element(By.ID, "fill")
    assert not fill.is_enabled()
    Select(browser.find_element(By.ID, "model")).select_by_value("fill")
    browser.find_element(By.ID, "seed").send_keys("7")
    browser.find_element(By.ID, "generate").click()
    wait.until(lambda b: b.find_element(By.ID, "status").text.endswith("seed 7."))
    assert not fill.is_enabled() and "drag" in fill.get_attribute("title")
    roll = browser.find_element(By.ID, "roll")
    width = browser.execute_script("return arguments[0].getBoundingClientRect().width", roll)
    at = lambda seconds: round((seconds / 16 - 0.5) * width)  # noqa: E731 - 8 bars of 2 s; offsets from the roll's middle
    ActionChains(browser).move_to_element_with_offset(roll, at(5), 0).click_and_hold().move_to_element_with_offset(
        roll, at(7), 10).move_to_element_with_offset(roll, at(9), 20).release().perform()  # from bar 3 to bar 5
    assert roll.get_attribute("data-selection") == "3-5" and fill.is_enabled()
    fill.click()
    wait.until(lambda b: b.find_element(By.ID, "status").text.startswith("Filled bars 3–5"))
    drawn = browser.execute_script("return document.getElementById('roll').notes")
    _, _, made = post(url, {"model": "fill", "steps": 128, "seed": 7, "format": "json"})
    original = json.loads(made)
    _, _, answer = post(url, {"model": "fill", "tokens": original["tokens"], "bars": [3, 5], "seed": 7, "format": "json"},
                        path="/api/infill")
    filled = json.loads(answer)
    assert filled["filled"]["start"] == 4.0 and filled["filled"]["end"] == 10.0
    assert outside(drawn, 4.0, 10.0) == outside(original["notes"], 4.0, 10.0) and outside(drawn, 4.0, 10.0)
    inside = [n for n in drawn if 4.0 <= n["start"] < 10.0]
    assert inside == [n for n in filled["notes"] if 4.0 <= n["start"] < 10.0] and inside
    assert inside != [n for n in original["notes"] if 4.0 <= n["start"] < 10.0]
    assert int(roll.get_attribute("data-filled-notes")) == len(inside)
    link = browser.find_element(By.ID, "download")
    assert link.get_attribute("download") == "mgf-fill-7-filled-3-5.mid" and link.get_attribute("href").startswith("blob:")
    playable = browser.execute_async_script("""
        const done = arguments[arguments.length - 1], audio = document.getElementById('audio');
        if (audio.readyState >= 3) { done(audio.duration); return; }
        audio.addEventListener('canplay', () => done(audio.duration));
        audio.addEventListener('error', () => done(-1));""")
    assert playable > 1
    shot = os.environ.get("MGF_SERVE_SCREENSHOT") or str(tmp_path / "serve.png")  # docs/serve.png
    assert browser.save_screenshot(shot)
    (tmp_path / "filled.mid").write_bytes(base64.b64decode(filled["file"]["base64"]))
    browser.find_element(By.ID, "primer").send_keys(str(tmp_path / "filled.mid"))  # opened: drawn, its bars to fill
    wait.until(lambda b: b.find_element(By.ID, "status").text.startswith(f"{len(filled['notes'])} notes, 8 bars"))
    assert browser.execute_script("return document.getElementById('roll').notes") == filled["notes"]
    assert roll.get_attribute("data-selection") == "" and not fill.is_enabled()
    ActionChains(browser).move_to_element_with_offset(roll, at(1), 0).click().perform()  # bar 1 alone
    assert roll.get_attribute("data-selection") == "1-1" and fill.is_enabled()
    Select(browser.find_element(By.ID, "model")).select_by_value("midi")  # the shipped midi model only continues
    assert not fill.is_enabled() and "cannot infill" in fill.get_attribute("title")
    Select(browser.find_element(By.ID, "model")).select_by_value("notes")  # the shipped notes model fills (--infill)
    assert fill.is_enabled()


def test_the_page_ships_in_the_wheel():
    """``pip install .`` (not only an editable install) carries every file of the page: package-data names them."""
    import tomllib
    from pathlib import Path

    static = Path(serve_app.__file__).parent / "serve_static"
    patterns = tomllib.loads((Path(__file__).parents[3] / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert {p.name for p in static.iterdir()} == {name for name, _ in serve_app.ASSETS.values()}
    assert all(p.is_file() and p.match("serve_static/*") for p in static.iterdir())
    assert "serve_static/*" in patterns["mgf.plugins.commands"]


VALUES = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True), st.text(max_size=30),
                   st.lists(st.text(max_size=8), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from([*serve_app.FIELDS, "temperature", "top_k", "top_p", "key", "bundle", "path"])
                       | st.text(max_size=12), VALUES, max_size=6))
def test_fuzzed_requests_get_a_piece_or_a_one_line_4xx(fuzz_client, body):
    before = set(scratch_left())
    response = fuzz_client.post("/api/generate", content=json.dumps(body), headers={"Content-Type": "application/json"})
    if response.status_code != 200:
        assert 400 <= response.status_code < 500
        one_line_error(response, response.status_code)
    assert not set(scratch_left()) - before


@pytest.fixture(scope="module")
def fuzz_client():
    return TestClient(serve_app.create_app(max_steps=64))


def test_the_page_steers_a_conditioned_model_with_its_controls(serve, browser, tmp_path):
    """A model trained with --controls: the page offers its controls (the values its card declares), sends them, and
    the piece is the one the API writes with them; a chord it does not know is one line on the page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from helpers.controls import conditioned_bundle

    url, _, _ = serve("--bundle", f"steer={conditioned_bundle(tmp_path / 'steer.safetensors', scale=2.0)}")
    wait = open_page(browser, url)
    assert browser.find_element(By.ID, "steer").is_displayed()  # the shipped notes model takes chord, key, density
    Select(browser.find_element(By.ID, "model")).select_by_value("midi")
    assert not browser.find_element(By.ID, "steer").is_displayed()  # the shipped midi model takes none
    Select(browser.find_element(By.ID, "model")).select_by_value("steer")
    assert browser.find_element(By.ID, "steer").is_displayed()
    keys = [o.get_attribute("value") for o in Select(browser.find_element(By.ID, "control-key")).options]
    assert keys[0] == "" and "A minor" in keys and len(keys) == 25
    browser.find_element(By.ID, "control-chord").send_keys("Am F C G")
    Select(browser.find_element(By.ID, "control-key")).select_by_value("A minor")
    Select(browser.find_element(By.ID, "control-density")).select_by_value("4")
    browser.find_element(By.ID, "seed").send_keys("5")
    browser.find_element(By.ID, "generate").click()
    wait.until(lambda b: b.find_element(By.ID, "status").text.endswith("seed 5."))
    drawn = browser.execute_script("return document.getElementById('roll').notes")
    request = {"model": "steer", "steps": 128, "seed": 5, "format": "json", "chord": "Am F C G", "key": "A minor",
               "density": "4"}
    _, _, body = post(url, request)
    assert drawn == json.loads(body)["notes"] and drawn
    _, _, plain = post(url, {"model": "steer", "steps": 128, "seed": 5, "format": "json"})
    assert json.loads(plain)["notes"] != drawn  # the controls changed the piece
    browser.find_element(By.ID, "control-chord").clear()
    browser.find_element(By.ID, "control-chord").send_keys("Am Hm")
    browser.find_element(By.ID, "generate").click()
    wait.until(lambda b: "not a chord it knows" in b.find_element(By.ID, "status").text)
    status, _, answer = post(url, {**request, "chord": "Hm"})
    assert status == 400 and "not a chord it knows" in json.loads(answer)["error"]
