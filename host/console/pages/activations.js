// pages/activations.js: activations (reverse ETL). #/activations lists them;
// #/activations/new creates one; #/activations/<id> shows one: run now (with
// a full resync), its run history with counts, warnings and errors, a running
// run's progress (polled every second while it runs, bounded), and the form
// that edits it. The document's fields: host/src/activation/config.rs.

import { api, ApiError, h, table, fmtTime, fmtAge, notice, confirmDialog, placeProblems, clearFieldProblems } from "../ui.js";

/** A table that scrolls sideways on a narrow screen. */
const wideTable = (...args) => h("div", { class: "table-wrap" }, table(...args));

const POLL_MS = 1000;
/** At most this many polls (an hour) per run started or found running. */
const MAX_POLLS = 3600;
const RUNS_SHOWN = 20;

/** A notice the next render shows (after a save or delete navigates). */
let flash = null;
/** Bumped by every render: a poll of an older render stops. */
let generation = 0;

export async function render(root, params = {}) {
  generation += 1;
  const [path] = location.hash.replace(/^#/, "").split("?");
  const parts = path.split("/").filter(Boolean);
  let id = params.id ?? (parts[1] !== undefined ? decodeURIComponent(parts[1]) : undefined);
  if (typeof id === "string") id = id.split("?")[0];
  if (!id) return renderList(root);
  if (id === "new") return renderNew(root);
  return renderOne(root, id);
}

const markReady = (root) => { root.dataset.ready = "true"; };
const messageOf = (err) => (err instanceof ApiError ? (err.body?.message ?? err.message) : (err?.message ?? String(err)));
const hrefOf = (id) => `#/activations/${encodeURIComponent(id)}`;
const num = (n) => (n === undefined || n === null ? "—" : Number(n).toLocaleString("en-US"));

const STATUS_CLASS = { succeeded: "badge-on", warning: "badge-warn", failed: "badge-bad", abandoned: "badge-bad", running: "tag-warn" };
const statusBadge = (status) => h("span", { class: `badge ${STATUS_CLASS[status] ?? ""} status-${status}`, "data-status": status }, status);

function scheduleText(s) {
  if (s?.every) return `every ${s.every}`;
  if (s?.cron) return `cron ${s.cron}${s.timezone ? ` (${s.timezone})` : " (UTC)"}`;
  return "manual";
}

function showFlash(root) {
  const result = h("p", { id: "result", role: "status", class: "result" });
  if (flash) { result.textContent = flash; flash = null; }
  root.append(result);
  return result;
}

// ---------------------------------------------------------------- the list

async function renderList(root) {
  root.replaceChildren(h("h1", null, "Activations"));
  showFlash(root);
  let activations;
  try {
    activations = (await api("GET", "/v1/activations")) ?? [];
  } catch (err) {
    notice(root, "error", `Could not load the activations: ${messageOf(err)}`);
    markReady(root);
    return;
  }
  activations.sort((a, b) => String(a.id).localeCompare(String(b.id)));
  // The list has no runs: each activation's last run comes with its detail.
  const details = await Promise.all(activations.slice(0, 100).map((a) =>
    api("GET", `/v1/activations/${encodeURIComponent(a.id)}`).catch(() => null)));
  const lastRun = new Map(details.filter(Boolean).map((d) => [d.id, d.last_run]));
  root.append(
    h("p", { class: "muted" }, "Scheduled syncs of a user model (a CSV file or a SQL query) into an integration whose connector can sync models."),
    wideTable([
      { key: "id", label: "Id", render: (a) => h("a", { href: hrefOf(a.id) }, a.id) },
      { key: "name", label: "Name", render: (a) => a.name ?? "" },
      { key: "integration", label: "Destination", render: (a) => h("a", { href: `#/integrations/${encodeURIComponent(a.integration)}` }, a.integration) },
      { key: "schedule", label: "Schedule", render: (a) => scheduleText(a.schedule) },
      { key: "last_run", label: "Last run", render: (a) => {
        const r = lastRun.get(a.id);
        if (!r) return "never";
        return h("span", null, statusBadge(r.status), " ", fmtTime(r.started_at_ms));
      } },
      { key: "next_run", label: "Next run", render: (a) => (a.next_run_at_ms ? fmtTime(a.next_run_at_ms) : "manual only") },
    ], activations, { id: "activations", label: "Activations", empty: "No activation yet." }),
    h("p", null, h("a", { href: "#/activations/new", class: "button" }, "New activation")));
  markReady(root);
}

// ---------------------------------------------------------------- create

async function renderNew(root) {
  root.replaceChildren(
    h("p", { class: "breadcrumb" }, h("a", { href: "#/activations" }, "Activations"), " / new"),
    h("h1", null, "New activation"));
  showFlash(root);
  const targets = await destinations();
  const form = activationForm({ stored: null, targets });
  root.append(form.element);
  form.onSubmit(async (doc) => {
    const saved = await api("POST", "/v1/activations", doc);
    flash = `Created activation ${saved?.id ?? doc.id}.`;
    location.hash = hrefOf(saved?.id ?? doc.id);
  });
  markReady(root);
}

/** Integrations an activation may write to: those whose connector syncs models (when known). */
async function destinations() {
  try {
    const [integrations, connectors] = await Promise.all([
      api("GET", "/v1/integrations"),
      api("GET", "/v1/connectors").then((r) => r?.connectors ?? []).catch(() => []),
    ]);
    const can = new Map(connectors.map((c) => {
      const active = (c.versions ?? []).find((v) => v.content_hash === c.active?.content_hash);
      return [c.type_id, c.capabilities?.activations ?? active?.description?.activations];
    }));
    return (integrations ?? []).map((i) => ({ id: i.id, type_id: i.type_id, syncs: can.get(i.type_id) }));
  } catch {
    return [];
  }
}

// ---------------------------------------------------------------- one activation

async function renderOne(root, id) {
  const gen = generation;
  const route = location.hash;
  let detail;
  let runs;
  let targets;
  try {
    [detail, runs, targets] = await Promise.all([
      api("GET", `/v1/activations/${encodeURIComponent(id)}`),
      api("GET", `/v1/activations/${encodeURIComponent(id)}/runs?limit=${RUNS_SHOWN}`),
      destinations(),
    ]);
  } catch (err) {
    root.replaceChildren(
      h("p", { class: "breadcrumb" }, h("a", { href: "#/activations" }, "Activations"), " / ", id),
      h("h1", null, `Activation ${id}`));
    notice(root, "error", messageOf(err));
    markReady(root);
    return;
  }
  root.replaceChildren(
    h("p", { class: "breadcrumb" }, h("a", { href: "#/activations" }, "Activations"), " / ", id),
    h("h1", null, detail.name ? `${detail.name} (${id})` : `Activation ${id}`));
  const result = showFlash(root);

  root.append(h("dl", { class: "facts" },
    h("dt", null, "Destination"), h("dd", null, h("a", { href: `#/integrations/${encodeURIComponent(detail.integration)}` }, detail.integration)),
    h("dt", null, "Source"), h("dd", null, detail.source?.type === "csv" ? `CSV ${detail.source.path}` : `SQL ${detail.source?.url ?? ""}`),
    h("dt", null, "Schedule"), h("dd", null, scheduleText(detail.schedule)),
    h("dt", null, "Next run"), h("dd", { "data-field": "next_run" }, detail.next_run_at_ms ? fmtTime(detail.next_run_at_ms) : "manual only"),
    h("dt", null, "Keys in the snapshot"), h("dd", { "data-field": "snapshot_keys" }, num(detail.snapshot_keys))));

  // Run now, progress, history.
  const fullResync = h("input", { type: "checkbox", id: "full-resync", "aria-describedby": "full-resync-help" });
  const runButton = h("button", { type: "button", class: "primary", "data-action": "run-now" }, "Run now");
  const progress = h("div", { id: "run-progress", role: "status", "aria-live": "polite", class: "progress" });
  const runsBox = h("div", { id: "runs" });
  root.append(h("section", { "aria-labelledby": "run-title" },
    h("h2", { id: "run-title" }, "Runs"),
    h("div", { class: "field field-check" }, fullResync, h("label", { for: "full-resync" }, "Full resync"),
      h("p", { class: "help", id: "full-resync-help" }, "Ignore the snapshot once: send every row in full.")),
    h("div", { class: "actions" }, runButton),
    progress, runsBox));

  const live = () => gen === generation && root.isConnected && location.hash === route;
  const refreshFacts = async () => {
    try {
      const now = await api("GET", `/v1/activations/${encodeURIComponent(id)}`);
      if (!live()) return;
      const keys = root.querySelector("[data-field='snapshot_keys']");
      if (keys) keys.textContent = num(now.snapshot_keys);
      const next = root.querySelector("[data-field='next_run']");
      if (next) next.textContent = now.next_run_at_ms ? fmtTime(now.next_run_at_ms) : "manual only";
    } catch {
      // The history above already says how the run ended.
    }
  };
  let polling = false;
  const draw = (list) => {
    runsBox.replaceChildren(runsTable(list));
    const running = list.find((r) => r.status === "running");
    progress.replaceChildren(...(running ? progressNodes(running) : []));
    runButton.disabled = !!running;
    return running;
  };
  const poll = async () => {
    if (polling) return;
    polling = true;
    try {
      for (let i = 0; i < MAX_POLLS && live(); i++) {
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
        if (!live()) return;
        let list;
        try {
          list = await api("GET", `/v1/activations/${encodeURIComponent(id)}/runs?limit=${RUNS_SHOWN}`);
        } catch (err) {
          progress.replaceChildren(h("p", { class: "notice notice-error" }, `Could not follow the run: ${messageOf(err)}`));
          return;
        }
        if (!live()) return;
        if (!draw(list)) {
          const done = list[0];
          await refreshFacts();
          if (done) result.textContent = `Run ${done.id} ${done.status}: ${num(done.summary?.rows_read)} rows read, ${num(done.summary?.inserted)} inserted, ${num(done.summary?.updated)} updated, ${num(done.summary?.failed)} failed.`;
          return;
        }
      }
    } finally {
      polling = false;
      if (live()) markReady(root);
    }
  };
  if (draw(runs)) poll();

  runButton.addEventListener("click", async () => {
    runButton.disabled = true;
    result.textContent = "";
    const query = fullResync.checked ? "?full_resync=true" : "";
    try {
      const started = await api("POST", `/v1/activations/${encodeURIComponent(id)}/run${query}`);
      delete root.dataset.ready; // set again when the run has ended
      result.textContent = `Started run ${started?.run_id}${started?.full_resync ? " (full resync)" : ""}.`;
      draw(await api("GET", `/v1/activations/${encodeURIComponent(id)}/runs?limit=${RUNS_SHOWN}`));
      runButton.disabled = true;
      poll();
    } catch (err) {
      runButton.disabled = false;
      result.textContent = `Not started: ${messageOf(err)}`;
      if (err instanceof ApiError && err.status === 409) poll();
    }
  });

  // Settings: the form, and delete.
  const form = activationForm({ stored: detail, targets });
  const del = h("button", { type: "button", class: "danger", "data-action": "delete" }, "Delete activation");
  del.addEventListener("click", async () => {
    if (!(await confirmDialog(`Delete activation ${id}, its snapshot and its run history? The next run would send every row again.`, { confirmLabel: "Delete" }))) return;
    try {
      await api("DELETE", `/v1/activations/${encodeURIComponent(id)}`);
      flash = `Deleted activation ${id}.`;
      location.hash = "#/activations";
    } catch (err) {
      result.textContent = `Not deleted: ${messageOf(err)}`;
    }
  });
  root.append(h("section", { "aria-labelledby": "settings-title" },
    h("h2", { id: "settings-title" }, "Settings"), form.element,
    h("div", { class: "actions danger-zone" }, del)));
  form.onSubmit(async (doc) => {
    await api("PUT", `/v1/activations/${encodeURIComponent(id)}`, doc);
    flash = `Saved activation ${id}.`;
    delete root.dataset.ready;
    await render(root, { id });
  });
  markReady(root);
}

function progressNodes(run) {
  const p = run.summary?.progress;
  if (!p) {
    return [h("p", null, h("strong", null, `Run ${run.id} running`), ` since ${fmtTime(run.started_at_ms)}; no progress reported yet.`),
      h("progress", { "aria-label": `Run ${run.id} in progress` })];
  }
  const read = p?.rows_read ?? 0;
  const sent = p?.rows_sent ?? 0;
  const age = p?.updated_at_ms ? Math.max(0, (Date.now() - p.updated_at_ms) / 1000) : null;
  return [
    h("p", null, h("strong", null, `Run ${run.id} running`), ` since ${fmtTime(run.started_at_ms)}: `,
      h("span", { "data-field": "rows_read" }, num(read)), " rows read, ",
      h("span", { "data-field": "rows_sent" }, num(sent)), " sent",
      age !== null ? ` (as of ${fmtAge(age)} ago)` : ""),
    // The total is unknown while the source streams: rows sent of rows read so far.
    h("progress", { "aria-label": `Rows sent of rows read, run ${run.id}`, max: String(Math.max(read, 1)), value: String(sent) }),
  ];
}

function runsTable(runs) {
  const s = (r) => r.summary ?? {};
  const count = (key, label) => ({ key, label, numeric: true,
    render: (r) => (r.status === "running" && key === "rows_read" ? num(s(r).progress?.rows_read ?? s(r).rows_read) : num(s(r)[key])) });
  return wideTable([
    { key: "id", label: "Run" },
    { key: "status", label: "Status", render: (r) => statusBadge(r.status) },
    { key: "trigger", label: "Trigger", render: (r) => `${r.trigger}${r.full_resync ? " (full resync)" : ""}` },
    { key: "started_at_ms", label: "Started", render: (r) => fmtTime(r.started_at_ms) },
    { key: "duration", label: "Took", render: (r) => (r.finished_at_ms ? fmtAge((r.finished_at_ms - r.started_at_ms) / 1000) : "running") },
    count("rows_read", "Read"), count("inserted", "Inserted"), count("updated", "Updated"), count("unchanged", "Unchanged"),
    count("failed", "Failed"), count("skipped", "Skipped"), count("batches", "Batches"),
    { key: "warnings", label: "Warnings", class: "wrap notes", render: (r) => {
      const w = Array.isArray(s(r).warnings) ? s(r).warnings : [];
      return w.length ? h("ul", { class: "compact" }, w.map((x) => h("li", null, String(x)))) : "—";
    } },
    { key: "errors", label: "Errors", class: "wrap notes", render: (r) => {
      const items = [];
      if (s(r).error) items.push(h("li", { class: "run-error" }, s(r).error));
      for (const e of Array.isArray(s(r).errors) ? s(r).errors : []) {
        const where = [e.stage, e.row ? `row ${e.row}` : null, e.key ? `key ${e.key}` : null, e.field ? `field ${e.field}` : null].filter(Boolean).join(", ");
        items.push(h("li", null, `${where}: ${e.message}`));
      }
      if (s(r).errors_truncated) items.push(h("li", { class: "muted" }, "… more rejected rows than kept"));
      return items.length ? h("ul", { class: "compact" }, items) : "—";
    } },
  ], runs, { id: "runs", label: "Run history", empty: "No run yet." });
}

// ---------------------------------------------------------------- the form

/** The activation document's form. `onSubmit(fn)`: fn(doc) saves, throwing ApiError on refusal. */
function activationForm({ stored, targets }) {
  const editing = !!stored;
  const form = h("form", { id: "activation-form", class: "form", novalidate: true, "aria-describedby": "form-problems" });
  const problemsBox = h("div", { id: "form-problems", class: "form-problems", role: "alert" });
  const field = (path, label, control, { help, required } = {}) => {
    control.id = `field-${path}`;
    if (required) { control.required = true; control.setAttribute("aria-required", "true"); }
    if (help) control.setAttribute("aria-describedby", `help-${path}`);
    return h("div", { class: "field", "data-path": path },
      h("label", { for: `field-${path}` }, label, required ? h("span", { class: "req", "aria-hidden": "true" }, " *") : null),
      control, help ? h("p", { class: "help", id: `help-${path}` }, help) : null);
  };
  const text = (value, attrs = {}) => h("input", { type: "text", autocomplete: "off", spellcheck: "false", value: value ?? "", ...attrs });

  // Identity and destination.
  const idInput = text(stored?.id, { readOnly: editing, pattern: "[A-Za-z0-9_\\-][A-Za-z0-9._\\-]{0,63}" });
  const nameInput = text(stored?.name);
  const current = stored?.integration;
  const options = targets.filter((t) => t.syncs !== false || t.id === current);
  const integration = h("select", null,
    h("option", { value: "" }, "Choose an integration…"),
    options.map((t) => h("option", { value: t.id }, `${t.id} (${t.type_id}${t.syncs === false ? ", cannot sync models" : ""})`)),
    current && !options.some((t) => t.id === current) ? h("option", { value: current }, current) : null);
  integration.value = current ?? "";
  form.append(problemsBox, h("fieldset", { class: "group", id: "field-activation" }, h("legend", null, "Activation"),
    field("id", "Id", idInput, { required: !editing, help: editing ? "The id cannot change." : "1 to 64 letters, digits, -, _ or . (not starting with .)." }),
    field("name", "Name", nameInput, { help: "For people; optional." }),
    field("integration", "Destination integration", integration, { required: true,
      help: targets.length ? "Integrations whose connector can sync models." : "No integration yet: create one whose connector can sync models first." })));

  // Source.
  const src = stored?.source ?? { type: "csv" };
  const sourceType = h("select", null, h("option", { value: "csv" }, "CSV file"), h("option", { value: "sql" }, "SQL query (SQLite or PostgreSQL)"));
  sourceType.value = src.type === "sql" ? "sql" : "csv";
  const path = text(src.type === "csv" ? src.path : "");
  const delimiter = text(src.type === "csv" ? (src.delimiter ?? ",") : ",", { maxlength: "1", class: "narrow" });
  const urlShown = src.type === "sql" ? (src.url ?? "") : "";
  const urlHidden = /REDACTED/.test(urlShown);
  const url = text(urlShown, { placeholder: "sqlite:model.db or postgres://user:password@host/db" });
  const query = h("textarea", { rows: "4", spellcheck: "false", class: "code", value: src.type === "sql" ? (src.query ?? "") : "" });
  const csvBox = h("div", { class: "subgroup", "data-source": "csv" },
    field("source.path", "CSV file", path, { required: true, help: "Under the host's [activations] source_dir; a relative path is resolved against it." }),
    field("source.delimiter", "Delimiter", delimiter, { help: "One ASCII character; , unless said." }));
  const sqlBox = h("div", { class: "subgroup", "data-source": "sql" },
    field("source.url", "Connection URL", url, { required: true,
      help: urlHidden
        ? "The stored password is not shown: type the URL again with its password before saving."
        : "sqlite:relative.db (under source_dir), sqlite:///abs/path.db, or postgres://user:password@host/db (the password is never shown back)." }),
    field("source.query", "Query", query, { required: true, help: "A SELECT whose column names are the model's columns." }));
  const showSource = () => {
    csvBox.hidden = sourceType.value !== "csv";
    sqlBox.hidden = sourceType.value !== "sql";
  };
  sourceType.addEventListener("change", showSource);
  showSource();
  form.append(h("fieldset", { class: "group", id: "field-source" }, h("legend", null, "Source (the user model)"),
    field("source.type", "Kind", sourceType), csvBox, sqlBox));

  // Key.
  const keyColumn = text(stored?.key?.column);
  const keyField = text(stored?.key?.field);
  form.append(h("fieldset", { class: "group", id: "field-key" }, h("legend", null, "Matching key"),
    field("key.column", "Model column", keyColumn, { required: true, help: "The column holding each row's key, e.g. email." }),
    field("key.field", "Destination field", keyField, { required: true, help: "The destination field it matches, e.g. MAIL." })));

  // Mappings.
  const mappings = mappingRows(stored?.mappings ?? []);
  form.append(mappings.element);

  // Mode and schedule.
  const mode = h("select", null,
    h("option", { value: "upsert" }, "upsert: insert new rows, update changed ones (default)"),
    h("option", { value: "insert" }, "insert: only rows the destination never accepted"),
    h("option", { value: "update" }, "update: never create a record"));
  mode.value = stored?.mode ?? "upsert";
  const sched = stored?.schedule ?? {};
  const kind = h("select", null,
    h("option", { value: "manual" }, "Manual runs only"),
    h("option", { value: "every" }, "Every interval"),
    h("option", { value: "cron" }, "Cron expression"));
  kind.value = sched.cron ? "cron" : sched.every ? "every" : "manual";
  const every = text(sched.every, { placeholder: "15m" });
  const cron = text(sched.cron, { placeholder: "0 3 * * *" });
  const zone = text(sched.timezone, { placeholder: "UTC", list: "timezones" });
  let zones = [];
  try { zones = Intl.supportedValuesOf("timeZone"); } catch { zones = []; }
  const zoneList = h("datalist", { id: "timezones" }, zones.map((z) => h("option", { value: z })));
  const everyBox = h("div", { class: "subgroup" }, field("schedule.every", "Interval", every, { help: "A number and a unit: 30s, 15m, 6h, 1d (1 s to 366 d)." }));
  const cronBox = h("div", { class: "subgroup" },
    field("schedule.cron", "Cron", cron, { help: "Five fields (minute hour day-of-month month day-of-week), names (JAN, MON-FRI) or @hourly, @daily, @weekly, @monthly, @yearly." }),
    field("schedule.timezone", "Time zone", zone, { help: "An IANA zone, e.g. Europe/Paris; UTC when blank." }), zoneList);
  const showSchedule = () => {
    everyBox.hidden = kind.value !== "every";
    cronBox.hidden = kind.value !== "cron";
  };
  kind.addEventListener("change", showSchedule);
  showSchedule();
  form.append(h("fieldset", { class: "group", id: "field-schedule" }, h("legend", null, "Mode and schedule"),
    field("mode", "Mode", mode), field("schedule.kind", "When", kind), everyBox, cronBox));

  // Warnings.
  const w = stored?.warnings ?? {};
  const share = h("input", { type: "number", min: "0", max: "1", step: "any", inputmode: "decimal", placeholder: "0.05", value: w.rejected_share ?? "" });
  const hook = h("input", { type: "url", autocomplete: "off", placeholder: "https://hooks.example.com/prefsync", value: w.webhook_url ?? "" });
  const log = h("input", { type: "checkbox", checked: w.log !== false });
  form.append(h("fieldset", { class: "group", id: "field-warnings" }, h("legend", null, "Warnings"),
    field("warnings.rejected_share", "Rejected share that warns", share, { help: "Share of the rows read that may be rejected before the run warns, 0 to 1 (default 0.05 = 5 %)." }),
    field("warnings.webhook_url", "Warnings webhook", hook, { help: "Warnings and recoveries are POSTed here as JSON (https; reached under the host's egress rules); blank: not posted." }),
    h("div", { class: "field field-check" }, Object.assign(log, { id: "field-warnings.log" }),
      h("label", { for: "field-warnings.log" }, "Also write warnings to the host's log"))));

  const save = h("button", { type: "submit", class: "primary", "data-action": "save" }, editing ? "Save changes" : "Create activation");
  form.append(h("div", { class: "actions" }, save, editing ? null : h("a", { href: "#/activations", class: "button" }, "Cancel")));

  const read = () => {
    const doc = {};
    const id = idInput.value.trim();
    doc.id = editing ? stored.id : id;
    if (nameInput.value.trim()) doc.name = nameInput.value.trim();
    doc.integration = integration.value;
    doc.source = sourceType.value === "csv"
      ? { type: "csv", path: path.value.trim(), delimiter: delimiter.value || "," }
      : { type: "sql", url: url.value.trim(), query: query.value };
    doc.key = { column: keyColumn.value.trim(), field: keyField.value.trim() };
    doc.mappings = mappings.read();
    doc.mode = mode.value;
    doc.schedule = kind.value === "every" ? { every: every.value.trim() }
      : kind.value === "cron" ? { cron: cron.value.trim(), ...(zone.value.trim() ? { timezone: zone.value.trim() } : {}) }
        : {};
    doc.warnings = { log: log.checked };
    if (share.value.trim() !== "") doc.warnings.rejected_share = Number(share.value);
    if (hook.value.trim()) doc.warnings.webhook_url = hook.value.trim();
    return doc;
  };

  const clear = () => {
    clearFieldProblems(form);
    problemsBox.replaceChildren();
  };
  const show = (problems, headline) => {
    const loose = placeProblems(form, problems);
    problemsBox.append(h("p", { class: "notice notice-error" },
      `${headline} ${problems.length} problem${problems.length === 1 ? "" : "s"}${loose.length < problems.length ? ", shown beside their fields" : ""}.`));
    if (loose.length) problemsBox.append(h("ul", { class: "problems" }, loose.map((p) => h("li", null, p.path ? `${p.path}: ${p.message}` : p.message))));
    form.querySelector("input[aria-invalid='true'], select[aria-invalid='true'], textarea[aria-invalid='true']")?.focus();
  };

  let handler = null;
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!handler || save.disabled) return;
    clear();
    const doc = read();
    if (doc.source.type === "sql" && /REDACTED/.test(doc.source.url)) {
      show([{ path: "source.url", message: "the password is hidden: type the URL again with its password" }], "Not saved:");
      return;
    }
    save.disabled = true;
    try {
      await handler(doc);
    } catch (err) {
      const body = err instanceof ApiError ? err.body : {};
      if (Array.isArray(body.problems) && body.problems.length) {
        show(body.problems, "Not saved:");
      } else {
        const msg = messageOf(err);
        const m = /^([A-Za-z0-9_.[\]-]+): ([\s\S]+)$/.exec(msg);
        if (m && document.getElementById(`field-${m[1]}`)) show([{ path: m[1], message: m[2] }], "Not saved:");
        else if (body.line !== undefined) show([{ path: "", message: msg }], "Not saved:");
        else problemsBox.append(h("p", { class: "notice notice-error" }, `Not saved: ${msg}`));
      }
    } finally {
      save.disabled = false;
    }
  });
  return { element: form, onSubmit: (fn) => { handler = fn; } };
}

/** Destination attribute (`id`) ← model column (`value`) rows. */
function mappingRows(initial) {
  const list = h("div", { class: "rows mappings", id: "mapping-rows" });
  const box = h("fieldset", { id: "field-mappings", class: "group" },
    h("legend", null, "Mappings", h("span", { class: "req", "aria-hidden": "true" }, " *")),
    h("p", { class: "help", id: "help-mappings" }, "Each row: destination attribute (exactly as the destination names it) ← model column."));
  box.setAttribute("aria-describedby", "help-mappings");
  const renumber = () => {
    [...list.querySelectorAll("[data-mapping]")].forEach((row, i) => {
      row.dataset.mapping = String(i);
      const idIn = row.querySelector(".mapping-id");
      const valIn = row.querySelector(".mapping-value");
      idIn.id = `field-mappings[${i}].id`;
      valIn.id = `field-mappings[${i}].value`;
      const [l1, l2] = row.querySelectorAll("label");
      l1.setAttribute("for", idIn.id);
      l2.setAttribute("for", valIn.id);
      l1.textContent = `Destination attribute (row ${i + 1})`;
      l2.textContent = `Model column (row ${i + 1})`;
      row.querySelector("[data-action='remove-mapping']").setAttribute("aria-label", `Remove mapping row ${i + 1}`);
    });
  };
  const add = (m = {}, focus = false) => {
    const idIn = h("input", { type: "text", class: "mapping-id", value: m.id ?? "", autocomplete: "off", spellcheck: "false" });
    const valIn = h("input", { type: "text", class: "mapping-value", value: m.value ?? "", autocomplete: "off", spellcheck: "false" });
    const row = h("div", { class: "row mapping", "data-mapping": "" },
      h("div", { class: "field" }, h("label"), idIn),
      h("span", { class: "arrow", "aria-hidden": "true" }, "←"),
      h("div", { class: "field" }, h("label"), valIn),
      h("button", { type: "button", class: "remove", "data-action": "remove-mapping", onclick: () => { row.remove(); renumber(); } }, "Remove"));
    list.append(row);
    renumber();
    if (focus) idIn.focus();
  };
  initial.forEach((m) => add(m));
  if (!initial.length) add();
  box.append(list, h("button", { type: "button", "data-action": "add-mapping", onclick: () => add({}, true) }, "Add mapping"));
  return {
    element: box,
    read: () => {
      for (const row of [...list.querySelectorAll("[data-mapping]")]) {
        if (!row.querySelector(".mapping-id").value.trim() && !row.querySelector(".mapping-value").value.trim()) row.remove();
      }
      renumber();
      return [...list.querySelectorAll("[data-mapping]")].map((row) => ({
        id: row.querySelector(".mapping-id").value.trim(),
        value: row.querySelector(".mapping-value").value.trim(),
      }));
    },
  };
}

