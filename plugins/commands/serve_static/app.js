// The page of `mgf serve`: asks POST /api/generate for JSON (tokens, timed notes, the MIDI file and a WAV),
// draws the notes on a canvas piano roll, plays the WAV in an <audio> element and offers the MIDI for download.
"use strict";
const $ = (id) => document.getElementById(id);
let urls = [];

function headers() {
  const h = { "Content-Type": "application/json", Accept: "application/json" };
  if ($("token").value) h.Authorization = "Bearer " + $("token").value;
  return h;
}

function say(text, isError) {
  $("status").textContent = text;
  $("status").classList.toggle("error", !!isError);
}

async function call(path, options) {
  const response = await fetch(path, Object.assign({ headers: headers() }, options));
  const body = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

async function loadModels() {
  try {
    const { models, max_steps } = await call("api/models");
    $("model").replaceChildren(...models.map((m) => new Option(`${m.name} (${m.repr})`, m.name, m.default, m.default)));
    $("steps").max = max_steps;
  } catch (error) {
    say("Could not list models: " + error.message, true);
  }
}

function blobUrl(base64, type) {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  const url = URL.createObjectURL(new Blob([bytes], { type }));
  urls.push(url);
  return url;
}

function drawRoll(notes) {
  const canvas = $("roll"), g = canvas.getContext("2d");
  g.clearRect(0, 0, canvas.width, canvas.height);
  const end = Math.max(1e-3, ...notes.map((n) => n.end));
  const low = Math.min(...notes.map((n) => n.pitch), 60) - 2, high = Math.max(...notes.map((n) => n.pitch), 72) + 2;
  const rowH = canvas.height / (high - low + 1), xScale = canvas.width / end;
  for (let p = low; p <= high; p++) {  // black-key rows shaded, C rows lined: the roll reads like a keyboard
    const y = canvas.height - (p - low + 1) * rowH;
    if ([1, 3, 6, 8, 10].includes(p % 12)) { g.fillStyle = "#f0f0f4"; g.fillRect(0, y, canvas.width, rowH); }
    if (p % 12 === 0) {
      g.fillStyle = "#ccc"; g.fillRect(0, y + rowH - 1, canvas.width, 1);
      g.fillStyle = "#888"; g.font = "11px sans-serif"; g.fillText("C" + (p / 12 - 1), 3, y + rowH - 3);
    }
  }
  let drawn = 0;
  for (const n of notes) {
    const x = n.start * xScale, w = Math.max(2, (n.end - n.start) * xScale - 1), y = canvas.height - (n.pitch - low + 1) * rowH;
    g.fillStyle = `hsl(212, 62%, ${70 - n.velocity / 4}%)`;  // louder: darker
    g.fillRect(x, y + 1, w, Math.max(2, rowH - 2));
    drawn++;
  }
  canvas.dataset.notesDrawn = String(drawn);
}

async function primerBase64() {
  const file = $("primer").files[0];
  if (!file) return undefined;
  const bytes = new Uint8Array(await file.arrayBuffer());
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

async function generate(event) {
  event.preventDefault();
  $("generate").disabled = true;
  say("Generating…");
  const request = { model: $("model").value, steps: Number($("steps").value), format: "json", audio: true };
  if ($("sampler").value) request.sampler = $("sampler").value;
  if ($("temperature").value !== "" && $("sampler").value !== "greedy") request.temperature = Number($("temperature").value);
  if ($("seed").value !== "") request.seed = Number($("seed").value);
  try {
    const primer = await primerBase64();
    if (primer) request.primer_midi = primer;
    const piece = await call("api/generate", { method: "POST", body: JSON.stringify(request) });
    urls.forEach(URL.revokeObjectURL);
    urls = [];
    if (!piece.notes) throw new Error(`the ${piece.repr} model makes no notes to draw or play: pick a music model`);
    drawRoll(piece.notes);
    $("audio").src = blobUrl(piece.wav, "audio/wav");
    const link = $("download");
    link.href = blobUrl(piece.file.base64, piece.file.suffix === ".mid" ? "audio/midi" : "application/octet-stream");
    link.download = `mgf-${piece.model}-${piece.seed}${piece.file.suffix}`;
    link.textContent = piece.file.suffix === ".mid" ? "Download MIDI" : `Download ${piece.file.suffix}`;
    link.hidden = false;
    say(`${piece.notes.length} notes, ${piece.tokens.length} tokens, seed ${piece.seed}.`);
  } catch (error) {
    say(error.message, true);
  } finally {
    $("generate").disabled = false;
  }
}

$("controls").addEventListener("submit", generate);
loadModels();
