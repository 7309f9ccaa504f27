// pypaxos explorer: renders GET /api/state and sends one command per click to /api/command.
// The server owns all the logic (real actors, replay for Back); this file only draws and asks.
// Each tab has a session of its own, named in the URL as #s=ID (see explorer/server.py).
"use strict";

const KINDS = ["Prepare", "Promise", "Accept", "Accepted", "Nack", "Query", "Decided"];
const $ = (id) => document.getElementById(id);
let state = null;
let sessionId = new URLSearchParams(location.hash.slice(1)).get("s");
let running = false;
let busy = false;
const proposeValues = {};

// -- small DOM helper: el("div", {class: "x", onclick: f}, child, "text") ------------------
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// -- talking to the server -----------------------------------------------------------------
function withSession(path) {
  return sessionId ? `${path}?session=${encodeURIComponent(sessionId)}` : path;
}

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify(body),
  };
  const response = await fetch(withSession(path), options);
  const data = await response.json();
  if (!response.ok) {
    const error = new Error(data.error || response.statusText);
    error.status = response.status;
    throw error;
  }
  return data;
}

// This tab's session: the one its URL names if the server still has it, else a new one.
async function openSession() {
  if (sessionId) {
    try {
      return await api("/api/state");
    } catch (error) {
      if (error.status !== 404) throw error;
    }
  }
  sessionId = null;
  const created = await api("/api/session", {});
  sessionId = created.session;
  history.replaceState(null, "", "#s=" + encodeURIComponent(sessionId));
  return created.state;
}

async function send(command) {
  if (busy) return null;
  busy = true;
  try {
    const next = await api("/api/command", {command});
    render(next);
    return next;
  } catch (error) {
    toast(error.message);
    return null;
  } finally {
    busy = false;
  }
}

async function loadScenario(name) {
  stopRun();
  try {
    render(await api("/api/scenario", {name}));
  } catch (error) {
    toast(error.message);
  }
}

let toastTimer = null;
function toast(message) {
  const box = $("toast");
  box.textContent = message;
  box.classList.add("show");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => box.classList.remove("show"), 3500);
}

// -- run / pause ---------------------------------------------------------------------------
function stepsPerSecond() { return Number($("speed").value); }

async function runLoop() {
  while (running) {
    const next = await send("step");
    if (!next || next.quiescent) break;
    await new Promise((resolve) => setTimeout(resolve, 1000 / stepsPerSecond()));
  }
  stopRun();
}

function startRun() {
  if (running) return;
  running = true;
  $("run").textContent = "\u275A\u275A Pause";
  $("run").classList.add("running");
  runLoop();
}

function stopRun() {
  running = false;
  $("run").textContent = "\u25B6 Run";
  $("run").classList.remove("running");
}

// -- rendering -----------------------------------------------------------------------------
function render(next) {
  state = next;
  renderHeader();
  renderBanner();
  renderActors();
  renderFlight();
  renderDiagram();
  renderSteps();
  renderTranscript();
}

function renderHeader() {
  $("step").textContent = state.step;
  $("total").textContent = state.total;
  $("ticks").textContent = state.now_ticks;
  $("title").textContent = state.scenario.title;
  $("explanation").textContent = state.scenario.explanation;
  $("scenario").value = state.scenario.name;
  document.body.dataset.scenario = state.scenario.name;
  document.body.dataset.step = state.step;
  $("bugs").replaceChildren(...state.config.bugs.map((b) => el("span", {class: "bug"}, "bug: " + b)));
  $("back").disabled = state.step === 0;
  $("forward").disabled = state.next_command === null;
  $("reset").disabled = state.step === state.setup_steps && state.step === state.total;
  $("next").textContent = state.next_command ? "next: " + state.next_command : "";
  $("heal").disabled = state.partition.length === 0;
  $("download").href = withSession("/api/diagram.svg");
  $("step-btn").disabled = state.quiescent;
}

function renderBanner() {
  const banner = $("banner");
  const decided = Object.entries(state.decisions).map(([who, v]) => `${who} decided ${v}`);
  const detail = decided.length ? decided.join(", ") : "no learner has decided yet";
  if (state.violations.length) {
    banner.className = "banner violation";
    banner.replaceChildren(
      el("span", {}, "\u26A0 Safety violation: " + state.violations.join("; ")),
      el("span", {class: "detail"}, "chosen: ",
        ...(state.chosen_values.length ? state.chosen_values : ["nothing"]).map((v) =>
          el("span", {class: "value"}, v)), " \u00B7 ", detail));
  } else if (state.chosen !== null) {
    banner.className = "banner chosen";
    banner.replaceChildren(
      el("span", {}, "\u2714 Chosen: ", el("span", {class: "value", id: "chosen-value"},
        state.chosen)),
      el("span", {class: "detail"}, "a majority of acceptors accepted it in one ballot \u00B7 ",
        detail));
  } else {
    banner.className = "banner neutral";
    banner.replaceChildren(el("span", {}, "Nothing chosen yet"),
      el("span", {class: "detail"},
        "a value is chosen once a majority of acceptors accept it in the same ballot"));
  }
}

function field(name, value, extra) {
  const shown = value === null || value === undefined || value === "" ? "\u22A5" : value;
  return [el("dt", {}, name), el("dd", {class: extra || ""}, shown)];
}

function renderActors() {
  const columns = {proposer: [], acceptor: [], learner: []};
  for (const actor of state.actors) columns[actor.role].push(actorCard(actor));
  $("proposers").replaceChildren(...columns.proposer);
  $("acceptors").replaceChildren(...columns.acceptor);
  $("learners").replaceChildren(...columns.learner);
}

function actorCard(actor) {
  const s = actor.state;
  const badges = [];
  let fields = [];
  if (actor.role === "proposer") {
    badges.push(el("span", {class: "badge phase-" + s.phase}, s.phase));
    fields = [
      field("ballot", s.ballot), field("value", s.value),
      field("promises", s.promises.join(" ")), field("accepted", s.accepted_from.join(" ")),
    ];
  } else if (actor.role === "acceptor") {
    const accepted = s.accepted_value === null ? null : `${s.accepted_ballot} : ${s.accepted_value}`;
    fields = [field("promised", s.promised), field("accepted", accepted)];
  } else {
    fields = [field("decided", s.decided, s.decided === null ? "" : "big")];
  }
  if (actor.down) badges.push(el("span", {class: "badge down"}, "down"));
  if (actor.cut_off) badges.push(el("span", {class: "badge cut"}, "cut off"));
  const armed = Object.fromEntries(actor.timers.map((t) => [t.name, t.due]));
  if (actor.timers.length) {
    fields.push(...field("timers",
      actor.timers.map((t) => `${t.name} @${t.due}`).join(", ")));
  }
  const actions = [];
  if (actor.role === "proposer" && !actor.down) {
    const index = state.actors.filter((a) => a.role === "proposer").indexOf(actor);
    const fallback = "xyzwuv"[index] || "v" + (index + 1);
    const input = el("input", {value: proposeValues[actor.name] || fallback,
      "aria-label": "value for " + actor.name,
      oninput: (e) => { proposeValues[actor.name] = e.target.value; }});
    actions.push(input, el("button", {class: "small", "data-action": "propose",
      onclick: () => send(`propose ${actor.name} ${input.value.trim() || fallback}`)},
    "Propose"));
  }
  if (!actor.down) {
    for (const name of actor.timer_names) {
      const due = armed[name];
      actions.push(el("button", {class: "small", title: due === undefined ?
        `fire ${name} (not armed)` : `armed: due at tick ${due}`,
      onclick: () => send(`timer ${actor.name} ${name}`)},
      "fire " + name, due === undefined ? "" : el("span", {class: "timer-due"}, " @" + due)));
    }
  }
  actions.push(actor.down
    ? el("button", {class: "small good", onclick: () => send(`restart ${actor.name}`)}, "Restart")
    : el("button", {class: "small danger", onclick: () => send(`crash ${actor.name}`)}, "Crash"));
  actions.push(el("button", {class: "small" + (actor.cut_off ? " on" : ""),
    title: "Cut this actor off from the others (or reconnect it)",
    onclick: () => togglePartition(actor.name)}, actor.cut_off ? "Reconnect" : "Cut off"));
  const classes = ["card", actor.role, actor.down ? "down" : "", actor.cut_off ? "cut" : ""];
  return el("div", {class: classes.join(" "), "data-actor": actor.name},
    el("div", {class: "head"}, el("span", {class: "name"}, actor.name), ...badges),
    el("dl", {class: "fields"}, ...fields),
    el("div", {class: "actions"}, ...actions));
}

function togglePartition(name) {
  const side = new Set(state.partition);
  if (side.has(name)) side.delete(name); else side.add(name);
  send(side.size ? "partition " + [...side].join(" ") : "heal");
}

function renderFlight() {
  $("nflight").textContent = state.in_flight.length;
  const items = state.in_flight.map((m) => el("li",
    {class: `msg k-${m.kind}` + (m.blocked ? " blocked" : ""), "data-index": m.index},
    el("button", {class: "main", title: "deliver", onclick: () => send(`deliver ${m.index}`)},
      el("span", {class: "idx"}, "#" + m.index),
      el("span", {class: "route"}, `${m.from} \u2192 ${m.to}`),
      el("span", {class: "label"}, m.label),
      m.blocked ? el("span", {class: "warn"}, "partitioned: will be lost") : null,
      m.to_down ? el("span", {class: "warn"}, "receiver down") : null,
      el("span", {class: "sent"}, "sent @" + m.sent_step)),
    el("span", {class: "ops"},
      el("button", {class: "small", "data-op": "deliver", onclick: () => send(`deliver ${m.index}`)},
        "Deliver"),
      el("button", {class: "small", "data-op": "drop", onclick: () => send(`drop ${m.index}`)},
        "Drop"),
      el("button", {class: "small", "data-op": "dup", onclick: () => send(`dup ${m.index}`)},
        "Dup"))));
  if (!items.length) {
    const armed = state.actors.some((a) => a.timers.length);
    items.push(el("li", {class: "empty"}, armed
      ? "Nothing in flight. Fire a timer (or press Step) to go on."
      : "Nothing in flight and no timer armed."));
  }
  $("flight").replaceChildren(...items);
}

function renderDiagram() {
  const box = $("diagram");
  const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 40;
  box.innerHTML = state.diagram_svg;  // rendered and escaped by the server
  if (atBottom || running) box.scrollTop = box.scrollHeight;
  pinDiagramHeads();
}

// Keep the actor names in view while the diagram scrolls (the SVG may be scaled to fit).
function pinDiagramHeads() {
  const box = $("diagram");
  const svg = box.querySelector("svg");
  const heads = svg && svg.querySelector(".heads");
  if (!heads) return;
  const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width || 1;
  heads.setAttribute("transform", `translate(0 ${box.scrollTop / scale})`);
}

// A counterexample's steps, as the model checker printed them; click one to go there.
function renderSteps() {
  const panel = $("steps-panel");
  panel.hidden = state.notes.length === 0;
  if (panel.hidden) return;
  const items = state.notes.map((note, i) => {
    const number = i + 1;
    const where = number === state.step ? "current" : number < state.step ? "done" : "ahead";
    return el("li", {class: "trace-step " + where, "data-step": number},
      el("button", {onclick: () => { stopRun(); send("goto " + number); }},
        el("span", {class: "n"}, number), el("span", {class: "note"}, note),
        el("span", {class: "cmd"}, state.history[i])));
  });
  const list = $("steps");
  list.replaceChildren(...items);
  const current = list.querySelector(".current");
  if (!current) return;
  const top = current.offsetTop - list.offsetTop;  // keep it in view without moving the page
  if (top < list.scrollTop || top > list.scrollTop + list.clientHeight - 30) {
    list.scrollTop = Math.max(0, top - 60);
  }
}

function renderTranscript() {
  const box = $("transcript");
  const rows = [];
  for (const entry of state.transcript) {
    rows.push(el("div", {class: "cmd"}, el("span", {class: "n"}, entry.step), "> " + entry.command));
    for (const line of entry.lines) rows.push(el("div", {class: "out"}, line));
  }
  const ahead = state.history.slice(state.step);
  if (ahead.length) {
    rows.push(el("div", {class: "ahead-title"}, "ahead (Forward replays these):"));
    ahead.forEach((command, i) => rows.push(el("div", {class: "cmd ahead"},
      el("span", {class: "n"}, state.step + i + 1), "> " + command)));
  }
  box.replaceChildren(...rows);
  const current = box.querySelectorAll(".cmd:not(.ahead)");
  const last = current[current.length - 1];
  if (last) box.scrollTop = Math.max(0, last.offsetTop - box.clientHeight + 120);
}

// -- wiring --------------------------------------------------------------------------------
async function init() {
  $("legend").replaceChildren(...KINDS.map((k) => el("span", {class: "k-" + k}, k)));
  const scenarios = await api("/api/scenarios");
  $("scenario").replaceChildren(...scenarios.map((s) =>
    el("option", {value: s.name}, s.title + (s.bugs.length ? "  (bug)" : ""))));
  $("diagram").addEventListener("scroll", pinDiagramHeads);
  $("scenario").addEventListener("change", (e) => loadScenario(e.target.value));
  $("reset").addEventListener("click", () => { stopRun(); send("reset"); });
  $("back").addEventListener("click", () => { stopRun(); send("back"); });
  $("forward").addEventListener("click", () => send("forward"));
  $("step-btn").addEventListener("click", () => send("step"));
  $("run").addEventListener("click", () => (running ? stopRun() : startRun()));
  $("heal").addEventListener("click", () => send("heal"));
  $("speed").addEventListener("input", () => {
    $("speed-val").textContent = stepsPerSecond() + "/s";
  });
  $("cmd-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const line = $("cmd").value.trim();
    if (line && await send(line)) $("cmd").value = "";
  });
  document.addEventListener("keydown", (e) => {
    if (e.target.matches("input, select, textarea") || e.metaKey || e.ctrlKey) return;
    if (e.key === "ArrowLeft") { stopRun(); send("back"); }
    else if (e.key === "ArrowRight") send("forward");
    else if (e.key === "s") send("step");
    else return;
    e.preventDefault();
  });
  render(await openSession());
}

init().catch((error) => toast("cannot reach the explorer server: " + error.message));
