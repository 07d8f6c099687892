// The tweet-check page: analyse a draft through the API, explain it, report it, keep history.
"use strict";

const TWEET_LIMIT = 280;
const API_LIMIT = 1000;
const HISTORY_KEY = "airparadis.history";
const $ = (id) => document.getElementById(id);
let current = null; // the last prediction shown

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

// The API takes up to API_LIMIT characters; past TWEET_LIMIT the draft is longer than a tweet,
// which the counter says (it is still analysed).
function updateCount() {
  const n = $("draft").value.length;
  const longer = n > TWEET_LIMIT ? " — longer than a tweet (280)" : "";
  $("count").textContent = `${n} / ${API_LIMIT.toLocaleString("en")}${longer}`;
  $("count").classList.toggle("over", n > TWEET_LIMIT);
}

async function callApi(path, body) {
  let response;
  try {
    response = await fetch(path, {
      method: "POST",
      headers: apiKey.headers({ "content-type": "application/json" }),
      body: JSON.stringify(body),
    });
  } catch (err) {
    throw new Error("The service cannot be reached. Check your connection and try again.");
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    if (response.status === 401) {
      apiKey.ask(data.error === "invalid_key" ? "This key was refused: it is unknown or was revoked." : "");
      throw new Error("This service needs a valid API key: enter it above, then try again.");
    }
    if (response.status === 429) {
      const wait = response.headers.get("Retry-After") || "a few";
      throw new Error(`Too many requests for now: try again in ${wait} s.`);
    }
    const messages = {
      model_not_ready: "The model is not ready yet. Try again in a minute.",
      timeout: "The service took too long to answer. Try again in a moment.",
      bus_unavailable: "The service is unavailable right now. Try again in a moment.",
    };
    throw new Error(messages[data.error] || data.reason || `The service answered ${response.status}.`);
  }
  return data;
}

function validate(text) {
  if (!text.trim()) return "Type or paste a tweet first.";
  if (text.length > API_LIMIT) return `The text is ${text.length} characters; the limit is ${API_LIMIT}.`;
  return "";
}

async function analyse(event) {
  if (event) event.preventDefault();
  const text = $("draft").value;
  const problem = validate(text);
  showError(problem);
  if (problem) { $("draft").focus(); return; }
  $("analyse").disabled = true;
  $("analyse").textContent = "Analysing…";
  try {
    const [prediction, explanation] = await Promise.all([
      callApi("/v1/predict", { text }),
      callApi("/v1/explain", { text }).catch((err) => ({ failed: err.message })),
    ]);
    current = prediction;
    render(prediction, explanation);
    remember(prediction);
  } catch (err) {
    showError(err.message);
  } finally {
    $("analyse").disabled = false;
    $("analyse").textContent = "Analyse";
  }
}

function render(p, explanation) {
  const safe = p.label === "positive";
  $("result").hidden = false;
  $("verdict").textContent = safe ? "Safe to post" : "Risk of negative reading";
  $("verdict").className = "verdict " + (safe ? "safe" : "risk") + (p.reliable === false ? " unsure" : "");
  // A tweet in a language the model did not learn: its verdict is a guess, said beside it.
  const warning = $("language-warning");
  warning.hidden = p.reliable !== false;
  warning.textContent = p.reliable === false ? `⚠ Not reliable. ${p.reliability_note || ""}` : "";
  const note = $("language-note");
  note.hidden = p.reliable === false || !p.reliability_note;
  note.textContent = p.reliable === false ? "" : (p.reliability_note || "");
  $("language").textContent = languageText(p.language);
  $("gauge-fill").style.width = `${(p.probability * 100).toFixed(1)}%`;
  $("gauge-threshold").style.left = `${(p.threshold * 100).toFixed(1)}%`;
  $("gauge").setAttribute("aria-label",
    `Probability positive ${(p.probability * 100).toFixed(0)}%, threshold ${(p.threshold * 100).toFixed(0)}%`);
  $("label").textContent = p.label;
  $("probability").textContent = `${(p.probability * 100).toFixed(1)} %`;
  $("threshold").textContent = `${(p.threshold * 100).toFixed(1)} %`;
  $("model").textContent = `${p.model_name} v${p.model_version}`;
  $("latency").textContent = `${Math.round(p.latency_ms)} ms`;
  renderWhy(p.text, explanation);
  $("report-status").textContent = "";
  $("report-form").reset();
  $("send-report").disabled = false;
}

const LANGUAGE_NAMES = { en: "English", fr: "French", es: "Spanish", de: "German", it: "Italian", pt: "Portuguese", nl: "Dutch" };

function languageText(language) {
  if (!language) return "not detected";
  if (language.status === "too_short") return "too short to tell";
  const name = LANGUAGE_NAMES[language.code] || language.code;
  const sure = `${(language.confidence * 100).toFixed(0)}%`;
  return language.status === "uncertain" ? `perhaps ${name} (${sure})` : `${name} (${sure})`;
}

function renderWhy(text, explanation) {
  const why = $("why");
  why.textContent = "";
  $("top-negative").textContent = "";
  $("top-positive").textContent = "";
  if (!explanation || explanation.failed) {
    why.textContent = text;
    $("why-note").textContent = `No explanation: ${explanation ? explanation.failed : "unavailable"}`;
    return;
  }
  const biggest = Math.max(...explanation.words.map((w) => Math.abs(w.contribution)), 1e-9);
  // The strongest words each way are always marked; others when they weigh enough.
  const strongest = new Set([...explanation.top_positive, ...explanation.top_negative].map((w) => w.start));
  let at = 0;
  for (const w of explanation.words) {
    why.append(document.createTextNode(text.slice(at, w.start)));
    const strength = Math.abs(w.contribution) / biggest;
    if (w.contribution !== 0 && (strength > 0.15 || strongest.has(w.start))) {
      const mark = document.createElement("mark");
      mark.className = w.contribution > 0 ? "pos" : "neg";
      const alpha = (0.2 + 0.5 * strength).toFixed(2);
      mark.style.background = w.contribution > 0 ? `rgba(27, 127, 59, ${alpha})` : `rgba(180, 35, 24, ${alpha})`;
      mark.textContent = text.slice(w.start, w.end);
      mark.title = `${w.contribution > 0 ? "+" : ""}${w.contribution.toFixed(3)}`;
      why.append(mark);
    } else {
      why.append(document.createTextNode(text.slice(w.start, w.end)));
    }
    at = w.end;
  }
  why.append(document.createTextNode(text.slice(at)));
  const list = (id, words) => {
    for (const w of words) {
      const li = document.createElement("li");
      li.textContent = w.word;
      $(id).append(li);
    }
    if (!words.length) $(id).innerHTML = "<li>none</li>";
  };
  list("top-negative", explanation.top_negative);
  list("top-positive", explanation.top_positive);
  const method = explanation.method === "linear" ? "the model's word weights" : "removing each word in turn";
  $("why-note").textContent = `From ${method}${explanation.complete ? "" : " (cut short by the time budget)"}.`;
}

async function report(event) {
  event.preventDefault();
  if (!current) return;
  const chosen = document.querySelector('input[name="correct"]:checked');
  const body = { prediction_id: current.id };
  if (chosen) body.correct_label = chosen.value;
  const comment = $("comment").value.trim();
  if (comment) body.comment = comment;
  $("send-report").disabled = true;
  try {
    const answer = await callApi("/v1/feedback?wait_alert_ms=1500", body);
    $("report-status").textContent = answer.team_notified
      ? "Thank you: report received. Several reports came in a short time, so the team has been notified."
      : "Thank you: report received.";
  } catch (err) {
    $("report-status").textContent = `The report was not sent: ${err.message}`;
    $("send-report").disabled = false;
  }
}

function history() {
  try { return JSON.parse(sessionStorage.getItem(HISTORY_KEY) || "[]"); } catch { return []; }
}

function remember(p) {
  const items = [p, ...history().filter((h) => h.id !== p.id)].slice(0, 20);
  sessionStorage.setItem(HISTORY_KEY, JSON.stringify(items));
  renderHistory();
}

function renderHistory() {
  const ul = $("history");
  ul.textContent = "";
  for (const h of history()) {
    const li = document.createElement("li");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.value = h.id;
    box.setAttribute("aria-label", `Compare: ${h.text.slice(0, 60)}`);
    box.addEventListener("change", renderCompare);
    const tag = document.createElement("span");
    tag.className = `tag ${h.label}`;
    tag.textContent = `${h.label} ${(h.probability * 100).toFixed(0)}%` + (h.reliable === false ? " ⚠" : "");
    if (h.reliable === false) tag.title = h.reliability_note || "Not a language the model learnt";
    const text = document.createElement("span");
    text.textContent = h.text;
    li.append(box, tag, text);
    ul.append(li);
  }
}

function renderCompare() {
  const ticked = [...document.querySelectorAll("#history input:checked")].map((b) => b.value);
  const chosen = history().filter((h) => ticked.includes(h.id)).slice(0, 2);
  const box = $("compare");
  box.textContent = "";
  box.hidden = chosen.length < 2;
  for (const h of chosen) {
    const div = document.createElement("div");
    const title = document.createElement("strong");
    title.textContent = `${h.label} — ${(h.probability * 100).toFixed(1)}% (threshold ${(h.threshold * 100).toFixed(0)}%)`;
    const p = document.createElement("p");
    p.textContent = h.text;
    div.append(title, p);
    box.append(div);
  }
}

// --- A file of drafts: parsed here, scored 64 at a time through /v1/predict, offered back ---

const FILE_ROWS = 5000;
const BATCH = 64;
const ADDED = ["id", "label", "probability", "threshold", "model_version", "language", "reliable", "reliability_note", "error"];

// RFC 4180 CSV: quoted fields with commas, quotes ("") and line breaks inside.
function parseCsv(text) {
  const rows = [];
  let row = [], field = "", quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; }
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") { row.push(field); field = ""; }
    else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      row.push(field); rows.push(row); row = []; field = "";
    } else field += c;
  }
  if (field !== "" || row.length) { row.push(field); rows.push(row); }
  return rows.filter((r) => r.length > 1 || r[0] !== "");
}

const csvField = (v) => (/[",\r\n]/.test(String(v ?? "")) ? `"${String(v).replaceAll('"', '""')}"` : String(v ?? ""));

async function scoreFile() {
  const chosen = $("file").files[0];
  const status = (text) => { $("file-status").textContent = text; };
  $("file-download").hidden = true;
  $("file-table").hidden = true;
  if (!chosen) { status("Choose a CSV file first."); return; }
  const [header, ...lines] = parseCsv((await chosen.text()).replace(/^\ufeff/, ""));
  const column = (header || []).indexOf("text");
  if (column < 0) { status(`This file has no "text" column (its header: ${(header || []).join(", ") || "empty"}).`); return; }
  if (lines.length > FILE_ROWS) { status(`${lines.length.toLocaleString("en")} rows: the page takes ${FILE_ROWS.toLocaleString("en")} at most; use airparadis score for more.`); return; }
  const results = lines.map((cells) => {
    const text = cells[column] ?? "";
    const problem = validate(text);
    return { cells, text, answer: problem ? { error: problem } : null };
  });
  const todo = results.filter((r) => !r.answer);
  $("score-file").disabled = true;
  $("file-progress").hidden = false;
  $("file-progress").max = Math.max(results.length, 1);
  let done = results.length - todo.length;
  try {
    for (let start = 0; start < todo.length; start += BATCH) {
      const batch = todo.slice(start, start + BATCH);
      try {
        const answer = await callApi("/v1/predict", { texts: batch.map((r) => r.text) });
        answer.predictions.forEach((p, i) => { batch[i].answer = p; });
      } catch (err) {
        // One bad line refuses the whole batch: score its lines one by one for their reasons.
        for (const r of batch) {
          r.answer = await callApi("/v1/predict", { text: r.text }).catch((e) => ({ error: e.message }));
        }
      }
      done += batch.length;
      $("file-progress").value = done;
      status(`Scored ${done.toLocaleString("en")} of ${results.length.toLocaleString("en")} rows…`);
    }
  } finally {
    $("score-file").disabled = false;
    $("file-progress").hidden = true;
  }
  const columns = [...header, ...ADDED];
  // The language column holds its code ("" when too short to tell), not the whole object.
  const added = (answer, k) => (k === "language" ? answer.language?.code : answer[k]) ?? "";
  const values = (r) => [...header.map((_, i) => r.cells[i] ?? ""), ...ADDED.map((k) => added(r.answer, k))];
  const csv = [columns, ...results.map(values)].map((row) => row.map(csvField).join(",")).join("\r\n") + "\r\n";
  const link = $("file-download");
  link.href = URL.createObjectURL(new Blob([csv], { type: "text/csv" }));
  link.download = chosen.name.replace(/\.csv$/i, "") + ".scored.csv";
  link.hidden = false;
  const refused = results.filter((r) => r.answer.error).length;
  status(`${results.length.toLocaleString("en")} rows scored${refused ? `, ${refused} with an error` : ""}.`);
  const table = $("file-table");
  table.textContent = "";
  const head = table.createTHead().insertRow();
  for (const name of ["text", "label", "probability", "error"]) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = name;
    head.append(th);
  }
  const body = table.createTBody();
  for (const r of results.slice(0, 200)) {
    const tr = body.insertRow();
    tr.insertCell().textContent = r.text;
    tr.insertCell().textContent = r.answer.label ?? "";
    tr.insertCell().textContent = r.answer.probability === undefined ? "" : r.answer.probability.toFixed(3);
    tr.insertCell().textContent = r.answer.error ?? "";
  }
  table.hidden = false;
}

document.addEventListener("DOMContentLoaded", () => {
  $("score-file").addEventListener("click", scoreFile);
  $("draft").addEventListener("input", updateCount);
  $("draft").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) analyse(e);
  });
  $("check-form").addEventListener("submit", analyse);
  $("report-form").addEventListener("submit", report);
  updateCount();
  renderHistory();
  apiKey.start();
});
