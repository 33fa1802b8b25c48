// Kronos forecast viewer: reads the form (or the deep link), calls POST /predict on this origin,
// draws the history candles with the forecast's fan chart, and lists the forecast per day; the
// backtest view (backtest.js) scores the same instrument. No build step, no network beyond this
// origin: plotly.js is served by the app itself.
import { backtestView } from "./backtest.js";
import {
  CHART_CONFIG,
  calendarText,
  cell,
  clearErrors,
  durationText,
  fact,
  fieldValue,
  headerRow,
  parseCsv,
  percent,
  plotlyReady,
  requester,
  showErrors,
  stateSetter,
} from "./common.js";

// History bars drawn: four per forecast bar, so the fan stays readable, within these bounds.
const HISTORY_BARS_SHOWN = { min: 40, max: 120, perForecastBar: 4 };
const BAND_RGB = "31, 95, 191";
const HOUR_MS = 3600000;
const DAY_MS = 24 * HOUR_MS;
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
// Time-axis ticks: the first drawn bar of each group (of hours, days, weeks, months), at the
// finest level that leaves at least TICK_SPACING_PX between ticks; plotly's own ticks would fall
// into the cut closed stretches.
const TICK_SPACING_PX = 90;
const monthOf = (ms) => new Date(ms).getUTCFullYear() * 12 + new Date(ms).getUTCMonth();
const TICK_LEVELS = [
  ...[1, 3, 6].map((hours) => ({ group: (ms) => Math.floor(ms / (hours * HOUR_MS)), intraday: true })),
  { group: (ms) => Math.floor(ms / DAY_MS) },
  { group: (ms) => Math.floor((ms / DAY_MS + 3) / 7) }, // weeks from Monday (1970-01-01 was a Thursday)
  ...[1, 3, 12].map((months) => ({ group: (ms) => Math.floor(monthOf(ms) / months), monthly: true })),
];
// A gap between bars wider than this many bar intervals is a closed stretch, cut from the x axis.
const CLOSED_GAP_BARS = 1.5;
const RESIZE_SETTLE_MS = 150;

const body = document.body;
const form = document.getElementById("forecast-form");
const fieldInputs = [...form.querySelectorAll("[data-field]")];
const csvBox = document.getElementById("csv-box");
const csvText = document.getElementById("f-candles");
const submitButton = document.getElementById("submit");
const results = document.getElementById("results");
const answerBox = document.getElementById("answer");
const chart = document.getElementById("chart");
let lastHistory = null; // {key, bars, barsPerSession} of the last forecast's service history
let drawn = null; // what the chart shows: redrawn for the new size when the window is resized
let chartsDrawn = 0;

// --- the form and the URL ---------------------------------------------------------------

function historyMode() {
  return form.elements.history.value;
}

function showHistoryMode() {
  csvBox.hidden = historyMode() !== "csv";
}

function buildRequest() {
  const request = {};
  for (const input of fieldInputs) {
    const value = fieldValue(input);
    if (value !== undefined) request[input.dataset.field] = value;
  }
  if (historyMode() === "csv") {
    request.candles = parseCsv(csvText.value);
  } else {
    request.include_history = true;
  }
  request.include_path = true;
  return request;
}

// The instrument and history the backtest view scores: the form's, as /backtest takes them.
function instrumentRequest() {
  const request = {};
  for (const name of ["isin", "symbol", "calendar"]) {
    const value = fieldValue(form.elements[name]);
    if (value !== undefined) request[name] = value;
  }
  if (historyMode() === "csv") request.candles = parseCsv(csvText.value);
  return request;
}

// Service history is known by its instrument and calendar (pasted candles speak for themselves).
function historyKey(request) {
  return JSON.stringify([request.isin, request.symbol, request.calendar]);
}

const backtest = backtestView({
  instrumentRequest,
  knownHistory: (request) => (lastHistory?.key === historyKey(request) ? lastHistory : null),
  updateAddress,
});

// The form's fields as query parameters; a checkbox only when it differs from its default.
function forecastParams() {
  const params = new URLSearchParams();
  for (const input of fieldInputs) {
    if (input.type === "checkbox") {
      if (input.checked !== input.defaultChecked) params.set(input.dataset.field, input.checked ? "1" : "0");
    } else if (input.value.trim() !== "") {
      params.set(input.dataset.field, input.value.trim());
    }
  }
  if (historyMode() === "csv") params.set("history", "csv");
  return params;
}

// The address: the form, and the backtest view's fields while it is shown.
function formParams() {
  const params = forecastParams();
  for (const [name, value] of backtest.params()) params.set(name, value);
  return params;
}

function fillFormFromUrl(params) {
  for (const input of fieldInputs) {
    const given = params.get(input.dataset.field);
    if (input.type === "checkbox") {
      input.checked = given === null ? input.defaultChecked : ["1", "true", "on"].includes(given);
    } else {
      input.value = given ?? "";
    }
    if (given) input.closest("details")?.setAttribute("open", "");
  }
  form.elements.history.value = params.get("history") === "csv" ? "csv" : "server";
  showHistoryMode();
  return fieldInputs.some((input) => params.has(input.dataset.field));
}

// Required fields filled, one of each group of alternatives (ISIN or symbol) given; the API
// says what is still wrong (both given, a bad check digit).
function instrumentGiven() {
  const given = (input) => input.value.trim() !== "";
  const groups = new Set(fieldInputs.map((input) => input.dataset.oneOf).filter(Boolean));
  return [...groups].every((group) =>
    fieldInputs.some((input) => input.dataset.oneOf === group && given(input)),
  ) && (historyMode() === "server" || csvText.value.trim() !== "");
}

function runnable() {
  const given = (input) => input.value.trim() !== "";
  const required = fieldInputs.filter((input) => input.getAttribute("aria-required") === "true");
  return required.every(given) && instrumentGiven();
}

// --- asking for the forecast ----------------------------------------------------------------

const setState = stateSetter("state", document.getElementById("status"), results, submitButton);
const ERRORS = { rename: {}, fallback: "_form", button: submitButton };
const ask = requester({ url: body.dataset.predictUrl, place: ERRORS, setState, action: "Forecast" });

async function forecast() {
  clearErrors();
  const result = await ask(() => ({ body: buildRequest() }), "Asking the service for a forecast…");
  if (result.outcome === "error") answerBox.hidden = true;
  if (result.outcome !== "ok") return;
  const request = result.built.body;
  const answer = result.json;
  performance.mark("kronos:forecast-received");
  if (!request.candles) {
    const { metadata, prediction_horizon_days: days } = answer;
    lastHistory = { key: historyKey(request), bars: metadata.history_periods, barsPerSession: metadata.prediction_periods / days };
  }
  try {
    await render(request, answer);
    if (results.getBoundingClientRect().top > window.innerHeight / 2) results.scrollIntoView();
  } catch (error) {
    showErrors({ _form: [`The forecast could not be drawn (${error.message}).`] }, ERRORS);
    setState("error", "No chart.");
    return;
  }
  const instrument = answer.isin ?? answer.symbol;
  const days = answer.prediction_horizon_days;
  setState("ready", `Forecast of ${instrument} for ${days} trading day${days === 1 ? "" : "s"}.`);
}

// --- drawing -------------------------------------------------------------------------------

// plotly.js reads wall-clock date strings; a UTC offset is dropped so bars show in their own zone.
function plotDate(timestamp) {
  return timestamp.replace(/(Z|[+-]\d\d:?\d\d)$/, "");
}

function priceDigits(reference) {
  const magnitude = Math.abs(reference);
  if (!(magnitude > 0)) return 2;
  return Math.min(8, Math.max(2, 4 - Math.floor(Math.log10(magnitude))));
}

function percentLabel(key) {
  return `P${Number((Number(key) * 100).toPrecision(12))}`;
}

function quantileKeys(predictions) {
  return Object.keys(predictions[0].quantiles).sort((a, b) => Number(a) - Number(b));
}

// A wall-clock date or date-time ("2024-01-31", "2024-01-31T09:30:00", "2024-01-31 09:30") as
// milliseconds on plotly.js's own clock (UTC-like, no zone); NaN for anything else.
function wallClockMs(text) {
  const m = /^(\d{4})-(\d\d)-(\d\d)(?:[T ](\d\d):(\d\d)(?::(\d\d)(\.\d+)?)?)?/.exec(text);
  if (!m) return NaN;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map((part) => Number(part || 0));
  return Date.UTC(year, month - 1, day, hour, minute, second, Math.round(Number(m[7] || 0) * 1000));
}

function plotlyDate(ms) {
  return new Date(ms).toISOString().slice(0, 23).replace("T", " ");
}

// The drawn bars' times (plot dates) as sorted, distinct milliseconds.
function barTimes(xs) {
  return [...new Set(xs.map(wallClockMs).filter(Number.isFinite))].sort((a, b) => a - b);
}

// Range breaks for the stretches without bars (nights, weekends, holidays): each gap wider than
// CLOSED_GAP_BARS bar intervals shrinks to one interval, so the chart has no empty closed hours.
// The bar interval is the smallest step between the bars.
function closedStretches(times) {
  const steps = times.slice(1).map((time, i) => time - times[i]);
  const bar = Math.min(...steps);
  if (!Number.isFinite(bar)) return [];
  return steps.flatMap((step, i) =>
    step > CLOSED_GAP_BARS * bar ? [{ bounds: [plotlyDate(times[i] + bar / 2), plotlyDate(times[i + 1] - bar / 2)] }] : [],
  );
}

function tickLabel(ms, previousMs, level) {
  const date = new Date(ms);
  const before = previousMs === undefined ? null : new Date(previousMs);
  const day = `${MONTHS[date.getUTCMonth()]} ${date.getUTCDate()}`;
  const year = before?.getUTCFullYear() === date.getUTCFullYear() ? "" : `<br>${date.getUTCFullYear()}`;
  if (level.intraday) {
    const time = date.toISOString().slice(11, 16);
    return before && Math.floor(previousMs / DAY_MS) === Math.floor(ms / DAY_MS) ? time : `${time}<br>${day}`;
  }
  return level.monthly ? `${MONTHS[date.getUTCMonth()]}${year}` : `${day}${year}`;
}

// Tick values and labels for bars at `times` on a plot `width` pixels wide.
function timeTicks(times, width) {
  const most = Math.max(2, Math.floor(width / TICK_SPACING_PX));
  const level =
    TICK_LEVELS.find((l) => times.filter((t, i) => i > 0 && l.group(t) !== l.group(times[i - 1])).length <= most) ||
    TICK_LEVELS[TICK_LEVELS.length - 1];
  // Bars are evenly spaced on screen: a tick fewer than minBars bars after the one before
  // replaces it (a session that opens at 22:00 the evening before its day, as FX's does).
  const minBars = (0.6 * TICK_SPACING_PX * times.length) / width;
  const kept = [];
  times.forEach((t, i) => {
    if (i === 0 || level.group(t) === level.group(times[i - 1])) return;
    if (kept.length && i - kept[kept.length - 1] < minBars) kept.pop();
    kept.push(i);
  });
  const ticks = kept.map((i) => times[i]);
  return {
    tickmode: "array",
    tickvals: ticks.map(plotlyDate),
    ticktext: ticks.map((t, i) => tickLabel(t, ticks[i - 1], level)),
    hoverformat: level.intraday || times.some((t) => t % DAY_MS) ? "%a %b %d %Y, %H:%M" : "%a %b %d %Y",
  };
}

function showFacts(answer) {
  const meta = answer.metadata;
  const facts = [
    fact("Mode", answer.model),
    fact("Model", answer.model_version),
    fact("History", `${meta.history_source}, ${meta.history_periods} bars (lookback ${meta.lookback_periods})`),
    fact("Current price", answer.current_price.toFixed(priceDigits(answer.current_price))),
    fact("Samples", String(meta.sample_count)),
    fact("Seed", String(meta.seed)),
    fact("Bar interval", durationText(meta.bar_interval)),
    fact("Answered in", `${meta.elapsed_ms} ms`),
  ];
  if (meta.calendar != null) facts.splice(2, 0, fact("Calendar", calendarText(meta.calendar)));
  facts.splice(3, 0, fact("Calibration", calibrationText(meta.calibration)));
  const link = document.createElement("a");
  const params = forecastParams();
  params.set("seed", String(meta.seed));
  link.href = `?${params}`;
  link.textContent = meta.history_source === "request" ? "these settings (not the candles)" : "this forecast";
  link.id = "permalink";
  facts.push(fact("Link to", link));
  document.getElementById("facts").replaceChildren(...facts);
  const fallback = document.getElementById("fallback");
  fallback.hidden = !meta.fallback_reason;
  fallback.textContent = meta.fallback_reason
    ? `Fallback: the Kronos model could not be used, the simulator answered. Reason: ${meta.fallback_reason}`
    : "";
  const warnings = document.getElementById("answer-warnings");
  warnings.hidden = !meta.warnings.length;
  warnings.textContent = meta.warnings.map((warning) => `Warning: ${warning}.`).join(" ");
}

function factor(value) {
  return `×${value.toFixed(2)}`;
}

// metadata.calibration: short in the facts ("off", "calibrated ×1.12 … ×1.31", "not
// calibrated"); when asked for, the note below them says what the inner backtest found.
function calibrationText(calibration) {
  const note = document.getElementById("calibration-note");
  note.hidden = !calibration.requested;
  if (!calibration.requested) {
    note.textContent = "";
    return "off";
  }
  if (!calibration.calibrated) {
    note.textContent = `Calibration was asked for and not applied: ${calibration.reason}.`;
    return "not calibrated";
  }
  const before = Object.entries(calibration.coverage_before)
    .map(([band, held]) => `the ${percent(Number(band), 0)} band held ${percent(held)}`)
    .join(", ");
  note.textContent =
    `Bands rescaled (${calibration.method}) by a backtest on ${calibration.origins} origins of this history, ` +
    `${calibration.checked_steps} bars ahead checked, in ${Math.round(calibration.elapsed_ms)} ms: width ` +
    `${factor(calibration.factor_first_step)} at the first bar, ${factor(calibration.factor_last_step)} at the last ` +
    `(above 1 widened, below 1 narrowed). Before, on those origins, ${before}.`;
  return `calibrated ${factor(calibration.factor_first_step)} … ${factor(calibration.factor_last_step)}`;
}

// A link carries the form's fields, never pasted candles: say so, and offer them as a file.
function showLinkNote(request) {
  const note = document.getElementById("link-note");
  const old = document.getElementById("candles-download");
  if (old) URL.revokeObjectURL(old.href);
  note.hidden = !request.candles;
  if (!request.candles) {
    note.replaceChildren();
    return;
  }
  const download = document.createElement("a");
  download.id = "candles-download";
  download.href = URL.createObjectURL(new Blob([csvText.value], { type: "text/csv" }));
  download.download = `${request.isin ?? request.symbol ?? "candles"}.csv`;
  download.textContent = "Download the candles as CSV";
  note.replaceChildren(
    "A link cannot carry the candles you pasted: it keeps the settings only. Share it with the CSV: ",
    download,
    ".",
  );
}

function showTable(answer) {
  const keys = quantileKeys(answer.predictions);
  const digits = priceDigits(answer.current_price);
  const titles = ["Day", "Date", "Predicted price", ...keys.map(percentLabel), "P(up)", "Confidence"];
  const rows = answer.predictions.map((day) => {
    const tr = document.createElement("tr");
    tr.append(
      cell(String(day.day), day.day, "day"),
      cell(day.date, day.date, "date"),
      cell(day.predicted_price.toFixed(digits), day.predicted_price, "predicted_price"),
      ...keys.map((key) => cell(day.quantiles[key].toFixed(digits), day.quantiles[key], `q${key}`)),
      cell(percent(day.probability_up), day.probability_up, "probability_up"),
      cell(day.confidence === null ? "—" : day.confidence.toFixed(2), day.confidence, "confidence"),
    );
    return tr;
  });
  const table = document.getElementById("forecast-table");
  table.tHead.replaceChildren(headerRow(titles));
  table.tBodies[0].replaceChildren(...rows);
}

function historyCandles(request, answer) {
  const candles = answer.history || request.candles;
  const { min, max, perForecastBar } = HISTORY_BARS_SHOWN;
  const bars = answer.metadata.prediction_periods * perForecastBar;
  return Array.isArray(candles) ? candles.slice(-Math.min(max, Math.max(min, bars))) : [];
}

function chartTraces(history, answer) {
  const keys = quantileKeys(answer.predictions);
  // Bar-level path when the service sent one (include_path), else the per-day points.
  const points = answer.path
    ? answer.path.map((bar) => ({
        x: plotDate(bar.timestamp),
        q: Object.fromEntries(keys.map((key) => [key, bar.quantiles[key].close])),
      }))
    : answer.predictions.map((day) => ({ x: plotDate(day.timestamp), q: day.quantiles }));
  const last = history[history.length - 1];
  const anchor = last ? [{ x: plotDate(last.timestamp), q: Object.fromEntries(keys.map((k) => [k, Number(last.close)])) }] : [];
  const fan = [...anchor, ...points];
  const series = (key) => ({ x: fan.map((p) => p.x), y: fan.map((p) => p.q[key]) });
  const traces = [];
  if (history.length) {
    traces.push({
      type: "candlestick",
      name: "history",
      meta: { role: "history" },
      x: history.map((c) => plotDate(c.timestamp)),
      open: history.map((c) => Number(c.open)),
      high: history.map((c) => Number(c.high)),
      low: history.map((c) => Number(c.low)),
      close: history.map((c) => Number(c.close)),
      increasing: { line: { color: "#2e7d32" } },
      decreasing: { line: { color: "#c62828" } },
    });
  }
  const lower = keys.filter((key) => Number(key) < 0.5);
  const upper = keys.filter((key) => Number(key) > 0.5).reverse();
  const pairs = Math.min(lower.length, upper.length);
  for (let i = 0; i < pairs; i += 1) {
    const alpha = (0.15 + (0.25 * (i + 1)) / pairs).toFixed(2);
    const name = `${percentLabel(lower[i])}–${percentLabel(upper[i])}`;
    traces.push(
      { ...series(lower[i]), type: "scatter", mode: "lines", line: { width: 0 }, name: percentLabel(lower[i]), showlegend: false, legendgroup: name, meta: { role: "quantile", key: lower[i] } },
      { ...series(upper[i]), type: "scatter", mode: "lines", line: { width: 0 }, fill: "tonexty", fillcolor: `rgba(${BAND_RGB}, ${alpha})`, name, legendgroup: name, meta: { role: "quantile", key: upper[i] } },
    );
  }
  for (const key of [...lower.slice(pairs), ...upper.slice(pairs), ...keys.filter((k) => Number(k) === 0.5)]) {
    const median = Number(key) === 0.5;
    traces.push({
      ...series(key),
      type: "scatter",
      mode: "lines",
      name: median ? "median" : percentLabel(key),
      line: { color: `rgb(${BAND_RGB})`, width: median ? 2.5 : 1, dash: median ? "solid" : "dot" },
      meta: { role: "quantile", key },
    });
  }
  traces.push({
    type: "scatter",
    mode: "markers",
    name: "predicted price (mean)",
    meta: { role: "mean" },
    x: answer.predictions.map((day) => plotDate(day.timestamp)),
    y: answer.predictions.map((day) => day.predicted_price),
    marker: { color: "#111", size: 6, symbol: "diamond" },
  });
  return { traces, start: anchor.length ? anchor[0].x : points[0].x, allX: [...history.map((c) => c.timestamp), ...fan.map((p) => p.x)] };
}

// The layout for the chart's current size: its ticks and legend depend on it.
function chartLayout({ times, rangebreaks, start }) {
  return {
    margin: { l: 60, r: 15, t: 10, b: 10 },
    xaxis: {
      type: "date",
      rangeslider: { visible: false },
      rangebreaks,
      ...timeTicks(times, chart.clientWidth - 80),
    },
    yaxis: { title: { text: "price" }, automargin: true },
    // Below the two-line date ticks (about 45 px), whatever the chart's height.
    legend: { orientation: "h", x: 0, y: -45 / Math.max(100, chart.clientHeight - 80), yanchor: "top" },
    hovermode: "x",
    shapes: [{ type: "line", xref: "x", yref: "paper", x0: start, x1: start, y0: 0, y1: 1, line: { color: "#444", width: 1.5, dash: "dash" } }],
    annotations: [{ x: start, xref: "x", y: 0, yref: "paper", text: "forecast →", showarrow: false, xanchor: "left", yanchor: "bottom", font: { size: 12 } }],
  };
}

async function drawChart(request, answer) {
  const history = historyCandles(request, answer);
  const { traces, start, allX } = chartTraces(history, answer);
  const times = barTimes(allX.map(plotDate));
  const rangebreaks = closedStretches(times);
  const drawing = { traces, times, rangebreaks, start };
  await plotlyReady;
  await window.Plotly.react(chart, traces, chartLayout(drawing), CHART_CONFIG);
  drawn = drawing;
  chartsDrawn += 1;
  if (chartsDrawn === 1) performance.mark("kronos:first-chart-drawn");
  const total = answer.history ? answer.metadata.history_periods : request.candles?.length;
  document.getElementById("chart-note").textContent = [
    `History: the last ${history.length} of ${total ?? history.length} bars. The dashed line marks where the forecast starts.`,
    rangebreaks.length ? "Stretches without bars (closed hours, weekends, holidays) are cut from the time axis." : "",
  ].join(" ");
}

async function render(request, answer) {
  answerBox.hidden = false;
  showFacts(answer);
  showLinkNote(request);
  showTable(answer);
  await drawChart(request, answer);
}

// --- wiring --------------------------------------------------------------------------------

async function runFromUrl() {
  const params = new URLSearchParams(window.location.search);
  const asked = fillFormFromUrl(params);
  const backtestAsked = backtest.fillFromUrl(params);
  if (asked && runnable()) {
    await forecast();
  } else {
    answerBox.hidden = true;
    const pasted = historyMode() === "csv" && csvText.value.trim() === "";
    setState(
      "idle",
      pasted
        ? "This link was made with pasted candles, which a link cannot carry: paste or upload them, then press Forecast."
        : "Choose an instrument and a horizon, then press Forecast.",
    );
  }
  if (!backtestAsked) return;
  if (instrumentGiven()) await backtest.run({ keepErrors: true });
  else backtest.notRunnable();
}

function updateAddress() {
  const query = `?${formParams()}`;
  if (query !== window.location.search) window.history.pushState(null, "", query);
}

form.addEventListener("change", (event) => {
  if (event.target.name === "history") showHistoryMode();
});
document.getElementById("f-candles-file").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  if (file) csvText.value = await file.text();
});
form.addEventListener("submit", (event) => {
  event.preventDefault();
  updateAddress();
  forecast();
});
window.addEventListener("popstate", runFromUrl);
let resizeTimer = null;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(async () => {
    if (!drawn || answerBox.hidden) return;
    await window.Plotly.Plots.resize(chart);
    await window.Plotly.react(chart, drawn.traces, chartLayout(drawn), CHART_CONFIG);
  }, RESIZE_SETTLE_MS);
});
runFromUrl();
