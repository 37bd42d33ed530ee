// hct web page: plain JavaScript, no build step. Every request goes to this same origin; the
// API key lives in sessionStorage (this tab only) and travels as a Bearer token.
"use strict";

const KEY = "hct.apiKey";
const $ = (id) => document.getElementById(id);
const plots = {};
let reference = null;

class ApiError extends Error {
  constructor(status, body, challenge) {
    const err = (body && body.error) || {};
    super(err.message || `request failed (${status})`);
    this.status = status;
    this.field = err.field;
    this.code = err.code;
    // 403 insufficient_scope: the scope the key lacks, from `WWW-Authenticate: Bearer ... scope=`
    const scope = /scope="([^"]+)"/.exec(challenge || "");
    this.scope = scope ? scope[1] : null;
  }
}

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(KEY) || ""}`,
                    ...(options.headers || {}) };
  const response = await fetch(path, { ...options, headers });
  if (!response.ok) {
    let body = null;
    try { body = await response.json(); } catch (_) { /* not JSON */ }
    throw new ApiError(response.status, body, response.headers.get("WWW-Authenticate"));
  }
  return response;
}

// What a key without a scope cannot do here; the page needs `read`, and `predict` to score.
const MISSING_SCOPE = {
  read: "This API key cannot read results: it lacks the 'read' scope this page needs. " +
        "Ask your administrator for a key with 'read' (and 'predict' to score samples).",
  predict: "This API key may read results but not score samples: it lacks the 'predict' " +
           "scope. Ask your administrator for a key with 'predict' to score.",
};

function explain(error) {
  if (error.status === 403 && error.code === "insufficient_scope") {
    return MISSING_SCOPE[error.scope] || error.message;
  }
  if (error.status === 401 || error.status === 403) {
    return "That API key was not accepted. Check it and sign in again.";
  }
  if (error instanceof ApiError) {
    return error.field ? `${error.message} (${error.field})` : error.message;
  }
  return `The service could not be reached: ${error.message}`;
}

function show(id, message) {
  const el = $(id);
  el.textContent = message || "";
  el.hidden = !message;
}

const fmt = (v, digits = 1) => {
  if (v === null || v === undefined) return "—";
  const text = Number(v).toFixed(digits);
  return /^-0\.?0*$/.test(text) ? text.slice(1) : text;  // no "-0.0"
};

// ---- sign in -------------------------------------------------------------------------------
async function signIn(key) {
  sessionStorage.setItem(KEY, key);
  try {
    const served = await (await api("/v1/model")).json();
    $("model-version").textContent = `${served.card.name} ${served.card.version}`;
    $("signin").hidden = true;
    $("app").hidden = false;
    show("signin-error", "");
    $("fcs-file").focus();
  } catch (error) {
    sessionStorage.removeItem(KEY);
    show("signin-error", explain(error));
    $("api-key").focus();
  }
}

$("signin-form").addEventListener("submit", (event) => {
  event.preventDefault();
  signIn($("api-key").value.trim());
});

$("signout").addEventListener("click", () => {
  sessionStorage.removeItem(KEY);
  $("app").hidden = true;
  $("signin").hidden = false;
  $("api-key").value = "";
  $("api-key").focus();
});

// ---- one sample ----------------------------------------------------------------------------
$("fcs-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  show("fcs-error", "");
  const form = new FormData();
  const file = $("fcs-file").files[0];
  form.append("file", file);
  for (const [id, name] of [["patient-id", "patient_id"], ["sample-id", "sample_id"],
                            ["sex", "sex"], ["measured", "measured_hematocrit_pct"],
                            ["rbc", "rbc_count_e12_per_l"], ["collected-at", "collected_at"]]) {
    if ($(id).value.trim()) form.append(name, $(id).value.trim());
  }
  const cellsForm = new FormData();  // the same file and ids, for the plots
  cellsForm.append("file", file);
  for (const name of ["patient_id", "sample_id"]) {
    if (form.has(name)) cellsForm.append(name, form.get(name));
  }
  try {
    const prediction = await (await api("/v1/predictions/fcs", { method: "POST", body: form })).json();
    renderPrediction(prediction);
    const [view, history] = await Promise.all([
      api("/v1/cells/fcs", { method: "POST", body: cellsForm }).then((r) => r.json()),
      api(`/v1/predictions?patient_id=${encodeURIComponent(prediction.patient_id)}&limit=200`)
        .then((r) => r.json()),
    ]);
    if (!reference) reference = await (await api("/v1/cells/reference")).json();
    renderCells(view);
    renderHistory(history.items);
  } catch (error) {
    show("fcs-error", explain(error));
  }
});

function renderPrediction(p) {
  $("result").hidden = false;
  const quality = p.quality || null;
  const withheld = quality && quality.status === "withheld";
  $("hct-value").textContent = withheld ? "withheld" : fmt(p.hematocrit_pct);
  const flagText = { L: "Low", N: "Normal", H: "High" }[p.flag];
  $("hct-flag").textContent = withheld ? "" : `${p.flag} · ${flagText}`;
  $("hct-flag").className = `flag ${p.flag}`;
  $("hct-flag").hidden = !!withheld;
  $("ref-range").textContent = `${fmt(p.reference_range.low)}–${fmt(p.reference_range.high)} % ` +
    ({ F: "(adult female)", M: "(adult male)" }[p.lab.sex] || "(adult, sex not given)");
  const interval = p.hematocrit_interval_pct;
  $("interval").textContent = interval
    ? `${fmt(interval.lower)}–${fmt(interval.upper)} % (${Math.round(interval.level * 100)} %)`
    : "not provided by this model version";
  $("quality").textContent = quality
    ? `${quality.status}${quality.score != null ? ` (score ${fmt(quality.score, 2)})` : ""}` +
      `${quality.reasons && quality.reasons.length ? `: ${quality.reasons.join("; ")}` : ""}`
    : "not provided by this model version";
  const measured = p.lab.measured_hematocrit_pct;
  $("measured-value").textContent = measured == null ? "not given"
    : `${fmt(measured)} % (model minus measured ${p.residuals.model >= 0 ? "+" : ""}${fmt(p.residuals.model)} %)`;
  // as the API states it (with its UTC offset): a wall time alone would be read in the
  // browser's zone, which need not be the lab's
  $("collected").textContent = p.lab.collected_at || "not given";
  $("ids").textContent = `${p.patient_id} / ${p.sample_id}`;
  $("model").textContent = `${p.model.name} ${p.model.version}`;
  $("cells-count").textContent = `${p.n_cells} measured, ${p.n_cells_used} read by the model`;
  const rows = [["model (Deep Sets++)", p.hematocrit_pct, p.residuals && p.residuals.model],
    ...Object.entries(p.baselines).map(([name, v]) => [name, v, p.residuals && p.residuals[name]])];
  const body = $("baselines").tBodies[0];
  body.replaceChildren(...rows.map(([name, v, r]) => row([name, fmt(v), r == null ? "—" : fmt(r)])));
}

function row(cells, numericFrom = 1) {
  const tr = document.createElement("tr");
  cells.forEach((text, i) => {
    const td = document.createElement("td");
    td.textContent = text;
    if (i >= numericFrom) td.className = "num";
    tr.appendChild(td);
  });
  return tr;
}

function plotWidth(id) {
  return Math.max(260, Math.floor($(id).getBoundingClientRect().width) || 400);
}

function replacePlot(id, options, data) {
  if (plots[id]) plots[id].destroy();
  $(id).replaceChildren();
  plots[id] = new uPlot({ width: plotWidth(id), height: 250, ...options }, data, $(id));
}

// Scatter on uPlot's aligned-x model: both clouds joined on a sorted x, drawn as points only.
function scatterData(clouds) {
  const tables = clouds.map(({ x, y }) => {
    const order = x.map((_, i) => i).sort((a, b) => x[a] - x[b]);
    return [order.map((i) => x[i]), order.map((i) => y[i])];
  });
  return uPlot.join(tables);
}

const dots = (stroke, size) => ({ stroke, fill: stroke, paths: () => null,
  points: { show: true, size, stroke, fill: stroke } });

function renderCells(view) {
  const ref = reference.cells;
  replacePlot("scatter", {
    scales: { x: { time: false } },
    axes: [{ label: "volume, fL" }, { label: "hemoglobin, pg" }],
    series: [{ label: "volume fL" }, { label: "training reference", ...dots("rgba(140,149,159,0.45)", 3) },
             { label: `sample ${view.sample_id}`, ...dots("rgba(11,92,173,0.8)", 3) }],
  }, scatterData([{ x: ref.volume_fl, y: ref.hemoglobin_pg },
                  { x: view.cells.volume_fl, y: view.cells.hemoglobin_pg }]));
  const ix = view.indices;
  const sd = (ix.rdw_cv_pct / 100) * ix.mcv_fl;
  $("vol-caption").textContent = `Volume (fL): MCV ${fmt(ix.mcv_fl)} fL (solid), ` +
    `RDW-CV ${fmt(ix.rdw_cv_pct)} % as MCV ± 1 SD (dashed)`;
  histogram("hist-volume", view.histograms.volume_fl, "volume, fL",
            [[ix.mcv_fl, []], [ix.mcv_fl - sd, [6, 4]], [ix.mcv_fl + sd, [6, 4]]]);
  $("hb-caption").textContent = `Hemoglobin (pg): MCH ${fmt(ix.mch_pg)} pg (solid)`;
  histogram("hist-hemoglobin", view.histograms.hemoglobin_pg, "hemoglobin, pg",
            [[ix.mch_pg, []]]);
}

function histogram(id, hist, label, marks) {
  const centres = hist.edges.slice(0, -1).map((e, i) => (e + hist.edges[i + 1]) / 2);
  replacePlot(id, {
    scales: { x: { time: false } },
    axes: [{ label }, { label: "cells" }],
    series: [{ label }, { label: "cells", stroke: "#0b5cad", fill: "rgba(11,92,173,0.3)",
                          paths: uPlot.paths.bars({ size: [1, Infinity] }) }],
    hooks: { draw: [(u) => {
      const ctx = u.ctx;
      ctx.save();
      ctx.strokeStyle = "#b3261e";
      ctx.lineWidth = 2 * devicePixelRatio;
      for (const [value, dash] of marks) {
        const x = u.valToPos(value, "x", true);
        ctx.setLineDash(dash.map((d) => d * devicePixelRatio));
        ctx.beginPath();
        ctx.moveTo(x, u.bbox.top);
        ctx.lineTo(x, u.bbox.top + u.bbox.height);
        ctx.stroke();
      }
      ctx.restore();
    }] },
  }, [centres, hist.counts]);
}

function renderHistory(items) {
  const sorted = [...items].sort((a, b) => a.created_at.localeCompare(b.created_at));
  replacePlot("history", {
    scales: { x: { time: true } },
    axes: [{}, { label: "hematocrit, %" }],
    series: [{}, { label: "estimate %", stroke: "#0b5cad", points: { show: true, size: 6 } }],
  }, [sorted.map((p) => Date.parse(p.created_at) / 1000), sorted.map((p) => p.hematocrit_pct)]);
  $("history-table").tBodies[0].replaceChildren(...sorted.reverse().map((p) =>
    row([new Date(p.created_at).toLocaleString(), p.sample_id, fmt(p.hematocrit_pct), p.flag], 2)));
}

// ---- batch ---------------------------------------------------------------------------------
let batchCsvUrl = null;

$("batch-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  show("batch-error", "");
  const form = new FormData();
  form.append("file", $("batch-file").files[0]);
  $("batch").hidden = false;
  $("batch-download").disabled = true;
  $("batch-table").tBodies[0].replaceChildren();
  try {
    const job = await (await api("/v1/batches", { method: "POST", body: form })).json();
    await pollBatch(job.id);
  } catch (error) {
    show("batch-error", explain(error));
  }
});

async function pollBatch(id) {
  for (;;) {
    const job = await (await api(`/v1/batches/${encodeURIComponent(id)}`)).json();
    const finished = job.done + job.errors;
    $("batch-progress").max = job.total || 1;
    $("batch-progress").value = job.total ? finished : 0;
    $("batch-status").textContent = `${job.status}: ${finished} of ${job.total ?? "?"} samples` +
      (job.errors ? ` (${job.errors} unreadable)` : "") + (job.error ? ` — ${job.error}` : "");
    if (job.status === "done" || job.status === "failed") break;
    await new Promise((resolve) => setTimeout(resolve, 400));
  }
  const results = await (await api(`/v1/batches/${encodeURIComponent(id)}/results?format=json`)).json();
  $("batch-table").tBodies[0].replaceChildren(...results.map((r) => row(
    [r.seq, r.patient_id ?? "", r.sample_id ?? "", fmt(r.hematocrit_pct), r.flag ?? "",
     r.status === "error" ? `error: ${r.error_message}` : r.status], 3)));
  const csv = await (await api(`/v1/batches/${encodeURIComponent(id)}/results?format=csv`)).blob();
  if (batchCsvUrl) URL.revokeObjectURL(batchCsvUrl);
  batchCsvUrl = URL.createObjectURL(csv);
  $("batch-download").dataset.filename = `hct-batch-${id}.csv`;
  $("batch-download").disabled = false;
  $("batch-download").focus();
}

$("batch-download").addEventListener("click", () => {
  const link = document.createElement("a");
  link.href = batchCsvUrl;
  link.download = $("batch-download").dataset.filename;
  document.body.appendChild(link);
  link.click();
  link.remove();
});

// ---- start ---------------------------------------------------------------------------------
if (sessionStorage.getItem(KEY) !== null) signIn(sessionStorage.getItem(KEY));
