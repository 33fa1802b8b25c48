// What the forecast view (viewer.js) and the backtest view (backtest.js) share: the JSON API on
// this origin with the typed API key, its problem+json errors shown next to the fields they name,
// CSV candles, the facts lists and plotly.js's loading.

export const CHART_CONFIG = {
  // plotly.js 4 offers "Share chart..." (an upload to Plotly Cloud) by default: nothing leaves this page.
  displaylogo: false,
  showSendToCloud: false,
  plotlyServerURL: "",
  modeBarButtonsToRemove: ["select2d", "lasso2d"],
};
const TIME_COLUMNS = ["timestamp", "timestamps", "date", "datetime"];
const PRICE_COLUMNS = ["open", "high", "low", "close"];
const CANDLE_COLUMNS = [...PRICE_COLUMNS, "volume", "amount"];
// metadata.calendar.source in words.
const CALENDAR_SOURCES = {
  request: "as asked",
  data_dir: "the data folder's",
  isin: "the ISIN country's exchange",
  history: "inferred from the bars",
};
// Errors of these statuses name no field: shown where they belong.
const FIELD_OF_STATUS = { 401: "api_key", 404: "candles", 413: "candles" };

const csvBox = document.getElementById("csv-box");
const keyInput = document.getElementById("f-api-key");

// The service's limits, as the page was rendered with them (app/api/viewer.py page_limits).
export const limits = JSON.parse(document.body.dataset.limits);

// plotly.js loads after the page's modules (deferred, in order), so requests go out meanwhile.
export const plotlyReady = new Promise((resolve, reject) => {
  const script = document.getElementById("plotly-script");
  if (window.Plotly) resolve();
  script.addEventListener("load", resolve);
  script.addEventListener("error", () => reject(new Error("plotly.js did not load")));
});

export class FieldError extends Error {
  constructor(field, message) {
    super(message);
    this.field = field;
  }
}

// --- input text as JSON -------------------------------------------------------------------

export function number(text) {
  const value = Number(text);
  return text !== "" && Number.isFinite(value) ? value : text; // the API names what is wrong
}

// An input's value as its request field's JSON (see FormField.kind); undefined when empty.
export function fieldValue(input) {
  if (input.dataset.kind === "boolean") return input.checked;
  const text = input.value.trim();
  if (text === "") return undefined;
  switch (input.dataset.kind) {
    case "integer":
      return /^[+-]?\d+$/.test(text) ? Number(text) : text;
    case "number":
      return number(text);
    case "numbers":
      return text.split(/[\s,;]+/).filter(Boolean).map(number);
    default:
      return text;
  }
}

export function parseCsv(text) {
  const rows = text.split(/\r?\n/).map((line) => line.trim()).filter(Boolean);
  if (rows.length === 0) throw new FieldError("candles", "Paste or upload a CSV of candles.");
  const separator = rows[0].includes("\t") ? "\t" : rows[0].includes(";") ? ";" : ",";
  const split = (line) => line.split(separator).map((cell) => cell.trim().replace(/^"|"$/g, ""));
  const header = split(rows[0]).map((name) => name.toLowerCase());
  const timeColumn = header.findIndex((name) => TIME_COLUMNS.includes(name));
  const missing = PRICE_COLUMNS.filter((name) => !header.includes(name));
  if (timeColumn < 0) missing.unshift("timestamp");
  if (missing.length) {
    throw new FieldError("candles", `The header row lacks: ${missing.join(", ")}.`);
  }
  return rows.slice(1).map((row) => {
    const cells = split(row);
    const candle = { timestamp: cells[timeColumn] };
    for (const column of CANDLE_COLUMNS) {
      const cell = cells[header.indexOf(column)];
      if (header.includes(column) && cell !== undefined && cell !== "") {
        candle[column] = number(cell);
      }
    }
    return candle;
  });
}

// --- errors next to their fields ---------------------------------------------------------------

function errorSlot(field, fallback) {
  return (
    document.querySelector(`[data-error-for="${CSS.escape(field)}"]`) ||
    document.querySelector(`[data-error-for="${CSS.escape(fallback)}"]`)
  );
}

function inputOf(field) {
  if (field === "candles") return csvBox.hidden ? document.getElementById("history-server") : document.getElementById("f-candles");
  if (field === "api_key") return keyInput;
  return document.querySelector(`[data-field="${CSS.escape(field)}"]`);
}

export function clearErrors() {
  for (const slot of document.querySelectorAll("[data-error-for]")) slot.textContent = "";
  for (const input of document.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
}

// marshmallow nests messages like the request: {"candles": {"3": {"open": ["..."]}}}.
function flatten(messages, path = "") {
  if (Array.isArray(messages) && messages.every((m) => typeof m === "string")) {
    return messages.map((m) => (path ? `${path}: ${m}` : m));
  }
  if (messages && typeof messages === "object") {
    return Object.entries(messages).flatMap(([key, inner]) =>
      flatten(inner, /^\d+$/.test(key) ? `${path}[${key}]` : path ? `${path}.${key}` : key),
    );
  }
  return [path ? `${path}: ${messages}` : String(messages)];
}

// `place` says where a view shows errors: `rename` maps the API's field names to the page's (the
// backtest's `origins` is the input `backtest_origins`), `fallback` names the slot of errors that
// name no input, `button` takes the focus when no input is marked.
export function showErrors(byField, place) {
  let first = null;
  for (const [apiField, messages] of Object.entries(byField)) {
    const field = place.rename[apiField] ?? apiField;
    const slot = errorSlot(field, place.fallback);
    const known = slot.dataset.errorFor === field;
    const lines = known && Array.isArray(messages) ? flatten(messages) : flatten(messages, apiField);
    const shown = slot.textContent.split("\n");
    slot.textContent = [...shown, ...lines.filter((line) => !shown.includes(line))].filter(Boolean).join("\n");
    slot.closest("details")?.setAttribute("open", "");
    const input = known ? inputOf(field) : null;
    if (input) {
      input.setAttribute("aria-invalid", "true");
      first = first || input;
    }
  }
  (first || place.button).focus();
}

export function showProblem(answer, place) {
  const { status, json: problem, retryAfter } = answer;
  const detail = problem?.detail || `The service answered ${status}.`;
  if (problem?.errors && typeof problem.errors === "object") {
    showErrors(problem.errors, place);
    return;
  }
  let message = detail;
  if (retryAfter) message += ` Retry after ${retryAfter} s.`;
  if (status >= 500 && problem?.request_id) message += ` (request id ${problem.request_id})`;
  showErrors({ [FIELD_OF_STATUS[status] || place.fallback]: [message] }, place);
}

// --- talking to the API ----------------------------------------------------------------------

// POST `request` as JSON to `url` on this origin with the typed API key, if any.
async function post(url, request, signal) {
  const headers = {
    "Content-Type": "application/json",
    Accept: "application/json, application/problem+json",
  };
  const key = keyInput.value.trim();
  if (key) headers.Authorization = `Bearer ${key}`;
  const response = await fetch(url, {
    method: "POST",
    headers,
    body: JSON.stringify(request),
    cache: "no-store",
    signal,
  });
  const json = await response.json().catch(() => null);
  return { ok: response.ok, status: response.status, json, retryAfter: response.headers.get("Retry-After") };
}

// A view's `setState(state, message)`: `state` (idle, loading, ready, error) in the body's
// data-<key> (the tests wait on it), `message` in its status line, its region busy and its button
// disabled while loading.
export function stateSetter(key, status, region, button) {
  return (state, message) => {
    document.body.dataset[key] = state;
    status.textContent = message;
    region.setAttribute("aria-busy", state === "loading" ? "true" : "false");
    button.disabled = state === "loading";
  };
}

// One view's requests: `ask(build, loading)` builds the request (`build()` returns `{body, ...}`;
// a FieldError is shown at its field), cancels the view's previous request, posts `body` to `url`
// and shows a refusal's errors at `place`, calling `setState(state, message)` on the way.
// Resolves to {outcome: "ok", built, json}, {outcome: "error"}, or {outcome: "superseded"} when a
// newer request cancelled this one.
export function requester({ url, place, setState, action }) {
  let inFlight = null;
  return async function ask(build, loading) {
    let built;
    try {
      built = build();
    } catch (error) {
      if (!(error instanceof FieldError)) throw error;
      showErrors({ [error.field]: [error.message] }, place);
      setState("error", `Fix the marked field, then press ${action} again.`);
      return { outcome: "error" };
    }
    inFlight?.abort();
    const controller = new AbortController();
    inFlight = controller;
    setState("loading", loading);
    let answer;
    try {
      answer = await post(url, built.body, controller.signal);
    } catch (error) {
      if (controller.signal.aborted) return { outcome: "superseded" };
      showErrors({ [place.fallback]: [`The service did not answer (${error.message}).`] }, place);
      setState("error", "No answer.");
      return { outcome: "error" };
    }
    if (controller.signal.aborted) return { outcome: "superseded" };
    if (!answer.ok) {
      showProblem(answer, place);
      setState("error", `The service refused the request (${answer.status}); see the messages next to the fields.`);
      return { outcome: "error" };
    }
    return { outcome: "ok", built, json: answer.json };
  };
}

// --- facts -------------------------------------------------------------------------------------

export function fact(term, value) {
  const box = document.createElement("div");
  const dt = document.createElement("dt");
  const dd = document.createElement("dd");
  dt.textContent = term;
  if (value instanceof Node) dd.append(value);
  else dd.textContent = value;
  box.append(dt, dd);
  return box;
}

export function calendarText({ name, source }) {
  return `${name} (${CALENDAR_SOURCES[source] ?? source})`;
}

const DURATION_UNITS = [
  ["day", 86400],
  ["hour", 3600],
  ["minute", 60],
  ["second", 1],
];

// metadata.bar_interval (an ISO 8601 duration as the API writes it, "P1DT0H0M0S") in words:
// "1 day", "1 hour 30 minutes", "5 minutes", "0.5 seconds"; anything else is shown as sent.
export function durationText(iso) {
  const parts = /^P(\d+)DT(\d+)H(\d+)M(\d+(?:\.\d+)?)S$/.exec(iso);
  if (!parts) return iso;
  let seconds = DURATION_UNITS.reduce((sum, [, size], i) => sum + Number(parts[i + 1]) * size, 0);
  const words = [];
  for (const [unit, size] of DURATION_UNITS) {
    const count = size === 1 ? Math.round(seconds * 1e6) / 1e6 : Math.floor(seconds / size);
    if (count > 0) words.push(`${count} ${unit}${count === 1 ? "" : "s"}`);
    seconds -= count * size;
  }
  return words.join(" ") || iso;
}

export function percent(share, digits = 1) {
  return `${(share * 100).toFixed(digits)} %`;
}

// A cell with its raw value in data-value and its column in data-column (the tests read both).
export function cell(text, value, column) {
  const td = document.createElement("td");
  td.textContent = text;
  if (value !== undefined) td.dataset.value = value === null ? "" : String(value);
  if (column) td.dataset.column = column;
  return td;
}

export function headerRow(titles) {
  const row = document.createElement("tr");
  for (const title of titles) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = title;
    row.append(th);
  }
  return row;
}
