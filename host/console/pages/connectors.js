// pages/connectors.js: the connector registry. #/connectors lists every type
// (active, standby, canary and its tallies); #/connectors/<type_id> shows one
// type: every version with hash and WIT version, its switches, a rollback,
// and an upload of a new version (.wasm) with the canary options the API
// takes (host/src/serve/api/connectors.rs `UploadQuery`).

import { api, ApiError, h, table, fmtTime, notice, confirmDialog } from "../ui.js";

/** A table that scrolls sideways on a narrow screen. */
const wideTable = (...args) => h("div", { class: "table-wrap" }, table(...args));

/** The API's canary defaults (host/src/serve/canary.rs `CanaryPolicy::default`). */
const CANARY_DEFAULTS = { window_s: 300, max_failure_increase: 0.1, min_deliveries: 20 };
/** While a canary runs, its tallies are re-read this often, at most this many times. */
const REFRESH_MS = 5000;
const MAX_REFRESHES = 720;

/** A switch report the next render shows in #result (after an upload or rollback). */
let flash = null;

export async function render(root, params = {}) {
  const [path] = location.hash.replace(/^#/, "").split("?");
  const parts = path.split("/").filter(Boolean);
  let typeId = params.id ?? params.type_id ?? (parts[1] !== undefined ? decodeURIComponent(parts[1]) : undefined);
  if (typeof typeId === "string") typeId = typeId.split("?")[0];
  if (typeId) return renderType(root, typeId);
  return renderList(root);
}

const markReady = (root) => { root.dataset.ready = "true"; };
const messageOf = (err) => (err instanceof ApiError ? (err.body?.message ?? err.message) : (err?.message ?? String(err)));
const short = (hash) => (hash ? String(hash).slice(0, 12) : "—");
const typeHref = (t) => `#/connectors/${encodeURIComponent(t)}`;

/** What a type says of itself: the answer's fields, else its active version's `describe`. */
function facts(c) {
  const active = (c.versions ?? []).find((v) => v.content_hash === c.active?.content_hash);
  const d = active?.description ?? {};
  return {
    displayName: c.display_name ?? d.display_name ?? c.type_id,
    capabilities: c.capabilities ?? {
      deliver: true, batching: d.batching ?? false,
      inbound_webhooks: d.inbound_webhooks ?? false, activations: d.activations ?? false,
      connection_check: d.connection_check ?? false,
    },
    defaultHosts: c.default_hosts ?? d.default_hosts ?? [],
    maxBatchSize: c.max_batch_size ?? d.max_batch_size,
    maxConcurrency: c.max_concurrency ?? d.max_concurrency,
  };
}

function rate(counts) {
  const n = Number(counts?.deliveries ?? 0);
  const f = Number(counts?.permanent_failures ?? 0);
  return n ? `${((100 * f) / n).toFixed(1)} %` : "—";
}

function canaryText(canary) {
  if (!canary) return "—";
  return `${canary.candidate?.version} at ${canary.percent} %: new ${canary.new?.deliveries ?? 0} delivered, `
    + `${canary.new?.permanent_failures ?? 0} failed · active ${canary.old?.deliveries ?? 0} delivered, `
    + `${canary.old?.permanent_failures ?? 0} failed`;
}

/** Re-renders while the page is still shown, a canary runs and the bound is not reached. */
function scheduleRefresh(root, route, again, count) {
  if (count >= MAX_REFRESHES) return;
  setTimeout(async () => {
    if (!root.isConnected || location.hash !== route) return;
    await again(count + 1);
  }, REFRESH_MS);
}

/** A refresh keeps what #result said. */
function keepResult(root, result) {
  const previous = root.querySelector("#result");
  if (previous) result.append(...previous.childNodes);
}

/** Whether someone is filling in the upload form (a refresh would wipe it). */
function busyUploading(root) {
  const form = root.querySelector("#upload-form");
  return !!form && (form.contains(document.activeElement) || (form.querySelector("#upload-file")?.files?.length ?? 0) > 0);
}

// ---------------------------------------------------------------- the registry

async function renderList(root, refreshes = 0) {
  const route = location.hash;
  let connectors;
  try {
    connectors = (await api("GET", "/v1/connectors"))?.connectors ?? [];
  } catch (err) {
    root.replaceChildren(h("h1", null, "Connectors"));
    notice(root, "error", `Could not load the registry: ${messageOf(err)}`);
    markReady(root);
    return;
  }
  if (refreshes > 0 && (!root.isConnected || location.hash !== route)) return;
  if (refreshes > 0 && busyUploading(root)) {
    scheduleRefresh(root, route, (n) => renderList(root, n), refreshes);
    return;
  }
  connectors.sort((a, b) => a.type_id.localeCompare(b.type_id));
  const result = h("div", { id: "result", role: "status", class: "result" });
  if (flash) { result.append(flash); flash = null; } else if (refreshes > 0) keepResult(root, result);
  const focusedId = document.activeElement?.id;
  root.replaceChildren(
    h("h1", null, "Connectors"),
    h("p", { class: "muted" }, "Every connector type this server loaded: the version making the deliveries, the previous one kept for a rollback, and a running canary with its live tallies."),
    result,
    wideTable([
      { key: "type_id", label: "Type", render: (c) => h("a", { href: typeHref(c.type_id) }, c.type_id) },
      { key: "display_name", label: "Name", render: (c) => facts(c).displayName },
      { key: "active", label: "Active", render: (c) => h("span", { title: c.active?.content_hash ?? "" }, c.active?.version ?? "—") },
      { key: "standby", label: "Standby", render: (c) => (c.standby ? h("span", { title: c.standby.content_hash }, c.standby.version) : "—") },
      { key: "canary", label: "Canary", render: (c) => (c.canary ? h("span", { class: "tag tag-warn" }, `${c.canary.candidate?.version} · ${c.canary.percent} %`) : "—") },
      { key: "canary_tallies", label: "Canary tallies (new / active)", render: (c) => (c.canary
        ? `${c.canary.new?.deliveries ?? 0} / ${c.canary.old?.deliveries ?? 0} delivered, ${c.canary.new?.permanent_failures ?? 0} / ${c.canary.old?.permanent_failures ?? 0} failed`
        : "—") },
      { key: "wit_version", label: "WIT", render: (c) => c.active?.wit_version },
    ], connectors, { id: "connectors", rowId: (c) => c.type_id, label: "Connector types", empty: "No connector is loaded." }),
  );
  root.append(uploadSection(root, { typeId: null, onDone: () => renderList(root) }));
  if (focusedId) document.getElementById(focusedId)?.focus();
  markReady(root);
  if (connectors.some((c) => c.canary)) scheduleRefresh(root, route, (n) => renderList(root, n), refreshes);
}

// ---------------------------------------------------------------- one type

async function renderType(root, typeId, refreshes = 0) {
  const route = location.hash;
  let c;
  try {
    c = await api("GET", `/v1/connectors/${encodeURIComponent(typeId)}`);
  } catch (err) {
    root.replaceChildren(
      h("p", { class: "breadcrumb" }, h("a", { href: "#/connectors" }, "Connectors"), " / ", typeId),
      h("h1", null, typeId));
    notice(root, "error", messageOf(err));
    markReady(root);
    return;
  }
  if (refreshes > 0 && (!root.isConnected || location.hash !== route)) return;
  if (refreshes > 0 && busyUploading(root)) {
    scheduleRefresh(root, route, (n) => renderType(root, typeId, n), refreshes);
    return;
  }
  const info = facts(c);
  const result = h("div", { id: "result", role: "status", class: "result" });
  if (flash) { result.append(flash); flash = null; } else if (refreshes > 0) keepResult(root, result);

  const versionLine = (v) => (v ? `${v.version} (WIT ${v.wit_version}, ${short(v.content_hash)})` : "—");
  const summary = h("dl", { class: "facts" },
    h("dt", null, "Active"), h("dd", { "data-field": "active" }, versionLine(c.active)),
    h("dt", null, "Standby"), h("dd", { "data-field": "standby" }, c.standby ? versionLine(c.standby) : "— (nothing to roll back to)"),
    h("dt", null, "Canary"), h("dd", { "data-field": "canary" }, c.canary ? canaryText(c.canary) : "none running"),
    h("dt", null, "Can"), h("dd", { "data-field": "capabilities" }, capabilityText(info.capabilities)),
    h("dt", null, "Default hosts"), h("dd", { "data-field": "default_hosts" }, info.defaultHosts.length ? info.defaultHosts.join(", ") : "none (its integration's URL fields only)"),
    h("dt", null, "Batch size · concurrency"), h("dd", null, `${info.maxBatchSize ?? "—"} · ${info.maxConcurrency ?? "—"}`),
  );

  const sections = [];
  if (c.canary) {
    const k = c.canary;
    sections.push(h("section", { "aria-labelledby": "canary-title", class: "card" },
      h("h2", { id: "canary-title" }, `Canary: ${k.candidate?.version}`),
      h("p", null, `${k.percent} % of first attempts go to ${k.candidate?.version} for ${k.window_s} s from ${fmtTime(k.started_at_ms)}; `
        + `rolled back if its permanent-failure rate passes the active version's by more than ${Math.round(k.max_failure_increase * 100)} points `
        + `once it has made ${k.min_deliveries} deliveries. Refreshed every ${REFRESH_MS / 1000} s.`),
      wideTable([
        { key: "version", label: "Version" },
        { key: "deliveries", label: "Deliveries", numeric: true },
        { key: "permanent_failures", label: "Permanent failures", numeric: true },
        { key: "rate", label: "Failure rate", numeric: true },
      ], [
        { id: "candidate", version: `${k.candidate?.version} (canary)`, deliveries: k.new?.deliveries ?? 0, permanent_failures: k.new?.permanent_failures ?? 0, rate: rate(k.new) },
        { id: "active", version: `${c.active?.version} (active)`, deliveries: k.old?.deliveries ?? 0, permanent_failures: k.old?.permanent_failures ?? 0, rate: rate(k.old) },
      ], { id: "canary", label: "Canary tallies" })));
  }

  const rollback = h("button", {
    type: "button", class: "danger", "data-action": "rollback",
    disabled: !c.standby && !c.canary,
    "aria-describedby": "rollback-help",
  }, c.canary ? "End the canary (roll back)" : "Roll back");
  const rollbackHelp = h("p", { class: "help", id: "rollback-help" }, c.canary
    ? `Ends the canary: ${c.active?.version} keeps every delivery.`
    : c.standby ? `Back to ${c.standby.version}; a second rollback goes forward again.` : "No previous version is loaded.");
  const rollbackError = h("div", { id: "rollback-error", role: "alert" });
  rollback.addEventListener("click", async () => {
    const text = c.canary
      ? `End the canary of ${typeId} ${c.canary.candidate?.version}? ${c.active?.version} takes every delivery again.`
      : `Roll ${typeId} back from ${c.active?.version} to ${c.standby?.version}? Deliveries that start after it use ${c.standby?.version}.`;
    if (!(await confirmDialog(text, { confirmLabel: "Roll back" }))) return;
    rollback.disabled = true;
    rollbackError.replaceChildren();
    delete root.dataset.ready;
    try {
      const report = await api("POST", `/v1/connectors/${encodeURIComponent(typeId)}/rollback`);
      flash = reportNode(report);
      delete root.dataset.ready;
      await renderType(root, typeId);
    } catch (err) {
      rollback.disabled = false;
      rollbackError.append(h("p", { class: "notice notice-error" }, `Not rolled back: ${messageOf(err)}`));
      markReady(root);
    }
  });
  sections.push(h("section", { "aria-labelledby": "rollback-title" },
    h("h2", { id: "rollback-title" }, "Rollback"), rollbackHelp, rollbackError, h("div", { class: "actions" }, rollback)));

  sections.push(h("section", { "aria-labelledby": "versions-title" },
    h("h2", { id: "versions-title" }, "Versions"),
    wideTable([
      { key: "version", label: "Version" },
      { key: "content_hash", label: "Hash (SHA-256)", render: (v) => h("code", { title: v.content_hash, class: "hash" }, short(v.content_hash)) },
      { key: "wit_version", label: "WIT" },
      { key: "status", label: "Status" },
      { key: "status_reason", label: "Why" },
      { key: "source", label: "Source" },
      { key: "loaded_at_ms", label: "Loaded", render: (v) => fmtTime(v.loaded_at_ms) },
    ], c.versions ?? [], { id: "versions", rowId: (v) => v.content_hash, label: `Versions of ${typeId}`, empty: "This server runs a fixed set of destinations: no versions are kept." })));

  sections.push(uploadSection(root, { typeId, onDone: () => renderType(root, typeId) }));

  if (Array.isArray(c.switches)) {
    sections.push(h("section", { "aria-labelledby": "switches-title" },
      h("h2", { id: "switches-title" }, "Switches"),
      wideTable([
        { key: "at_ms", label: "When", render: (s) => fmtTime(s.at_ms) },
        { key: "action", label: "Action" },
        { key: "from_version", label: "From", render: (s) => s.from_version ?? "—" },
        { key: "to_version", label: "To" },
        { key: "detail", label: "Detail" },
      ], c.switches, { id: "switches", label: `Switches of ${typeId}`, empty: "No switch yet." })));
  }

  root.replaceChildren(
    h("p", { class: "breadcrumb" }, h("a", { href: "#/connectors" }, "Connectors"), " / ", typeId),
    h("h1", null, `${info.displayName} (${typeId})`),
    result, summary, ...sections);
  markReady(root);
  if (c.canary) scheduleRefresh(root, route, (n) => renderType(root, typeId, n), refreshes);
}

function capabilityText(caps) {
  const can = [];
  if (caps.deliver !== false) can.push("deliver");
  if (caps.batching) can.push("batch");
  if (caps.inbound_webhooks) can.push("read webhooks");
  if (caps.activations) can.push("sync models");
  if (caps.connection_check) can.push("check its connection");
  return can.join(", ") || "—";
}

// ---------------------------------------------------------------- upload

function uploadSection(root, { typeId, onDone }) {
  const field = (id, label, input, help) => h("div", { class: "field" },
    h("label", { for: id }, label), input, help ? h("p", { class: "help", id: `${id}-help` }, help) : null);
  const file = h("input", { type: "file", id: "upload-file", accept: ".wasm,application/wasm", required: true, "aria-describedby": "upload-file-help" });
  const force = h("input", { type: "checkbox", id: "upload-force", "aria-describedby": "upload-force-help" });
  const num = (id, attrs) => h("input", { type: "number", id, inputmode: "decimal", "aria-describedby": `${id}-help`, ...attrs });
  const percent = num("canary-percent", { min: "1", max: "99", step: "1" });
  const windowS = num("canary-window", { min: "1", step: "1", placeholder: String(CANARY_DEFAULTS.window_s) });
  const increase = num("canary-max-failure-increase", { min: "0", max: "1", step: "any", placeholder: String(CANARY_DEFAULTS.max_failure_increase) });
  const minDeliveries = num("canary-min-deliveries", { min: "0", step: "1", placeholder: String(CANARY_DEFAULTS.min_deliveries) });
  const errors = h("div", { id: "upload-error", role: "alert" });
  const submit = h("button", { type: "submit", class: "primary", "data-action": "upload" }, typeId ? `Upload a new version of ${typeId}` : "Upload");

  const form = h("form", { id: "upload-form", class: "form", novalidate: true },
    field("upload-file", "Connector component (.wasm)", file,
      typeId ? `Must be ${typeId} with a greater version (unless forced); every ${typeId} integration is validated by it first.`
        : "A new connector type is installed; a known type is upgraded (greater version, every integration validated first)."),
    h("div", { class: "field field-check" }, force, h("label", { for: "upload-force" }, "Allow a version not greater than the active one"),
      h("p", { class: "help", id: "upload-force-help" }, "force=true: e.g. to reinstall an older release.")),
    h("fieldset", { class: "group", id: "canary-options" },
      h("legend", null, "Canary (optional)"),
      h("p", { class: "help" }, "Leave the share blank to switch every delivery at once."),
      field("canary-percent", "Share of first attempts for the new version (%)", percent, "1 to 99; blank: no canary."),
      field("canary-window", "Window (seconds)", windowS, `Promoted after this long unless rolled back; default ${CANARY_DEFAULTS.window_s}.`),
      field("canary-max-failure-increase", "Largest increase of the permanent-failure rate (0–1)", increase, `Rolled back above it; default ${CANARY_DEFAULTS.max_failure_increase}.`),
      field("canary-min-deliveries", "Deliveries before its rate counts", minDeliveries, `Default ${CANARY_DEFAULTS.min_deliveries}.`)),
    errors,
    h("div", { class: "actions" }, submit));

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    errors.replaceChildren();
    const chosen = file.files?.[0];
    if (!chosen) {
      errors.append(h("p", { class: "problem", id: "problem-upload-file" }, "Choose a .wasm file first."));
      file.setAttribute("aria-invalid", "true");
      file.focus();
      return;
    }
    file.removeAttribute("aria-invalid");
    const query = new URLSearchParams();
    if (typeId) query.set("type_id", typeId);
    if (force.checked) query.set("force", "true");
    for (const [name, input] of [["canary_percent", percent], ["canary_window_s", windowS],
      ["canary_max_failure_increase", increase], ["canary_min_deliveries", minDeliveries]]) {
      if (input.value.trim() !== "") query.set(name, input.value.trim());
    }
    submit.disabled = true;
    submit.setAttribute("aria-busy", "true");
    delete root.dataset.ready; // set again once the answer is drawn
    const status = h("p", { class: "muted" }, `Uploading ${chosen.name} (${Math.ceil(chosen.size / 1024)} KiB): compiling, describing and validating…`);
    errors.append(status);
    try {
      const bytes = new Uint8Array(await chosen.arrayBuffer());
      const qs = query.toString();
      const report = await api("POST", `/v1/connectors${qs ? `?${qs}` : ""}`, bytes, { raw: true });
      flash = reportNode(report);
      if (!typeId && report?.type_id) location.hash = typeHref(report.type_id);
      else await onDone();
    } catch (err) {
      status.remove();
      errors.append(refusalNode(err));
      submit.disabled = false;
      submit.removeAttribute("aria-busy");
      markReady(root);
    }
  });

  return h("section", { "aria-labelledby": "upload-title" },
    h("h2", { id: "upload-title" }, typeId ? "Upload a new version" : "Install or upgrade a connector"),
    form);
}

/** The API's refusal as it gives it: its message, and the integrations a version would break. */
function refusalNode(err) {
  const body = err instanceof ApiError ? err.body : {};
  const status = err instanceof ApiError && err.status ? ` (HTTP ${err.status})` : "";
  const box = h("div", { class: "notice notice-error refusal" },
    h("p", null, `Refused${status}: ${messageOf(err)}`));
  if (Array.isArray(body.integrations) && body.integrations.length) {
    box.append(h("p", null, "It would break these integrations:"),
      h("ul", { class: "broken", "data-list": "broken-integrations" }, body.integrations.map((i) => h("li", { "data-id": i.id },
        h("a", { href: `#/integrations/${encodeURIComponent(i.id)}` }, i.id),
        h("ul", null, (i.problems ?? []).map((p) => h("li", null, typeof p === "string" ? p : `${p.path}: ${p.message}`)))))));
  }
  if (Array.isArray(body.problems) && body.problems.length) {
    box.append(h("ul", { class: "problems" }, body.problems.map((p) => h("li", null, p.path ? `${p.path}: ${p.message}` : p.message))));
  }
  return box;
}

/** A switch report (`SwitchReport`) for #result. */
function reportNode(r) {
  if (!r || typeof r !== "object") return h("p", null, "Done.");
  const from = r.from ? `${r.from.version} (${short(r.from.content_hash)})` : "nothing";
  const to = r.to ? `${r.to.version} (${short(r.to.content_hash)})` : "?";
  const verbs = { install: "Installed", upgrade: "Upgraded", canary: "Started a canary of", downgrade: "Downgraded", rollback: "Rolled back", promote: "Promoted" };
  const headline = `${verbs[r.action] ?? `${r.action}:`} ${r.type_id}: ${from} → ${to}`;
  return h("div", { class: "notice notice-success report", "data-action-done": r.action ?? "" },
    h("p", null, headline),
    h("dl", { class: "facts" },
      h("dt", null, "Action"), h("dd", { "data-field": "action" }, String(r.action ?? "—")),
      h("dt", null, "Switched at"), h("dd", null, fmtTime(r.switched_at_ms)),
      h("dt", null, "Took"), h("dd", null, r.took_ms !== undefined ? `${r.took_ms} ms` : "—"),
      h("dt", null, "Integrations validated"), h("dd", { "data-field": "integrations_validated" }, String(r.integrations_validated ?? "—"))));
}
