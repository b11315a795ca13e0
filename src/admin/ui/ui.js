// Sextant's topology page: reads /debug/edges, /debug/slos, /debug/syncz
// and /debug/config_errors of this admin endpoint every 2 s and draws them
// (plain SVG and DOM, no library).
"use strict";

const SVG = "http://www.w3.org/2000/svg";

function el(tag, attrs, text) {
  const e = tag.startsWith("svg:")
    ? document.createElementNS(SVG, tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

/** Success-rate class of an edge: ok, warn, bad, or idle without requests. */
function health(edge) {
  if (edge.success_rate === null || edge.success_rate === undefined) return "idle";
  if (edge.success_rate >= 0.99) return "ok";
  if (edge.success_rate >= 0.95) return "warn";
  return "bad";
}

function fmtRps(x) { return x >= 10 ? x.toFixed(0) : x.toFixed(2); }
function fmtMs(x) { return x === undefined ? "–" : String(Math.round(x)); }
/** Milliseconds for the table: one decimal below 10 ms. */
function fmtMsFine(x) { return x !== undefined && x < 10 ? x.toFixed(1) : fmtMs(x); }
function destination(e) {
  return e.destination_subset ? `${e.destination_service} (${e.destination_subset})` : e.destination_service;
}

/** The label of an edge in the graph. */
function edgeLabel(e) {
  return `${fmtRps(e.rps)} rps · p99 ${fmtMs(e.latency_ms.p99)} ms · ${e.requests} req`;
}

/** Columns by longest path from the nodes nobody calls (cycles cut). */
function layers(nodes, edges) {
  const depth = new Map([...nodes].map((n) => [n, 0]));
  for (let round = 0; round < nodes.size; round++) {
    let changed = false;
    for (const e of edges) {
      const d = depth.get(e.from) + 1;
      if (e.from !== e.to && d > depth.get(e.to) && d < nodes.size) {
        depth.set(e.to, d);
        changed = true;
      }
    }
    if (!changed) break;
  }
  return depth;
}

function drawGraph(view) {
  const svg = document.getElementById("graph");
  svg.replaceChildren();
  const edges = view.edges.map((e) => ({ ...e, from: e.source_workload, to: destination(e) }));
  const nodes = new Set(edges.flatMap((e) => [e.from, e.to]));
  if (nodes.size === 0) {
    svg.appendChild(el("svg:text", { x: 20, y: 30, class: "empty" },
      "No traffic reported yet (sidecars stream stats every few seconds)."));
    return;
  }
  const depth = layers(nodes, edges);
  const columns = [];
  for (const n of [...nodes].sort()) {
    const d = depth.get(n);
    (columns[d] = columns[d] || []).push(n);
  }
  const width = svg.clientWidth || 1000;
  const colWidth = Math.max(260, width / Math.max(columns.length, 1));
  const rowHeight = 80;
  const height = Math.max(200, 40 + rowHeight * Math.max(...columns.map((c) => (c || []).length)));
  svg.setAttribute("viewBox", `0 0 ${Math.max(width, colWidth * columns.length)} ${height}`);
  svg.style.height = `${height}px`;
  const pos = new Map();
  columns.forEach((col, c) => (col || []).forEach((n, r) => {
    pos.set(n, { x: 20 + c * colWidth, y: 30 + r * rowHeight });
  }));
  const defs = el("svg:defs");
  for (const h of ["ok", "warn", "bad", "idle"]) {
    const marker = el("svg:marker", { id: `arrow-${h}`, viewBox: "0 0 10 10", refX: 10, refY: 5,
      markerWidth: 8, markerHeight: 8, orient: "auto-start-reverse" });
    marker.appendChild(el("svg:path", { d: "M0,0 L10,5 L0,10 z", class: `arrow ${h}`,
      fill: { ok: "#1a7f37", warn: "#b86e00", bad: "#cf222e", idle: "#8c959f" }[h] }));
    defs.appendChild(marker);
  }
  svg.appendChild(defs);
  const boxW = 200, boxH = 30;
  edges.forEach((e, i) => {
    const a = pos.get(e.from), b = pos.get(e.to);
    const h = health(e);
    const g = el("svg:g", { class: `edge ${h}`, "data-source": e.from, "data-destination": e.to,
      "data-requests": e.requests, "data-errors": e.errors });
    const x1 = a.x + boxW, y1 = a.y + boxH / 2;
    const x2 = b.x, y2 = b.y + boxH / 2;
    const bend = (i % 2 ? 1 : -1) * 12;
    const mx = (x1 + x2) / 2, my = (y1 + y2) / 2 + bend;
    g.appendChild(el("svg:path", { d: `M${x1},${y1} Q${mx},${my} ${x2},${y2}`,
      "marker-end": `url(#arrow-${h})` }));
    g.appendChild(el("svg:text", { x: mx, y: my - 6, "text-anchor": "middle", class: "edge-label" },
      edgeLabel(e)));
    svg.appendChild(g);
  });
  for (const [n, p] of pos) {
    const g = el("svg:g", { class: "node", "data-name": n });
    g.appendChild(el("svg:rect", { x: p.x, y: p.y, width: boxW, height: boxH }));
    g.appendChild(el("svg:text", { x: p.x + 10, y: p.y + 20 }, n));
    svg.appendChild(g);
  }
}

function drawEdgeTable(view) {
  const body = document.querySelector("#edges tbody");
  body.replaceChildren();
  for (const e of view.edges) {
    const tr = el("tr", { class: health(e) });
    const cells = [
      [e.source_workload], [destination(e)], [e.requests, "num"], [e.errors, "num"],
      [e.success_rate === null ? "–" : `${(100 * e.success_rate).toFixed(1)} %`, "num"],
      [fmtRps(e.rps), "num"], [fmtMsFine(e.latency_ms.p50), "num"],
      [fmtMsFine(e.latency_ms.p90), "num"], [fmtMsFine(e.latency_ms.p99), "num"], [e.active_connections, "num"],
    ];
    for (const [v, cls] of cells) tr.appendChild(el("td", cls ? { class: cls } : {}, String(v)));
    body.appendChild(tr);
  }
}

/** A percentage with two decimals. */
function fmtPct(x) { return x === null || x === undefined ? "–" : `${x.toFixed(2)} %`; }

/** The objective's kind as shown: availability, or latency ≤ threshold. */
function objectiveName(o) {
  return o.objective === "latency" ? `latency ≤ ${o.threshold_ms} ms` : o.objective;
}

function drawSlos(view) {
  document.getElementById("slo-window").textContent = `(last ${view.window_seconds} s)`;
  const body = document.querySelector("#slos tbody");
  body.replaceChildren();
  if (view.slos.length === 0) {
    const tr = el("tr");
    tr.appendChild(el("td", { class: "empty", colspan: 9 }, "no ServiceLevelObjective configured"));
    body.appendChild(tr);
  }
  for (const slo of view.slos) {
    const name = `${slo.namespace}/${slo.name}`;
    for (const o of slo.objectives) {
      const tr = el("tr", { class: o.state, "data-slo": name, "data-objective": o.objective });
      const cells = [
        [name], [slo.service], [objectiveName(o)], [`${o.target_percent} %`, "num"],
        [fmtPct(o.observed_percent), "num"], [`${o.bad} / ${o.total}`, "num"],
        [o.burn_rate === null ? "–" : o.burn_rate.toFixed(2), o.state === "burning" ? "num burn bad" : "num burn"],
        [o.budget_remaining === null ? "–" : `${(100 * o.budget_remaining).toFixed(0)} %`, "num"],
        [o.state === "no-traffic" ? "no traffic" : o.state, `state ${o.state}`],
      ];
      for (const [v, cls] of cells) tr.appendChild(el("td", cls ? { class: cls } : {}, String(v)));
      body.appendChild(tr);
    }
  }
}

function drawSync(syncz) {
  const table = document.getElementById("sync");
  const types = ["CDS", "EDS", "LDS", "RDS", "SDS"];
  const head = el("tr");
  for (const h of ["proxy", ...types, "last NACK"]) head.appendChild(el("th", {}, h));
  table.tHead.replaceChildren(head);
  const body = table.tBodies[0];
  body.replaceChildren();
  if (syncz.proxies.length === 0) {
    const tr = el("tr");
    tr.appendChild(el("td", { class: "empty", colspan: types.length + 2 }, "no proxy connected"));
    body.appendChild(tr);
  }
  for (const p of syncz.proxies) {
    const tr = el("tr", { "data-proxy": p.node_id });
    tr.appendChild(el("td", {}, p.node_id));
    for (const t of types) tr.appendChild(el("td", { class: p[t] }, p[t]));
    const nack = types.map((t) => p[`${t}_nack`]).find((n) => n);
    tr.appendChild(el("td", {}, nack ? nack.message : ""));
    body.appendChild(tr);
  }
}

function drawErrors(report) {
  const list = document.getElementById("errors");
  list.replaceChildren();
  document.getElementById("error-count").textContent =
    `(${report.errors} errors, ${report.diagnostics.length - report.errors} warnings)`;
  if (report.diagnostics.length === 0) list.appendChild(el("li", { class: "empty" }, "none"));
  for (const d of report.diagnostics) {
    list.appendChild(el("li", { class: String(d.severity).toLowerCase() }, d.text));
  }
}

async function json(path) {
  const response = await fetch(path, { cache: "no-store" });
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

async function refresh() {
  try {
    const [edges, slos, syncz, errors] = await Promise.all([json("/debug/edges"),
      json("/debug/slos"), json("/debug/syncz"), json("/debug/config_errors")]);
    document.getElementById("window").textContent = `(last ${edges.window_seconds} s)`;
    drawGraph(edges);
    drawEdgeTable(edges);
    drawSlos(slos);
    drawSync(syncz);
    drawErrors(errors);
    document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    document.getElementById("updated").textContent = `cannot read the admin endpoint: ${err}`;
  }
}

refresh();
setInterval(refresh, 2000);
