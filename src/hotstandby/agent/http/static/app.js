// The status page: reads this agent's /api/status (which includes what it knows of its
// peers) every second and its event stream as records happen. Holds no logic of the
// cluster's: it only draws what the agent says. Text from the agent is set as text only.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const POLL_MS = 1000;
const MAX_EVENTS = 300;

const state = { info: null, status: null, events: [], statusOk: 0, stream: null, updates: 0 };

const ROLE_COLOUR = {
  active: "var(--active)", standby: "var(--standby)", taking_over: "var(--moving)",
  arbitrating: "var(--moving)", releasing: "var(--moving)", starting: "var(--quiet)",
  maintenance: "var(--quiet)", fenced: "var(--fenced)", lost: "var(--unknown)",
};
const STATE_BADGE = {
  running: "good", stopped: "", starting: "warn", stopping: "warn", unknown: "",
  failed: "bad", stop_failed: "bad",
};

// ------------------------------------------------------------------ helpers

function $(id) { return document.getElementById(id); }

function el(tag, attrs = {}, ...children) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined) continue;
    if (k === "class") node.setAttribute("class", v);
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, String(v));
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function clock(at) {
  const d = new Date(at * 1000);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

function span(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 120) return `${seconds.toFixed(2)} s`;
  return `${Math.round(seconds / 60)} min`;
}

function roleLabel(role) { return (role || "unknown").replace("_", " ").toUpperCase(); }

// ------------------------------------------------------------------ the diagram

function peerRole(peer) {
  if (peer.role === null) return "lost";
  return peer.confirmed ? peer.role : "lost";
}

function nodeBox(x, y, w, h, o) {
  const g = el("svg:g", { "data-node": o.name, "data-role": o.role, class: "node" });
  const colour = ROLE_COLOUR[o.role] || "var(--quiet)";
  g.append(el("svg:rect", { x, y, width: w, height: h, rx: 12, class: "node-box", stroke: colour }));
  g.append(el("svg:text", { x: x + 18, y: y + 24, class: "node-tag", text: o.tag }));
  g.append(el("svg:text", { x: x + 18, y: y + 52, class: "node-name", text: o.name }));
  const label = o.role === "lost" ? "NOT HEARD" : roleLabel(o.role);
  const pw = 16 + label.length * 8.2;
  const pill = el("svg:g", { class: "role-pill" });
  pill.append(el("svg:rect", { x: x + w - pw - 14, y: y + 34, width: pw, height: 24, rx: 12, fill: colour }));
  pill.append(el("svg:text", { x: x + w - pw / 2 - 14, y: y + 50, "text-anchor": "middle", text: label }));
  g.append(pill);
  o.lines.forEach((line, i) => {
    g.append(el("svg:text", { x: x + 18, y: y + 82 + i * 20, class: "node-line", text: line }));
  });
  return g;
}

function drawDiagram() {
  const svg = $("diagram");
  const s = state.status;
  if (!s) return;
  const kinds = Object.fromEntries((state.info?.links || []).map((l) => [l.name, l.kind]));
  const W = 1000, BW = 270, GAP = 50, LINK_H = 58;
  const peers = s.peers;
  const heights = peers.map((p) => Math.max(170, 50 + Object.keys(p.links).length * LINK_H));
  const total = Math.max(170, heights.reduce((a, b) => a + b, 0) + GAP * (peers.length - 1));
  svg.setAttribute("viewBox", `0 0 ${W} ${total + 8}`);
  svg.replaceChildren();

  const running = s.resources.filter((r) => r.state === "running").map((r) => r.name);
  const priority = Object.fromEntries((state.info?.nodes || []).map((n) => [n.name, n.priority]));
  const localLines = [
    `epoch ${s.epoch} · priority ${priority[s.node] ?? "?"}`,
    running.length ? `holds ${running.join(", ")}` : "holds nothing",
  ];
  if (s.offline) localLines.push("offline (standby by request)");
  if (s.lease_left !== null && s.lease_left !== undefined) localLines.push(`lease ${span(Math.max(0, s.lease_left))} left`);
  const localY = (total - 170) / 2;
  const lx = 4, px = W - BW - 4;

  let y = 0;
  peers.forEach((peer, i) => {
    const h = heights[i];
    const names = Object.keys(peer.links);
    names.forEach((name, j) => {
      const link = peer.links[name];
      const ly = y + (h / (names.length + 1)) * (j + 1);
      // One peer: straight lines; more: each peer's links fan out from this node's box.
      const fy = peers.length === 1 ? ly : localY + 40 + ((170 - 60) / (names.length + 1)) * (j + 1);
      const cls = `link-line ${link.state}`;
      const colour = `var(--${link.state === "late" ? "late" : link.state})`;
      const x1 = lx + BW, x2 = px;
      svg.append(el("svg:path", {
        d: `M ${x1} ${fy} C ${x1 + 140} ${fy}, ${x2 - 140} ${ly}, ${x2} ${ly}`,
        class: cls, stroke: colour, fill: "none", "data-link": name, "data-state": link.state,
      }));
      const mx = (x1 + x2) / 2, my = (fy + ly) / 2;
      const figures = [link.state === "unknown" ? "not heard yet" : link.state];
      if (link.state === "down") {
        if (link.last_seen_ago !== null && link.last_seen_ago !== undefined) figures.push(`silent ${span(link.last_seen_ago)}`);
      } else {
        if (link.loss !== null && link.loss !== undefined) figures.push(`loss ${(link.loss * 100).toFixed(link.loss < 0.1 ? 1 : 0)}%`);
        if (link.round_trip !== null && link.round_trip !== undefined) figures.push(`rtt ${(link.round_trip * 1000).toFixed(2)} ms`);
      }
      const label = el("svg:g", { class: "link-label" });
      const title = el("svg:text", { x: mx, y: my - 4, "text-anchor": "middle" });
      title.append(el("svg:tspan", { class: "link-name", text: name }));
      if (kinds[name]) title.append(el("svg:tspan", { class: "link-kind", dx: 6, text: kinds[name] }));
      const detail = el("svg:text", { x: mx, y: my + 12, "text-anchor": "middle", class: "link-figures", text: figures.join(" · ") });
      label.append(title, detail);
      svg.append(label);
      // Sized to the text as drawn, so the line shows on both sides of every label.
      const bw = Math.max(title.getComputedTextLength(), detail.getComputedTextLength()) + 22;
      label.prepend(el("svg:rect", { x: mx - bw / 2, y: my - 21, width: bw, height: 40, rx: 8, class: "link-label-bg", stroke: colour, "stroke-width": 1.5 }));
    });
    const role = peerRole(peer);
    // A peer not heard keeps its last known state, said as such.
    const known = role === "lost" && peer.epoch !== null ? "last known: " : "";
    const lines = [
      peer.epoch === null ? "epoch unknown" : `${known}epoch ${peer.epoch}${known ? "" : ` · priority ${priority[peer.name] ?? "?"}`}`,
      peer.holds === null ? "holds: unknown" : `${known}${peer.holds ? "holds the group" : "holds nothing"}`,
      peer.last_heard_ago === null ? "never heard" : `heard ${span(peer.last_heard_ago)} ago`,
    ];
    svg.append(nodeBox(px, y + (h - 170) / 2, BW, 170, { name: peer.name, role, tag: "peer", lines }));
    y += h + GAP;
  });
  svg.append(nodeBox(lx, localY, BW, 170, { name: s.node, role: s.role, tag: "this node", lines: localLines }));
  if (!peers.length) svg.append(el("svg:text", { x: W / 2, y: 90, "text-anchor": "middle", class: "node-line", text: "no peers configured" }));

  const ups = peers.flatMap((p) => Object.values(p.links)).filter((l) => l.state === "up" || l.state === "late").length;
  const all = peers.flatMap((p) => Object.values(p.links)).length;
  $("summary").textContent = `${ups} of ${all} links up · epoch ${s.epoch}`;
}

// ------------------------------------------------------------------ resources

function drawResources() {
  const s = state.status;
  const body = $("resources");
  body.replaceChildren();
  const holders = s.peers.filter((p) => p.holds && p.confirmed).map((p) => p.name);
  for (const r of s.resources) {
    const where = r.state === "running" ? [s.node] : holders;
    const stateCell = el("td", {}, el("span", { class: `badge ${STATE_BADGE[r.state] || ""}`, text: r.state + (r.pending ? ` → ${r.pending}` : "") }));
    body.append(el("tr", { "data-resource": r.name, "data-state": r.state },
      el("td", { class: "name", text: r.name }),
      el("td", { text: r.kind }),
      stateCell,
      el("td", { text: where.length ? where.join(", ") : "nowhere" }),
      el("td", { text: String(r.failures) }),
      el("td", { class: "detail", title: r.last_result || "", text: r.last_result || "" }),
    ));
  }
  const everywhere = s.resources.every((r) => r.state === "running");
  $("group-state").textContent = s.resources.length
    ? (everywhere ? `the group runs on ${s.node}` : (holders.length ? `the group runs on ${holders.join(", ")}` : "the group is not running here"))
    : "no resources configured";
  $("last-takeover").textContent = s.last_takeover ? `Last takeover by this node: ${s.last_takeover}` : "";
  const channels = Object.entries(s.alarms || {}).map(([name, c]) => `${name} ${c.delivered ?? 0} sent${c.failed ? `, ${c.failed} failed` : ""}${c.pending ? `, ${c.pending} pending` : ""}`);
  $("alarm-channels").textContent = channels.length ? `Alarm channels: ${channels.join(" · ")}` : "";
}

// ------------------------------------------------------------------ events and timelines

function eventKey(e) { return `${e.at}|${e.kind}|${e.message}`; }

function addEvents(list, fresh) {
  const seen = new Set(state.events.map(eventKey));
  let added = 0;
  for (const e of list) {
    if (seen.has(eventKey(e))) continue;
    e._fresh = fresh;
    state.events.push(e);
    seen.add(eventKey(e));
    added += 1;
  }
  state.events.sort((a, b) => a.at - b.at);
  if (state.events.length > MAX_EVENTS) state.events.splice(0, state.events.length - MAX_EVENTS);
  return added;
}

function kindBadge(e) {
  const sev = e.severity;
  let cls = "";
  if (sev === "critical") cls = "bad";
  else if (sev === "warning") cls = "warn";
  else if (e.kind === "role") cls = "info";
  else if (e.kind.startsWith("alarm")) cls = "warn";
  return el("span", { class: `badge ${cls}`, text: e.kind });
}

function drawEvents() {
  const list = $("events");
  list.replaceChildren();
  for (const e of [...state.events].reverse()) {
    const li = el("li", { class: `${e.severity || "info"}${e._fresh ? " fresh" : ""}`, "data-kind": e.kind },
      el("span", { class: "time", text: clock(e.at) }),
      el("span", { class: "kind" }, kindBadge(e)),
      el("span", { class: "msg", text: e.message }),
      el("span", { class: "rule", text: e.rule || "" }));
    e._fresh = false;
    list.append(li);
  }
  $("event-count").textContent = `${state.events.length} shown, newest first`;
}

// A takeover as the history tells it: from the role change to arbitrating or taking_over
// until active (or whatever ended it), with every record in between.
function timelines() {
  const out = [];
  let cur = null;
  for (const e of state.events) {
    if (e.kind === "takeover.timeline") {
      out.push({ given: e });
      continue;
    }
    const change = e.kind === "role" ? e.message.split(" -> ") : null;
    if (!cur && change && (change[1] === "arbitrating" || change[1] === "taking_over")) {
      cur = { start: e.at, from: change[0], phases: [{ role: change[1], at: e.at }], steps: [], end: null, outcome: null };
    }
    if (!cur) continue;
    cur.steps.push(e);
    if (change && e !== cur.steps[0]) {
      cur.phases.push({ role: change[1], at: e.at });
      if (change[1] !== "arbitrating" && change[1] !== "taking_over") {
        cur.end = e.at;
        cur.outcome = change[1];
        out.push(cur);
        cur = null;
      }
    }
  }
  if (cur) out.push(cur);
  // The agent's own timeline of a takeover (measured from the last heartbeat, with the
  // fence and every start) replaces the one read off the role changes.
  const given = out.filter((t) => t.given).map((t) => t.given.at);
  const kept = out.filter((t) => t.given || !given.some((at) => t.end !== null && Math.abs(at - t.end) < 2));
  return kept.slice(-3).reverse();
}

function drawTimelines() {
  const box = $("timelines");
  const found = timelines();
  box.replaceChildren();
  if (!found.length) {
    box.append(el("p", { class: "empty", text: "No takeover in the recent history." }));
    return;
  }
  for (const t of found) box.append(t.given ? givenTimeline(t.given) : derivedTimeline(t));
}

function derivedTimeline(t) {
  const end = t.end ?? (state.status ? Date.now() / 1000 : t.start);
  const took = Math.max(end - t.start, 0.001);
  const head = el("div", { class: "timeline-head" },
    el("b", { text: `${t.from} → ${t.outcome || "…"}` }),
    el("span", { class: "summary", text: `${clock(t.start)}` }),
    t.outcome === "active" ? el("span", { class: "took", text: `active after ${span(took)}` })
      : el("span", { class: "summary", text: t.outcome ? `ended ${t.outcome} after ${span(took)}` : "in progress" }));
  const track = el("div", { class: "track" });
  t.phases.forEach((p, i) => {
    if (i === t.phases.length - 1 && t.outcome) return;
    const next = t.phases[i + 1]?.at ?? end;
    const left = ((p.at - t.start) / took) * 100;
    const width = Math.max(((next - p.at) / took) * 100, 0.5);
    const cls = ["arbitrating", "taking_over"].includes(p.role) ? p.role : "other";
    track.append(el("div", { class: `phase ${cls}`, style: null, "data-left": left, "data-width": width, text: `${p.role.replace("_", " ")} ${span(next - p.at)}` }));
  });
  const steps = el("ol", { class: "steps" });
  for (const e of t.steps) {
    steps.append(el("li", {}, el("span", { class: "at", text: `+${span(e.at - t.start)}` }), el("span", { text: e.kind === "role" ? `role ${e.message}` : e.message })));
  }
  const node = el("div", { class: "timeline", "data-outcome": t.outcome || "" }, head, track, steps);
  placePhases(node);
  return node;
}

// Inline styles are barred by the page's CSP; the phase bars are placed through CSSOM.
function placePhases(root) {
  for (const p of root.querySelectorAll(".phase")) {
    p.style.left = `${p.dataset.left}%`;
    p.style.width = `${p.dataset.width}%`;
  }
}

// A `takeover.timeline` record: stages with offsets from the last heartbeat heard from
// the lost peer, each link's silence when it was declared dead, and the total.
function givenTimeline(e) {
  const t = e.timeline || {};
  const stages = Array.isArray(t.stages) ? t.stages : [];
  const total = Math.max(Number(t.total) || 0, ...stages.map((x) => Number(x.offset) || 0), 0.001);
  const head = el("div", { class: "timeline-head" },
    el("b", { text: `taken over from ${(t.peers || []).join(", ") || "the peer"}` }),
    el("span", { class: "summary", text: `${clock(e.at)} · epoch ${t.epoch ?? "?"}` }),
    el("span", { class: "took", text: `active ${span(total)} after the last heartbeat` }));
  const track = el("div", { class: "track" });
  let from = 0;
  stages.forEach((stage, i) => {
    const to = Number(stage.offset) || 0;
    const name = String(stage.stage || "").replace(/ \[.*\]$/, "");
    const cls = i === 0 ? "silence" : (name === "active" ? "taking_over" : (name.startsWith("fence") || name.startsWith("arbiter") || name.startsWith("takeover decided") ? "arbitrating" : "taking_over"));
    const label = i === 0 ? `silent ${span(to)}` : `${name} ${span(to - from)}`;
    track.append(el("div", { class: `phase ${cls}`, "data-left": (from / total) * 100, "data-width": Math.max(((to - from) / total) * 100, 0.5), title: label, text: label }));
    from = to;
  });
  const steps = el("ol", { class: "steps" });
  steps.append(el("li", {}, el("span", { class: "at", text: "+0 ms" }), el("span", { text: "last heartbeat heard" })));
  for (const stage of stages) {
    steps.append(el("li", {}, el("span", { class: "at", text: `+${span(Number(stage.offset) || 0)}` }), el("span", { text: String(stage.stage) })));
  }
  const silences = Object.entries(t.links || {}).map(([link, silent]) => `${link} ${silent === null ? "never heard" : `silent ${span(silent)}`}`);
  const node = el("div", { class: "timeline", "data-outcome": "active", "data-given": "1" }, head, track, steps);
  if (silences.length) node.append(el("p", { class: "note", text: `when the peer was declared dead: ${silences.join(" · ")}` }));
  placePhases(node);
  return node;
}

// ------------------------------------------------------------------ data in

async function getJson(path) {
  const response = await fetch(path, { cache: "no-store" });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

let statusTimer = null;
async function refreshStatus() {
  clearTimeout(statusTimer);
  try {
    state.status = await getJson("/api/status");
    state.statusOk = Date.now();
    state.updates += 1;
    document.body.dataset.role = state.status.role;
    document.body.dataset.updates = String(state.updates);
    drawDiagram();
    drawResources();
    if (state.timelineOpen) drawTimelines();
  } catch (err) {
    // The agent may be restarting: keep the last picture, say we lost it, try again.
  }
  showLive();
  statusTimer = setTimeout(refreshStatus, POLL_MS);
}

async function refreshEvents() {
  const last = state.events.length ? state.events[state.events.length - 1].at : null;
  const query = last === null ? "?limit=200" : `?limit=2000&since=${last - 0.001}`;
  try {
    const data = await getJson(`/api/events${query}`);
    addEvents(data.events, last !== null);
    drawEvents();
    drawTimelines();
  } catch (err) { /* shown by the live indicator */ }
}

function openStream() {
  const stream = new EventSource("/api/events/stream");
  state.stream = stream;
  stream.onopen = () => { refreshEvents(); showLive(); };
  stream.onerror = () => showLive();
  stream.onmessage = (msg) => {
    let record;
    try { record = JSON.parse(msg.data); } catch (err) { return; }
    if (addEvents([record], true)) {
      drawEvents();
      drawTimelines();
    }
    // Something happened: redraw at once rather than at the next poll.
    refreshStatus();
  };
}

function showLive() {
  const live = $("live");
  const streamOpen = state.stream && state.stream.readyState === EventSource.OPEN;
  const fresh = Date.now() - state.statusOk < 3 * POLL_MS;
  const mode = fresh && streamOpen ? "live" : (fresh ? "connecting" : "lost");
  live.dataset.state = mode;
  $("live-text").textContent = mode === "live" ? "live" : (mode === "lost" ? "agent not answering" : "connecting");
  if (state.status) $("footer").textContent = `updated ${clock(Date.now() / 1000)} · agent up since ${clock(state.info?.started_at || 0)}`;
}

// ------------------------------------------------------------------ actions

function wireActions() {
  const token = $("token");
  const buttons = [...document.querySelectorAll("button[data-action]")];
  const enable = () => {
    const can = Boolean(state.info?.actions) && token.value.trim().length > 0;
    for (const b of buttons) b.disabled = !can;
  };
  token.addEventListener("input", enable);
  enable();
  if (state.info && !state.info.actions) {
    $("actions-note").textContent = "Actions are off on this node: its configuration names no token_file. The page is read-only.";
    token.disabled = true;
  }
  for (const b of buttons) {
    b.addEventListener("click", async () => {
      if (b.dataset.confirm && !window.confirm(b.dataset.confirm)) return;
      const body = b.dataset.self ? { target: state.info.node } : {};
      const result = $("result");
      result.className = "result";
      result.textContent = `${b.textContent}…`;
      try {
        const response = await fetch(`/api/${b.dataset.action}`, {
          method: "POST",
          headers: { "Authorization": `Bearer ${token.value.trim()}`, "Content-Type": "application/json" },
          body: JSON.stringify(body),
        });
        const text = await response.text();
        let message = text;
        try { message = JSON.parse(text).message; } catch (err) { /* plain text error */ }
        result.className = `result ${response.ok ? "ok" : "err"}`;
        result.textContent = response.status === 401 || response.status === 403
          ? `refused (${response.status}): ${message}` : message;
      } catch (err) {
        result.className = "result err";
        result.textContent = `no answer: ${err}`;
      }
      refreshStatus();
    });
  }
}

async function main() {
  try {
    state.info = await getJson("/api/info");
    $("cluster").textContent = state.info.cluster;
    $("viewer").textContent = state.info.node;
    document.title = `${state.info.node} · ${state.info.cluster} · hotstandby`;
  } catch (err) {
    $("live-text").textContent = "agent not answering";
  }
  state.timelineOpen = true;
  wireActions();
  await refreshEvents();
  refreshStatus();
  openStream();
}

main();
