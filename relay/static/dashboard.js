// The Apex dashboard (DESIGN §12): for the active workspace and a period, the daily spend
// stacked by model with anomalies marked, the breakdowns by feature, model, provider and user,
// the month's budgets with their forecast, and the ranked recommendations. Every figure is one
// that agents_data, agents_optimization or the workspaces function returned, shown as it came
// (no sum of rounded figures stands in for one a function gives, except the "Other" rows,
// which add whole cents). Sign-in and the active workspace are the chat page's (common.js).
import {
  $,
  KIND_LABELS,
  PRICES_NOTE,
  atYourPrices,
  basisLabel,
  bindSignIn,
  callFunction,
  h,
  listAlerts,
  listWorkspaces,
  loadConfig,
  markAlertsRead,
  money,
  onSession,
  rememberWorkspace,
  rememberedChoice,
  rememberedWorkspace,
  renderWorkspaceOptions,
  startAuth,
} from "./common.js";

// Chart.js, vendored from npm (relay/copy-vendor.mjs), runs as a classic script right after
// this module (dashboard.html): the chart waits for it; a page without it says so in place.
const chartLibrary = new Promise((resolve, reject) => {
  const script = document.getElementById("chart-js");
  const loaded = () => (globalThis.Chart
    ? resolve(globalThis.Chart)
    : reject(new Error("the chart library did not load (/static/vendor/chart.js/)")));
  if (globalThis.Chart) return resolve(globalThis.Chart);
  script.addEventListener("load", loaded);
  script.addEventListener("error", loaded);
}).then((Chart) => {
  Chart.defaults.font.family = getComputedStyle(document.documentElement).fontFamily;
  Chart.defaults.color = "#475467";
  return Chart;
});

const PRESETS = [7, 30, 90];
const DEFAULT_DAYS = 30;
const MAX_DAYS = 366; // agents_data's longest period
const TOP_ROWS = 8; // a breakdown's rows before "Other"
const MAX_SERIES = 7; // models stacked one by one; with more, the top 6 and "Other"
const MAX_FILTER_MODELS = 50; // agents_data's filters take at most 50 models
const DIMENSIONS = [["feature", "By feature"], ["model", "By model"], ["provider", "By provider"], ["user", "By user"]];
// Okabe & Ito's palette, told apart with every common colour-vision deficiency; yellow (weak
// on white) last. "Other" is grey. Anomalies are marked with a shape and a label, not a colour.
const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442"];
const OTHER_COLOUR = "#9a9a9a";
const OTHER_KEY = "(other)";
const count = new Intl.NumberFormat("en-US");
const percent = new Intl.NumberFormat("en-US", { style: "percent", maximumFractionDigits: 1 });
const DAY_MS = 86_400_000;

const state = {
  config: null,
  auth: null,
  workspaces: [],
  workspaceId: null,
  role: null,
  period: null, // {days: 7|30|90} or {start, end} (YYYY-MM-DD, UTC, end inclusive)
  run: 0, // the latest load; an older one's answers are dropped
  chart: null,
  marked: new Set(), // the performance marks set (each once a page)
};

// ---------------------------------------------------------------------------------------
// Periods: whole UTC days ending today (presets) or a chosen range, kept in the address
// (?days=N or ?start=&end=) so a reload or a shared link shows the same.

const isoDay = (ms) => new Date(ms).toISOString().slice(0, 10);
const dayMs = (day) => Date.parse(`${day}T00:00:00Z`);
const todayUtc = () => isoDay(Date.now());
const DAY_RE = /^\d{4}-\d{2}-\d{2}$/;

function validRange(start, end) {
  if (!DAY_RE.test(start) || !DAY_RE.test(end) || Number.isNaN(dayMs(start)) || Number.isNaN(dayMs(end))
    || isoDay(dayMs(start)) !== start || isoDay(dayMs(end)) !== end) return "Dates are written YYYY-MM-DD.";
  if (dayMs(end) < dayMs(start)) return "The period ends before it starts.";
  if ((dayMs(end) - dayMs(start)) / DAY_MS + 1 > MAX_DAYS) return `A period is at most ${MAX_DAYS} days.`;
  return null;
}

// The period the address asks for; a malformed one is said, and the default used.
function periodFromAddress() {
  const params = new URLSearchParams(location.search);
  if (params.has("start") || params.has("end")) {
    const start = params.get("start") ?? "";
    const end = params.get("end") ?? "";
    const problem = validRange(start, end);
    if (!problem) return { start, end };
    $("period-error").textContent = `The address's period is not valid (${problem}): showing the last ${DEFAULT_DAYS} days.`;
    return { days: DEFAULT_DAYS };
  }
  if (params.has("days")) {
    const days = Number(params.get("days"));
    if (PRESETS.includes(days)) return { days };
    $("period-error").textContent = `The address asks for ${params.get("days")} days; the choices are ${PRESETS.join(", ")} (or a custom range): showing ${DEFAULT_DAYS}.`;
  }
  return { days: DEFAULT_DAYS };
}

function rangeOf(period) {
  if (period.days) {
    const end = todayUtc();
    return { start: isoDay(dayMs(end) - (period.days - 1) * DAY_MS), end };
  }
  return { start: period.start, end: period.end };
}

function daysOf({ start, end }) {
  const out = [];
  for (let t = dayMs(start); t <= dayMs(end); t += DAY_MS) out.push(isoDay(t));
  return out;
}

const shortDay = (day) => new Date(dayMs(day)).toLocaleDateString("en-US", { month: "short", day: "numeric", timeZone: "UTC" });
const longDay = (day) => new Date(dayMs(day)).toLocaleDateString("en-US", { year: "numeric", month: "short", day: "numeric", timeZone: "UTC" });

// How a question in the chat names the period.
function periodPhrase(period, range) {
  return period.days ? `the last ${period.days} days` : `${range.start} to ${range.end}`;
}

function writeAddress(period, push) {
  const url = new URL(location.href);
  for (const key of ["days", "start", "end"]) url.searchParams.delete(key);
  if (period.days) url.searchParams.set("days", String(period.days));
  else {
    url.searchParams.set("start", period.start);
    url.searchParams.set("end", period.end);
  }
  if (url.href === location.href) return;
  if (push) history.pushState(null, "", url);
  else history.replaceState(null, "", url);
}

function showPeriodControls(period) {
  const value = period.days ? String(period.days) : "custom";
  for (const radio of document.querySelectorAll('input[name="preset"]')) radio.checked = radio.value === value;
  $("custom-range").hidden = !!period.days;
  const range = rangeOf(period);
  $("period-start").value = range.start;
  $("period-end").value = range.end;
  $("period-end").max = todayUtc();
  $("period-start").max = todayUtc();
}

function choosePeriod(period) {
  $("period-error").textContent = "";
  state.period = period;
  writeAddress(period, true);
  showPeriodControls(period);
  load();
}

// ---------------------------------------------------------------------------------------
// Calls. Every one acts in the active workspace (X-Apex-Workspace, DESIGN §9).

const call = (url, options) => callFunction(state.auth, url, options);

function agentsData(ws, range, extra = {}) {
  return call(state.config.agentsDataUrl, { method: "POST", workspace: ws, body: { period: range, ...extra } });
}

function agentsOptimization(ws, range) {
  return call(state.config.agentsOptimizationUrl, { method: "POST", workspace: ws, body: { period: range } });
}

function budgets(ws) {
  const base = state.config.workspacesUrl.replace(/\/+$/, "");
  return call(`${base}/${encodeURIComponent(ws)}/budgets`, { workspace: ws });
}

// The day × model spend: agents_data breaks down one dimension at a time, so each model shown
// is its own call (filters.models, group_by day), and so is "Other" (the rest of the models).
// Only past 50 other models (more than a filter takes) is "Other" worked out here: each day's
// total less the models shown, in whole cents.
//
// The calls need the models, which the report names. So as not to wait for it, the load starts
// them at once for the models this workspace had the last time (`early`, from localStorage);
// a list that changed since gets its calls after the report, and unused early ones are dropped.
const byDay = (rows) => new Map(rows.map((row) => [row.key, row.cost_usd]));

function modelCall(ws, range, models) {
  return agentsData(ws, range, { group_by: ["day"], filters: { models } }).then((r) => byDay(r.breakdown.day));
}

const modelsKey = (ws) => `apex.dashboard.models.${state.auth.currentUser.uid}.${ws}`;

function splitModels(models) {
  const shown = models.length <= MAX_SERIES ? models : models.slice(0, MAX_SERIES - 1);
  const rest = models.slice(shown.length);
  return { shown, rest: rest.length && rest.length <= MAX_FILTER_MODELS ? rest : null, others: rest.length };
}

// The calls for the models remembered for `ws`, keyed by their filter.
function earlyModelCalls(ws, range) {
  let remembered = [];
  try {
    remembered = JSON.parse(localStorage.getItem(modelsKey(ws)) ?? "[]");
  } catch {
    localStorage.removeItem(modelsKey(ws)); // not ours to read: made again below
  }
  if (!Array.isArray(remembered) || !remembered.every((m) => typeof m === "string")) return new Map();
  const { shown, rest } = splitModels(remembered);
  const early = new Map();
  for (const list of [...shown.map((m) => [m]), ...(rest ? [rest] : [])]) {
    const call = modelCall(ws, range, list);
    call.catch(() => null); // an unused one's failure is nobody's; a used one's is awaited below
    early.set(JSON.stringify(list), call);
  }
  return early;
}

async function modelSeries(ws, range, report, early) {
  const models = report.breakdown.model.map((row) => row.key);
  localStorage.setItem(modelsKey(ws), JSON.stringify(models));
  const { shown, rest, others } = splitModels(models);
  const perModel = (list) => early.get(JSON.stringify(list)) ?? modelCall(ws, range, list);
  const [series, other] = await Promise.all([
    Promise.all(shown.map((model) => perModel([model]))),
    rest ? perModel(rest) : null,
  ]);
  const out = shown.map((model, i) => ({ key: model, label: model, colour: PALETTE[i], costs: series[i] }));
  if (others) {
    let costs = other;
    if (costs === null) {
      const cents = (usd) => Math.round(usd * 100);
      costs = new Map(report.breakdown.day.map((row) => {
        const shownCents = series.reduce((sum, s) => sum + cents(s.get(row.key) ?? 0), 0);
        return [row.key, Math.max(0, cents(row.cost_usd) - shownCents) / 100];
      }));
    }
    out.push({ key: OTHER_KEY, label: `Other (${others} models)`, colour: OTHER_COLOUR, costs });
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Loading: the three sources in parallel, each section drawn as its answer arrives; a section
// whose call failed says so in place (and in the alert bar), the others still show.

function showAlert(message) {
  $("alert-text").textContent = message;
  $("alert").hidden = false;
}

function sectionError(container, what, error) {
  container.replaceChildren(h("p", { class: "form-error", "data-testid": "section-error", text: `Could not load ${what}: ${error.message}` }));
  showAlert(`Could not load ${what}: ${error.message}`);
}

function loading(container) {
  container.replaceChildren(h("p", { class: "muted", text: "Loading…" }));
}

async function load() {
  const run = ++state.run;
  const current = () => run === state.run;
  const ws = state.workspaceId;
  const period = state.period;
  const range = rangeOf(period);
  const root = $("dashboard-view");
  root.dataset.state = "loading";
  root.dataset.workspace = ws;
  root.dataset.start = range.start;
  root.dataset.end = range.end;
  root.setAttribute("aria-busy", "true");
  $("alert").hidden = true;
  showWorkspaceName();
  $("period-text").textContent = `${longDay(range.start)} – ${longDay(range.end)} (UTC)${period.days ? `, the last ${period.days} days` : ""}`;
  for (const id of ["budgets", "recs", "breakdowns", "daily-table-wrap", "alerts-list"]) loading($(id));
  $("alerts-unread").textContent = "";
  $("alerts-read").hidden = true;
  $("daily-empty").hidden = true;
  $("totals").replaceChildren();
  $("recs-total").textContent = "";
  $("daily-anomalies").textContent = "";
  $("prices-text").hidden = true;

  const data = agentsData(ws, range, { group_by: ["model", "provider", "feature", "user", "day"] });
  const early = earlyModelCalls(ws, range);
  const sections = [
    data.then(async (report) => {
      if (!current()) return;
      renderPrices(report);
      renderTotals(report);
      renderBreakdowns(report);
      firstMark("totals");
      const series = report.breakdown.model.length ? await modelSeries(ws, range, report, early) : [];
      const Chart = series.length ? await chartLibrary : null;
      if (!current()) return;
      renderDaily(Chart, report, series, range);
      firstMark("daily");
    }).catch((e) => {
      if (!current()) return;
      state.chart?.destroy();
      state.chart = null;
      $("daily-box").hidden = true;
      $("daily-details").hidden = true;
      $("daily-table-wrap").replaceChildren();
      sectionError($("breakdowns"), "the usage", e);
    }),
    agentsOptimization(ws, range)
      .then((found) => {
        if (!current()) return;
        renderRecommendations(found, period, range);
        firstMark("recommendations");
      })
      .catch((e) => current() && sectionError($("recs"), "the recommendations", e)),
    budgets(ws)
      .then((body) => {
        if (!current()) return;
        renderBudgets(body.budgets);
        firstMark("budgets");
      })
      .catch((e) => current() && sectionError($("budgets"), "the budgets", e)),
    loadAlerts(ws, current),
  ];
  await Promise.all(sections);
  if (!current()) return;
  root.dataset.state = "ready";
  root.setAttribute("aria-busy", "false");
  firstMark("dashboard-drawn"); // every figure on the page
}

// bench/dashboard_paint.py reads these: when each section first showed its figures.
function firstMark(name) {
  if (state.marked.has(name)) return;
  state.marked.add(name);
  performance.mark(`apex:${name}`);
}

// ---------------------------------------------------------------------------------------
// Totals.

function stat(testid, label, value, attrs = {}) {
  return h("div", { class: "stat", "data-testid": testid, ...attrs }, h("dt", { text: label }), h("dd", { text: value }));
}

// The workspace's own prices (docs/prices.md): every figure of agents_data and
// agents_optimization is then at them, and the page says so once, under the period.
function renderPrices(report) {
  const yours = atYourPrices(report.prices);
  $("prices-text").hidden = !yours;
  $("prices-text").dataset.prices = report.prices;
  $("prices-text").replaceChildren(...(yours
    ? [h("span", { class: "badge badge-prices", text: "At your prices" }),
      document.createTextNode(" Every cost and saving here uses the prices your workspace set, not the list prices.")]
    : []));
}

function renderTotals(report) {
  const t = report.totals;
  const change = report.trend.cost_change_pct;
  const trend = change === null ? "no spend before" : `${change > 0 ? "+" : ""}${change.toFixed(1)}% (${money.format(report.trend.cost_change_usd)})`;
  $("totals").replaceChildren(
    stat("total-spend", "Spend", money.format(t.cost_usd), { "data-usd": String(t.cost_usd) }),
    stat("total-requests", "Requests", count.format(t.requests), { "data-value": String(t.requests) }),
    stat("total-tokens", "Tokens in / out", `${count.format(t.input_tokens)} / ${count.format(t.output_tokens)}`),
    stat("total-errors", "Error rate", percent.format(t.error_rate), { "data-value": String(t.error_rate) }),
    stat("total-latency", "Latency p50 / p95", t.latency_p50_ms === null ? "—" : `${count.format(t.latency_p50_ms)} / ${count.format(t.latency_p95_ms)} ms`),
    stat("total-trend", "Against the period before", trend, { "data-usd": String(report.trend.cost_change_usd) }),
  );
  const unpriced = $("unpriced");
  unpriced.hidden = t.unpriced_requests === 0;
  unpriced.textContent = t.unpriced_requests
    ? `${count.format(t.unpriced_requests)} calls of models the price table does not know (${report.unknown_models.map((m) => m.model).join(", ")}) are not priced: the spend leaves them out.`
    : "";
}

// ---------------------------------------------------------------------------------------
// The daily chart: a stacked bar per day, one colour per model, anomalies marked above their
// day with a triangle and "!" (a shape, so no colour has to be told apart). Its table twin
// holds the same numbers for screen readers and for copying.

const anomalyMarks = {
  id: "apexAnomalies",
  afterDatasetsDraw(chart, _args, options) {
    const { ctx, scales: { x, y } } = chart;
    ctx.save();
    for (const { index, total } of options.marks) {
      const cx = x.getPixelForValue(index);
      const top = y.getPixelForValue(total) - 6;
      ctx.fillStyle = "#000000";
      ctx.beginPath();
      ctx.moveTo(cx, top);
      ctx.lineTo(cx - 7, top - 12);
      ctx.lineTo(cx + 7, top - 12);
      ctx.closePath();
      ctx.fill();
      ctx.fillStyle = "#ffffff";
      ctx.font = "bold 9px system-ui, sans-serif";
      ctx.textAlign = "center";
      ctx.fillText("!", cx, top - 3.5);
    }
    ctx.restore();
  },
};

function renderDaily(Chart, report, series, range) {
  const days = daysOf(range);
  const dayTotals = new Map(report.breakdown.day.map((row) => [row.key, row.cost_usd]));
  const anomalies = new Map(report.anomalies.map((a) => [a.day, a]));
  state.chart?.destroy();
  state.chart = null;
  const canvas = $("daily-chart");
  const box = $("daily-box");
  box.hidden = !series.length;
  $("daily-details").hidden = !series.length;
  $("daily-empty").hidden = !!series.length;
  if (!series.length) {
    $("daily-summary").textContent = "";
    $("daily-table-wrap").replaceChildren();
    $("daily-anomalies").textContent = "";
    return;
  }
  const marks = days.flatMap((day, index) => (anomalies.has(day) ? [{ index, total: dayTotals.get(day) ?? 0 }] : []));
  state.chart = new Chart(canvas, {
    type: "bar",
    data: {
      labels: days,
      datasets: series.map((s) => ({
        label: s.label,
        data: days.map((day) => s.costs.get(day) ?? 0),
        backgroundColor: s.colour,
        borderColor: "#ffffff",
        borderWidth: { top: 1 },
        stack: "spend",
      })),
    },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      interaction: { mode: "index", intersect: false },
      layout: { padding: { top: 20 } },
      scales: {
        x: { stacked: true, grid: { display: false }, ticks: { callback: (_v, i) => shortDay(days[i]), autoSkip: true, maxRotation: 0 } },
        y: { stacked: true, beginAtZero: true, ticks: { callback: (v) => money.format(v) } },
      },
      plugins: {
        legend: { position: "bottom", labels: { boxWidth: 14, boxHeight: 14 } },
        tooltip: {
          callbacks: {
            title: (items) => {
              const day = days[items[0].dataIndex];
              return `${longDay(day)}${anomalies.has(day) ? " · anomaly" : ""}`;
            },
            label: (item) => `${item.dataset.label}: ${money.format(item.raw)}`,
            footer: (items) => `Total: ${money.format(dayTotals.get(days[items[0].dataIndex]) ?? 0)}`,
          },
        },
        apexAnomalies: { marks },
      },
    },
    plugins: [anomalyMarks],
  });
  canvas.dataset.days = String(days.length);
  const total = report.totals.cost_usd;
  const peak = report.breakdown.day.reduce((best, row) => (row.cost_usd > (best?.cost_usd ?? -1) ? row : best), null);
  const anomalyText = report.anomalies.length
    ? `Anomalies: ${report.anomalies.map((a) => `${longDay(a.day)} (${money.format(a.cost_usd)}, ${a.ratio}× the usual)`).join("; ")}.`
    : "No anomalies.";
  canvas.setAttribute("aria-label", "Daily spend by model, stacked bar chart");
  $("daily-summary").textContent = `${money.format(total)} over ${days.length} days, by ${series.length} series (${series.map((s) => s.label).join(", ")}). ` +
    `Highest day: ${peak ? `${longDay(peak.key)}, ${money.format(peak.cost_usd)}` : "none"}. ${anomalyText}`;
  $("daily-anomalies").textContent = report.anomalies.length
    ? `▼! marks ${report.anomalies.length === 1 ? "an anomaly" : `${report.anomalies.length} anomalies`}: ${report.anomalies.map((a) => `${shortDay(a.day)}, driven by ${a.driver.model}${a.driver.feature ? ` in ${a.driver.feature}` : ""}`).join("; ")}`
    : "No anomalies in this period.";
  renderDailyTable(days, series, dayTotals, anomalies);
}

function renderDailyTable(days, series, dayTotals, anomalies) {
  const head = h("tr", {}, h("th", { scope: "col", text: "Day" }),
    ...series.map((s) => h("th", { scope: "col", class: "num", text: s.label })),
    h("th", { scope: "col", class: "num", text: "Total" }));
  const rows = days.map((day) => h("tr", { "data-testid": "daily-row", "data-day": day, "data-anomaly": anomalies.has(day) ? "true" : null },
    h("th", { scope: "row" }, longDay(day), anomalies.has(day) ? h("span", { class: "anomaly-tag", "data-testid": "anomaly-tag", text: "anomaly" }) : null),
    ...series.map((s) => {
      const usd = s.costs.get(day) ?? 0;
      return h("td", { class: "num", "data-testid": "daily-cell", "data-series": s.key, "data-usd": String(usd), text: money.format(usd) });
    }),
    h("td", { class: "num", "data-testid": "daily-total", "data-usd": String(dayTotals.get(day) ?? 0), text: money.format(dayTotals.get(day) ?? 0) })));
  $("daily-table-wrap").replaceChildren(h("table", { class: "grid", "data-testid": "daily-table" },
    h("caption", { class: "visually-hidden", text: "Daily spend by model, in US dollars" }),
    h("thead", {}, head), h("tbody", {}, ...rows)));
}

// ---------------------------------------------------------------------------------------
// Breakdowns: the top rows of each dimension as agents_data ranks them, then "Other".

function renderBreakdowns(report) {
  const total = report.totals.cost_usd;
  $("breakdowns").replaceChildren(...DIMENSIONS.map(([dimension, title]) => {
    const rows = report.breakdown[dimension] ?? [];
    const top = rows.slice(0, TOP_ROWS);
    const rest = rows.slice(TOP_ROWS);
    const id = `breakdown-${dimension}-title`;
    const line = (row, key, label) => {
      const bar = h("span", { class: "share-bar", "aria-hidden": "true" });
      // CSSOM, which the page's CSP allows (a style attribute in markup it would not).
      bar.style.width = `${Math.min(100, row.share_of_cost * 100)}%`;
      return h("tr", { "data-testid": "breakdown-row", "data-key": key },
        h("th", { scope: "row", class: "key" }, h("span", { class: "key-text", text: label }), bar),
        h("td", { class: "num", "data-testid": "row-spend", "data-usd": String(row.cost_usd), text: money.format(row.cost_usd) }),
        h("td", { class: "num", "data-testid": "row-share", text: percent.format(row.share_of_cost) }),
        h("td", { class: "num", "data-testid": "row-requests", "data-value": String(row.requests), text: count.format(row.requests) }));
    };
    let other = null;
    if (rest.length) {
      const cents = rest.reduce((sum, r) => sum + Math.round(r.cost_usd * 100), 0);
      const requests = rest.reduce((sum, r) => sum + r.requests, 0);
      other = line({ cost_usd: cents / 100, share_of_cost: total ? cents / 100 / total : 0, requests }, OTHER_KEY, `Other (${rest.length})`);
    }
    return h("section", { class: "breakdown", "data-testid": `breakdown-${dimension}`, "aria-labelledby": id },
      h("h3", { id, text: title }),
      rows.length
        ? h("div", { class: "table-wrap" }, h("table", { class: "grid", "aria-labelledby": id },
          h("thead", {}, h("tr", {}, ...["Name", "Spend", "Share", "Requests"].map((t, i) => h("th", { scope: "col", class: i ? "num" : null, text: t })))),
          h("tbody", {}, ...top.map((row) => line(row, row.key, row.key)), other)))
        : h("p", { class: "muted", text: "No usage in this period." }));
  }));
}

// ---------------------------------------------------------------------------------------
// Budgets: this month's spend against each, with the month's forecast (DESIGN §11).

function scopeText(scope) {
  const parts = ["feature", "model", "provider"].filter((k) => scope?.[k]).map((k) => `${k} ${scope[k]}`);
  return parts.length ? parts.join(" · ") : "the whole workspace";
}

function renderBudgets(list) {
  const month = list[0]?.month;
  $("budgets-month").textContent = month ? `${month} (UTC), month to date` : "";
  if (!list.length) {
    $("budgets").replaceChildren(h("p", { class: "muted empty-note", "data-testid": "budgets-empty",
      text: "No budgets in this workspace yet. An admin creates them under the workspaces function (POST /{workspace}/budgets; docs/dashboard.md)." }));
    return;
  }
  $("budgets").replaceChildren(h("ul", { class: "budget-list" }, ...list.map((b) => {
    const used = b.spend_usd / b.monthly_usd;
    const forecast = b.forecast_usd / b.monthly_usd;
    const status = used >= 1 ? "over" : forecast > 1 ? "at-risk" : "ok";
    const labelId = `budget-${b.budget_id}-name`;
    const fill = h("span", { class: "meter-fill" });
    fill.style.width = `${Math.min(1, used) * 100}%`;
    const marker = h("span", { class: "meter-forecast", title: `Forecast ${money.format(b.forecast_usd)}` });
    marker.style.left = `${Math.min(1, forecast) * 100}%`;
    const ticks = b.thresholds.filter((t) => t < 1).map((t) => {
      const tick = h("span", { class: "meter-tick" });
      tick.style.left = `${t * 100}%`;
      return tick;
    });
    const text = `${money.format(b.spend_usd)} of ${money.format(b.monthly_usd)}`;
    return h("li", { class: `budget budget-${status}`, "data-testid": "budget", "data-budget-id": b.budget_id, "data-status": status },
      h("div", { class: "budget-head" },
        h("span", { class: "budget-name", id: labelId, text: b.name }),
        h("span", { class: "budget-spent", "data-testid": "budget-spent", "data-usd": String(b.spend_usd), text })),
      h("div", {
        class: "meter", role: "meter", "aria-labelledby": labelId, "aria-valuemin": "0",
        "aria-valuemax": String(b.monthly_usd), "aria-valuenow": String(Math.min(b.spend_usd, b.monthly_usd)),
        "aria-valuetext": `${text} (${percent.format(used)}), forecast ${money.format(b.forecast_usd)}`,
      }, fill, ...ticks, marker),
      h("div", { class: "budget-meta" },
        h("span", { text: scopeText(b.scope) }),
        h("span", { class: "budget-forecast", "data-testid": "budget-forecast", "data-usd": String(b.forecast_usd),
          text: `Forecast ${money.format(b.forecast_usd)} for the month${status === "at-risk" ? ": over budget" : ""}${status === "over" ? " (over budget now)" : ""}` })));
  })));
}

// ---------------------------------------------------------------------------------------
// Alerts (DESIGN §11): the workspace's unread notifications, newest first; "Mark all as read"
// marks them read for this reader up to the newest shown (one that arrives meanwhile stays
// unread). Not tied to the period: an alert is news until read.

const ALERT_KINDS = { budget: "Budget", anomaly: "Spend anomaly" };
const alertTime = (iso) => new Date(iso).toLocaleString("en-US", {
  month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", timeZone: "UTC", timeZoneName: "short",
});

function loadAlerts(ws, current) {
  return listAlerts(state.auth, state.config, ws, 50)
    .then((body) => current() && renderAlerts(ws, body.notifications.filter((n) => n.unread)))
    .catch((e) => current() && sectionError($("alerts-list"), "the alerts", e));
}

function renderAlerts(ws, unread) {
  $("alerts-unread").textContent = unread.length ? String(unread.length) : "";
  $("alerts-read").hidden = !unread.length;
  $("alerts-read").disabled = false;
  $("alerts-read").onclick = () => markRead(ws, unread[0].notification_id);
  if (!unread.length) {
    $("alerts-list").replaceChildren(h("p", { class: "muted empty-note", "data-testid": "alerts-empty", text: "No unread alerts." }));
    return;
  }
  $("alerts-list").replaceChildren(h("ul", { class: "alert-list" }, ...unread.map((n) => h("li", {
    class: "alert-item", "data-testid": "alert", "data-notification-id": n.notification_id, "data-kind": n.kind,
  },
  h("span", { class: "alert-kind", text: ALERT_KINDS[n.kind] || n.kind }),
  h("span", { class: "alert-text", "data-testid": "alert-text", text: n.text }),
  h("time", { class: "alert-time", datetime: n.ts, text: alertTime(n.ts) })))));
}

async function markRead(ws, upTo) {
  const button = $("alerts-read");
  button.disabled = true;
  try {
    await markAlertsRead(state.auth, state.config, ws, upTo);
  } catch (e) {
    button.disabled = false;
    return showAlert(`Could not mark the alerts read: ${e.message}`);
  }
  if (ws !== state.workspaceId) return;
  const run = state.run;
  await loadAlerts(ws, () => run === state.run && ws === state.workspaceId);
  $("alerts-title").focus();
}

// ---------------------------------------------------------------------------------------
// Recommendations, ranked as agents_optimization ranks them, each with a question for the chat.

// `name` in a title or detail (the writers' one inline mark) as code; the rest as text.
function codeSpans(text) {
  return text.split(/(`[^`]+`)/).filter(Boolean)
    .map((part) => (/^`[^`]+`$/.test(part) ? h("code", { text: part.slice(1, -1) }) : document.createTextNode(part)));
}

function askLink(rec, period, range) {
  const question = `Tell me more about "${rec.title}", which you estimated saves ${money.format(rec.monthly_savings_usd)} a month ` +
    `from ${periodPhrase(period, range)}: why, and how do I do it?`;
  return `/?ask=${encodeURIComponent(question)}`;
}

function renderRecommendations(found, period, range) {
  const recs = found.recommendations;
  $("recs-total").textContent = recs.length
    ? `${money.format(found.total_monthly_savings_usd)} a month in all${atYourPrices(found.prices) ? `, ${PRICES_NOTE}` : ""}` : "";
  $("recs-total").dataset.usd = String(found.total_monthly_savings_usd);
  if (!recs.length) {
    $("recs").replaceChildren(h("p", { class: "muted empty-note", "data-testid": "recs-empty", text: "No recommendations for this period." }));
    return;
  }
  $("recs").replaceChildren(h("ol", { class: "rec-list", "data-testid": "rec-list" }, ...recs.map((r, i) => {
    const basis = basisLabel(r.basis);
    return h("li", { class: "rec", "data-testid": "rec", "data-kind": r.kind },
      h("div", { class: "rec-head" },
        h("span", { class: "rec-rank", "aria-hidden": "true", text: String(i + 1) }),
        h("span", { class: "rec-title", "data-testid": "rec-title" }, ...codeSpans(r.title)),
        h("span", { class: "rec-savings", "data-testid": "rec-savings", "data-usd": String(r.monthly_savings_usd), text: `${money.format(r.monthly_savings_usd)}/mo` })),
      h("div", { class: "rec-meta" },
        h("span", { class: "kind", text: KIND_LABELS[r.kind] || r.kind }),
        h("span", { "data-testid": "rec-basis", "data-basis": r.basis ?? "", text: `Basis: ${basis}` }),
        h("span", { "data-testid": "rec-confidence", "data-value": String(r.confidence), text: `Confidence ${Math.round(r.confidence * 100)}%` }),
        h("a", { class: "page-link", href: askLink(r, period, range), "data-testid": "rec-ask", text: "Ask in chat", "aria-label": `Ask in chat about: ${r.title}` })),
      r.detail ? h("p", { class: "rec-detail muted" }, ...codeSpans(r.detail)) : null);
  })));
}

// ---------------------------------------------------------------------------------------
// The workspace, sign-in and start-up.

function showWorkspaceName() {
  const entry = state.workspaces.find((w) => w.workspace_id === state.workspaceId);
  $("dash-workspace").textContent = entry ? entry.name : state.workspaceId;
}

function switchWorkspace(id) {
  if (id === state.workspaceId) return;
  state.workspaceId = id;
  state.role = state.workspaces.find((w) => w.workspace_id === id)?.role ?? null;
  rememberWorkspace(state.auth.currentUser.uid, id);
  renderWorkspaceOptions($("workspace-select"), state.workspaces, state.workspaceId, state.role);
  load();
}

async function onSignedIn(user) {
  firstMark("signed-in");
  $("signin-view").hidden = true;
  $("session").hidden = false;
  $("user-email").textContent = user.email || user.displayName || user.uid;
  $("workspace-bar").hidden = false;
  $("dashboard-view").hidden = false;
  // The workspace last chosen loads at once, while the list is asked for; if the reader is no
  // longer a member of it, the list says so and the personal workspace replaces it (that
  // load's answers, refused, are dropped).
  state.workspaceId = rememberedChoice(user.uid) ?? user.uid;
  renderWorkspaceOptions($("workspace-select"), [], state.workspaceId, null);
  load();
  let listed = false;
  try {
    state.workspaces = await listWorkspaces(state.auth, state.config);
    listed = true;
  } catch (e) {
    showAlert(`Could not list your workspaces (${e.message}): showing your personal workspace.`);
  }
  firstMark("workspaces-listed");
  if (state.auth.currentUser?.uid !== user.uid) return; // signed out meanwhile
  const chosen = rememberedWorkspace(user.uid, state.workspaces, listed);
  state.role = state.workspaces.find((w) => w.workspace_id === chosen)?.role ?? null;
  if (chosen !== state.workspaceId) {
    state.workspaceId = chosen;
    load();
  } else {
    showWorkspaceName();
  }
  renderWorkspaceOptions($("workspace-select"), state.workspaces, state.workspaceId, state.role);
}

function onSignedOut() {
  state.run += 1; // answers still on their way are dropped
  state.chart?.destroy();
  state.chart = null;
  state.workspaces = [];
  state.workspaceId = null;
  state.role = null;
  $("dashboard-view").hidden = true;
  $("session").hidden = true;
  $("workspace-bar").hidden = true;
  $("signin-view").hidden = false;
  $("email").focus();
}

function bindUi() {
  $("alert-close").addEventListener("click", () => { $("alert").hidden = true; });
  bindSignIn(state.auth);
  $("workspace-select").addEventListener("change", (e) => switchWorkspace(e.target.value));
  for (const radio of document.querySelectorAll('input[name="preset"]')) {
    radio.addEventListener("change", () => {
      if (!radio.checked) return;
      if (radio.value === "custom") {
        $("custom-range").hidden = false;
        $("period-start").focus();
      } else {
        choosePeriod({ days: Number(radio.value) });
      }
    });
  }
  $("period-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const start = $("period-start").value;
    const end = $("period-end").value;
    const problem = validRange(start, end);
    if (problem) {
      $("period-error").textContent = problem;
      return;
    }
    choosePeriod({ start, end });
  });
  // Back and forward move between the periods chosen.
  window.addEventListener("popstate", () => {
    $("period-error").textContent = "";
    state.period = periodFromAddress();
    showPeriodControls(state.period);
    if (state.workspaceId) load();
  });
}

async function main() {
  state.period = periodFromAddress();
  writeAddress(state.period, false);
  showPeriodControls(state.period);
  state.config = await loadConfig();
  firstMark("config");
  state.auth = startAuth(state.config);
  bindUi();
  onSession(state.auth, { signedIn: onSignedIn, signedOut: onSignedOut });
}

main().catch((e) => {
  document.body.dataset.failed = "true";
  showAlert(`The page could not start: ${e.message}`);
});
