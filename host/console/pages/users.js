// pages/users.js: look a user up by id: the merged consent state (flattened
// properties) and the history: events and every delivery attempt (status,
// HTTP codes, connector version and hash, origin): the proof of consent sync
// an auditor asks for, exported as JSON or CSV.
//
// Data: GET /v1/users/{id}, GET /v1/users/{id}/history.
// Routes: #/users (the lookup), #/users/<id> (a user).

import { ApiError, api, download, errorText, fmtTime, h, notice, table, tableWrap } from "../ui.js";

export async function render(root, params = {}) {
  const id = typeof params.id === "string" ? params.id : "";
  const input = h("input", {
    id: "user-id", name: "user-id", type: "text", value: id, required: true,
    autocomplete: "off", spellcheck: "false", "aria-describedby": "user-id-help user-id-problem",
  });
  const problem = h("p", { class: "problem", id: "user-id-problem", role: "alert" });
  const form = h("form", { id: "lookup", class: "lookup", novalidate: true, role: "search" },
    h("div", { class: "field" },
      h("label", { for: "user-id" }, "User id"),
      h("div", { class: "input-row" },
        input,
        h("button", { type: "submit", class: "primary", "data-action": "lookup" }, "Look up")),
      h("p", { class: "help", id: "user-id-help" }, "The organization's own id for the user (organization_user_id)."),
      problem));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const wanted = input.value.trim();
    problem.textContent = "";
    input.removeAttribute("aria-invalid");
    if (wanted === "") {
      problem.textContent = "User id: enter the id of a user.";
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    const hash = `#/users/${encodeURIComponent(wanted)}`;
    if (location.hash === hash) show(wanted);
    else location.hash = hash;
  });

  const results = h("div", { id: "user-results" });
  root.append(h("h1", null, id ? `User ${id}` : "Users"), form, results);

  async function show(userId) {
    delete root.dataset.ready;
    results.replaceChildren(h("p", { class: "muted", role: "status" }, "Loading…"));
    const path = encodeURIComponent(userId);
    const [user, history] = await Promise.all([
      api("GET", `/v1/users/${path}`).catch((e) => e),
      api("GET", `/v1/users/${path}/history`).catch((e) => e),
    ]);
    if (!root.isConnected) return;
    results.replaceChildren();
    const missing = (r) => r instanceof ApiError && r.status === 404;
    for (const r of [user, history]) {
      if (r instanceof Error && !missing(r)) {
        notice(results, "error", `Could not load user ${userId}: ${errorText(r)}`);
        root.dataset.ready = "true";
        return;
      }
    }
    if (missing(user) && missing(history)) {
      notice(results, "warning", `No user ${userId}: no consent state, no events and no delivery attempts.`);
      root.dataset.ready = "true";
      return;
    }
    const state = missing(user) ? null : user;
    const hist = missing(history) ? { organization_user_id: userId, events: [], attempts: [] } : history;
    results.append(...drawUser(userId, state, hist));
    root.dataset.ready = "true";
  }

  if (id) await show(id);
  else input.focus();
}

function drawUser(userId, state, hist) {
  const events = hist.events ?? [];
  const attempts = hist.attempts ?? [];
  const exportedAt = Date.now();
  const exportJson = h("button", {
    type: "button", "data-action": "export-json",
    onclick: () => download(`prefsync-user-${fileSafe(userId)}.json`, "application/json",
      `${JSON.stringify({ organization_user_id: userId, exported_at_ms: Date.now(), state, events, attempts }, null, 2)}\n`),
  }, "Export JSON");
  const exportCsv = h("button", {
    type: "button", "data-action": "export-csv",
    onclick: () => download(`prefsync-user-${fileSafe(userId)}.csv`, "text/csv", historyCsv(state, events, attempts)),
  }, "Export CSV");

  const nodes = [];
  nodes.push(h("div", { class: "toolbar", role: "group", "aria-label": "Export" }, exportJson, exportCsv,
    h("span", { class: "muted" }, `${events.length} events, ${attempts.length} delivery attempts (as of ${fmtTime(exportedAt)})`)));

  nodes.push(h("h2", { id: "state-title" }, "Merged consent state"));
  if (state) {
    nodes.push(h("dl", { class: "facts" },
      h("dt", null, "User"), h("dd", null, state.organization_user_id ?? userId),
      h("dt", null, "State version"), h("dd", null, String(state.version ?? "—")),
      h("dt", null, "Last changed"), h("dd", null, fmtTime(state.updated_at_ms))));
    const props = Object.entries(state.properties ?? {})
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([property, value]) => ({ property, value }));
    nodes.push(tableWrap(table([
      { key: "property", label: "Property", render: (r) => h("code", null, r.property) },
      { key: "value", label: "Value", render: (r) => valueText(r.value) },
    ], props, { id: "state", rowId: (r) => r.property, label: "Merged consent state", empty: "No properties." })));
  } else {
    nodes.push(h("p", { class: "muted", id: "no-state" }, "No stored state for this user (history only)."));
  }

  nodes.push(h("h2", { id: "events-title" }, `Events (${events.length})`));
  nodes.push(tableWrap(table([
    { key: "created_at_ms", label: "Time", render: (r) => fmtTime(r.created_at_ms) },
    { key: "event_id", label: "Event", render: (r) => h("code", null, r.event_id) },
    { key: "status", label: "Status" },
    { key: "origin", label: "Origin", render: (r) => r.origin ?? h("span", { class: "muted" }, "Didomi") },
    { key: "received_at_ms", label: "Received", render: (r) => fmtTime(r.received_at_ms) },
    { key: "payload", label: "Payload", render: (r) => payload(r.payload) },
  ], events, { id: "events", rowId: (r) => r.event_id, label: "Events", empty: "No events." })));

  nodes.push(h("h2", { id: "attempts-title" }, `Delivery attempts (${attempts.length})`));
  nodes.push(tableWrap(table([
    { key: "at_ms", label: "Time", render: (r) => fmtTime(r.at_ms) },
    { key: "integration_id", label: "Integration", render: (r) => h("a", { href: `#/integrations/${encodeURIComponent(r.integration_id)}` }, r.integration_id) },
    { key: "outcome", label: "Outcome", render: (r) => h("span", { class: outcomeClass(r.outcome) }, r.outcome) },
    { key: "http_statuses", label: "HTTP", render: (r) => (r.http_statuses ?? []).join(", ") },
    { key: "connector_version", label: "Connector", render: (r) => `${r.connector_type ?? ""} ${r.connector_version ?? ""}`.trim() },
    { key: "connector_hash", label: "Hash", render: (r) => hash(r.connector_hash) },
    { key: "origin", label: "Origin", render: (r) => r.origin ?? h("span", { class: "muted" }, "Didomi") },
    { key: "attempt", label: "Attempt", numeric: true },
    { key: "state_version", label: "State version", numeric: true },
    { key: "detail", label: "Detail" },
  ], attempts, { id: "attempts", label: "Delivery attempts", empty: "No delivery attempts." })));
  return nodes;
}

function outcomeClass(outcome) {
  if (String(outcome).startsWith("delivered")) return "badge badge-on";
  if (outcome === "skipped") return "badge badge-off";
  if (outcome === "failed:retryable" || outcome === "failed:canary") return "badge badge-warn";
  return "badge badge-bad";
}

function valueText(value) {
  if (value === null || value === undefined) return h("span", { class: "muted" }, "null");
  if (typeof value === "boolean") return h("code", null, String(value));
  return typeof value === "string" ? value : JSON.stringify(value);
}

function hash(full) {
  if (!full) return null;
  const text = String(full);
  return h("code", { class: "hash", title: text }, text.length > 14 ? `${text.slice(0, 12)}…` : text);
}

function payload(value) {
  if (value === undefined || value === null) return null;
  const text = JSON.stringify(value, null, 2);
  const kind = typeof value.type === "string" ? ` (${value.type})` : "";
  return h("details", null, h("summary", null, `Show JSON${kind}`), h("pre", null, text));
}

function fileSafe(text) {
  return String(text).replace(/[^A-Za-z0-9._-]+/g, "_").slice(0, 64) || "user";
}

/** One CSV field: quoted when needed; text that a spreadsheet would run as a formula is prefixed with '. */
function csvField(value) {
  if (value === undefined || value === null) return "";
  let text = typeof value === "string" ? value : (typeof value === "object" ? JSON.stringify(value) : String(value));
  if (typeof value === "string" && /^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll("\"", "\"\"")}"` : text;
}

const CSV_COLUMNS = [
  "record", "time_utc", "time_ms", "integration_id", "outcome_or_status", "http_statuses",
  "connector_type", "connector_version", "connector_hash", "origin", "attempt", "state_version",
  "duration_ms", "event_id", "property", "value", "detail",
];

/** The history as one CSV: the state's properties, the events and the attempts, one record a line. */
export function historyCsv(state, events, attempts) {
  const lines = [CSV_COLUMNS.join(",")];
  const push = (record) => lines.push(CSV_COLUMNS.map((c) => csvField(record[c])).join(","));
  for (const [property, value] of Object.entries(state?.properties ?? {}).sort(([a], [b]) => a.localeCompare(b))) {
    push({
      record: "state", time_utc: fmtTime(state.updated_at_ms), time_ms: state.updated_at_ms,
      state_version: state.version, property, value: value === null ? "null" : value,
    });
  }
  for (const e of events) {
    push({
      record: "event", time_utc: fmtTime(e.created_at_ms), time_ms: e.created_at_ms,
      outcome_or_status: e.status, origin: e.origin, event_id: e.event_id,
      detail: JSON.stringify(e.payload ?? null),
    });
  }
  for (const a of attempts) {
    push({
      record: "attempt", time_utc: fmtTime(a.at_ms), time_ms: a.at_ms, integration_id: a.integration_id,
      outcome_or_status: a.outcome, http_statuses: (a.http_statuses ?? []).join(" "),
      connector_type: a.connector_type, connector_version: a.connector_version,
      connector_hash: a.connector_hash, origin: a.origin, attempt: a.attempt,
      state_version: a.state_version, duration_ms: a.duration_ms, detail: a.detail,
    });
  }
  return `${lines.join("\r\n")}\r\n`;
}
