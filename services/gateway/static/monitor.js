// The built-in monitor: the key figures of the Grafana dashboards, drawn as SVG, no library.
"use strict";

const COLORS = ["#0b5cab", "#b42318", "#1b7f3b", "#9a6700", "#6e40c9", "#0e7490", "#be185d", "#4d7c0f"];
const REM = parseFloat(getComputedStyle(document.documentElement).fontSize) || 16;
const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";

function el(name, attrs = {}, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

// A number for an axis or a label: no scientific notation, a unit when given.
function formatValue(v, { percent = false, unit = "" } = {}) {
  if (percent) return `${(v * 100).toFixed(v * 100 < 10 && v !== 0 ? 1 : 0)}%`;
  const a = Math.abs(v);
  const digits = a >= 10 || a === 0 ? 0 : a >= 1 ? 1 : 3;
  return `${v.toLocaleString("en", { maximumFractionDigits: digits })}${unit ? ` ${unit}` : ""}`;
}

// A time tick: hours and minutes, with the day when the window spans more than one.
function formatTime(t, spanMs) {
  const d = new Date(t);
  const hm = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return spanMs > 36 * 3600 * 1000 ? `${d.toLocaleDateString([], { month: "short", day: "numeric" })} ${hm}` : hm;
}

// series: [{name, points: [[Date, number], ...]}]; lines: [{value, label}] drawn dashed.
// clampAt: values above it are drawn at the top, which reads "≥ clampAt" (a PSI of 15 would
// otherwise flatten the 0.1 and 0.25 lines into the axis). empty: what the chart will show and
// when, said while there is nothing yet. Points are drawn as dots too while they are few, so a
// single bucket is visible, and series that coincide stay visible (the first drawn largest).
const LANGUAGE_NAMES = { en: "English", fr: "French", es: "Spanish", de: "German", it: "Italian", pt: "Portuguese", nl: "Dutch" };
function languageName(code) { return LANGUAGE_NAMES[code] || code; }

function lineChart(container, series, { lines = [], yMax = null, percent = false, clampAt = null, unit = "", empty = "No data in this window yet." } = {}) {
  container.textContent = "";
  const width = container.clientWidth || 400;
  const height = (container.classList.contains("tall") ? 15 : 11) * REM; // as monitor.css
  const pad = { left: 52, right: 8, top: 8, bottom: 18 };
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, role: "img" });
  const all = series.flatMap((s) => s.points);
  if (!all.length) {
    const note = document.createElement("p");
    note.className = "empty-state";
    note.textContent = empty;
    container.append(note);
    return;
  }
  const xs = all.map((p) => p[0].getTime());
  // A lone bucket gets a minute either side, so it sits in the middle with a readable axis.
  const lone = Math.min(...xs) === Math.max(...xs);
  const x0 = Math.min(...xs) - (lone ? 60000 : 0), x1 = Math.max(...xs) + (lone ? 60000 : 0);
  const highest = Math.max(...all.map((p) => p[1]), ...lines.map((l) => l.value), 1e-9);
  const clamped = clampAt !== null && highest > clampAt;
  // All zero (no report yet): an axis up to 10 % or 1 rather than to nothing.
  const top = clamped ? clampAt : yMax ?? (highest > 1e-9 ? highest * 1.15 : percent ? 0.1 : 1);
  const X = (t) => pad.left + ((t - x0) / (x1 - x0)) * (width - pad.left - pad.right);
  const Y = (v) => height - pad.bottom - (Math.min(v, top) / top) * (height - pad.top - pad.bottom);
  svg.append(el("line", { x1: pad.left, x2: width - pad.right, y1: Y(0), y2: Y(0), class: "axis" }));
  for (const v of [0, top / 2, top]) {
    const text = formatValue(v, { percent, unit });
    svg.append(el("text", { x: pad.left - 4, y: Y(v) + 3, "text-anchor": "end" }, clamped && v === top ? `≥ ${text}` : text));
  }
  const ticks = lone ? [(x0 + x1) / 2] : [x0, (x0 + x1) / 2, x1];
  const labels = [...new Set(ticks.map((t) => formatTime(t, x1 - x0)))];
  if (labels.length === ticks.length) {
    ticks.forEach((t, i) => {
      const anchor = lone || i === 1 ? "middle" : i === 0 ? "start" : "end";
      svg.append(el("text", { x: X(t), y: height - 4, "text-anchor": anchor }, labels[i]));
    });
  } else {
    svg.append(el("text", { x: X((x0 + x1) / 2), y: height - 4, "text-anchor": "middle" }, labels[0]));
  }
  for (const line of lines) {
    svg.append(el("line", { x1: pad.left, x2: width - pad.right, y1: Y(line.value), y2: Y(line.value), stroke: "#9a6700", "stroke-dasharray": "4 3" }));
    svg.append(el("text", { x: width - pad.right, y: Y(line.value) - 3, "text-anchor": "end" }, line.label));
  }
  const few = all.length <= 60;
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    const d = s.points.map((p, j) => `${j ? "L" : "M"}${X(p[0].getTime()).toFixed(1)},${Y(p[1]).toFixed(1)}`).join("");
    svg.append(el("path", { d, fill: "none", stroke: color, "stroke-width": 2 }));
    if (few) {
      const r = Math.max(2, 4.5 - i); // the later series inside the earlier ones' dots
      for (const [t, v] of s.points) {
        const dot = el("circle", { cx: X(t.getTime()), cy: Y(v), r, fill: color });
        dot.append(el("title", {}, `${s.name}: ${formatValue(v, { percent, unit })} at ${t.toLocaleTimeString()}`));
        svg.append(dot);
      }
    }
  });
  svg.setAttribute("aria-label", series.map((s) => `${s.name}: last ${s.points.length ? formatValue(s.points.at(-1)[1], { percent, unit }) : "none"}`).join("; "));
  container.append(svg);
  if (series.length > 1) {
    const legend = document.createElement("div");
    legend.className = "legend";
    series.forEach((s, i) => {
      const item = document.createElement("span");
      item.innerHTML = `<i style="background:${COLORS[i % COLORS.length]}"></i>`;
      item.append(document.createTextNode(s.name));
      legend.append(item);
    });
    container.append(legend);
  }
}

const points = (rows, key) => rows.filter((r) => r[key] !== null).map((r) => [new Date(r.t), r[key]]);

function showScaling(scaling) {
  const workers = $("scaling");
  const decisions = $("scale-decisions");
  workers.textContent = "";
  decisions.textContent = "";
  if (!scaling) {
    workers.insertRow().insertCell().textContent = "Not run by airparadis up (compose or Kubernetes scale their own way).";
    return;
  }
  for (const [name, w] of Object.entries(scaling.workers)) {
    const row = workers.insertRow();
    row.insertCell().textContent = name;
    row.insertCell().textContent = w.processes;
    row.insertCell().textContent = w.minimum === w.maximum ? `${w.minimum} (fixed)` : `${w.minimum} / ${w.maximum}`;
    row.insertCell().textContent = w.backlog === null ? "not sampled" : w.backlog.toLocaleString("en");
    row.insertCell().textContent = `${w.added} / ${w.removed}`;
  }
  for (const d of [...scaling.decisions].reverse()) {
    const row = decisions.insertRow();
    row.insertCell().textContent = new Date(d.at * 1000).toLocaleTimeString();
    row.insertCell().textContent = d.worker;
    row.insertCell().textContent = d.backlog.toLocaleString("en");
    row.insertCell().textContent = `${d.before} → ${d.after}`;
    row.insertCell().textContent = d.reason;
  }
  if (!scaling.decisions.length) decisions.insertRow().insertCell().textContent = "no decision yet";
}

async function refresh() {
  const params = new URLSearchParams({ hours: $("hours").value });
  if ($("version").value) params.set("model_version", $("version").value);
  let data;
  try {
    const response = await fetch(`/v1/monitor?${params}`, { headers: apiKey.headers() });
    data = await response.json();
    if (response.status === 401) {
      apiKey.ask(data.error === "invalid_key" ? "This key was refused: it is unknown or was revoked." : "");
      throw new Error("this page needs a valid API key (scope monitor): enter it above");
    }
    if (!response.ok) throw new Error(data.reason || `the service answered ${response.status}`);
  } catch (err) {
    $("error").textContent = `Cannot load the figures: ${err.message}`;
    $("error").hidden = false;
    return;
  }
  $("error").hidden = true;
  const versions = new Set([...$("version").options].map((o) => o.value));
  for (const v of data.model_versions) {
    if (!versions.has(v)) $("version").append(new Option(`v${v}`, v));
  }
  if (data.model_version) $("version").value = data.model_version;
  const noTweets = "No tweet scored in this window yet: each one appears here within 30 s of being scored.";
  lineChart($("traffic"), [{ name: "predictions", points: points(data.traffic, "predictions") }], { unit: "/min", empty: noTweets });
  // p99 drawn first (largest dots), p50 last, so coinciding quantiles all show.
  lineChart($("latency"), ["p99", "p95", "p50"].map((k) => ({ name: k, points: points(data.latency, k) })), { unit: "ms", empty: noTweets });
  lineChart($("error-rate"), [{ name: "error rate", points: points(data.error_rate, "error_rate") }], { percent: true, empty: noTweets });
  lineChart($("positive-rate"), [{ name: "positive rate", points: points(data.positive_rate, "positive_rate") }], { yMax: 1, percent: true, empty: noTweets });
  const target = data.precision.find((r) => r.target !== null)?.target;
  lineChart($("precision"), [
    { name: "estimated precision", points: points(data.precision, "precision") },
    { name: "low", points: points(data.precision, "precision_low") },
    { name: "high", points: points(data.precision, "precision_high") },
  ], { yMax: 1, percent: true, lines: target ? [{ value: target, label: `target ${(target * 100).toFixed(0)}%` }] : [],
    empty: "No estimate yet: the alerter estimates the live precision every check round once the last hour holds enough predictions (AIRPARADIS_PRECISION_MIN_PREDICTIONS, 200 by default)." });
  lineChart($("prior-threshold"), [
    { name: "share of positive tweets", points: points(data.prior, "positive_share") },
    { name: "threshold in use", points: points(data.threshold, "threshold") },
  ], { yMax: 1, empty: noTweets });
  lineChart($("reported-wrong"), [
    { name: "called positive, reported negative", points: points(data.reported_wrong, "false_positives") },
    { name: "called negative, reported positive", points: points(data.reported_wrong, "false_negatives") },
  ], { empty: "No report with a correct label in this window: they appear when users report a wrong prediction." });
  const languages = Object.keys(data.languages || {});
  lineChart($("languages"), languages.map((l) => ({ name: languageName(l), points: points(data.languages[l], "tweets") })),
    { empty: noTweets });
  const totals = (data.language_totals || []).map((r) => `${languageName(r.language)} ${(r.share * 100).toFixed(0)}%`);
  $("languages-caption").textContent = totals.length
    ? `Language mix: tweets per interval (${totals.slice(0, 5).join(", ")})`
    : "Language mix: tweets per interval";
  lineChart($("unreliable"), [{ name: "not a language the model learnt", points: points(data.unreliable_share, "unreliable_share") }],
    { yMax: 1, percent: true, empty: noTweets });
  const bucket = data.psi_interval_s >= 3600 ? "hour" : `${data.psi_interval_s / 60} min`;
  $("psi-caption").textContent =
    `Drift: PSI per ${bucket} against the training reference of v${data.model_version ?? "?"} (0.1 warn, 0.25 alert)`;
  const features = Object.keys(data.psi);
  lineChart($("psi"), features.map((f) => ({ name: f, points: points(data.psi[f], "psi") })),
    { lines: [{ value: 0.1, label: "warn 0.1" }, { value: 0.25, label: "alert 0.25" }], clampAt: 1,
      empty: `No drift figure yet: the PSI of a ${bucket} needs enough predictions in it (${data.psi_min_predictions ?? 50} at least) and the version's training reference.` });
  const percent = (v) => (v === null || v === undefined ? "no estimate" : `${(v * 100).toFixed(1)}%`);
  const versus = $("challengers");
  versus.textContent = "";
  for (const c of data.challengers || []) {
    const row = versus.insertRow();
    row.insertCell().textContent = `v${c.challenger}`;
    row.insertCell().textContent = `v${c.champion}`;
    row.insertCell().textContent = c.tweets.toLocaleString("en");
    row.insertCell().textContent = percent(c.agreement);
    row.insertCell().textContent = `${percent(c.champion_positive_rate)} / ${percent(c.challenger_positive_rate)}`;
    row.insertCell().textContent = `${percent(c.champion_precision)} / ${percent(c.challenger_precision)}`;
    row.insertCell().textContent = c.reported ? `${c.champion_right} / ${c.challenger_right} of ${c.reported}` : "no report yet";
  }
  if (!(data.challengers || []).length) {
    versus.insertRow().insertCell().textContent = "No challenger in this window: airparadis models promote N --alias challenger";
  }
  showScaling(data.scaling);
  const body = $("alerts");
  body.textContent = "";
  for (const a of data.alerts) {
    const row = body.insertRow();
    row.insertCell().textContent = new Date(a.raised_at).toLocaleString();
    row.insertCell().textContent = a.kind;
    row.insertCell().textContent = a.summary;
  }
  if (!data.alerts.length) body.insertRow().insertCell().textContent = "none in this window";
  const limited = data.rate_limited;
  $("rate-limited").textContent = limited
    ? `${limited.total} (${limited.api} API calls, ${limited.feedback} reports) since ${new Date(limited.since).toLocaleString()}`
    : "";
  const stored = data.rate_limited_stored;
  $("rate-limited-stored").textContent = stored
    ? `${stored.total} (${stored.api} API calls, ${stored.feedback} reports) in this window, all gateways`
    : "";
  $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
}

document.addEventListener("DOMContentLoaded", () => {
  // /monitor?hours=1 opens on that window (a link to share, a bookmark).
  const asked = new URLSearchParams(window.location.search).get("hours");
  if (asked && [...$("hours").options].some((o) => o.value === asked)) $("hours").value = asked;
  $("hours").addEventListener("change", refresh);
  $("version").addEventListener("change", refresh);
  // Once the key (if the gateway wants one) is known: draw, then every 30 s.
  let started = false;
  apiKey.start(() => {
    refresh();
    if (!started) setInterval(refresh, 30000);
    started = true;
  });
});
