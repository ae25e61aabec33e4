// pages/integrations.js: the integrations (list, enable/disable, delete), the
// catalogue of connector types, and create/edit through a form generated
// from the connector's JSON schema, or from a pasted Didomi-format document.
//
// Routes: #/integrations, #/integrations/new?type=<type_id>, #/integrations/<id>.
// Secrets: password inputs are never pre-filled; on edit a blank one is sent
// as "[REDACTED]", which the API reads as "keep the stored value".

import { api, ApiError, h, table, fmtTime, notice, confirmDialog, placeProblems, clearFieldProblems } from "../ui.js";

/** A table that scrolls sideways on a narrow screen. */
const wideTable = (...args) => h("div", { class: "table-wrap" }, table(...args));

const REDACTED = "[REDACTED]";

/** The host's rule (crates/base/src/secrets.rs `is_secret_name`). */
const SECRET_WORDS = [
  "password", "passwd", "passphrase", "secret", "token", "api_key", "apikey",
  "private_key", "access_key", "key_secret", "credential",
];

/** The host's retry policy (host/src/pipeline/retry.rs): every field optional. */
const RETRY_FIELDS = [
  { key: "max_retries", type: "integer", min: 0, max: 100, def: 6,
    help: "Retries after the first attempt before a delivery is dead-lettered (0 to 100)." },
  { key: "initial_backoff_ms", type: "integer", min: 10, max: 604800000, def: 15000,
    help: "Wait before the first retry, in milliseconds (10 ms to 7 days)." },
  { key: "multiplier", type: "number", min: 1, max: 10, def: 2,
    help: "Each further wait is the previous one times this (1 to 10)." },
  { key: "max_backoff_ms", type: "integer", min: 10, max: 604800000, def: 900000,
    help: "Longest wait between two attempts, in milliseconds (at least the first wait, at most 7 days)." },
  { key: "jitter", type: "number", min: 0, max: 0.99, def: 0.2,
    help: "Share of each wait that is randomised, both ways (0.2 = ±20 %; below 1)." },
  { key: "max_retry_after_ms", type: "integer", min: 0, max: 604800000, def: 3600000,
    help: "Longest Retry-After honoured, in milliseconds (0 to 7 days)." },
];

/** A notice the next list render shows (after a save navigates back). */
let flash = null;

export async function render(root, params = {}) {
  const route = routeOf(params);
  if (route.id === undefined) return renderList(root);
  if (route.id === "new") return renderEditor(root, { type: route.type });
  return renderEditor(root, { id: route.id });
}

/** `{id?, type?}` from the params the shell gives, or from the hash itself. */
function routeOf(params) {
  const [path, query = ""] = location.hash.replace(/^#/, "").split("?");
  const parts = path.split("/").filter(Boolean); // ["integrations", id?]
  const search = new URLSearchParams(query);
  let id = params.id ?? (parts[1] !== undefined ? decodeURIComponent(parts[1]) : undefined);
  if (typeof id === "string") id = id.split("?")[0];
  if (params.new === true || params.action === "new") id = "new";
  const type = params.type ?? search.get("type") ?? undefined;
  return { id: id === "" ? undefined : id, type: type || undefined };
}

const markReady = (root) => { root.dataset.ready = "true"; };
const messageOf = (err) => (err instanceof ApiError ? (err.body?.message ?? err.message) : (err?.message ?? String(err)));
const hashFor = (id) => `#/integrations/${encodeURIComponent(id)}`;

// ---------------------------------------------------------------- the list

async function renderList(root) {
  root.replaceChildren();
  root.append(h("h1", null, "Integrations"));
  const result = h("p", { id: "result", role: "status", class: "result" });
  root.append(result);
  if (flash) {
    result.textContent = flash.text;
    flash = null;
  }
  let integrations;
  let connectors = [];
  try {
    [integrations, connectors] = await Promise.all([
      api("GET", "/v1/integrations"),
      api("GET", "/v1/connectors").then((r) => r?.connectors ?? []).catch(() => []),
    ]);
  } catch (err) {
    notice(root, "error", `Could not load the integrations: ${messageOf(err)}`);
    markReady(root);
    return;
  }
  integrations = (integrations ?? []).slice().sort((a, b) => String(a.id).localeCompare(String(b.id)));
  const names = new Map(connectors.map((c) => [c.type_id, facts(c).displayName]));

  const reload = async (text) => {
    delete root.dataset.ready;
    flash = text ? { text } : null;
    await renderList(root);
  };

  const toggle = async (row, button) => {
    button.disabled = true;
    const doc = documentOf(row);
    doc.enabled = !row.enabled;
    try {
      await api("PUT", `/v1/integrations/${encodeURIComponent(row.id)}`, doc);
      await reload(`${doc.enabled ? "Enabled" : "Disabled"} integration ${row.id}.`);
    } catch (err) {
      button.disabled = false;
      result.textContent = `Could not ${doc.enabled ? "enable" : "disable"} ${row.id}: ${messageOf(err)}`;
      result.className = "result error";
    }
  };

  const remove = async (row, button) => {
    const ok = await confirmDialog(
      `Delete integration ${row.id}? Its configuration is removed; deliveries to it stop. This cannot be undone.`,
      { confirmLabel: "Delete" });
    if (!ok) return;
    button.disabled = true;
    try {
      await api("DELETE", `/v1/integrations/${encodeURIComponent(row.id)}`);
      await reload(`Deleted integration ${row.id}.`);
    } catch (err) {
      button.disabled = false;
      result.textContent = `Could not delete ${row.id}: ${messageOf(err)}`;
      result.className = "result error";
    }
  };

  root.append(h("section", { "aria-labelledby": "integrations-title" },
    h("h2", { id: "integrations-title" }, "Configured"),
    wideTable([
      { key: "id", label: "Id", render: (r) => h("a", { href: hashFor(r.id) }, r.id) },
      { key: "type_id", label: "Type", render: (r) => h("span", { title: names.get(r.type_id) ?? r.type_id }, r.type_id) },
      { key: "enabled", label: "Enabled", render: (r) => h("span", { class: r.enabled ? "badge badge-on" : "badge badge-off" }, r.enabled ? "enabled" : "disabled") },
      { key: "updated_at_ms", label: "Updated", render: (r) => fmtTime(r.updated_at_ms) },
      { key: "actions", label: "Actions", render: (r) => h("div", { class: "row-actions" },
        h("a", { href: hashFor(r.id), class: "button", "aria-label": `Edit ${r.id}` }, "Edit"),
        r.enabled
          ? h("button", { type: "button", "data-action": "disable", "aria-label": `Disable ${r.id}`, onclick: (e) => toggle(r, e.currentTarget) }, "Disable")
          : h("button", { type: "button", "data-action": "enable", "aria-label": `Enable ${r.id}`, onclick: (e) => toggle(r, e.currentTarget) }, "Enable"),
        h("button", { type: "button", class: "danger", "data-action": "delete", "aria-label": `Delete ${r.id}`, onclick: (e) => remove(r, e.currentTarget) }, "Delete")) },
    ], integrations, { id: "integrations", label: "Integrations", empty: "No integration yet: pick a connector type below." }),
    h("p", null, h("a", { href: "#/integrations/new", class: "button" }, "New integration"), " ",
      h("span", { class: "muted" }, "(from a connector type below, or by pasting a JSON document)"))));

  root.append(h("section", { "aria-labelledby": "catalogue-title" },
    h("h2", { id: "catalogue-title" }, "Connector types"),
    h("p", { class: "muted" }, "The connectors this server has loaded, and what each can do."),
    wideTable([
      { key: "display_name", label: "Connector", render: (c) => facts(c).displayName },
      { key: "type_id", label: "Type id" },
      { key: "version", label: "Version", render: (c) => c.active?.version },
      { key: "capabilities", label: "Can", render: (c) => capabilityTags(facts(c).capabilities) },
      { key: "new", label: "Create", render: (c) => h("a", {
        href: `#/integrations/new?type=${encodeURIComponent(c.type_id)}`, class: "button",
        "data-action": "new", "aria-label": `New ${facts(c).displayName} integration`,
      }, "New integration") },
    ], connectors.slice().sort((a, b) => a.type_id.localeCompare(b.type_id)),
    { id: "catalogue", rowId: (c) => c.type_id, label: "Connector types", empty: "No connector is loaded." })));
  markReady(root);
}

/** The document to PUT back: the shown one without the times it gained. */
function documentOf(shown) {
  const doc = structuredClone(shown);
  delete doc.created_at_ms;
  delete doc.updated_at_ms;
  return doc;
}

/** What a connector type says of itself: the answer's fields, else its active version's `describe`. */
function facts(c) {
  const active = (c.versions ?? []).find((v) => v.content_hash === c.active?.content_hash);
  const d = active?.description ?? {};
  const caps = c.capabilities ?? {
    deliver: true,
    batching: d.batching ?? false,
    inbound_webhooks: d.inbound_webhooks ?? false,
    activations: d.activations ?? false,
    connection_check: d.connection_check ?? false,
  };
  return {
    displayName: c.display_name ?? d.display_name ?? c.type_id,
    capabilities: caps,
    schema: c.config_schema ?? d.config_schema ?? null,
  };
}

/** Deliver, read webhooks, sync models: each said, yes or no. */
function capabilityTags(caps) {
  const tag = (on, yes, no, key) => h("li", { class: `badge ${on ? "badge-on" : "badge-off"}`, "data-capability": key, "data-on": on ? "true" : "false" }, on ? yes : no);
  return h("ul", { class: "tags" },
    tag(caps.deliver !== false, "delivers", "does not deliver", "deliver"),
    tag(!!caps.inbound_webhooks, "reads webhooks", "no webhooks", "inbound_webhooks"),
    tag(!!caps.activations, "syncs models", "no model sync", "activations"),
    tag(!!caps.connection_check, "checks its connection", "no connection check", "connection_check"),
    caps.batching ? h("li", { class: "badge", "data-capability": "batching", "data-on": "true" }, "batches") : null);
}

// ---------------------------------------------------------------- the editor

async function renderEditor(root, { id, type }) {
  root.replaceChildren();
  const editing = id !== undefined;
  let stored = null;
  let connector = null;
  try {
    if (editing) {
      stored = await api("GET", `/v1/integrations/${encodeURIComponent(id)}`);
      type = stored.type_id;
    }
    if (type) connector = await api("GET", `/v1/connectors/${encodeURIComponent(type)}`);
  } catch (err) {
    root.append(h("h1", null, editing ? `Integration ${id}` : "New integration"));
    notice(root, "error", messageOf(err));
    root.append(h("p", null, h("a", { href: "#/integrations" }, "Back to the integrations")));
    markReady(root);
    return;
  }

  if (!type) {
    await renderTypeChooser(root);
    markReady(root);
    return;
  }

  const info = facts(connector);
  root.append(
    h("p", { class: "breadcrumb" }, h("a", { href: "#/integrations" }, "Integrations"), " / ", editing ? id : "new"),
    h("h1", null, editing ? `Integration ${id}` : `New ${info.displayName} integration`),
    h("p", { class: "muted" }, `${info.displayName} (${type}), connector version ${connector.active?.version ?? "?"}. `,
      "Fields marked * are required; problems the connector finds are shown beside their fields."),
  );
  const result = h("p", { id: "result", role: "status", class: "result" });
  root.append(result);

  const checkOffered = await offersCheck();
  const form = buildForm({ schema: info.schema, stored, type, editing, capabilities: info.capabilities, checkOffered });
  root.append(form.element);
  root.append(pasteSection({ editing, id, type }));

  form.onSubmit(async (check) => {
    const doc = form.read();
    form.clearProblems();
    result.textContent = "";
    const path = editing ? `/v1/integrations/${encodeURIComponent(id)}` : "/v1/integrations";
    const method = editing ? "PUT" : "POST";
    try {
      const saved = await api(method, check ? `${path}?check=true` : path, doc);
      if (check) {
        const problems = Array.isArray(saved?.problems) ? saved.problems : [];
        if (problems.length) form.showProblems(problems, "The destination refused:");
        else if (saved?.result === "unsupported") result.textContent = `Checked: ${saved.message}. Nothing was saved.`;
        else result.textContent = "Checked: the destination accepted the connection. Nothing was saved.";
        return;
      }
      flash = { text: `${editing ? "Saved" : "Created"} integration ${saved?.id ?? id}.` };
      location.hash = "#/integrations";
    } catch (err) {
      form.showError(err);
    }
  });
  markReady(root);
}

async function renderTypeChooser(root) {
  root.append(
    h("p", { class: "breadcrumb" }, h("a", { href: "#/integrations" }, "Integrations"), " / new"),
    h("h1", null, "New integration"));
  let connectors = [];
  try {
    connectors = (await api("GET", "/v1/connectors"))?.connectors ?? [];
  } catch (err) {
    notice(root, "error", `Could not load the connector types: ${messageOf(err)}`);
  }
  const select = h("select", { id: "field-type_id", required: true },
    connectors.map((c) => h("option", { value: c.type_id }, `${facts(c).displayName} (${c.type_id})`)));
  const go = h("form", { class: "form", id: "choose-type" },
    h("div", { class: "field" },
      h("label", { for: "field-type_id" }, "Connector type"),
      select),
    h("div", { class: "actions" }, h("button", { type: "submit", "data-action": "choose-type" }, "Continue")));
  go.addEventListener("submit", (e) => {
    e.preventDefault();
    if (select.value) location.hash = `#/integrations/new?type=${encodeURIComponent(select.value)}`;
  });
  root.append(go, pasteSection({ editing: false }));
}

/** Whether the API takes `?check=true` on POST /v1/integrations (from its OpenAPI document). */
let checkSupport = null;
async function offersCheck() {
  if (checkSupport !== null) return checkSupport;
  try {
    const doc = await api("GET", "/v1/openapi.json");
    const op = doc?.paths?.["/v1/integrations"]?.post;
    checkSupport = (op?.parameters ?? []).some((p) => p?.name === "check");
  } catch {
    return false; // asked again next time
  }
  return checkSupport;
}

// ---------------------------------------------------------------- schema → form

/**
 * A form generated from a connector's JSON schema. Returns
 * `{element, read(), onSubmit(fn), showProblems(), showError(), clearProblems()}`.
 */
function buildForm({ schema, stored, type, editing, capabilities, checkOffered }) {
  const root = resolve(schema, schema) ?? {};
  const fields = []; // {path, read(doc)}: every generated input's reader
  const ctx = { rootSchema: schema, editing, stored, fields };

  const form = h("form", { class: "form schema-form", id: "integration-form", novalidate: true, "aria-describedby": "form-problems" });
  const formError = h("div", { id: "form-problems", class: "form-problems", role: "alert" });

  // The host's own fields.
  const host = h("fieldset", { id: "field-integration", class: "group" }, h("legend", null, "Integration"));
  host.append(textField(ctx, {
    path: "id", label: "Id", value: stored?.id, readOnly: editing,
    help: editing ? "The id cannot change." : "1 to 64 letters, digits, -, _ or . (not starting with .); generated when left blank.",
    pattern: "[A-Za-z0-9_\\-][A-Za-z0-9._\\-]{0,63}", autocomplete: "off",
  }));
  host.append(staticField("type_id", "Connector type", type));
  host.append(checkboxField(ctx, {
    path: "enabled", label: "Enabled", checked: stored ? stored.enabled !== false : true,
    help: "Whether it receives deliveries.",
  }));
  form.append(formError, host);

  // The connector's schema.
  const props = root.properties ?? {};
  const required = new Set(root.required ?? []);
  const connectorBox = h("fieldset", { id: "field-config", class: "group" }, h("legend", null, "Connector settings"));
  if (root.description) connectorBox.append(h("p", { class: "help" }, root.description));
  let any = false;
  for (const [key, node] of ordered(props, root.required)) {
    if (["id", "type_id", "enabled", "retry"].includes(key)) continue;
    connectorBox.append(buildNode(ctx, key, key, node, required.has(key), valueAt(stored, key)));
    any = true;
  }
  if (!schema) {
    connectorBox.append(h("p", { class: "muted" },
      "This connector describes no configuration schema: paste the JSON document below instead."));
  }
  // Host-read fields the schema may not list.
  if (!("upsert_mode" in props) && !schema) {
    connectorBox.append(checkboxField(ctx, {
      path: "upsert_mode", label: "Upsert mode", checked: stored?.upsert_mode === true,
      help: "Whether the destination may create contacts that do not exist yet.",
    }));
  }
  if (!("enable_webhooks" in props) && capabilities?.inbound_webhooks) {
    connectorBox.append(checkboxField(ctx, {
      path: "enable_webhooks", label: "Enable webhooks", checked: stored?.enable_webhooks === true,
      help: "Read the destination's webhooks back (POST /v1/webhooks/{integration}); needs authentication.webhook_secret.",
    }));
  }
  if (any || !schema) form.append(connectorBox);
  conditionalFields(form, root);

  // Retry policy: optional, every field.
  const retry = h("fieldset", { id: "field-retry", class: "group" },
    h("legend", null, "Retry policy"),
    h("p", { class: "help", id: "help-retry" }, "Leave a field blank for the host's default (shown greyed)."));
  for (const f of RETRY_FIELDS) {
    retry.append(numberField(ctx, {
      path: `retry.${f.key}`, label: humanize(f.key), integer: f.type === "integer",
      min: f.min, max: f.max, placeholder: String(f.def), help: `${f.help} Default ${f.def}.`,
      value: stored?.retry?.[f.key],
    }));
  }
  const hasRetry = stored?.retry && Object.keys(stored.retry).length > 0;
  form.append(h("details", { class: "retry", open: !!hasRetry },
    h("summary", null, "Retry policy (optional)"), retry));

  const save = h("button", { type: "submit", class: "primary", "data-action": "save" }, editing ? "Save changes" : "Create integration");
  const actions = h("div", { class: "actions" }, save);
  let checkButton = null;
  if (checkOffered) {
    checkButton = h("button", { type: "button", "data-action": "check" }, "Check without saving");
    actions.append(checkButton);
  }
  actions.append(h("a", { href: "#/integrations", class: "button" }, "Cancel"));
  form.append(actions);

  const read = () => {
    const doc = stored ? documentOf(stored) : {};
    doc.type_id = type;
    for (const f of fields) f.read(doc);
    // Fields of the other branch of the schema's if/then/else are not sent.
    for (const hidden of form.querySelectorAll(".field[hidden][data-path]")) setAt(doc, hidden.dataset.path, undefined);
    if (doc.retry && Object.keys(doc.retry).length === 0) delete doc.retry;
    for (const key of Object.keys(props)) {
      // A required object left empty stays, so the connector names its fields.
      if (doc[key] && typeof doc[key] === "object" && !Array.isArray(doc[key])
        && Object.keys(doc[key]).length === 0 && !required.has(key)) delete doc[key];
    }
    return doc;
  };

  const clearProblems = () => {
    clearFieldProblems(form);
    formError.replaceChildren();
  };

  const showProblems = (problems, summary) => {
    clearProblems();
    const loose = placeProblems(form, problems);
    formError.append(h("p", { class: "notice notice-error" },
      `${summary} ${problems.length} problem${problems.length === 1 ? "" : "s"}${loose.length < problems.length ? ", shown beside their fields" : ""}.`));
    if (loose.length) formError.append(h("ul", { class: "problems" }, loose.map((p) => h("li", null, p.path ? `${p.path}: ${p.message}` : p.message))));
    const first = form.querySelector("[aria-invalid='true']");
    if (first) first.focus(); else formError.focus?.();
  };

  const showError = (err) => {
    clearProblems();
    if (err instanceof ApiError && Array.isArray(err.body?.problems) && err.body.problems.length) {
      showProblems(err.body.problems, "Not saved:");
      return;
    }
    // A host field's error starts with its name ("id: …", "type_id: …").
    const text = messageOf(err);
    const m = /^([A-Za-z0-9_.[\]-]+): ([\s\S]+)$/.exec(text);
    if (m && document.getElementById(`field-${m[1]}`)) {
      showProblems([{ path: m[1], message: m[2] }], "Not saved:");
      return;
    }
    formError.append(h("p", { class: "notice notice-error" }, `Not saved: ${text}`));
  };

  let handler = null;
  let busy = false;
  const submit = async (check) => {
    if (busy || !handler) return;
    busy = true;
    save.disabled = true;
    if (checkButton) checkButton.disabled = true;
    try {
      await handler(check);
    } finally {
      busy = false;
      save.disabled = false;
      if (checkButton) checkButton.disabled = false;
    }
  };
  form.addEventListener("submit", (e) => { e.preventDefault(); submit(false); });
  checkButton?.addEventListener("click", () => submit(true));

  return { element: form, read, onSubmit: (fn) => { handler = fn; }, showProblems, showError, clearProblems };
}

/**
 * The schema's top-level `if`/`then`/`else` when its `if` is one field's
 * `const` (Selligent: `properties.api` is `engage` or not): the fields the
 * other branch's closed objects leave out are hidden, and its `required`
 * are marked, whenever that field changes.
 */
function conditionalFields(form, root) {
  if (!root?.if || (!root.then && !root.else)) return null;
  let path = [];
  let node = root.if;
  while (node && node.properties && !("const" in node)) {
    const keys = Object.keys(node.properties);
    if (keys.length !== 1) return null;
    path.push(keys[0]);
    node = node.properties[keys[0]];
  }
  if (!node || !("const" in node) || !path.length) return null;
  const switchPath = path.join(".");
  const control = byId(form, `field-${switchPath}`);
  if (!control) return null;
  const current = () => (control.tagName === "SELECT" ? control.selectedOptions[0]?.dataset.value
    : control.type === "checkbox" ? String(control.checked) : control.value);
  const apply = () => {
    const branch = (current() === String(node.const) ? root.then : root.else) ?? {};
    for (const [key, sub] of Object.entries(root.properties ?? {})) {
      if (!sub || typeof sub !== "object") continue;
      const inBranch = branch.properties?.[key];
      const allowed = inBranch?.properties && inBranch.additionalProperties === false ? new Set(Object.keys(inBranch.properties)) : null;
      const required = new Set([...(sub.required ?? []), ...(inBranch?.required ?? [])]);
      for (const wrap of form.querySelectorAll(`.field[data-path^="${key}."]`)) {
        const child = wrap.dataset.path.slice(key.length + 1);
        if (child.includes(".") || child.includes("[")) continue;
        wrap.hidden = allowed !== null && !allowed.has(child);
        setRequiredMark(wrap, required.has(child));
      }
    }
    const topRequired = new Set([...(root.required ?? []), ...(branch.required ?? [])]);
    for (const key of Object.keys(root.properties ?? {})) {
      const box = byId(form, `field-${key}`);
      if (box && box.tagName === "FIELDSET") setRequiredMark(box, topRequired.has(key));
    }
    const title = form.querySelector("#conditional-title");
    if (title) title.textContent = branch.title ? `Settings for: ${branch.title}` : "";
  };
  const hint = h("p", { class: "help", id: "conditional-title", "aria-live": "polite" });
  control.closest("[data-path]")?.append(hint);
  control.addEventListener("change", apply);
  apply();
  return { apply };
}

/** The element of `scope` (attached or not) with this id. */
function byId(scope, id) {
  for (const el of scope.querySelectorAll("[id]")) if (el.id === id) return el;
  return null;
}

/** Shows or hides a field's (or fieldset's) required mark and `required` attribute. */
function setRequiredMark(el, required) {
  const label = el.tagName === "FIELDSET" ? el.querySelector(":scope > legend") : el.querySelector(":scope > label");
  if (!label) return;
  let mark = label.querySelector(".req");
  if (required && !mark) label.append(h("span", { class: "req", "aria-hidden": "true" }, " *"));
  if (!required && mark) mark.remove();
  const input = el.tagName === "FIELDSET" ? null : el.querySelector(":scope > input, :scope > select, :scope > textarea");
  if (input && input.type !== "checkbox") {
    if (required) input.setAttribute("aria-required", "true"); else input.removeAttribute("aria-required");
    if (!input.placeholder?.startsWith("unchanged")) input.required = required;
  }
}

/** Follows local `$ref`s and merges `allOf`; `true` means "anything". */
function resolve(node, rootSchema, depth = 0) {
  if (node === true || node === undefined || node === null) return {};
  if (typeof node !== "object" || depth > 16) return {};
  let out = node;
  if (typeof node.$ref === "string" && node.$ref.startsWith("#/")) {
    const target = node.$ref.slice(2).split("/").reduce((n, k) => n?.[k.replace(/~1/g, "/").replace(/~0/g, "~")], rootSchema);
    const { $ref, ...rest } = node;
    out = { ...resolve(target, rootSchema, depth + 1), ...rest };
  }
  if (Array.isArray(out.allOf)) {
    const merged = { ...out, properties: { ...(out.properties ?? {}) }, required: [...(out.required ?? [])] };
    delete merged.allOf;
    for (const part of out.allOf) {
      const r = resolve(part, rootSchema, depth + 1);
      Object.assign(merged.properties, r.properties ?? {});
      merged.required.push(...(r.required ?? []));
      for (const [k, v] of Object.entries(r)) if (!(k in merged)) merged[k] = v;
    }
    out = merged;
  }
  return out;
}

/** An object's properties, the required ones first (in `required`'s order), then the rest. */
function ordered(properties, required) {
  const entries = Object.entries(properties ?? {});
  const req = Array.isArray(required) ? required : [];
  const rank = (k) => (req.includes(k) ? req.indexOf(k) : req.length);
  return entries.map((e, i) => [e, i]).sort((a, b) => rank(a[0][0]) - rank(b[0][0]) || a[1] - b[1]).map(([e]) => e);
}

function typesOf(node) {
  if (Array.isArray(node.type)) return node.type.filter((t) => t !== "null");
  if (typeof node.type === "string") return [node.type];
  if (node.properties || node.additionalProperties) return ["object"];
  if (node.items) return ["array"];
  if (Array.isArray(node.enum)) return [...new Set(node.enum.map((v) => (typeof v === "number" ? (Number.isInteger(v) ? "integer" : "number") : typeof v)))];
  if ("const" in node) return [typeof node.const];
  return ["string"];
}

function isSecret(path, node) {
  if (node.writeOnly === true) return true;
  const last = path.split(/[.[\]]/).filter(Boolean).pop() ?? "";
  const lower = last.toLowerCase();
  if (SECRET_WORDS.some((w) => lower.includes(w))) return true;
  return path.startsWith("authentication.") && path !== "authentication.url";
}

function humanize(key) {
  const words = String(key).split("_").filter(Boolean)
    .map((w) => ({ api: "API", url: "URL", uri: "URI", id: "id", ms: "(ms)", http: "HTTP" })[w.toLowerCase()] ?? w);
  const text = words.join(" ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function valueAt(obj, path) {
  if (obj === null || obj === undefined) return undefined;
  return path.split(".").reduce((o, k) => (o && typeof o === "object" ? o[k] : undefined), obj);
}

/** Sets (or, for `undefined`, deletes) `doc.<path>`, creating objects on the way. */
function setAt(doc, path, value) {
  const keys = path.split(".");
  let o = doc;
  for (const k of keys.slice(0, -1)) {
    if (!o[k] || typeof o[k] !== "object" || Array.isArray(o[k])) {
      if (value === undefined) return;
      o[k] = {};
    }
    o = o[k];
  }
  const last = keys[keys.length - 1];
  if (value === undefined) delete o[last]; else o[last] = value;
}

/** One schema node → its field(s). `path` is dotted; `key` its last part. */
function buildNode(ctx, path, key, rawNode, isRequired, value) {
  const node = resolve(rawNode, ctx.rootSchema);
  const label = node.title ?? humanize(key);
  const types = typesOf(node);
  const help = node.description;

  if (path === "mappings") return mappingsField(ctx, { node, label, help, isRequired, value });

  if ("const" in node) {
    ctx.fields.push({ path, read: (doc) => setAt(doc, path, node.const) });
    if (typeof node.const === "boolean") {
      return checkboxField(ctx, { path, label, checked: node.const, help, disabled: true, register: false });
    }
    return staticField(path, label, String(node.const), help);
  }

  if (types.includes("object") && !types.includes("string")) {
    if (node.properties) {
      const box = h("fieldset", { id: `field-${path}`, class: "group" },
        h("legend", null, label, isRequired ? h("span", { class: "req", "aria-hidden": "true" }, " *") : null));
      if (help) {
        box.append(h("p", { class: "help", id: `help-${path}` }, help));
        box.setAttribute("aria-describedby", `help-${path}`);
      }
      const req = new Set(node.required ?? []);
      for (const [k, child] of ordered(node.properties, node.required)) {
        box.append(buildNode(ctx, `${path}.${k}`, k, child, req.has(k), value?.[k]));
      }
      return box;
    }
    return mapField(ctx, { path, label, help, node, value });
  }

  if (types.includes("array")) {
    const items = resolve(node.items, ctx.rootSchema);
    const itemTypes = typesOf(items);
    if (itemTypes.includes("object") && items.properties) {
      return rowsField(ctx, { path, label, help, node, items, isRequired, value });
    }
    return listField(ctx, { path, label, help, isRequired, integer: itemTypes.includes("integer") || itemTypes.includes("number"), value });
  }

  if (Array.isArray(node.enum)) {
    // A `null` choice of an optional field is "leave it out", which an empty select already says.
    return selectField(ctx, { path, label, help, isRequired, options: node.enum.filter((v) => v !== null), def: node.default, value });
  }

  if (types.length === 1 && types[0] === "boolean") {
    return checkboxField(ctx, { path, label, help, checked: value ?? node.default ?? false });
  }

  if (types.length === 1 && (types[0] === "integer" || types[0] === "number")) {
    return numberField(ctx, {
      path, label, help, isRequired, integer: types[0] === "integer",
      min: node.minimum ?? node.exclusiveMinimum, max: node.maximum ?? node.exclusiveMaximum,
      placeholder: node.default !== undefined ? String(node.default) : undefined,
      value, secret: isSecret(path, node),
    });
  }

  return textField(ctx, {
    path, label, help, isRequired, value, secret: isSecret(path, node),
    format: node.format, pattern: node.pattern, minLength: node.minLength, maxLength: node.maxLength,
    def: node.default, examples: node.examples,
    numeric: types.includes("integer") || types.includes("number"),
  });
}

/** Label + control + help, with aria-describedby wired. */
function wrap(path, label, control, { help, isRequired, extraHelp } = {}) {
  const describedBy = [];
  const helps = [];
  if (help) {
    helps.push(h("p", { class: "help", id: `help-${path}` }, help));
    describedBy.push(`help-${path}`);
  }
  if (extraHelp) {
    helps.push(h("p", { class: "help", id: `hint-${path}` }, extraHelp));
    describedBy.push(`hint-${path}`);
  }
  if (describedBy.length) control.setAttribute("aria-describedby", describedBy.join(" "));
  return h("div", { class: "field", "data-path": path },
    h("label", { for: `field-${path}` }, label, isRequired ? h("span", { class: "req", "aria-hidden": "true" }, " *") : null),
    control, helps);
}

function staticField(path, label, text, help) {
  const input = h("input", { type: "text", id: `field-${path}`, value: text, readOnly: true, class: "readonly" });
  return wrap(path, label, input, { help });
}

function textField(ctx, o) {
  const { path, label, help, isRequired, value, secret, format, pattern, minLength, maxLength, def, examples, numeric, readOnly, autocomplete } = o;
  const editingSecret = secret && ctx.editing;
  const storedHere = editingSecret && value !== undefined && value !== null && value !== "";
  const type = secret ? "password" : format === "uri" ? "url" : format === "email" ? "email" : "text";
  const input = h("input", {
    type, id: `field-${path}`, name: path,
    required: isRequired && !storedHere && !readOnly,
    "aria-required": isRequired && !readOnly ? "true" : null,
    readOnly: !!readOnly,
    autocomplete: secret ? "new-password" : (autocomplete ?? "off"),
    spellcheck: "false",
    pattern: pattern ?? null,
    minlength: minLength !== undefined ? String(minLength) : null,
    maxlength: maxLength !== undefined ? String(maxLength) : null,
    placeholder: storedHere ? "unchanged" : (def !== undefined ? String(def) : (format === "uri" ? "https://…" : null)),
  });
  // Never pre-fill a secret (the API shows "[REDACTED]" anyway).
  if (!secret && value !== undefined && value !== null) input.value = String(value);
  let list = null;
  if (Array.isArray(examples) && examples.length) {
    list = h("datalist", { id: `examples-${path}` }, examples.map((x) => h("option", { value: String(x) })));
    input.setAttribute("list", `examples-${path}`);
  }
  const hints = [];
  if (def !== undefined && !secret) hints.push(`Default: ${def}.`);
  if (storedHere) hints.push("A value is stored: leave blank to keep the stored value.");
  else if (editingSecret) hints.push("Leave blank to keep the stored value (none is stored yet).");
  const wrapped = wrap(path, label, input, { help, isRequired, extraHelp: hints.join(" ") || null });
  if (list) wrapped.append(list);
  if (!readOnly || path === "id") {
    ctx.fields.push({
      path,
      read: (doc) => {
        const raw = input.value;
        if (raw === "") {
          if (path === "id") { if (!ctx.editing) setAt(doc, path, undefined); return; }
          setAt(doc, path, storedHere ? REDACTED : undefined);
          return;
        }
        if (numeric && /^-?\d+(\.\d+)?$/.test(raw.trim())) { setAt(doc, path, Number(raw.trim())); return; }
        setAt(doc, path, secret ? raw : raw.trim() === raw ? raw : raw.trim());
      },
    });
  }
  return wrapped;
}

function numberField(ctx, o) {
  const { path, label, help, isRequired, integer, min, max, placeholder, value, secret } = o;
  const storedHere = secret && ctx.editing && value !== undefined && value !== null && value !== "";
  const input = h("input", {
    type: secret ? "password" : "number", id: `field-${path}`, name: path,
    inputmode: integer ? "numeric" : "decimal",
    step: integer ? "1" : "any",
    min: min !== undefined && !secret ? String(min) : null,
    max: max !== undefined && !secret ? String(max) : null,
    required: isRequired && !storedHere,
    "aria-required": isRequired ? "true" : null,
    placeholder: storedHere ? "unchanged" : (placeholder ?? null),
    autocomplete: secret ? "new-password" : "off",
  });
  if (!secret && value !== undefined && value !== null) input.value = String(value);
  const hints = [];
  if (placeholder !== undefined && !help?.includes("Default")) hints.push(`Default: ${placeholder}.`);
  if (storedHere) hints.push("A value is stored: leave blank to keep the stored value.");
  ctx.fields.push({
    path,
    read: (doc) => {
      const raw = input.value.trim();
      if (raw === "") { setAt(doc, path, storedHere ? REDACTED : undefined); return; }
      const n = Number(raw);
      // Not a number: sent as typed, so the host names the field.
      setAt(doc, path, Number.isFinite(n) ? n : raw);
    },
  });
  return wrap(path, label, input, { help, isRequired, extraHelp: hints.join(" ") || null });
}

function checkboxField(ctx, { path, label, help, checked, disabled = false, register = true }) {
  const input = h("input", { type: "checkbox", id: `field-${path}`, name: path, checked: !!checked, disabled });
  if (register) ctx.fields.push({ path, read: (doc) => setAt(doc, path, input.checked) });
  const describedBy = help ? `help-${path}` : null;
  if (describedBy) input.setAttribute("aria-describedby", describedBy);
  return h("div", { class: "field field-check", "data-path": path },
    input, h("label", { for: `field-${path}` }, label),
    help ? h("p", { class: "help", id: `help-${path}` }, help) : null);
}

function selectField(ctx, { path, label, help, isRequired, options, def, value }) {
  const current = value ?? def;
  const select = h("select", { id: `field-${path}`, name: path, required: !!isRequired, "aria-required": isRequired ? "true" : null },
    current === undefined ? h("option", { value: "" }, isRequired ? "Choose…" : "—") : null,
    options.map((opt, i) => h("option", { value: String(i), "data-value": String(opt) }, opt === null ? "(none)" : String(opt) + (opt === def ? " (default)" : ""))));
  const index = options.findIndex((o) => o === current);
  select.value = index >= 0 ? String(index) : "";
  ctx.fields.push({
    path,
    read: (doc) => setAt(doc, path, select.value === "" ? undefined : options[Number(select.value)]),
  });
  return wrap(path, label, select, { help, isRequired, extraHelp: def !== undefined ? `Default: ${def}.` : null });
}

/** An array of scalars: one comma-separated text input. */
function listField(ctx, { path, label, help, isRequired, integer, value }) {
  const input = h("input", {
    type: "text", id: `field-${path}`, name: path, autocomplete: "off",
    inputmode: integer ? "numeric" : null,
    "aria-required": isRequired ? "true" : null,
    value: Array.isArray(value) ? value.join(", ") : "",
  });
  ctx.fields.push({
    path,
    read: (doc) => {
      const parts = input.value.split(",").map((s) => s.trim()).filter(Boolean);
      if (!parts.length) { setAt(doc, path, undefined); return; }
      setAt(doc, path, parts.map((s) => (integer && /^-?\d+(\.\d+)?$/.test(s) ? Number(s) : s)));
    },
  });
  return wrap(path, label, input, { help, isRequired, extraHelp: "Several values: separate them with commas." });
}

/** An object of free keys (e.g. extra headers): name/value rows. */
function mapField(ctx, { path, label, help, value }) {
  const rows = h("div", { class: "rows", id: `rows-${path}` });
  const box = h("fieldset", { id: `field-${path}`, class: "group" }, h("legend", null, label));
  if (help) {
    box.append(h("p", { class: "help", id: `help-${path}` }, help));
    box.setAttribute("aria-describedby", `help-${path}`);
  }
  let n = 0;
  const addRow = (k = "", v = "", focus = false) => {
    const i = n++;
    const keyInput = h("input", { type: "text", id: `field-${path}-name-${i}`, class: "map-key", value: k, autocomplete: "off" });
    const valueInput = h("input", { type: "text", id: `field-${path}-value-${i}`, class: "map-value", value: typeof v === "string" ? v : JSON.stringify(v), autocomplete: "off" });
    const row = h("div", { class: "row", "data-entry": "" },
      h("div", { class: "field" }, h("label", { for: keyInput.id }, "Name"), keyInput),
      h("div", { class: "field" }, h("label", { for: valueInput.id }, "Value"), valueInput),
      h("button", { type: "button", class: "remove", "data-action": "remove-entry", "aria-label": `Remove this ${label} entry`, onclick: () => row.remove() }, "Remove"));
    rows.append(row);
    if (focus) keyInput.focus();
  };
  for (const [k, v] of Object.entries(value && typeof value === "object" ? value : {})) addRow(k, v);
  box.append(rows, h("button", { type: "button", "data-action": "add-entry", onclick: () => addRow("", "", true) }, `Add ${label.toLowerCase()} entry`));
  ctx.fields.push({
    path,
    read: (doc) => {
      const out = {};
      for (const row of rows.querySelectorAll("[data-entry]")) {
        const k = row.querySelector(".map-key").value.trim();
        if (k) out[k] = row.querySelector(".map-value").value;
      }
      setAt(doc, path, Object.keys(out).length ? out : undefined);
    },
  });
  return box;
}

/** The mappings: an editable list of `{id, value}` rows. */
function mappingsField(ctx, { node, label, help, isRequired, value }) {
  const items = resolve(node.items, ctx.rootSchema);
  const idHelp = resolve(items.properties?.id, ctx.rootSchema).description ?? "Destination field";
  const valueHelp = resolve(items.properties?.value, ctx.rootSchema).description ?? "prefsync property";
  const list = h("div", { class: "rows mappings", id: "mapping-rows" });
  const box = h("fieldset", { id: "field-mappings", class: "group" },
    h("legend", null, label, isRequired ? h("span", { class: "req", "aria-hidden": "true" }, " *") : null),
    h("p", { class: "help", id: "help-mappings" },
      help ?? "", help ? " " : "", `Each row: ${idHelp} ← ${valueHelp}.`));
  box.setAttribute("aria-describedby", "help-mappings");

  const renumber = () => {
    [...list.querySelectorAll("[data-mapping]")].forEach((row, i) => {
      row.dataset.mapping = String(i);
      const idIn = row.querySelector(".mapping-id");
      const valIn = row.querySelector(".mapping-value");
      idIn.id = `field-mappings[${i}].id`;
      valIn.id = `field-mappings[${i}].value`;
      row.querySelector("label.for-id").setAttribute("for", idIn.id);
      row.querySelector("label.for-value").setAttribute("for", valIn.id);
      row.querySelector("label.for-id").textContent = `${idHelp} (row ${i + 1})`;
      row.querySelector("label.for-value").textContent = `${valueHelp} (row ${i + 1})`;
      row.querySelector("[data-action='remove-mapping']").setAttribute("aria-label", `Remove mapping row ${i + 1}`);
    });
  };
  const addRow = (m = {}, focus = false) => {
    const idIn = h("input", { type: "text", class: "mapping-id", value: m.id ?? "", autocomplete: "off", spellcheck: "false" });
    const valIn = h("input", { type: "text", class: "mapping-value", value: m.value ?? "", autocomplete: "off", spellcheck: "false" });
    const row = h("div", { class: "row mapping", "data-mapping": "" },
      h("div", { class: "field" }, h("label", { class: "for-id" }), idIn),
      h("span", { class: "arrow", "aria-hidden": "true" }, "←"),
      h("div", { class: "field" }, h("label", { class: "for-value" }), valIn),
      h("button", { type: "button", class: "remove", "data-action": "remove-mapping", onclick: () => { row.remove(); renumber(); } }, "Remove"));
    list.append(row);
    renumber();
    if (focus) idIn.focus();
  };
  const initial = Array.isArray(value) ? value : [];
  initial.forEach((m) => addRow(m));
  if (!initial.length && (isRequired || (node.minItems ?? 0) > 0)) addRow();
  box.append(list, h("button", { type: "button", "data-action": "add-mapping", onclick: () => addRow({}, true) }, "Add mapping"));

  ctx.fields.push({
    path: "mappings",
    read: (doc) => {
      // Rows left wholly empty go (from the page too, so problem paths match rows).
      for (const row of [...list.querySelectorAll("[data-mapping]")]) {
        if (!row.querySelector(".mapping-id").value.trim() && !row.querySelector(".mapping-value").value.trim()) row.remove();
      }
      renumber();
      const rows = [...list.querySelectorAll("[data-mapping]")].map((row) => ({
        id: row.querySelector(".mapping-id").value.trim(),
        value: row.querySelector(".mapping-value").value.trim(),
      }));
      setAt(doc, "mappings", rows.length || isRequired ? rows : undefined);
    },
  });
  return box;
}

/** An array of objects (e.g. Brevo's lists): rows, each generated from the item schema. */
function rowsField(ctx, { path, label, help, node, items, isRequired, value }) {
  const list = h("div", { class: "rows" });
  const box = h("fieldset", { id: `field-${path}`, class: "group" },
    h("legend", null, label, isRequired ? h("span", { class: "req", "aria-hidden": "true" }, " *") : null));
  if (help) {
    box.append(h("p", { class: "help", id: `help-${path}` }, help));
    box.setAttribute("aria-describedby", `help-${path}`);
  }
  const rows = []; // {element, fields}
  const req = new Set(items.required ?? []);
  const rebuild = (values) => {
    list.replaceChildren();
    rows.length = 0;
    values.forEach((v, i) => {
      const sub = { ...ctx, fields: [] };
      const row = h("fieldset", { class: "row group", "data-row": String(i) },
        h("legend", null, `${label} ${i + 1}`));
      for (const [k, child] of Object.entries(items.properties)) {
        row.append(buildNode(sub, `${path}[${i}].${k}`, k, child, req.has(k), v?.[k]));
      }
      row.append(h("button", {
        type: "button", class: "remove", "data-action": "remove-row", "aria-label": `Remove ${label} ${i + 1}`,
        onclick: () => { const now = readAll(); now.splice(i, 1); rebuild(now); },
      }, "Remove"));
      list.append(row);
      rows.push({ element: row, fields: sub.fields });
    });
  };
  // Row fields write to `<path>[i].<key>` (a literal `name[i]` key): take that object back.
  const readAll = () => rows.map((r, i) => {
    const o = {};
    for (const f of r.fields) f.read(o);
    return valueAt(o, `${path}[${i}]`) ?? {};
  });
  rebuild(Array.isArray(value) ? value : []);
  box.append(list, h("button", {
    type: "button", "data-action": "add-row",
    onclick: () => { const now = readAll(); now.push({}); rebuild(now); list.lastElementChild?.querySelector("input,select")?.focus(); },
  }, `Add to ${label.toLowerCase()}`));
  ctx.fields.push({
    path,
    read: (doc) => {
      const all = readAll().filter((o) => Object.keys(o).length);
      setAt(doc, path, all.length || isRequired || (node.minItems ?? 0) > 0 ? all : undefined);
    },
  });
  return box;
}

// ---------------------------------------------------------------- paste JSON

function pasteSection({ editing, id, type }) {
  const area = h("textarea", {
    id: "paste-json-text", rows: "14", spellcheck: "false", autocomplete: "off", class: "code",
    "aria-describedby": "paste-json-help",
  });
  area.placeholder = JSON.stringify({
    type_id: type ?? "dotdigital", authentication: { url: "https://r1-api.dotdigital.com", username: "…", password: "…" },
    properties: {}, mappings: [{ id: "NEWSLETTER", value: "consents_purposes_newsletter_enabled" }], upsert_mode: true,
  }, null, 2);
  const error = h("div", { id: "paste-problems", class: "form-problems", role: "alert" });
  const button = h("button", { type: "button", "data-action": "paste-json" }, editing ? "Replace with this document" : "Create from this document");
  const details = h("details", { class: "paste", id: "paste-json" },
    h("summary", null, "Or paste a JSON document (Didomi's integration format)"),
    h("div", { class: "field" },
      h("label", { for: "paste-json-text" }, "Integration document (JSON)"),
      area,
      h("p", { class: "help", id: "paste-json-help" },
        editing
          ? "The whole document replaces the stored one; a secret given as \"[REDACTED]\" keeps its stored value."
          : "As Didomi's integration pages show it: type_id, authentication, properties, mappings …")),
    error,
    h("div", { class: "actions" }, button));

  button.addEventListener("click", async () => {
    error.replaceChildren();
    const text = area.value;
    let doc;
    try {
      doc = JSON.parse(text);
    } catch (err) {
      const { line, column, offset } = jsonErrorPosition(err, text);
      error.append(h("p", { class: "problem", id: "problem-paste" },
        `Invalid JSON at line ${line}, column ${column}: ${cleanJsonMessage(err.message)}`));
      area.setAttribute("aria-invalid", "true");
      area.focus();
      area.setSelectionRange(offset, Math.min(offset + 1, text.length));
      return;
    }
    area.removeAttribute("aria-invalid");
    button.disabled = true;
    try {
      const saved = editing
        ? await api("PUT", `/v1/integrations/${encodeURIComponent(id)}`, doc)
        : await api("POST", "/v1/integrations", doc);
      flash = { text: `${editing ? "Saved" : "Created"} integration ${saved?.id ?? id ?? ""}.` };
      location.hash = "#/integrations";
    } catch (err) {
      const body = err instanceof ApiError ? err.body : {};
      const listed = Array.isArray(body.problems) ? body.problems.length : 0;
      error.append(h("p", { class: "notice notice-error" }, listed
        ? `Not saved: ${listed} problem${listed === 1 ? "" : "s"}:`
        : `Not saved: ${messageOf(err)}`));
      if (listed) {
        error.append(h("ul", { class: "problems" },
          body.problems.map((p) => h("li", { "data-path": p.path ?? "" }, p.path ? `${p.path}: ${p.message}` : p.message))));
      }
      error.focus?.();
    } finally {
      button.disabled = false;
    }
  });
  return details;
}

/** Line and column (1-based) of a JSON.parse error, and its offset in `text`. */
export function jsonErrorPosition(err, text) {
  const message = String(err?.message ?? "");
  let m = /line (\d+) column (\d+)/.exec(message);
  if (m) {
    const line = Number(m[1]);
    const column = Number(m[2]);
    const starts = [0];
    for (let i = 0; i < text.length; i++) if (text[i] === "\n") starts.push(i + 1);
    const offset = Math.min(text.length, (starts[line - 1] ?? 0) + column - 1);
    return { line, column, offset };
  }
  m = /position (\d+)/.exec(message);
  const offset = m ? Math.min(Number(m[1]), text.length) : text.length; // "Unexpected end of JSON input"
  const before = text.slice(0, offset);
  const line = before.split("\n").length;
  const column = offset - (before.lastIndexOf("\n") + 1) + 1;
  return { line, column, offset };
}

function cleanJsonMessage(message) {
  return String(message)
    .replace(/\s*\(line \d+ column \d+\)/, "")
    .replace(/ in JSON at position \d+/, "")
    .replace(/^JSON\.parse: /, "");
}
