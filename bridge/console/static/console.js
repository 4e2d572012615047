// The Crossband dispatch console page: state from /ws, commands to it. No build step.
// Every string shown comes from /static/i18n.json (en, fr, es) through t().
"use strict";

const CSRF = document.querySelector('meta[name="csrf"]').content;
let TABLE = {};
let lang = "en";
let state = null;
let ws = null;
let wsOpen = false;
let selected = null;  // the channel push-to-talk (space bar) talks on
let ref = 0;
const cards = new Map();

function t(key, params) {
  const s = (TABLE[lang] && TABLE[lang][key]) || (TABLE.en && TABLE.en[key]);
  if (s === undefined) {
    console.error("missing translation", key);
    return "⟦" + key + "⟧";
  }
  return s.replace(/\{(\w+)\}/g, (_, k) => (params && k in params ? String(params[k]) : ""));
}

function translateStatic(root) {
  root.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
}

function setLang(code) {
  lang = TABLE[code] ? code : "en";
  document.documentElement.lang = lang;
  try { localStorage.setItem("crossband.lang", lang); } catch (e) { /* private mode */ }
  document.getElementById("lang").value = lang;
  for (const opt of document.getElementById("lang").options) {
    opt.textContent = TABLE[opt.value]["lang.name"];
  }
  translateStatic(document);
  document.title = t("app.title");
  render();
}

function send(cmd) {
  if (!ws || !wsOpen) return false;
  cmd.ref = ++ref;
  ws.send(JSON.stringify(cmd));
  return true;
}

function who(device, roster) {
  const m = (roster || []).find((r) => r.device === device);
  const alias = m && m.alias ? m.alias : device;
  return alias + " (" + device.split("/")[0] + ")";
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function card(ch) {
  let c = cards.get(ch.channel);
  if (c) return c;
  const node = document.getElementById("channel-template").content.firstElementChild.cloneNode(true);
  const id = "ch-" + cards.size;
  node.id = id;
  node.dataset.channel = ch.channel;
  node.querySelector(".ch-title").id = id + "-title";
  node.setAttribute("aria-labelledby", id + "-title");
  const input = node.querySelector(".msg-input");
  input.id = id + "-msg";
  node.querySelector(".msg-label").htmlFor = input.id;
  const radio = node.querySelector(".ch-select");
  radio.addEventListener("change", () => { if (radio.checked) selected = ch.channel; });
  node.querySelector(".send-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (text && send({ t: "send", channel: ch.channel, text: text })) input.value = "";
  });
  node.querySelector(".em-raise").addEventListener("click", () =>
    send({ t: "emergency", channel: ch.channel, active: true }));
  node.querySelector(".em-clear").addEventListener("click", () =>
    send({ t: "emergency", channel: ch.channel, active: false }));
  const devSel = node.querySelector(".add-device"), roleSel = node.querySelector(".add-role");
  devSel.id = id + "-add-device";
  roleSel.id = id + "-add-role";
  node.querySelector(".add-label").htmlFor = devSel.id;
  node.querySelector(".add-role-label").htmlFor = roleSel.id;
  devSel.addEventListener("change", () => {
    const inc = state && state.incident;
    const d = inc && inc.directory.find((x) => x.device === devSel.value);
    const roles = d ? allowedRoles(inc, inc.channels[ch.channel], d) : [];
    roleSel.replaceChildren(...roleSelect(roles, "").children);
  });
  node.querySelector(".add-btn").addEventListener("click", () =>
    send({ t: "add", channel: ch.channel, device: devSel.value, role: roleSel.value }));
  node.querySelector(".end-btn").addEventListener("click", () => send({ t: "end", channel: ch.channel }));
  const mute = node.querySelector(".mute");
  mute.addEventListener("change", () => {
    send({ t: "listen", channel: ch.channel, on: !mute.checked });
    volumeChanged(ch.channel);
  });
  node.querySelector(".volume").addEventListener("input", () => volumeChanged(ch.channel));
  const ptt = node.querySelector(".ptt");
  const press = (e) => { e.preventDefault(); pttDown(ch.channel); };
  const release = (e) => { e.preventDefault(); pttUp(ch.channel); };
  ptt.addEventListener("pointerdown", press);
  ptt.addEventListener("pointerup", release);
  ptt.addEventListener("pointerleave", release);
  ptt.addEventListener("keydown", (e) => { if ((e.key === " " || e.key === "Enter") && !e.repeat) press(e); });
  ptt.addEventListener("keyup", (e) => { if (e.key === " " || e.key === "Enter") release(e); });
  translateStatic(node);
  document.getElementById("channels").appendChild(node);
  c = { node };
  cards.set(ch.channel, c);
  if (selected === null) { selected = ch.channel; radio.checked = true; }
  return c;
}

// The microphone: getUserMedia -> AudioWorklet (16 kHz) -> 20 ms frames of 16-bit PCM, sent
// as WebSocket binary messages only while push-to-talk is held.
const RATE = 16000, FRAME = 320;
let mic = null;  // {ctx, pending: Int16Array, fill}
let audioCtx = null;
function context() {
  if (!audioCtx) audioCtx = new AudioContext({ sampleRate: RATE });
  if (audioCtx.state === "suspended") audioCtx.resume();
  return audioCtx;
}
async function startMic() {
  if (mic) { await mic.ctx.resume(); return; }
  if (!navigator.mediaDevices || !window.AudioWorkletNode) return;
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false, channelCount: 1 },
  });
  const ctx = context();
  await ctx.audioWorklet.addModule("/static/mic-worklet.js");
  const node = new AudioWorkletNode(ctx, "mic-tap");
  mic = { ctx: ctx, pending: new Int16Array(FRAME), fill: 0 };
  node.port.onmessage = (e) => micSamples(e.data);
  ctx.createMediaStreamSource(stream).connect(node);
}
function micSamples(samples) {
  if (talking.size === 0 || !ws || !wsOpen) { mic.fill = 0; return; }
  for (let i = 0; i < samples.length; i++) {
    const v = Math.max(-1, Math.min(1, samples[i]));
    mic.pending[mic.fill++] = v < 0 ? v * 0x8000 : v * 0x7fff;
    if (mic.fill === FRAME) { ws.send(mic.pending.buffer.slice(0)); mic.fill = 0; }
  }
}

// Listening: 20 ms frames of each channel's playout (name-prefixed, see bridge/console/audio.py),
// scheduled back to back through the channel's gain (volume, mute).
const gains = new Map(), nextAt = new Map();
window.crossbandHeard = {};  // per channel: samples heard (kept only if crossbandRecord is set)
function gainOf(channel) {
  let g = gains.get(channel);
  if (!g) {
    g = context().createGain();
    g.connect(context().destination);
    gains.set(channel, g);
    volumeChanged(channel);
  }
  return g;
}
function volumeChanged(channel) {
  const c = cards.get(channel), g = gains.get(channel);
  if (!c || !g) return;
  const muted = c.node.querySelector(".mute").checked;
  g.gain.value = muted ? 0 : Number(c.node.querySelector(".volume").value) / 100;
}
function playFrame(buf) {
  const n = new DataView(buf).getUint16(0);
  const channel = new TextDecoder().decode(new Uint8Array(buf, 2, n));
  const pcm = new Int16Array(buf.slice(2 + n));
  if (window.crossbandRecord) (window.crossbandHeard[channel] ||= []).push(...pcm);
  const ctx = context();
  const b = ctx.createBuffer(1, pcm.length, RATE);
  const f = b.getChannelData(0);
  for (let i = 0; i < pcm.length; i++) f[i] = pcm[i] / 32768;
  const src = ctx.createBufferSource();
  src.buffer = b;
  src.connect(gainOf(channel));
  const at = Math.max(nextAt.get(channel) || 0, ctx.currentTime + 0.04);
  src.start(at);
  nextAt.set(channel, at + pcm.length / RATE);
}

const talking = new Set();
function pttDown(channel) {
  if (talking.has(channel) || talking.size > 0) return;
  talking.add(channel);
  send({ t: "ptt", channel: channel, down: true });
  startMic().catch((e) => console.warn("microphone unavailable:", e.name));
  render();
}
function pttUp(channel) {
  if (!talking.has(channel)) return;
  talking.delete(channel);
  send({ t: "ptt", channel: channel, down: false });
  render();
}

function renderChannel(ch) {
  const n = card(ch).node;
  n.querySelector(".ch-title").textContent = (ch.name || ch.channel) + " — " + ch.channel;
  const meta = [t("channel.epoch", { epoch: ch.epoch })];
  if (ch.expires) meta.push(t("channel.expires", { time: new Date(ch.expires * 1000).toLocaleString(lang) }));
  n.querySelector(".ch-meta").textContent = meta.join(" · ");
  n.querySelector(".ch-removed").hidden = !ch.removed;
  const tk = n.querySelector(".talker");
  if (ch.talker) {
    const prio = ch.talker.priority ? " · " + t("priority." + ch.talker.priority) : "";
    tk.textContent = t("talker.now", { who: who(ch.talker.device, ch.roster) }) + prio +
      " · " + t("talker." + ch.talker.state);
    tk.dataset.state = ch.talker.state;
  } else {
    tk.textContent = t("talker.none");
    tk.dataset.state = "none";
  }
  const em = n.querySelector(".emergency");
  if (ch.emergency.active) {
    let s = t("emergency.active", { by: who(ch.emergency.by, ch.roster) }) + " · " +
      t(ch.emergency.verified ? "emergency.verified" : "emergency.claim");
    if (ch.emergency.unsigned) s += " · " + t("emergency.unsigned");
    em.textContent = s;
    em.dataset.state = ch.emergency.verified ? "verified" : "claim";
  } else {
    em.textContent = t("emergency.none");
    em.dataset.state = "none";
  }
  n.classList.toggle("in-emergency", ch.emergency.active);
  n.querySelector(".ptt").setAttribute("aria-pressed", talking.has(ch.channel) ? "true" : "false");
  const fl = n.querySelector(".floor");
  fl.textContent = t("floor." + ch.floor.state, { position: ch.floor.position });
  fl.dataset.state = ch.floor.state;
  const msgs = n.querySelector(".messages");
  msgs.replaceChildren(...(ch.messages.length ? ch.messages.slice(-50).map((m) => {
    const li = el("li", "", "msg " + m.state);
    li.append(el("strong", who(m.sender, ch.roster) + ": "), el("span", m.text, "msg-text"),
      el("small", " — " + t("msg." + m.state), "msg-state"));
    return li;
  }) : [el("li", t("messages.none"), "empty")]));
  const rows = n.querySelector(".roster tbody");
  rows.replaceChildren(...ch.roster.map((r) => {
    const tr = el("tr");
    const role = TABLE.en["role." + r.role] ? t("role." + r.role) : r.role;
    tr.append(el("td", r.agency), el("td", r.alias || "—"),
      el("td", role + (r.talking ? " · " + t("roster.talking") : "")),
      el("td", r.device + (r.me ? " " + t("roster.you") : "")));
    const inc = state.incident;
    if (inc && inc.may_open && inc.channels[ch.channel] && !r.me && !ch.removed) {
      const b = el("button", t("incident.remove"), "remove");
      b.type = "button";
      b.setAttribute("aria-label", t("incident.remove_label", { device: r.alias || r.device }));
      b.addEventListener("click", () => send({ t: "remove", channel: ch.channel, device: r.device }));
      const td = el("td");
      td.append(b);
      tr.append(td);
    }
    return tr;
  }));
  n.querySelector(".bursts").replaceChildren(...(ch.bursts.length ? ch.bursts.map((b) =>
    el("li", t("burst.line", { sender: who(b.sender, ch.roster), received: b.received, frames: b.frames }) +
      " · " + t(b.verified ? "burst.verified" : "burst.unverified"), b.verified ? "ok" : "bad"))
    : [el("li", t("bursts.none"), "empty")]));
  renderManage(ch, n);
  n.querySelector(".alarms").replaceChildren(...ch.alarms.map((a) => {
    const key = a.kind.startsWith("freshness") ? "alarm.freshness"
      : (TABLE.en["alarm." + a.kind] ? "alarm." + a.kind : "alarm.other");
    return el("li", t(key, { device: a.device }), "bad");
  }));
}

// Incident channels: the open form (agreement, name, id, expiry, members from the directory
// that the agreement allows, with their role) and, per channel, add / remove / end.
let incidentKey = "";
function allowedRoles(inc, agreementId, dev) {
  const a = inc.agreements.find((x) => x.id === agreementId);
  const ok = (a && a.parties[dev.agency]) || [];
  return dev.roles.filter((r) => ok.includes(r));
}
function roleSelect(roles, cls) {
  const sel = el("select", undefined, cls);
  for (const r of roles) {
    const o = el("option", TABLE.en["role." + r] ? t("role." + r) : r);
    o.value = r;
    sel.append(o);
  }
  return sel;
}
function renderIncident(inc) {
  const box = document.getElementById("incident");
  box.hidden = !inc || !inc.may_open;
  if (box.hidden) return;
  const sel = document.getElementById("inc-agreement");
  const key = JSON.stringify([inc.agreements, inc.directory, sel.value, lang]);
  if (key !== incidentKey) {
    const chosen = sel.value;
    sel.replaceChildren(...inc.agreements.map((a) => { const o = el("option", a.name); o.value = a.id; return o; }));
    if (chosen) sel.value = chosen;
    const list = document.getElementById("inc-members");
    const rows = inc.directory.filter((d) => allowedRoles(inc, sel.value, d).length).map((d, i) => {
      const row = el("div", undefined, "inc-row");
      const box = el("input");
      box.type = "checkbox"; box.className = "inc-pick"; box.id = "inc-pick-" + i; box.dataset.device = d.device;
      const lab = el("label", who(d.device, [d]) + " — " + d.device);
      lab.htmlFor = box.id;
      const roles = roleSelect(allowedRoles(inc, sel.value, d), "inc-role");
      roles.id = "inc-role-" + i;
      const rl = el("label", t("incident.role"));
      rl.htmlFor = roles.id;
      row.append(box, lab, rl, roles);
      return row;
    });
    list.replaceChildren(...(rows.length ? rows : [el("p", t("incident.none_allowed"))]));
    incidentKey = JSON.stringify([inc.agreements, inc.directory, sel.value, lang]);
  }
  const st = document.getElementById("inc-status");
  const last = inc.last;
  st.textContent = last && last.op ? t("incident.op." + last.op, { channel: last.channel }) + ": " +
    t("incident." + last.state, { detail: last.detail }) : "";
  st.dataset.state = last && last.state ? last.state : "";
}
function openChannel(e) {
  e.preventDefault();
  const members = [...document.querySelectorAll("#inc-members .inc-row")]
    .filter((r) => r.querySelector(".inc-pick").checked)
    .map((r) => ({ device: r.querySelector(".inc-pick").dataset.device, role: r.querySelector(".inc-role").value }));
  send({
    t: "open", channel: document.getElementById("inc-channel").value.trim(),
    name: document.getElementById("inc-name").value.trim(),
    agreement: document.getElementById("inc-agreement").value,
    hours: Number(document.getElementById("inc-hours").value), members: members,
  });
}
function renderManage(ch, n) {
  const inc = state.incident;
  const agreement = inc && inc.channels[ch.channel];
  const box = n.querySelector(".manage");
  box.hidden = !inc || !inc.may_open || !agreement || ch.removed;
  if (box.hidden) return;
  const devSel = n.querySelector(".add-device");
  const inRoster = new Set(ch.roster.map((r) => r.device));
  const cands = inc.directory.filter((d) => !inRoster.has(d.device) && allowedRoles(inc, agreement, d).length);
  const key = JSON.stringify([cands.map((d) => d.device), lang]);
  if (devSel.dataset.key !== key) {
    const chosen = devSel.value;
    devSel.replaceChildren(...cands.map((d) => { const o = el("option", who(d.device, [d])); o.value = d.device; return o; }));
    if (chosen) devSel.value = chosen;
    devSel.dataset.key = key;
    devSel.dispatchEvent(new Event("change"));
  }
  n.querySelector(".add-btn").disabled = cands.length === 0;
}

function render() {
  const status = document.getElementById("status");
  const key = !wsOpen ? (state ? "status.lost" : "status.connecting")
    : (state && state.connected ? "status.connected" : "status.unreachable");
  status.textContent = t(key);
  status.className = "status " + key.split(".")[1];
  if (!state) return;
  document.getElementById("device").textContent = state.device;
  renderIncident(state.incident);
  document.getElementById("no-channels").hidden = state.channels.length > 0;
  state.channels.forEach(renderChannel);
  const urgent = state.channels.filter((c) => c.emergency.active);
  const banner = document.getElementById("banner");
  banner.hidden = urgent.length === 0;
  banner.textContent = urgent.map((c) => t("emergency.banner", { channel: c.name || c.channel })).join(" · ");
}

function connect() {
  const proto = location.protocol === "https:" ? "wss://" : "ws://";
  ws = new WebSocket(proto + location.host + "/ws?csrf=" + encodeURIComponent(CSRF));
  ws.onopen = () => {
    wsOpen = true;
    for (const [channel, c] of cards) {  // a new socket hears everything until told
      if (c.node.querySelector(".mute").checked) send({ t: "listen", channel: channel, on: false });
    }
    render();
  };
  ws.binaryType = "arraybuffer";
  ws.onmessage = (e) => {
    if (typeof e.data !== "string") { playFrame(e.data); return; }
    const msg = JSON.parse(e.data);
    if (msg.t === "state") { state = msg; render(); }
    else if (msg.t === "error") {
      const box = document.getElementById("command-error");
      box.hidden = false;
      box.textContent = t("error.command", { detail: msg.detail });
    }
  };
  ws.onclose = (e) => {
    wsOpen = false;
    render();
    if (e.code === 4401) { location.href = "/login?expired=1&lang=" + lang; return; }
    setTimeout(connect, 1000);
  };
}

function typing(target) {
  return target && (target.tagName === "INPUT" && target.type !== "radio" ||
    target.tagName === "TEXTAREA" || target.tagName === "SELECT" || target.tagName === "BUTTON");
}
document.addEventListener("keydown", (e) => {
  if (e.key === " " && !e.repeat && !typing(e.target) && selected) { e.preventDefault(); pttDown(selected); }
});
document.addEventListener("keyup", (e) => {
  if (e.key === " " && !typing(e.target) && selected) { e.preventDefault(); pttUp(selected); }
});

async function main() {
  TABLE = await (await fetch("/static/i18n.json", { credentials: "same-origin" })).json();
  let saved = null;
  try { saved = localStorage.getItem("crossband.lang"); } catch (e) { /* private mode */ }
  const meta = document.querySelector('meta[name="lang"]').content;
  document.getElementById("lang").addEventListener("change", (e) => setLang(e.target.value));
  document.getElementById("open-form").addEventListener("submit", openChannel);
  document.getElementById("inc-agreement").addEventListener("change", () => render());
  setLang(saved || meta);
  connect();
}
main();
