// The console page: a snapshot, then each change, from /api/stream; plots by plotly.js.
"use strict";

const state = {
  series: {}, timeline: [], models: {}, trainer: {}, histograms: {}, byEventTime: {},
  deadLetters: [], deadLetterCounts: {}, deadLetterTimes: [], health: {}, unreadable: {},
};
const view = { model: null, minutes: 0, metric: null, feature: null };
const dirty = new Set();
// what a test reads: how many changes were applied, and when the page last drew
window.tideline = { state, applied: 0, drawnAt: 0 };

const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
};
const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour12: false });
const when = (ms) => new Date(ms).toLocaleString([], { hour12: false });
const fixed = (x, digits = 3) => (x === null || x === undefined ? "-" : Number(x).toFixed(digits));

// ---- changes -------------------------------------------------------------

const handlers = {
  snapshot(data) {
    state.series = data.series;
    state.timeline = data.timeline;
    state.models = data.models;
    state.trainer = data.trainer;
    state.histograms = data.histograms;
    state.byEventTime = {};
    for (const [model, buckets] of Object.entries(data.by_event_time)) addBuckets(model, buckets);
    state.deadLetters = data.dead_letters;
    state.deadLetterCounts = data.dead_letter_counts;
    state.deadLetterTimes = data.dead_letter_times;
    state.health = data.health;
    state.unreadable = data.unreadable;
    ["models", "series", "timeline", "trainer", "histograms", "eventTime", "deadLetters", "health"]
      .forEach((d) => dirty.add(d));
  },
  point(p) {
    (state.series[p.model] ||= []).push(p);
    dirty.add("series");
  },
  event_time(data) { addBuckets(data.model, data.buckets); dirty.add("eventTime"); },
  histograms(data) { state.histograms[data.model] = data.features; dirty.add("histograms"); },
  timeline(item) {
    state.timeline.push(item);
    if (state.timeline.length > 1000) state.timeline.shift();
    dirty.add("timeline"); dirty.add("series");  // markers on the performance plot
  },
  models(models) { state.models = models; dirty.add("models"); },
  trainer(status) { state.trainer[status.model] = status; dirty.add("trainer"); },
  dead_letter(data) {
    state.deadLetters.push(data.letter);
    if (state.deadLetters.length > 50) state.deadLetters.shift();
    state.deadLetterTimes.push([data.letter.t, data.key]);
    state.deadLetterCounts = data.counts;
    dirty.add("deadLetters");
  },
  health(health) { state.health = health; dirty.add("health"); },
  unreadable(counts) { state.unreadable = counts; dirty.add("health"); },
};

// buckets come as running totals (a bucket's labels arrive over many intervals)
function addBuckets(model, buckets) {
  const kept = (state.byEventTime[model] ||= new Map());
  for (const b of buckets) kept.set(`${b.version}|${b.start}`, b);
}

function connect() {
  const source = new EventSource("/api/stream");
  source.onopen = () => { $("connection").textContent = "live"; $("connection").className = "badge ok"; };
  source.onerror = () => { $("connection").textContent = "reconnecting"; $("connection").className = "badge bad"; };
  source.onmessage = (message) => {
    const change = JSON.parse(message.data);
    const handler = handlers[change.kind];
    if (handler) handler(change.data);
    window.tideline.applied += 1;
    schedule();
  };
}

let pending = false;
function schedule() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => { pending = false; draw(); });
}

// ---- drawing -------------------------------------------------------------

function colors() {
  const css = getComputedStyle(document.documentElement);
  const v = (name) => css.getPropertyValue(name).trim();
  return { fg: v("--fg"), muted: v("--muted"), grid: v("--grid"), bad: v("--bad"), good: v("--good"),
    warn: v("--warn"), accent: v("--accent"), card: v("--card") };
}

function since() { return view.minutes ? Date.now() - view.minutes * 60000 : null; }

function timeAxis(title) {
  const c = colors();
  const from = since();
  return { title: { text: title }, type: "date", gridcolor: c.grid, linecolor: c.muted,
    range: from ? [new Date(from), new Date()] : undefined, autorange: from ? false : true };
}

function layout(xaxis, yaxis, extra = {}) {
  const c = colors();
  return Object.assign({
    paper_bgcolor: c.card, plot_bgcolor: c.card, font: { color: c.fg, size: 12 },
    margin: { l: 56, r: 16, t: 30, b: 44 }, xaxis, showlegend: true,
    yaxis: Object.assign({ gridcolor: c.grid, linecolor: c.muted, zeroline: false }, yaxis),
    legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" },
    uirevision: `${view.model}|${view.minutes}`,
  }, extra);
}

function plot(id, traces, lay) {
  if (!window.Plotly) return;
  Plotly.react($(id), traces, lay, { responsive: true, displaylogo: false, displayModeBar: "hover" });
}

function draw() {
  models();
  if (dirty.has("models") || dirty.has("trainer")) modelCard();
  if (dirty.has("series") || dirty.has("models")) { performancePlot(); labels(); drift(); }
  if (dirty.has("eventTime")) eventTime();
  if (dirty.has("histograms")) histograms();
  if (dirty.has("timeline") || dirty.has("models")) { timeline(); versions(); }
  if (dirty.has("deadLetters")) deadLetters();
  if (dirty.has("health")) health();
  dirty.clear();
  window.tideline.drawnAt = performance.now();
}

function models() {
  const names = [...new Set([...Object.keys(state.models), ...Object.keys(state.series)])].sort();
  const select = $("model-select");
  if (select.options.length !== names.length) {
    select.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
  }
  if (!view.model || !names.includes(view.model)) view.model = names[0] || null;
  select.value = view.model || "";
}

function modelCard() {
  const model = state.models[view.model] || { versions: [] };
  $("champion").textContent = model.champion ? `v${model.champion}` : "none yet";
  $("challenger").textContent = model.challenger ? `v${model.challenger} (shadow)` : "none";
  $("promotion").textContent = model.paused ? "paused: promote by hand" : "automatic, by the gate";
  $("pause").disabled = !!model.paused;
  $("resume").disabled = !model.paused;
  const status = state.trainer[view.model];
  $("trainer").textContent = status
    ? `${status.state} (${status.trigger.kind}) ${status.message} · ${clock(status.t)}` : "idle";
  const select = $("version-select");
  const chosen = select.value;
  select.replaceChildren(...[...model.versions].reverse().map(
    (v) => el("option", { value: v.version }, `v${v.version} ${v.state}`)));
  if (chosen) select.value = chosen;
}

const DASH = "dash";

function markers(from) {
  // drift events and promotions as vertical lines on the performance plot
  const c = colors();
  return state.timeline
    .filter((i) => i.model === view.model && (!from || i.t >= from)
      && (i.kind === "drift" || ["promoted", "rolled_back"].includes(i.action)))
    .map((i) => ({ type: "line", xref: "x", yref: "paper", x0: new Date(i.t), x1: new Date(i.t),
      y0: 0, y1: 1, line: { color: i.kind === "drift" ? c.bad : c.good, width: 1, dash: DASH } }));
}

function performancePlot() {
  const points = state.series[view.model] || [];
  const metrics = [...new Set(points.flatMap((p) => Object.keys(p.performance)))].sort();
  const select = $("metric-select");
  if (select.options.length !== metrics.length) {
    select.replaceChildren(...metrics.map((m) => el("option", { value: m }, m)));
  }
  if (!view.metric || !metrics.includes(view.metric)) {
    view.metric = metrics.includes("accuracy") ? "accuracy" : metrics.includes("mae") ? "mae" : metrics[0];
  }
  select.value = view.metric || "";
  const byVersion = {};
  for (const p of points) {
    const value = p.performance[view.metric];
    if (value === undefined) continue;
    const trace = (byVersion[p.version] ||= { x: [], y: [], name: `v${p.version}`, mode: "lines+markers",
      type: "scatter", marker: { size: 4 } });
    trace.x.push(new Date(p.t)); trace.y.push(value);
  }
  const floor = points.filter((p) => p.champion && p.floor !== null && view.metric === "accuracy");
  const traces = Object.values(byVersion);
  if (floor.length) {
    traces.push({ x: floor.map((p) => new Date(p.t)), y: floor.map((p) => p.floor), name: "floor",
      mode: "lines", line: { dash: DASH, color: colors().bad, width: 1 } });
  }
  plot("performance-plot", traces, layout(timeAxis("label arrival (monitor time)"),
    { title: { text: `${view.metric || "metric"} (last labelled)` } },
    { shapes: markers(since()) }));
}

function eventTime() {
  const buckets = [...(state.byEventTime[view.model] || new Map()).values()]
    .sort((a, b) => a.start - b.start);
  const classification = view.metric !== "mae" && view.metric !== "rmse";
  const byVersion = {};
  for (const b of buckets) {
    if (!b.labelled) continue;
    const trace = (byVersion[b.version] ||= { x: [], y: [], text: [], name: `v${b.version}`,
      mode: "lines+markers", type: "scatter", marker: { size: 4 } });
    trace.x.push(new Date(b.start));
    trace.y.push(classification ? 1 - b.errors / b.labelled : b.errors / b.labelled);
    trace.text.push(`${b.labelled} labels`);
  }
  plot("event-time-plot", Object.values(byVersion), layout(timeAxis("prediction event time"),
    { title: { text: classification ? "accuracy (share correct)" : "MAE" } }));
}

function labels() {
  const points = (state.series[view.model] || []).filter((p) => p.champion);
  const c = colors();
  const x = points.map((p) => new Date(p.t));
  plot("labels-plot", [
    { x, y: points.map((p) => (p.coverage === null ? null : 100 * p.coverage)), name: "coverage",
      mode: "lines", line: { color: c.accent } },
    { x, y: points.map((p) => (p.label_delay_ms === null ? null : p.label_delay_ms / 1000)),
      name: "delay p50", mode: "lines", yaxis: "y2", line: { color: c.warn } },
  ], layout(timeAxis("monitor time"), { title: { text: "labelled / scored (%)" }, rangemode: "tozero" }, {
    yaxis2: { title: { text: "label delay (s)" }, overlaying: "y", side: "right", rangemode: "tozero",
      showgrid: false },
    margin: { l: 56, r: 56, t: 30, b: 44 },
  }));
}

function drift() {
  const points = (state.series[view.model] || []).filter((p) => p.champion);
  const features = [...new Set(points.flatMap((p) => Object.keys(p.psi)))].sort();
  const x = points.map((p) => new Date(p.t));
  const traces = features.map((f) => ({ x, y: points.map((p) => p.psi[f] ?? null), name: f,
    mode: "lines", type: "scatter" }));
  traces.push({ x, y: points.map((p) => p.prediction_psi), name: "predictions", mode: "lines",
    line: { dash: "dot" } });
  const threshold = points.length ? points[points.length - 1].psi_threshold : null;
  const shapes = threshold === null ? [] : [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: threshold,
    y1: threshold, line: { color: colors().bad, dash: DASH, width: 1 } }];
  plot("drift-plot", traces, layout(timeAxis("monitor time"),
    { title: { text: "PSI (dimensionless)" }, rangemode: "tozero" },
    { shapes, annotations: threshold === null ? [] : [{ xref: "paper", x: 1, y: threshold,
      text: `threshold ${threshold}`, showarrow: false, yanchor: "bottom", xanchor: "right",
      font: { color: colors().bad } }] }));
}

function histograms() {
  const features = state.histograms[view.model] || [];
  const select = $("feature-select");
  const names = features.map((f) => f.feature);
  if ([...select.options].map((o) => o.value).join() !== names.join()) {
    select.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
  }
  if (!view.feature || !names.includes(view.feature)) view.feature = names[0] || null;
  select.value = view.feature || "";
  const found = features.find((f) => f.feature === view.feature);
  const c = colors();
  const traces = found ? [
    { x: found.bins, y: found.reference.map((s) => 100 * s), name: `reference (v${found.version})`,
      type: "bar", marker: { color: c.muted } },
    { x: found.bins, y: found.live.map((s) => 100 * s), name: `latest window (${found.sample_size})`,
      type: "bar", marker: { color: c.accent } },
  ] : [];
  $("histogram-info").textContent = found
    ? `PSI ${fixed(found.psi)} against v${found.version}, ${found.sample_size} values` : "";
  plot("histogram-plot", traces, layout({ type: "category", gridcolor: c.grid, automargin: true },
    { title: { text: "share of the window (%)" } }, { barmode: "group" }));
}

function timeline() {
  const from = since();
  const items = state.timeline.filter((i) => i.model === view.model && (!from || i.t >= from))
    .slice(-200).reverse();
  $("timeline").replaceChildren(...items.map((i) => el("li", { "data-kind": i.kind, "data-action": i.action || "" },
    el("span", { class: "when", title: when(i.t) }, clock(i.t)),
    el("span", { class: `kind kind-${i.kind} kind-${i.action || ""}` }, i.action || i.kind),
    el("span", {}, el("span", {}, i.title), el("br"),
      el("span", { class: "detail" }, i.trigger ? `${i.detail} · trigger ${i.trigger.kind} ${i.trigger.id.slice(0, 16)}` : i.detail)))));
}

function versions() {
  const model = state.models[view.model] || { versions: [] };
  const metric = (m) => Object.entries(m).filter(([k]) => ["accuracy", "f1", "roc_auc", "mae"].includes(k))
    .map(([k, v]) => `${k} ${fixed(v)}`).join(" ");
  $("versions").tBodies[0].replaceChildren(...[...model.versions].reverse().map((v) => el("tr", {},
    el("td", {}, `v${v.version}`), el("td", {}, v.state), el("td", {}, v.aliases.join(", ")),
    el("td", {}, `${v.trigger.kind}`), el("td", { class: "num" }, metric(v.metrics)),
    el("td", { title: when(v.created) }, clock(v.created)))));
}

function deadLetters() {
  const from = since() || (state.deadLetterTimes.length ? state.deadLetterTimes[0][0] : Date.now());
  const byKey = {};
  for (const [t, key] of state.deadLetterTimes) {
    if (t < from) continue;
    const minute = Math.floor(t / 60000) * 60000;
    const counts = (byKey[key] ||= new Map());
    counts.set(minute, (counts.get(minute) || 0) + 1);
  }
  const traces = Object.entries(byKey).map(([key, counts]) => {
    const minutes = [...counts.keys()].sort();
    return { x: minutes.map((m) => new Date(m)), y: minutes.map((m) => counts.get(m)), name: key.replaceAll("|", " · "), type: "bar" };
  });
  plot("dead-letter-plot", traces, layout(timeAxis("refused at"), { title: { text: "records / minute" } },
    { barmode: "stack" }));
  $("dead-letters").replaceChildren(...[...state.deadLetters].reverse().map((d) => el("div", { class: "letter" },
    el("div", {}, el("strong", {}, `${d.service} · ${d.stage}`), ` ${d.error_class}: ${d.error_message}`),
    el("div", { class: "detail" }, `${when(d.t)} · from ${d.source} · ${d.value.size} bytes`
      + (d.rule ? ` · rule ${d.rule}` : "")),
    ...(Object.keys(d.headers).length ? [el("div", { class: "detail" },
      Object.entries(d.headers).map(([k, v]) => `${k}: ${v}`).join(" · "))] : []),
    el("pre", {}, d.value.text !== null ? d.value.text : d.value.hex || "(no value)"))));
}

function health() {
  $("health").tBodies[0].replaceChildren(...Object.values(state.health).map((s) => el("tr", {},
    el("td", {}, s.service),
    el("td", { class: `state-${s.state}` }, s.state),
    el("td", { class: "num" }, s.last_poll_age_s === undefined || s.last_poll_age_s === null ? "-" : `${fixed(s.last_poll_age_s, 1)} s ago`),
    el("td", { class: "num" }, s.rate === undefined || s.rate === null ? "-" : `${fixed(s.rate, 1)} records/s`),
    el("td", { class: "num" }, s.up ? `${s.total_lag} records` : "-",
      ...(s.lag || []).filter((p) => p.lag > 0).map((p) =>
        el("div", { class: "detail" }, `${p.topic.split(".").pop()}[${p.partition}] ${p.lag}`))),
    el("td", { class: "num" }, s.up ? String(s.dead_letters) : "-"))));
  const unreadable = Object.entries(state.unreadable);
  $("unreadable").textContent = unreadable.length
    ? `unreadable records skipped: ${unreadable.map(([t, n]) => `${t} ${n}`).join(", ")}` : "";
}

// ---- operator's orders -------------------------------------------------------

async function act(action) {
  const result = $("action-result");
  const version = $("version-select").value;
  const body = { action, model: view.model, reason: $("reason").value || null,
    version: ["promote", "archive"].includes(action) && version ? Number(version) : null };
  result.className = "muted";
  result.textContent = `${action}: sent, waiting for the answer...`;
  const reply = await fetch("/api/actions", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body) });
  const answer = await reply.json();
  if (!reply.ok) {
    result.className = "error";
    result.textContent = `${action} refused: ${answer.detail}`;
    return;
  }
  result.textContent = answer.request_id ? `training requested (${answer.request_id})`
    : answer.updates.join("; ");
}

document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("#actions button")) {
    button.addEventListener("click", () => act(button.dataset.action));
  }
  for (const button of document.querySelectorAll("#range button")) {
    button.addEventListener("click", () => {
      document.querySelectorAll("#range button").forEach((b) => b.classList.toggle("on", b === button));
      view.minutes = Number(button.dataset.minutes);
      ["series", "eventTime", "timeline", "deadLetters"].forEach((d) => dirty.add(d));
      schedule();
    });
  }
  const redrawAll = () => { ["models", "series", "eventTime", "histograms", "timeline", "deadLetters", "health"].forEach((d) => dirty.add(d)); schedule(); };
  $("model-select").addEventListener("change", (e) => { view.model = e.target.value; redrawAll(); });
  $("metric-select").addEventListener("change", (e) => { view.metric = e.target.value; dirty.add("series"); dirty.add("eventTime"); schedule(); });
  $("feature-select").addEventListener("change", (e) => { view.feature = e.target.value; dirty.add("histograms"); schedule(); });
  $("theme").addEventListener("click", () => {
    const root = document.documentElement;
    const dark = root.dataset.theme ? root.dataset.theme === "dark"
      : matchMedia("(prefers-color-scheme: dark)").matches;
    root.dataset.theme = dark ? "light" : "dark";
    redrawAll();
  });
  connect();
});
