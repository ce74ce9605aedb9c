// The page of `mgf serve`. Generate: the notes stream in over the socket (api/stream), drawn on a canvas piano roll
// and played with WebAudio as they arrive; then POST /api/generate with the same seed gives the WAV for the <audio>
// element and the MIDI file to download. Jam: keys and Web MIDI input go to the socket, the model's answers come back
// with the times to play them, and are drawn and played. Fill: drag on the roll to select bars of the piece shown
// (generated, or a MIDI file read by POST /api/read), and POST /api/infill refills them with a model that can.
"use strict";
const $ = (id) => document.getElementById(id);
const KEYS = "awsedftgyhujk";  // one octave from C, as on a piano: the row A..K white, W E T Y U black
let urls = [];
let audio = null;  // the AudioContext, made at the first click or key: browsers allow sound only after one
let jam = null;  // the running jam: {ws, notes, model, player, began, ...}
let octave = 0;
const held = new Map();  // computer key -> the pitch it started
let cards = {};  // the models of GET /api/models, by name
let piece = null;  // the piece shown: the JSON of /api/generate, /api/read or /api/infill
let selection = null;  // bars {first, last} (from 1, both included), or {start, end} seconds where the piece has no bars
let drag = null;  // the time a drag on the roll began at

function headers() {
  const h = { "Content-Type": "application/json", Accept: "application/json" };
  if ($("token").value) h.Authorization = "Bearer " + $("token").value;
  return h;
}

function say(text, isError) {
  $("status").textContent = text;
  $("status").classList.toggle("error", !!isError);
}

function sayJam(text, isError) {
  $("jam-status").textContent = text;
  $("jam-status").classList.toggle("error", !!isError);
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
    cards = Object.fromEntries(models.map((m) => [m.name, m]));
    $("model").replaceChildren(...models.map((m) => new Option(`${m.name} (${m.repr})`, m.name, m.default, m.default)));
    $("steps").max = max_steps;
    updateFill();
    updateSteer();
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

// ---- sound: one oscillator a note, enough to hear what the model plays

function context() {
  if (!audio) audio = new AudioContext();
  if (audio.state === "suspended") audio.resume();
  return audio;
}

class Voices {
  // the notes sounding, by pitch: a note-off ends the earliest note-on of its pitch, as in a MIDI file
  constructor(wave) { this.wave = wave; this.open = new Map(); }

  on(pitch, velocity, when) {
    const ctx = context(), osc = ctx.createOscillator(), gain = ctx.createGain();
    const at = Math.max(when, ctx.currentTime), level = 0.03 + 0.12 * velocity / 127;
    osc.type = this.wave;
    osc.frequency.value = 440 * 2 ** ((pitch - 69) / 12);
    gain.gain.setValueAtTime(0, at);
    gain.gain.linearRampToValueAtTime(level, at + 0.01);
    gain.gain.setTargetAtTime(level * 0.5, at + 0.01, 0.4);
    osc.connect(gain).connect(ctx.destination);
    osc.start(at);
    if (!this.open.has(pitch)) this.open.set(pitch, []);
    this.open.get(pitch).push({ osc, gain, at });
  }

  off(pitch, when) {
    const voice = (this.open.get(pitch) || []).shift();
    if (!voice) return;
    const end = Math.max(when, voice.at + 0.02, context().currentTime);
    voice.gain.gain.setTargetAtTime(0, end, 0.03);
    voice.osc.stop(end + 0.25);
  }

  silence() {
    for (const [pitch, list] of this.open) while (list.length) this.off(pitch, 0);
  }
}

// ---- notes: note events paired into notes, and the piano roll

class Notes {
  constructor() { this.list = []; this.open = new Map(); }

  // an event at `time` seconds: a note-on opens a note, a note-off ends the earliest open one of its pitch
  event(time, type, pitch, velocity, player) {
    if (type === "note_on") {
      const note = { pitch, velocity, start: time, end: null, player: !!player };
      this.list.push(note);
      if (!this.open.has(pitch)) this.open.set(pitch, []);
      this.open.get(pitch).push(note);
    } else {
      const note = (this.open.get(pitch) || []).shift();
      if (note) note.end = Math.max(time, note.start);
    }
  }
}

// draw `notes` over `span` seconds at least; `marks`: the piece's bar lines (seconds), the bars selected and those
// filled last ([start, end] seconds), shaded, the filled notes in another colour
function drawRoll(notes, span, marks) {
  const canvas = $("roll"), g = canvas.getContext("2d"), { bars = [], selected = null, filled = null } = marks || {};
  g.clearRect(0, 0, canvas.width, canvas.height);
  let end = Math.max(1e-3, span || 0), low = 58, high = 74;
  for (const n of notes) {
    end = Math.max(end, n.end === null ? n.start : n.end);
    low = Math.min(low, n.pitch - 2);
    high = Math.max(high, n.pitch + 2);
  }
  const rowH = canvas.height / (high - low + 1), xScale = canvas.width / end;
  canvas.seconds = end;  // for the mouse: a pixel's time
  for (let p = low; p <= high; p++) {  // black-key rows shaded, C rows lined: the roll reads like a keyboard
    const y = canvas.height - (p - low + 1) * rowH;
    if ([1, 3, 6, 8, 10].includes(p % 12)) { g.fillStyle = "#f0f0f4"; g.fillRect(0, y, canvas.width, rowH); }
    if (p % 12 === 0) {
      g.fillStyle = "#ccc"; g.fillRect(0, y + rowH - 1, canvas.width, 1);
      g.fillStyle = "#888"; g.font = "11px sans-serif"; g.fillText("C" + (p / 12 - 1), 3, y + rowH - 3);
    }
  }
  const band = (range, color) => { g.fillStyle = color; g.fillRect(range[0] * xScale, 0, (range[1] - range[0]) * xScale, canvas.height); };
  if (filled) band(filled, "rgba(72, 187, 120, 0.14)");
  if (selected) band(selected, "rgba(43, 108, 176, 0.16)");
  bars.forEach((t, i) => {  // bar lines, numbered as a musician counts
    g.fillStyle = "#b8b8c8"; g.fillRect(Math.round(t * xScale), 0, 1, canvas.height);
    if (i < bars.length - 1) { g.fillStyle = "#777"; g.font = "10px sans-serif"; g.fillText(String(i + 1), t * xScale + 3, 11); }
  });
  let drawn = 0, answered = 0, fresh = 0;
  for (const n of notes) {
    const stop = n.end === null ? end : n.end, isNew = filled && n.start >= filled[0] && n.start < filled[1];
    const x = n.start * xScale, w = Math.max(2, (stop - n.start) * xScale - 1), y = canvas.height - (n.pitch - low + 1) * rowH;
    const light = 70 - n.velocity / 4;  // the model's: louder, darker
    g.fillStyle = n.player ? "hsl(28, 70%, 55%)" : isNew ? `hsl(145, 55%, ${light - 10}%)` : `hsl(212, 62%, ${light}%)`;
    g.fillRect(x, y + 1, w, Math.max(2, rowH - 2));
    drawn++;
    if (!n.player) answered++;
    if (isNew) fresh++;
  }
  canvas.notes = notes;  // what is drawn, for whoever scripts the page
  canvas.dataset.notesDrawn = String(drawn);
  canvas.dataset.answerNotes = String(answered);
  canvas.dataset.filledNotes = String(fresh);
}

// ---- the piece shown, and filling its bars

function selectedSeconds() {
  if (!selection || !piece) return null;
  return "first" in selection ? [piece.bars[selection.first - 1], piece.bars[selection.last]] : [selection.start, selection.end];
}

function drawPiece() {
  const filled = piece.filled ? [piece.filled.start, piece.filled.end] : null;
  drawRoll(piece.notes, piece.seconds, { bars: piece.bars, selected: selectedSeconds(), filled });
  $("roll").dataset.selection = !selection ? "" : "first" in selection ? `${selection.first}-${selection.last}` : `${selection.start}-${selection.end}`;
}

// the piece: drawn, heard in the <audio> element, offered for download
function showPiece(shown, name) {
  urls.forEach(URL.revokeObjectURL);
  urls = [];
  if (!shown.notes) throw new Error(`the ${shown.repr} model makes no notes to draw or play: pick a music model`);
  piece = shown;
  if (selection && "first" in selection && selection.last >= piece.bars.length) selection = null;  // past a new piece's end
  drawPiece();
  $("audio").src = blobUrl(piece.wav, "audio/wav");
  const link = $("download");
  link.href = blobUrl(piece.file.base64, piece.file.suffix === ".mid" ? "audio/midi" : "application/octet-stream");
  link.download = name + piece.file.suffix;
  link.textContent = piece.file.suffix === ".mid" ? "Download MIDI" : `Download ${piece.file.suffix}`;
  link.hidden = false;
  updateFill();
}

function updateFill() {
  const card = cards[$("model").value], button = $("fill");
  const why = !piece ? "generate a piece, or open a MIDI file, first"
    : !card || !card.infill ? `the model ${$("model").value} cannot infill: pick one that can`
      : !selection ? "drag on the roll to select bars" : "";
  button.disabled = !!why || button.dataset.busy === "1";
  button.title = why;
  $("selection").textContent = !selection ? (piece ? "Drag on the roll to select bars." : "")
    : "first" in selection ? `Bar${selection.first === selection.last ? ` ${selection.first}` : `s ${selection.first}–${selection.last}`} selected.`
      : `${selection.start.toFixed(2)}–${selection.end.toFixed(2)} s selected.`;
}

function timeAt(event) {
  const canvas = $("roll"), box = canvas.getBoundingClientRect();
  return Math.max(0, Math.min(1, (event.clientX - box.left) / box.width)) * (canvas.seconds || 0);
}

// the bar (from 1) a time falls in: bar k runs from bars[k - 1] up to bars[k]
function barAt(time) {
  let k = 1;
  while (k < piece.bars.length - 1 && time >= piece.bars[k]) k++;
  return k;
}

function select(from, to) {
  if (piece.bars.length > 1) {
    const a = barAt(Math.min(from, to)), b = barAt(Math.max(from, to));
    selection = { first: a, last: b };
  } else {  // no bars: the seconds dragged over, at least a tenth of one
    const start = Math.min(from, to), end = Math.max(Math.max(from, to), start + 0.1);
    selection = { start: Number(start.toFixed(3)), end: Number(Math.min(end, piece.seconds).toFixed(3)) };
    if (selection.end <= selection.start) selection = null;
  }
  drawPiece();
  updateFill();
}

async function fill() {
  const request = Object.assign(settings(), { format: "json", audio: true });
  if (piece.model === request.model) request.tokens = piece.tokens;
  else request.piece_midi = piece.file.base64;  // another model's piece: read by this one's representation
  if ("first" in selection) request.bars = [selection.first, selection.last];
  else request.seconds = [selection.start, selection.end];
  $("fill").dataset.busy = "1";
  updateFill();
  say("Filling…");
  try {
    const filled = await call("api/infill", { method: "POST", body: JSON.stringify(request) });
    const where = filled.filled.bars ? `bars ${filled.filled.bars.join("–")}` : `${filled.filled.seconds.join("–")} s`;
    showPiece(filled, `mgf-${filled.model}-${filled.seed}-filled-${where.replace(/[^0-9.]+/g, "-").replace(/^-|-$/g, "")}`);
    const fresh = Number($("roll").dataset.filledNotes);
    say(`Filled ${where}: ${fresh} new note${fresh === 1 ? "" : "s"}, seed ${filled.seed}.`);
  } catch (error) {
    say(error.message, true);
  } finally {
    $("fill").dataset.busy = "0";
    updateFill();
  }
}

async function openMidi() {
  const file = await primerBase64();
  if (!file) return;
  stopJam();
  say("Reading…");
  try {
    const read = await call("api/read", { method: "POST", body: JSON.stringify({ model: $("model").value, piece_midi: file, audio: true }) });
    selection = null;
    showPiece(read, $("primer").files[0].name.replace(/\.[^.]*$/, ""));
    say(`${read.notes.length} notes, ${read.bars.length ? read.bars.length - 1 + " bars" : read.seconds + " s"}: drag on the roll to select bars to fill, or generate to continue it.`);
  } catch (error) {
    say(error.message, true);
  }
}

// ---- the socket

function socketUrl() {
  const base = location.pathname.replace(/[^/]*$/, "");
  return (location.protocol === "https:" ? "wss:" : "ws:") + "//" + location.host + base + "api/stream";
}

// open the socket, send `first`; each message to onMessage, and the close (with the last error, if any) to onClose
function connect(first, onMessage, onClose) {
  const ws = new WebSocket(socketUrl());
  let error = null;
  ws.onopen = () => ws.send(JSON.stringify(first));
  ws.onmessage = (message) => {
    const body = JSON.parse(message.data);
    if (body.error) error = body.error;
    onMessage(body);
  };
  ws.onclose = (event) => onClose(error || (event.code === 1000 ? null : `the socket closed (${event.code})`));
  return ws;
}

// the controls of a model trained with `mgf train --controls` (its card lists them): the chord as a progression typed,
// the others chosen among the values it declares; left empty, a control is "any"
function updateSteer() {
  const card = cards[$("model").value], box = $("steer");
  for (const field of box.querySelectorAll("label")) field.remove();
  const controls = (card && card.controls) || [];
  box.hidden = controls.length === 0;
  for (const control of controls) {
    const label = document.createElement("label");
    let field;
    if (control.name === "chord") {
      field = document.createElement("input");
      field.placeholder = "Am F C G";
      field.title = `one chord per bar, repeating: ${control.values.join(" ")}`;
    } else {
      field = document.createElement("select");
      for (const value of ["", ...control.values]) field.add(new Option(value || "any", value));
    }
    field.id = `control-${control.name}`;
    field.dataset.control = control.name;
    label.append(`${control.name[0].toUpperCase()}${control.name.slice(1)} `, field);
    box.append(label);
  }
}

function settings() {
  const request = { model: $("model").value };
  for (const field of $("steer").querySelectorAll("[data-control]")) {
    if (field.value.trim() !== "") request[field.dataset.control] = field.value.trim();
  }
  if ($("sampler").value) request.sampler = $("sampler").value;
  if ($("temperature").value !== "" && $("sampler").value !== "greedy") request.temperature = Number($("temperature").value);
  if ($("seed").value !== "") request.seed = Number($("seed").value);
  return request;
}

function withToken(first) {
  if ($("token").value) first.token = $("token").value;
  return first;
}

// stream a piece: draw its notes as they arrive and play them (when "Play as it comes" is on); resolves to its seed
function streamPiece(request) {
  return new Promise((resolve, reject) => {
    const notes = new Notes(), voices = new Voices("triangle"), live = $("live").checked;
    let start = 0, seed = null, drawing = false;
    const draw = () => { drawing = false; drawRoll(notes.list); };
    connect(withToken(Object.assign({}, request)), (body) => {
      if (body.type === "ready") {
        seed = body.seed;
        if (live) start = context().currentTime + 0.2;
      } else if (body.type === "events") {
        for (const e of body.events) {
          notes.event(e.time, e.type, e.pitch, e.velocity);
          if (!live) continue;
          if (e.type === "note_on") voices.on(e.pitch, e.velocity, start + e.time);
          else voices.off(e.pitch, start + e.time);
        }
        if (!drawing) { drawing = true; requestAnimationFrame(draw); }
        say(`Streaming… ${notes.list.length} notes`);
      } else if (body.type === "end") {
        seed = seed === null ? request.seed : seed;
      }
    }, (error) => (error ? reject(new Error(error)) : resolve(seed)));
  });
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
  stopJam();
  $("generate").disabled = true;
  piece = null;  // the roll shows the stream now
  updateFill();
  say("Generating…");
  const request = Object.assign(settings(), { steps: Number($("steps").value) });
  try {
    const primer = await primerBase64();
    if (primer) request.primer_midi = primer;
    if (request.sampler !== "beam") request.seed = await streamPiece(request);  // a beam search cannot stream
    const made = await call("api/generate", { method: "POST", body: JSON.stringify(Object.assign(request, { format: "json", audio: true })) });
    selection = null;
    showPiece(made, `mgf-${made.model}-${made.seed}`);
    say(`${made.notes.length} notes, ${made.tokens.length} tokens, seed ${made.seed}.`);
  } catch (error) {
    say(error.message, true);
  } finally {
    $("generate").disabled = false;
  }
}

// ---- the jam

function now() { return performance.now() / 1000; }  // the clock of the times sent, and of the answers' times

function startJam(event) {
  event.preventDefault();
  if (jam) { stopJam(); return; }
  const mode = $("jam-mode").value, beats = Number($("pause").value);
  const first = Object.assign(settings(), { mode, qpm: Number($("qpm").value) });
  first[mode === "call-response" ? "pause_beats" : "window_beats"] = beats;
  context();
  const state = { notes: new Notes(), model: new Voices("triangle"), player: new Voices("sine"), began: now(), ready: false, answers: 0 };
  state.ws = connect(withToken(first), (body) => onJam(state, body), (error) => onJamClosed(state, error));
  state.timer = setInterval(() => drawRoll(state.notes.list, now() - state.began), 100);
  jam = state;
  piece = null;  // the roll shows the jam now
  updateFill();
  $("jam-start").textContent = "Stop jam";
  $("jam-handover").disabled = false;
  sayJam("Connecting…");
  listenToMidi();
}

function onJam(state, body) {
  if (body.type === "ready") {
    state.ready = true;
    sayJam(`Jamming with ${body.model} (${$("jam-mode").value}): play${$("jam-mode").value === "call-response" ? ", then pause" : ""}.`);
  } else if (body.type === "events") {
    const ctx = context();
    for (const e of body.events) {
      const when = ctx.currentTime + Math.max(0, e.time - now());
      if (e.type === "note_on") state.model.on(e.pitch, e.velocity, when);
      else state.model.off(e.pitch, when);
      state.notes.event(e.time - state.began, e.type, e.pitch, e.velocity);
    }
    drawRoll(state.notes.list, now() - state.began);
  } else if (body.type === "answer") {
    state.answers++;
    $("jam-status").dataset.answers = String(state.answers);
    sayJam(`${state.answers} answer${state.answers === 1 ? "" : "s"}; play again.`);
  } else if (body.error && state.ready) {
    sayJam(body.error, true);
  }
}

function onJamClosed(state, error) {
  clearInterval(state.timer);
  state.model.silence();
  state.player.silence();
  if (jam === state) jam = null;
  $("jam-start").textContent = "Start jam";
  $("jam-handover").disabled = true;
  sayJam(error ? error : `Jam over: ${state.answers} answer${state.answers === 1 ? "" : "s"}.`, !!error);
}

function stopJam() {
  if (!jam) return;
  if (jam.ws.readyState === WebSocket.OPEN) jam.ws.send(JSON.stringify({ type: "end" }));
  else jam.ws.close();
}

function send(state, message) {
  if (state.ready && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(message));
}

function play(pitch, velocity) {
  if (!jam || !jam.ready) return;
  const time = now();
  send(jam, { type: "note_on", pitch, velocity, time });
  jam.player.on(pitch, velocity, context().currentTime);
  jam.notes.event(time - jam.began, "note_on", pitch, velocity, true);
}

function release(pitch) {
  if (!jam || !jam.ready) return;
  const time = now();
  send(jam, { type: "note_off", pitch, time });
  jam.player.off(pitch, context().currentTime);
  jam.notes.event(time - jam.began, "note_off", pitch, 0, true);
}

function typing(event) {
  return event.ctrlKey || event.metaKey || event.altKey || ["INPUT", "SELECT", "TEXTAREA"].includes(event.target.tagName);
}

document.addEventListener("keydown", (event) => {
  if (!jam || event.repeat || typing(event)) return;
  const key = event.key.toLowerCase(), index = KEYS.indexOf(key);
  if (key === "z" || key === "x") { octave = Math.max(-3, Math.min(3, octave + (key === "x" ? 1 : -1))); return; }
  if (index < 0 || held.has(key)) return;
  event.preventDefault();
  const pitch = 60 + 12 * octave + index;
  held.set(key, pitch);
  play(pitch, 90);
});

document.addEventListener("keyup", (event) => {
  const key = event.key.toLowerCase();
  if (!held.has(key)) return;
  release(held.get(key));
  held.delete(key);
});

function listenToMidi() {  // Web MIDI where the browser has it; the jam goes on without
  if (!navigator.requestMIDIAccess) return;
  navigator.requestMIDIAccess().then((access) => {
    for (const input of access.inputs.values()) {
      input.onmidimessage = (message) => {
        const [status, pitch, velocity] = message.data, kind = status & 0xf0;
        if (kind === 0x90 && velocity > 0) play(pitch, velocity);
        else if (kind === 0x80 || kind === 0x90) release(pitch);
      };
    }
  }, () => {});
}

$("controls").addEventListener("submit", generate);
$("fill").addEventListener("click", fill);
$("model").addEventListener("change", updateFill);
$("model").addEventListener("change", updateSteer);
$("primer").addEventListener("change", openMidi);
$("roll").addEventListener("mousedown", (event) => {
  if (!piece || jam) return;
  drag = timeAt(event);
  select(drag, drag);
});
$("roll").addEventListener("mousemove", (event) => { if (drag !== null) select(drag, timeAt(event)); });
document.addEventListener("mouseup", (event) => {
  if (drag === null) return;
  select(drag, timeAt(event));
  drag = null;
});
$("jam-controls").addEventListener("submit", startJam);
$("jam-handover").addEventListener("click", () => { if (jam) send(jam, { type: "handover" }); });
loadModels();
