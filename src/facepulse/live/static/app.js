// facepulse live page: sends downscaled camera frames to the server, shows its updates.
"use strict";

const SEND_WIDTH = 320;          // frames are downscaled to this width before sending
const JPEG_QUALITY = 0.9;
const MAX_IN_FLIGHT = 3;         // frames sent but not yet answered: beyond this, skip frames
const MAX_BUFFERED_BYTES = 1 << 20;
const HISTORY_MAX = 86400;       // session rows kept for download (a day at 1 update/s)
const HISTORY_PLOT_S = 300;
const SERVER_SILENT_MS = 5000;

const $ = (id) => document.getElementById(id);
const video = $("video"), preview = $("preview"), overlay = $("overlay"), grab = $("grab");

const state = {
  mode: null, ws: null, stream: null, seq: 0, acked: 0, lastAckAt: 0, skipped: 0,
  box: null, session: [], ackTimes: [], latencyMs: null, frameTimer: null, watchdog: null,
  usingRvfc: false, lastUpdate: null, startedAt: null,
};
window.facepulse = state; // for tests and benchmarks: state.session, state.latencyMs

function setStatus(text, level = "info") {
  const el = $("status");
  el.textContent = text;
  el.className = "status " + level;
}

function fmt(x, digits) { return x === null || x === undefined ? "--" : Number(x).toFixed(digits); }

// ------------------------------------------------------------------ connection

function wsUrl(path) {
  return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
}

function openSocket(path, onOpen) {
  const ws = new WebSocket(wsUrl(path));
  ws.binaryType = "arraybuffer";
  ws.onopen = () => { state.lastAckAt = performance.now(); if (onOpen) onOpen(); };
  ws.onmessage = (ev) => {
    let msg;
    try { msg = JSON.parse(ev.data); } catch (e) { return; }
    handleMessage(msg);
  };
  ws.onclose = (ev) => {
    if (state.ws !== ws) return;
    state.ws = null;
    if (state.mode) setStatus("Disconnected from the facepulse server" + (ev.reason ? ": " + ev.reason : "") + ". Press Start to reconnect.", "error");
    stop(false);
  };
  ws.onerror = () => setStatus("Cannot reach the facepulse server.", "error");
  state.ws = ws;
  return ws;
}

function handleMessage(msg) {
  switch (msg.type) {
    case "frame": onFrameAck(msg); break;
    case "update": onUpdate(msg); break;
    case "preview": onPreview(msg); break;
    case "ready":
      if (state.mode === "camera") {
        setStatus("Measuring: keep your face still and well lit. The first estimate comes after " + msg.window_s + " s.");
        startGrabbing();
      }
      break;
    case "status": if (msg.text) setStatus(msg.text, msg.level || "info"); break;
    case "error": setStatus(msg.text, "error"); break;
  }
}

// ------------------------------------------------------------------ camera mode

async function startCamera() {
  if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    setStatus("This page cannot use a camera: browsers allow it only on https:// or on localhost / 127.0.0.1.", "error");
    return;
  }
  stop(false);
  setStatus("Asking for the camera…");
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 30 } }, audio: false,
    });
  } catch (err) {
    setStatus("No camera: " + (err && err.name === "NotAllowedError" ? "permission denied." : (err && err.message) || err), "error");
    return;
  }
  state.mode = "camera";
  state.stream = stream;
  resetSession();
  for (const track of stream.getVideoTracks()) {
    track.onended = () => { setStatus("The camera stopped (unplugged or taken by another program).", "error"); stop(false); };
  }
  preview.hidden = true;
  video.hidden = false;
  video.srcObject = stream;
  try { await video.play(); } catch (e) { /* autoplay of a muted stream is allowed */ }
  $("source-label").textContent = "your camera: " + (stream.getVideoTracks()[0] || {}).label;
  openSocket("/ws/camera", () => setStatus("Starting the estimator…"));
  setButtons(true);
}

function startGrabbing() {
  state.startedAt = performance.now();
  if ("requestVideoFrameCallback" in HTMLVideoElement.prototype) {
    state.usingRvfc = true;
    const onVideoFrame = (now, meta) => {
      if (state.mode !== "camera") return;
      sendFrame(meta && meta.captureTime ? meta.captureTime : now);
      video.requestVideoFrameCallback(onVideoFrame);
    };
    video.requestVideoFrameCallback(onVideoFrame);
  } else {
    state.frameTimer = setInterval(() => sendFrame(performance.now()), 1000 / 30);
  }
  state.watchdog = setInterval(() => {
    if (state.mode === "camera" && state.seq > state.acked && performance.now() - state.lastAckAt > SERVER_SILENT_MS) {
      setStatus("The server is not answering (busy or stalled); frames are being skipped.", "warning");
    }
  }, 1000);
}

function sendFrame(captureMs) {
  const ws = state.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN || !video.videoWidth) return;
  if (state.seq - state.acked >= MAX_IN_FLIGHT || ws.bufferedAmount > MAX_BUFFERED_BYTES) {
    state.skipped++;
    return;
  }
  const w = SEND_WIDTH, h = Math.round(SEND_WIDTH * video.videoHeight / video.videoWidth / 2) * 2;
  if (grab.width !== w || grab.height !== h) { grab.width = w; grab.height = h; }
  const ctx = grab.getContext("2d", { alpha: false });
  ctx.drawImage(video, 0, 0, w, h);
  const seq = ++state.seq;
  if (seq === 1) state.firstCaptureMs = captureMs; // the server's t_s = 0
  grab.toBlob((blob) => {
    if (!blob || state.ws !== ws || ws.readyState !== WebSocket.OPEN) return;
    blob.arrayBuffer().then((buf) => {
      const msg = new Uint8Array(16 + buf.byteLength);
      const view = new DataView(msg.buffer);
      view.setFloat64(0, captureMs, true);
      view.setFloat64(8, seq, true);
      msg.set(new Uint8Array(buf), 16);
      ws.send(msg);
    });
  }, "image/jpeg", JPEG_QUALITY);
}

function onFrameAck(msg) {
  const now = performance.now();
  state.acked = Math.max(state.acked, msg.seq);
  state.lastAckAt = now;
  state.box = msg.box;
  state.ackTimes.push(now);
  while (state.ackTimes.length && now - state.ackTimes[0] > 2000) state.ackTimes.shift();
  if (msg.dropped !== undefined) $("dropped").textContent = msg.dropped + " (server) / " + state.skipped + " (page)";
  drawOverlay();
}

// ------------------------------------------------------------------ server source mode

function watchSource() {
  stop(false);
  state.mode = "source";
  resetSession();
  video.hidden = true;
  preview.hidden = false;
  openSocket("/ws/source", () => setStatus("Watching the server's source…"));
  setButtons(true);
}

function onPreview(msg) {
  preview.src = "data:image/jpeg;base64," + msg.jpeg;
  state.box = msg.box;
  const now = performance.now();
  state.ackTimes.push(now);
  while (state.ackTimes.length && now - state.ackTimes[0] > 2000) state.ackTimes.shift();
  drawOverlay();
}

// ------------------------------------------------------------------ updates

function onUpdate(msg) {
  state.lastUpdate = msg;
  if (msg.t_ms !== undefined) state.latencyMs = performance.now() - msg.t_ms;
  else if (msg.latency_ms !== undefined) state.latencyMs = msg.latency_ms;
  const row = {
    t_s: msg.t_s, hr_bpm: msg.hr_bpm, confidence: msg.confidence, snr_db: msg.snr_db, face: msg.face, status: msg.status,
    latency_ms: state.latencyMs === null ? null : Math.round(state.latencyMs * 10) / 10,
  };
  state.session.push(row);
  if (state.session.length > HISTORY_MAX) state.session.shift();
  const hrEl = $("hr");
  if (msg.hr_bpm !== null) {
    hrEl.textContent = fmt(msg.hr_bpm, 1);
    hrEl.dataset.hr = String(msg.hr_bpm);
    hrEl.dataset.t = String(msg.t_s);
    hrEl.classList.remove("stale");
    $("hr-note").textContent = "over the last " + fmt(msg.window_fill * 100, 0) + "% of the window";
  } else {
    hrEl.classList.add("stale");
    hrEl.dataset.hr = "";
    $("hr-note").textContent = msg.status === "no face" ? "no face: look at the camera" : "warming up: " + fmt(msg.window_fill * 100, 0) + "% of the window";
  }
  $("confidence").value = msg.confidence;
  $("confidence-text").textContent = fmt(msg.confidence, 2);
  $("snr").textContent = msg.snr_db === null ? "--" : fmt(msg.snr_db, 1) + " dB";
  $("face").textContent = msg.face ? "yes" : "no face";
  $("latency").textContent = state.latencyMs === null ? "--" : fmt(state.latencyMs, 0) + " ms";
  $("fps").textContent = fmt(Math.max(0, state.ackTimes.length - 1) / 2, 1);
  if (state.mode === "camera" && msg.status !== "ok") {
    setStatus(msg.status === "no face" ? "No face found: face the camera, in good light." : "Warming up…", msg.status === "no face" ? "warning" : "info");
  } else if (msg.status === "ok" && state.mode === "camera") {
    setStatus("Measuring.");
  }
  $("download-csv").disabled = $("download-json").disabled = state.session.length === 0;
  drawWave(msg.wave || []);
  drawHistory();
}

// ------------------------------------------------------------------ drawing

function drawOverlay() {
  const el = state.mode === "source" ? preview : video;
  const w = el.clientWidth, h = el.clientHeight;
  if (overlay.width !== w || overlay.height !== h) { overlay.width = w; overlay.height = h; }
  const ctx = overlay.getContext("2d");
  ctx.clearRect(0, 0, w, h);
  const b = state.box;
  if (!b) return;
  // The media is letterboxed inside the stage (object-fit: contain).
  const mw = el.videoWidth || el.naturalWidth || 4, mh = el.videoHeight || el.naturalHeight || 3;
  const scale = Math.min(w / mw, h / mh), ox = (w - mw * scale) / 2, oy = (h - mh * scale) / 2;
  ctx.strokeStyle = "#3ee07a";
  ctx.lineWidth = 2;
  ctx.strokeRect(ox + b[0] * mw * scale, oy + b[1] * mh * scale, (b[2] - b[0]) * mw * scale, (b[3] - b[1]) * mh * scale);
}

function drawWave(wave) {
  const c = $("wave"), ctx = c.getContext("2d");
  ctx.clearRect(0, 0, c.width, c.height);
  if (!wave.length) return;
  ctx.strokeStyle = "#c62846";
  ctx.lineWidth = 2;
  ctx.beginPath();
  let pen = false;
  wave.forEach((v, i) => {
    if (v === null) { pen = false; return; }
    const x = (i / Math.max(1, wave.length - 1)) * c.width;
    const y = c.height / 2 - Math.max(-3, Math.min(3, v)) * c.height / 7;
    if (pen) ctx.lineTo(x, y); else ctx.moveTo(x, y);
    pen = true;
  });
  ctx.stroke();
}

function drawHistory() {
  const c = $("history"), ctx = c.getContext("2d");
  ctx.clearRect(0, 0, c.width, c.height);
  const rows = state.session.filter((r) => r.hr_bpm !== null);
  if (!rows.length) return;
  const tEnd = state.session[state.session.length - 1].t_s, tStart = Math.max(0, tEnd - HISTORY_PLOT_S);
  const shown = rows.filter((r) => r.t_s >= tStart);
  if (!shown.length) return;
  let lo = Math.min(...shown.map((r) => r.hr_bpm)) - 5, hi = Math.max(...shown.map((r) => r.hr_bpm)) + 5;
  ctx.fillStyle = "#6b7385";
  ctx.font = "11px system-ui";
  ctx.fillText(hi.toFixed(0) + " bpm", 4, 12);
  ctx.fillText(lo.toFixed(0) + " bpm", 4, c.height - 4);
  const x = (t) => 50 + (t - tStart) / Math.max(1, tEnd - tStart) * (c.width - 60);
  const y = (v) => c.height - 8 - (v - lo) / (hi - lo) * (c.height - 20);
  for (const r of shown) {
    ctx.fillStyle = "rgba(29, 35, 48, " + (0.25 + 0.75 * r.confidence) + ")";
    ctx.fillRect(x(r.t_s) - 1.5, y(r.hr_bpm) - 1.5, 3, 3);
  }
}

// ------------------------------------------------------------------ session

function resetSession() {
  state.session = [];
  state.seq = state.acked = state.skipped = 0;
  state.box = null;
  state.ackTimes = [];
  state.latencyMs = null;
  $("hr").textContent = "--";
  $("hr").dataset.hr = "";
}

function stop(userAction = true) {
  const mode = state.mode;
  state.mode = null;
  if (state.frameTimer) clearInterval(state.frameTimer);
  if (state.watchdog) clearInterval(state.watchdog);
  state.frameTimer = state.watchdog = null;
  if (state.stream) { for (const t of state.stream.getTracks()) t.stop(); state.stream = null; }
  if (state.ws) { const ws = state.ws; state.ws = null; ws.close(); }
  if (userAction && mode) setStatus("Stopped. Download the session below, or start again.");
  setButtons(false);
}

function setButtons(running) {
  $("start-camera").disabled = running;
  $("watch-source").disabled = running;
  $("stop").disabled = !running;
}

function download(name, type, text) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([text], { type }));
  a.download = name;
  document.body.appendChild(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
}

function sessionCsv() {
  const cols = ["t_s", "hr_bpm", "confidence", "snr_db", "face", "status", "latency_ms"];
  const lines = [cols.join(",")];
  for (const r of state.session) lines.push(cols.map((k) => (r[k] === null ? "" : String(r[k]))).join(","));
  return lines.join("\n") + "\n";
}

$("start-camera").onclick = startCamera;
$("watch-source").onclick = watchSource;
$("stop").onclick = () => stop(true);
$("download-csv").onclick = () => download("facepulse-session.csv", "text/csv", sessionCsv());
$("download-json").onclick = () => download("facepulse-session.json", "application/json",
  JSON.stringify({ source: state.mode || "session", updates: state.session }, null, 1));

fetch("/api/config").then((r) => r.json()).then((cfg) => {
  state.config = cfg;
  if (cfg.source) {
    const b = $("watch-source");
    b.hidden = false;
    b.textContent = "Watch " + cfg.source;
  }
}).catch(() => setStatus("Cannot reach the facepulse server.", "error"));
