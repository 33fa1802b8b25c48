// The backtest view: asks POST /backtest on this origin for the forecast form's instrument,
// calendar and history, within the page's tight limits, and shows band coverage by horizon beside
// nominal (chart and table), the reliability diagram of P(up), the scores against the Gaussian
// random walk and what ran.
import {
  CHART_CONFIG,
  FieldError,
  calendarText,
  cell,
  clearErrors,
  fact,
  fieldValue,
  limits,
  percent,
  plotlyReady,
  requester,
  showErrors,
  stateSetter,
} from "./common.js";

const BANDS = ["0.5", "0.8", "0.9"];
const BASELINE = "gaussian_random_walk"; // the reference of the ratios; charted beside the backend
const MODEL_NAMES = { gaussian_random_walk: "GRW", random_walk: "random walk", drift: "drift" };
const LEGEND_NAMES = { gaussian_random_walk: "Gaussian random walk (GRW)" };
const COLOURS = { backend: "rgb(31, 95, 191)", [BASELINE]: "rgb(179, 89, 0)" };
// The API's names of the backtest's own fields -> the page's inputs.
const FIELDS = { horizon_days: "backtest_horizons", origins: "backtest_origins", samples: "backtest_samples" };
const MIN_WINDOW = 32; // history bars per forecast the API accepts at least (MIN_HISTORY_BARS)
// The future of a horizon may span more bars than sessions × bars per session (holidays the
// history has and the calendar lacks): this much room is left.
const SESSION_SLACK = 1.1;

// The horizons and window to ask for when the history's length is known: the longest horizons are
// dropped, then the window (bars per forecast, the service's lookback unless set) shortened, until
// `origins` origins fit with a realised future after each. Unknown history: as typed.
export function plan({ horizons, origins, bars, barsPerSession, lookback }) {
  const valid = Array.isArray(horizons) && horizons.every(Number.isInteger) && Number.isInteger(origins);
  if (!bars || !valid) return { horizons, window: undefined, dropped: [] };
  const kept = [...horizons].sort((a, b) => a - b);
  const room = () => bars - Math.ceil(Math.max(...kept) * barsPerSession * SESSION_SLACK) - origins;
  while (kept.length > 1 && room() < MIN_WINDOW) kept.pop();
  const fits = room();
  return {
    horizons: kept,
    window: fits < lookback && fits >= MIN_WINDOW ? fits : undefined,
    dropped: horizons.filter((h) => !kept.includes(h)),
  };
}

// Bars per trading day of pasted candles: the median count per calendar date.
function barsPerDay(candles) {
  const counts = new Map();
  for (const candle of candles) {
    const day = String(candle.timestamp).slice(0, 10);
    counts.set(day, (counts.get(day) ?? 0) + 1);
  }
  const sorted = [...counts.values()].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.floor(sorted.length / 2)] : 1;
}

function dateText(timestamp) {
  return timestamp.endsWith("T00:00:00") ? timestamp.slice(0, 10) : timestamp.replace("T", " ");
}

function daysLabel(horizon) {
  return `${horizon} d`;
}

function ratio(value) {
  return value === undefined || value === null ? "—" : value.toFixed(3);
}

function share(value) {
  return value === null || value === undefined ? "—" : percent(value);
}

// `instrumentRequest()`: the form's isin or symbol, calendar and candles (may throw FieldError);
// `knownHistory(request)`: {bars, barsPerSession} of that history when a forecast told the page;
// `updateAddress()`: puts the form and this view's `params()` into the address.
export function backtestView({ instrumentRequest, knownHistory, updateAddress }) {
  const body = document.body;
  const form = document.getElementById("backtest-form");
  const inputs = [...form.querySelectorAll("[data-field]")];
  const input = (name) => inputs.find((i) => i.dataset.field === name);
  const submitButton = document.getElementById("backtest-submit");
  const answerBox = document.getElementById("backtest-answer");
  const coverageChart = document.getElementById("coverage-chart");
  const reliabilityChart = document.getElementById("reliability-chart");
  const setState = stateSetter(
    "backtestState",
    document.getElementById("backtest-status"),
    document.getElementById("backtest"),
    submitButton,
  );
  const errors = { rename: FIELDS, fallback: "backtest", button: submitButton };
  const ask = requester({ url: body.dataset.backtestUrl, place: errors, setState, action: "Backtest" });
  let active = false; // asked for (by a click or the address): the address says backtest=1
  let chartsDrawn = 0;


  function buildRequest() {
    const request = instrumentRequest();
    const horizons = fieldValue(input("backtest_horizons"));
    const origins = fieldValue(input("backtest_origins"));
    const samples = fieldValue(input("backtest_samples"));
    if (Number.isInteger(origins) && origins > limits.max_origins) {
      const why =
        limits.api_max_origins > limits.max_origins
          ? `on this page, to keep a backtest quick; POST /backtest allows ${limits.api_max_origins}`
          : `KRONOS_MAX_BACKTEST_ORIGINS=${limits.api_max_origins}`;
      throw new FieldError("backtest_origins", `must be at most ${limits.max_origins} (${why})`);
    }
    const history = request.candles
      ? { bars: request.candles.length, barsPerSession: barsPerDay(request.candles) }
      : knownHistory(request);
    const planned = plan({ horizons, origins, lookback: limits.lookback, ...history });
    if (horizons !== undefined) request.horizon_days = planned.horizons;
    if (origins !== undefined) request.origins = origins;
    if (samples !== undefined) request.samples = samples;
    if (planned.window !== undefined) request.window = planned.window;
    return { body: request, planned, bars: history?.bars };
  }

  async function run({ keepErrors = false } = {}) {
    if (!keepErrors) clearErrors();
    const started = performance.now();
    const result = await ask(buildRequest, "Backtesting: forecasting the past origins and scoring them…");
    if (result.outcome === "error") answerBox.hidden = true;
    if (result.outcome !== "ok") return;
    performance.mark("kronos:backtest-received");
    const seconds = (performance.now() - started) / 1000;
    try {
      await render(result.built, result.json, seconds);
    } catch (error) {
      showErrors({ backtest: [`The backtest could not be drawn (${error.message}).`] }, errors);
      setState("error", "No chart.");
      return;
    }
    const summary = result.json;
    setState(
      "ready",
      `Backtest of ${summary.series.join(", ")}: ${summary.origins} origins, ` +
        `${summary.horizon_days.join(", ")} trading days ahead.`,
    );
  }

  // --- drawing -------------------------------------------------------------------------------

  function backendKey(summary) {
    return Object.keys(summary.models).find((name) => !(name in MODEL_NAMES));
  }

  function showFacts(summary, seconds) {
    const backend = summary.backend;
    const facts = [
      fact("Backend", `${backend.name} (${backend.version})`),
      fact("Calendar", calendarText(summary.calendar)),
      fact("Origins", `${summary.origins}, ${dateText(summary.first_origin)} to ${dateText(summary.last_origin)}`),
      fact("Window", `${summary.window} bars`),
      fact("Samples", String(summary.samples)),
      fact("Seed", String(summary.seed)),
      fact("Forecasts", `${summary.forecasts_per_model} per model`),
      fact("Run time", `${summary.elapsed_s} s on the service, ${seconds.toFixed(2)} s in all`),
    ];
    document.getElementById("backtest-facts").replaceChildren(...facts);
    const fallback = document.getElementById("backtest-fallback");
    fallback.hidden = !backend.fallback_reason;
    fallback.textContent = backend.fallback_reason
      ? `Fallback: the Kronos model could not be used, the simulator was scored. Reason: ${backend.fallback_reason}`
      : "";
  }

  // What the page changed to fit the history, and origins that fell together.
  function showPlan({ body: request, planned, bars }, summary) {
    const notes = [];
    if (planned.dropped.length) {
      notes.push(`The history (${bars} bars) is too short for ${planned.dropped.join(", ")} trading days ahead: left out.`);
    }
    if (planned.window !== undefined) {
      notes.push(`Window shortened to ${planned.window} bars (the service's lookback is ${limits.lookback}) so that ${request.origins ?? "the"} origins fit in ${bars} bars.`);
    }
    if (request.origins !== undefined && summary.origins < request.origins) {
      const days = Math.max(...summary.horizon_days);
      notes.push(`${summary.origins} of the ${request.origins} origins asked for have ${days} trading days of the history after them.`);
    }
    const note = document.getElementById("backtest-plan");
    note.hidden = notes.length === 0;
    note.textContent = notes.join(" ");
  }

  function coverageTraces(summary, backend) {
    const horizons = summary.horizon_days.map(String);
    const x = [BANDS.flatMap((band) => horizons.map(() => `${percent(Number(band), 0)} band`)), BANDS.flatMap(() => horizons.map(daysLabel))];
    const bars = [backend, BASELINE].map((model) => ({
      type: "bar",
      name: LEGEND_NAMES[model] ?? model,
      meta: { role: "coverage", model },
      x,
      y: BANDS.flatMap((band) => horizons.map((h) => summary.models[model].horizons[h][`coverage_${band}`])),
      marker: { color: model === backend ? COLOURS.backend : COLOURS[BASELINE] },
      hovertemplate: "%{y:.1%}<extra>%{fullData.name}</extra>",
    }));
    const nominal = BANDS.map((band, i) => ({
      type: "scatter",
      mode: "lines",
      name: "nominal",
      showlegend: i === 0,
      legendgroup: "nominal",
      meta: { role: "nominal", band },
      x: [horizons.map(() => `${percent(Number(band), 0)} band`), horizons.map(daysLabel)],
      y: horizons.map(() => Number(band)),
      line: { color: "#222", width: 1.5, dash: "dash" },
      hovertemplate: `nominal ${percent(Number(band), 0)}<extra></extra>`,
    }));
    return [...bars, ...nominal];
  }

  function reliabilityTraces(summary, backend) {
    const models = [backend, BASELINE].filter((model) => summary.models[model].reliability);
    const points = models.flatMap((model) => summary.models[model].reliability);
    const values = points.flatMap((p) => [p.p_up, p.observed]);
    const span = [Math.max(0, Math.min(0.5, ...values) - 0.05), Math.min(1, Math.max(0.5, ...values) + 0.05)];
    const traces = models.map((model) => {
      const bins = summary.models[model].reliability;
      return {
        type: "scatter",
        mode: "markers",
        name: LEGEND_NAMES[model] ?? model,
        meta: { role: "reliability", model },
        x: bins.map((b) => b.p_up),
        y: bins.map((b) => b.observed),
        customdata: bins.map((b) => b.n),
        marker: { color: model === backend ? COLOURS.backend : COLOURS[BASELINE], size: 9, symbol: model === backend ? "circle" : "diamond" },
        hovertemplate: "P(up) %{x:.2f}, went up %{y:.0%} of %{customdata}<extra>%{fullData.name}</extra>",
      };
    });
    traces.push({
      type: "scatter",
      mode: "lines",
      name: "reliable (diagonal)",
      meta: { role: "diagonal" },
      x: span,
      y: span,
      line: { color: "#222", width: 1, dash: "dash" },
      hoverinfo: "skip",
    });
    const range = [span[0] - 0.03, span[1] + 0.03]; // markers on the span's edge drawn whole
    return { traces, range, count: points.reduce((n, p) => n + p.n, 0) / Math.max(models.length, 1) };
  }

  async function drawCharts(summary, backend) {
    // Below the axes, from the bottom of the chart's box: the mode bar has the top.
    const legend = { orientation: "h", x: 0, xref: "container", y: 0, yref: "container", yanchor: "bottom" };
    const margin = { l: 55, r: 10, t: 25, b: 10 };
    const coverageLayout = {
      margin,
      barmode: "group",
      xaxis: { type: "multicategory", automargin: true },
      yaxis: { title: { text: "share inside the band" }, range: [0, 1.02], tickformat: ".0%", automargin: true },
      legend,
    };
    const reliability = reliabilityTraces(summary, backend);
    const reliabilityLayout = {
      margin,
      xaxis: { title: { text: "forecast P(up), mean of each tenth" }, range: reliability.range, constrain: "domain", automargin: true },
      yaxis: { title: { text: "share that went up" }, range: reliability.range, scaleanchor: "x", constrain: "domain", automargin: true },
      legend,
      hovermode: "closest",
    };
    document.getElementById("reliability-note").textContent =
      `Each model's forecasts (all horizons, about ${Math.round(reliability.count)}) sorted by P(up) and cut into ten groups of equal count; ` +
      "on the dashed diagonal P(up) means what it says. The axes span the data only.";
    const config = { ...CHART_CONFIG, responsive: true };
    await plotlyReady;
    await window.Plotly.react(coverageChart, coverageTraces(summary, backend), coverageLayout, config);
    chartsDrawn += 1;
    if (chartsDrawn === 1) performance.mark("kronos:first-backtest-chart-drawn");
    await window.Plotly.react(reliabilityChart, reliability.traces, reliabilityLayout, config);
  }

  // Two header rows: the bands' coverage grouped under one heading.
  function tableHead() {
    const th = (text, attributes) => Object.assign(document.createElement("th"), { textContent: text, ...attributes });
    const top = document.createElement("tr");
    const spanned = (text) => th(text, { scope: "col", rowSpan: 2 });
    top.append(
      spanned("Horizon"),
      spanned("Model"),
      th("Inside the band (nominal)", { scope: "colgroup", colSpan: BANDS.length }),
      ...["Pinball ÷ GRW", "CRPS ÷ GRW", "Brier", "Direction hit", "Forecasts"].map(spanned),
    );
    const bands = document.createElement("tr");
    bands.append(...BANDS.map((band) => th(percent(Number(band), 0), { scope: "col" })));
    return [top, bands];
  }

  function showTable(summary, backend) {
    const models = [backend, BASELINE, ...Object.keys(summary.models).filter((m) => m !== backend && m !== BASELINE)];
    const rows = summary.horizon_days.flatMap((horizon) =>
      models.map((model) => {
        const scores = summary.models[model].horizons[String(horizon)];
        const tr = document.createElement("tr");
        tr.dataset.model = model;
        tr.dataset.horizon = String(horizon);
        tr.append(
          cell(daysLabel(horizon), horizon, "horizon"),
          cell(MODEL_NAMES[model] ?? model, model, "model"),
          ...BANDS.map((band) => cell(share(scores[`coverage_${band}`]), scores[`coverage_${band}`], `coverage_${band}`)),
          cell(ratio(scores.pinball_vs_baseline), scores.pinball_vs_baseline, "pinball_vs_baseline"),
          cell(ratio(scores.crps_vs_baseline), scores.crps_vs_baseline, "crps_vs_baseline"),
          cell(ratio(scores.brier), scores.brier, "brier"),
          cell(share(scores.direction_hit), scores.direction_hit, "direction_hit"),
          cell(String(scores.n), scores.n, "n"),
        );
        return tr;
      }),
    );
    const table = document.getElementById("backtest-table");
    table.tHead.replaceChildren(...tableHead());
    table.tBodies[0].replaceChildren(...rows);
  }

  async function render(built, summary, seconds) {
    const backend = backendKey(summary);
    answerBox.hidden = false;
    showFacts(summary, seconds);
    showPlan(built, summary);
    showTable(summary, backend);
    await drawCharts(summary, backend);
  }

  // --- the address ---------------------------------------------------------------------------

  // backtest=1 and this view's fields (origins always, the others when changed), while shown.
  function params() {
    if (!active) return [];
    const changed = inputs.filter((i) => i.dataset.field === "backtest_origins" || i.value.trim() !== i.defaultValue);
    return [["backtest", "1"], ...changed.map((i) => [i.dataset.field, i.value.trim()])];
  }

  // Fills this view's fields from the address; whether it asks for a backtest.
  function fillFromUrl(query) {
    for (const field of inputs) field.value = query.get(field.dataset.field) ?? field.defaultValue;
    active = ["1", "true"].includes(query.get("backtest"));
    if (!active) {
      answerBox.hidden = true;
      setState("idle", "Press Backtest to score the model on this instrument's history.");
    }
    return active;
  }

  function notRunnable() {
    setState("idle", "Give an ISIN or a symbol (and the candles, for pasted history), then press Backtest.");
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    active = true;
    updateAddress();
    run();
  });

  return { run, params, fillFromUrl, notRunnable };
}
