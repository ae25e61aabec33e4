// pages/overview.js: per integration, delivered / retrying / dead-lettered in
// the last hour and day, pending work and the last error; a chart of the
// deliveries by outcome over the last hour (5-minute buckets) or day (hours).
//
// Data: GET /v1/overview?range=hour|day. Route: #/overview[?range=hour|day].

import { api, errorText, fmtAge, fmtTime, h, notice, svg, table, tableWrap } from "../ui.js";

const OUTCOMES = [
  { key: "delivered", label: "Delivered" },
  { key: "skipped", label: "Skipped" },
  { key: "retrying", label: "Retrying" },
  { key: "dead_lettered", label: "Dead-lettered" },
];

const RANGES = {
  hour: { label: "Last hour", span: "the last hour", per: "5 minutes" },
  day: { label: "Last 24 hours", span: "the last 24 hours", per: "hour" },
};

export async function render(root, params = {}) {
  let range = params.range === "hour" ? "hour" : "day";
  let only = typeof params.integration === "string" ? params.integration : "";

  const switchButtons = Object.entries(RANGES).map(([key, r]) => h("button", {
    type: "button", "data-range": key, "aria-pressed": String(key === range),
    onclick: () => {
      if (range === key) return;
      range = key;
      for (const b of switchButtons) b.setAttribute("aria-pressed", String(b.dataset.range === range));
      remember();
      load();
    },
  }, r.label));

  const remember = () => {
    const query = new URLSearchParams({ range });
    if (only) query.set("integration", only);
    history.replaceState(null, "", `#/overview?${query}`);
  };
  const chartFilter = h("select", { id: "chart-integration", name: "integration" });
  chartFilter.addEventListener("change", () => { only = chartFilter.value; remember(); load(); });

  const refresh = h("button", { type: "button", "data-action": "refresh", onclick: () => load() }, "Refresh");
  const status = h("p", { class: "muted", id: "overview-updated", role: "status" });
  const errors = h("div", { id: "overview-errors" });
  const stats = h("div", { class: "stats", id: "overview-stats" });
  const chartTitle = h("h2", { id: "chart-title" }, "Deliveries by outcome");
  const chartBox = h("div", { class: "chart-box" });
  const legend = h("ul", { class: "legend", id: "chart-legend" });
  const tableBox = h("div", { class: "table-box" });

  root.append(
    h("div", { class: "page-head" },
      h("h1", null, "Overview"),
      h("div", { class: "toolbar" },
        h("div", { class: "segmented", role: "group", "aria-label": "Chart range" }, switchButtons),
        refresh)),
    status,
    errors,
    stats,
    h("section", { class: "card chart-card", "aria-labelledby": "chart-title" },
      h("div", { class: "chart-head" }, chartTitle,
        h("div", { class: "field field-inline" }, h("label", { for: "chart-integration" }, "Integration"), chartFilter)),
      chartBox, legend),
    h("h2", { id: "integrations-title" }, "Integrations"),
    tableBox,
  );

  let last = null;
  let drawnWidth = 0;
  const onResize = () => {
    if (!root.isConnected) {
      window.removeEventListener("resize", onResize);
      return;
    }
    if (last && Math.abs(chartBox.clientWidth - drawnWidth) > 8) drawChart(last);
  };
  window.addEventListener("resize", onResize);

  function drawChart(data) {
    drawnWidth = chartBox.clientWidth || 720;
    chartBox.replaceChildren(chart(data, drawnWidth));
  }

  async function load() {
    delete root.dataset.ready;
    refresh.disabled = true;
    errors.replaceChildren();
    let data;
    try {
      const query = new URLSearchParams({ range });
      if (only) query.set("integration", only);
      data = await api("GET", `/v1/overview?${query}`);
    } catch (err) {
      refresh.disabled = false;
      if (!root.isConnected) return;
      notice(errors, "error", `Could not load the overview: ${errorText(err)}`);
      root.dataset.ready = "true";
      return;
    }
    refresh.disabled = false;
    if (!root.isConnected) return;
    data.only = only;
    last = data;
    const r = RANGES[data.range] ?? RANGES[range];
    chartTitle.textContent = `Deliveries by outcome, ${r.span} (per ${r.per})${only ? `: ${only}` : ""}`;
    fillFilter(chartFilter, data.integrations ?? [], only);
    status.textContent = `As of ${fmtTime(data.now_ms)}.`;
    stats.replaceChildren(...statCards(data));
    drawChart(data);
    legend.replaceChildren(...legendItems(data));
    tableBox.replaceChildren(integrationsTable(data));
    root.dataset.ready = "true";
  }

  await load();
}

function fillFilter(select, integrations, only) {
  const ids = integrations.map((i) => i.id).sort();
  if (only && !ids.includes(only)) ids.unshift(only);
  select.replaceChildren(h("option", { value: "" }, "All integrations"),
    ...ids.map((id) => h("option", { value: id }, id)));
  select.value = only;
}

function sum(items, pick) {
  return items.reduce((total, item) => total + (Number(pick(item)) || 0), 0);
}

function statCards(data) {
  const list = data.integrations ?? [];
  const [span, when] = data.range === "hour" ? ["last_hour", "last hour"] : ["last_day", "last 24 h"];
  const cards = [
    [`Delivered, ${when}`, sum(list, (i) => i[span]?.delivered), "stat-delivered"],
    [`Retrying, ${when}`, sum(list, (i) => i[span]?.retrying), "stat-retrying"],
    [`Dead-lettered, ${when}`, sum(list, (i) => i[span]?.dead_lettered), "stat-dead-lettered"],
    ["Pending now", sum(list, (i) => i.pending), "stat-pending"],
    ["Dead letters waiting", sum(list, (i) => i.dead_letters), "stat-dead-letters"],
  ];
  return cards.map(([label, value, id]) => h("div", { class: "stat", id },
    h("span", { class: "value" }, String(value)), h("span", { class: "label" }, label)));
}

function totals(buckets) {
  const t = {};
  for (const o of OUTCOMES) t[o.key] = sum(buckets, (b) => b[o.key]);
  return t;
}

function legendItems(data) {
  const t = totals(data.series?.buckets ?? []);
  return OUTCOMES.map((o) => h("li", { "data-outcome": o.key },
    h("span", { class: `swatch ${o.key}`, "aria-hidden": "true" }),
    `${o.label}: ${t[o.key]}`));
}

/** `HH:MM` (UTC) of a time. */
function clock(ms) {
  const d = new Date(ms);
  return `${String(d.getUTCHours()).padStart(2, "0")}:${String(d.getUTCMinutes()).padStart(2, "0")}`;
}

/** The y axis for a tallest bar of `n`: `{top, step}`, a 1/2/5 × 10^k step, at most 5 ticks. */
function niceAxis(n) {
  if (n <= 4) return { top: 4, step: 1 };
  const raw = n / 4;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((k) => k * power).find((v) => v >= raw);
  return { top: Math.ceil(n / step) * step, step };
}

/** The summary a screen reader hears for the chart. */
function chartSummary(data, buckets) {
  const r = RANGES[data.range] ?? RANGES.day;
  const t = totals(buckets);
  const parts = OUTCOMES.map((o) => `${t[o.key]} ${o.label.toLowerCase()}`).join(", ");
  let busiest = null;
  for (const b of buckets) {
    const total = sum(OUTCOMES, (o) => b[o.key]);
    if (total > 0 && (busiest === null || total > busiest.total)) busiest = { start: b.start_ms, total };
  }
  const peak = busiest ? `; busiest: ${clock(busiest.start)} UTC with ${busiest.total}` : "; no deliveries";
  const of = data.only ? ` of ${data.only}` : "";
  return `Deliveries${of} by outcome over ${r.span}, per ${r.per}: ${parts}${peak}.`;
}

/** Stacked bars of the series' buckets, drawn for `width` pixels. */
function chart(data, width) {
  const buckets = data.series?.buckets ?? [];
  const bucketMs = data.series?.bucket_ms ?? 3_600_000;
  const W = Math.max(300, Math.round(width));
  const H = W < 500 ? 200 : 240;
  const m = { left: 40, right: 10, top: 12, bottom: 26 };
  const plotW = W - m.left - m.right;
  const plotH = H - m.top - m.bottom;
  const maxTotal = Math.max(0, ...buckets.map((b) => sum(OUTCOMES, (o) => b[o.key])));
  const { top, step } = niceAxis(maxTotal);
  const y = (v) => m.top + plotH - (v / top) * plotH;
  const slot = buckets.length > 0 ? plotW / buckets.length : plotW;
  const barW = Math.max(2, slot * 0.7);

  const el = svg("svg", {
    id: "chart", role: "img", "aria-label": chartSummary(data, buckets),
    viewBox: `0 0 ${W} ${H}`, width: String(W), height: String(H),
    "data-buckets": String(buckets.length), preserveAspectRatio: "xMinYMin meet",
  });
  for (let v = 0; v <= top; v += step) {
    const yy = y(v);
    el.append(
      svg("line", { class: v === 0 ? "axis" : "grid", x1: m.left, x2: W - m.right, y1: yy, y2: yy }),
      svg("text", { x: m.left - 6, y: yy + 4, "text-anchor": "end" }, String(v)),
    );
  }
  const labelEvery = Math.max(1, Math.ceil(buckets.length / Math.max(2, Math.floor(plotW / 56))));
  buckets.forEach((b, i) => {
    const x = m.left + i * slot + (slot - barW) / 2;
    const g = svg("g", { class: "bar", "data-start": String(b.start_ms) });
    let acc = 0;
    for (const o of OUTCOMES) {
      const v = Number(b[o.key]) || 0;
      if (v <= 0) continue;
      const y0 = y(acc);
      const y1 = y(acc + v);
      g.append(svg("rect", {
        class: o.key, x: x.toFixed(1), y: y1.toFixed(1), width: barW.toFixed(1),
        height: Math.max(1, y0 - y1).toFixed(1), "data-outcome": o.key, "data-value": String(v),
      }));
      acc += v;
    }
    const counts = OUTCOMES.map((o) => `${Number(b[o.key]) || 0} ${o.label.toLowerCase()}`).join(", ");
    g.append(svg("title", null, `${clock(b.start_ms)}–${clock(b.start_ms + bucketMs)} UTC: ${counts}`));
    // A transparent target over the whole slot, so the tooltip shows on hover anywhere in it.
    g.prepend(svg("rect", { class: "hit", x: (m.left + i * slot).toFixed(1), y: m.top, width: slot.toFixed(1), height: plotH, fill: "transparent" }));
    el.append(g);
    if (i % labelEvery === 0 || i === buckets.length - 1) {
      const last = i === buckets.length - 1;
      el.append(svg("text", {
        x: (m.left + i * slot + slot / 2).toFixed(1), y: H - 8, "text-anchor": "middle",
      }, last ? "now" : clock(b.start_ms)));
    }
  });
  if (maxTotal === 0) {
    el.append(svg("text", { x: m.left + plotW / 2, y: m.top + plotH / 2, "text-anchor": "middle", class: "empty-note" },
      "No deliveries in this period"));
  }
  return el;
}

function count(value) {
  const n = Number(value) || 0;
  return n === 0 ? h("span", { class: "zero" }, "0") : String(n);
}

function lastError(e) {
  if (!e) return null;
  const detail = String(e.detail ?? "");
  const short = detail.length > 160 ? `${detail.slice(0, 157)}…` : detail;
  const statuses = (e.http_statuses ?? []).length ? ` HTTP ${e.http_statuses.join(", ")}` : "";
  return h("div", { class: "last-error" },
    h("span", { class: e.outcome === "failed:retryable" || e.outcome === "failed:canary" ? "badge badge-warn" : "badge badge-bad" }, e.outcome ?? "error"),
    h("span", { class: "muted" }, ` ${fmtTime(e.at_ms)}${statuses}`),
    detail ? h("div", { title: detail.length > 160 ? detail : null }, short) : null);
}

function integrationsTable(data) {
  const href = (id) => `#/integrations/${encodeURIComponent(id)}`;
  const deadHref = (id) => `#/dead-letters?integration=${encodeURIComponent(id)}`;
  const t = table([
    { key: "id", label: "Integration", render: (r) => [
      h("a", { href: href(r.id) }, r.id), " ",
      h("span", { class: r.enabled ? "badge badge-on" : "badge badge-off", "data-enabled": String(Boolean(r.enabled)) }, r.enabled ? "enabled" : "disabled")] },
    { key: "type_id", label: "Connector", render: (r) => [r.type_id, " ", h("span", { class: "muted nowrap" }, r.connector_version ?? "")] },
    { key: "delivered_hour", label: "Delivered", numeric: true, render: (r) => count(r.last_hour?.delivered) },
    { key: "retrying_hour", label: "Retrying", numeric: true, render: (r) => count(r.last_hour?.retrying) },
    { key: "dead_lettered_hour", label: "Dead-lettered", numeric: true, render: (r) => count(r.last_hour?.dead_lettered) },
    { key: "delivered_day", label: "Delivered", numeric: true, render: (r) => count(r.last_day?.delivered) },
    { key: "retrying_day", label: "Retrying", numeric: true, render: (r) => count(r.last_day?.retrying) },
    { key: "dead_lettered_day", label: "Dead-lettered", numeric: true, render: (r) => count(r.last_day?.dead_lettered) },
    { key: "pending", label: "Pending", numeric: true, render: (r) => count(r.pending) },
    { key: "oldest_pending", label: "Oldest pending", render: (r) => fmtAge(r.oldest_pending_age_s) },
    { key: "dead_letters", label: "Dead letters", numeric: true, render: (r) => (Number(r.dead_letters) > 0
      ? h("a", { href: deadHref(r.id), "aria-label": `${r.dead_letters} dead letters of ${r.id}` }, String(r.dead_letters))
      : h("a", { href: deadHref(r.id), class: "zero", "aria-label": `No dead letters of ${r.id}` }, "0")) },
    { key: "last_error", label: "Last error (24 h)", render: (r) => lastError(r.last_error) },
  ], data.integrations ?? [], {
    id: "integrations", label: "Integrations",
    empty: "No integrations yet: create one on the Integrations page.",
  });
  // A header row above: which columns are the last hour's and which the day's.
  t.tHead.prepend(h("tr", { class: "group-head" },
    h("td", { colspan: "2" }),
    h("th", { scope: "colgroup", colspan: "3", class: "num" }, "Last hour"),
    h("th", { scope: "colgroup", colspan: "3", class: "num" }, "Last 24 hours"),
    h("td", { colspan: "4" })));
  return tableWrap(t);
}
