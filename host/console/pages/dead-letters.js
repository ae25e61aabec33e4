// pages/dead-letters.js: the deliveries given up on, per integration, with
// their last error; replay one (its row's button) or all of an integration's.
//
// Data: GET /v1/dead-letters[?integration=<id>], GET /v1/integrations;
// POST /v1/dead-letters/{id}/replay, POST /v1/integrations/{id}/dead-letters/replay.
// Route: #/dead-letters[?integration=<id>][&replayed=1].

import { api, errorText, fmtTime, h, notice, table, tableWrap } from "../ui.js";

export async function render(root, params = {}) {
  let filter = typeof params.integration === "string" ? params.integration : "";
  let showReplayed = params.replayed === "1";

  const select = h("select", { id: "integration-filter", name: "integration" },
    h("option", { value: "" }, "All integrations"));
  const replayedBox = h("input", { type: "checkbox", id: "show-replayed", checked: showReplayed });
  const result = h("p", { id: "result", role: "status", class: "result" });
  const errors = h("div", { id: "dead-letter-errors" });
  const summaryBox = h("div", { id: "dead-letter-summary" });
  const listTitle = h("h2", { id: "dead-letters-title" }, "Dead letters");
  const listBox = h("div", { id: "dead-letter-list" });

  root.append(
    h("h1", null, "Dead letters"),
    h("p", { class: "lead" }, "Deliveries given up on after their retries, with the last error. "
      + "Replaying puts a delivery back in the outbox: it is sent again with the user's current state."),
    h("div", { class: "inline-form", role: "group", "aria-label": "Filter" },
      h("div", { class: "field" }, h("label", { for: "integration-filter" }, "Integration"), select),
      h("div", { class: "field field-check" }, replayedBox,
        h("label", { for: "show-replayed" }, "Show replayed dead letters"))),
    result,
    errors,
    h("h2", { id: "by-integration-title" }, "By integration"),
    summaryBox,
    listTitle,
    listBox,
  );

  const updateHash = () => {
    const query = new URLSearchParams();
    if (filter) query.set("integration", filter);
    if (showReplayed) query.set("replayed", "1");
    const text = query.toString();
    history.replaceState(null, "", `#/dead-letters${text ? `?${text}` : ""}`);
  };
  select.addEventListener("change", () => { filter = select.value; updateHash(); load(); });
  replayedBox.addEventListener("change", () => { showReplayed = replayedBox.checked; updateHash(); load(); });

  /** Replays one dead letter or all of an integration's, then reloads. */
  async function replay(button, path, what) {
    button.disabled = true;
    result.classList.remove("error");
    result.textContent = `Replaying ${what}…`;
    let answer;
    try {
      answer = await api("POST", path);
    } catch (err) {
      if (!root.isConnected) return;
      button.disabled = false;
      result.classList.add("error");
      result.textContent = `Could not replay ${what}: ${errorText(err)}`;
      return;
    }
    if (!root.isConnected) return;
    const n = Number(answer?.replayed ?? 0);
    result.textContent = n === 0
      ? `Nothing to replay: ${what} had no dead letters waiting.`
      : `Replayed ${n} dead ${n === 1 ? "letter" : "letters"} (${what}): back in the outbox.`;
    await load();
  }

  async function load() {
    delete root.dataset.ready;
    errors.replaceChildren();
    let letters;
    let integrations;
    try {
      [letters, integrations] = await Promise.all([
        api("GET", `/v1/dead-letters${filter ? `?integration=${encodeURIComponent(filter)}` : ""}`),
        api("GET", "/v1/integrations"),
      ]);
    } catch (err) {
      if (!root.isConnected) return;
      notice(errors, "error", `Could not load the dead letters: ${errorText(err)}`);
      root.dataset.ready = "true";
      return;
    }
    if (!root.isConnected) return;
    fillSelect(select, integrations, filter);
    const waiting = letters.filter((d) => d.replayed_at_ms === null || d.replayed_at_ms === undefined);
    summaryBox.replaceChildren(summaryTable(letters, integrations, filter, replay));
    const shown = showReplayed ? letters : waiting;
    listTitle.textContent = showReplayed
      ? `Dead letters (${waiting.length} waiting, ${letters.length - waiting.length} replayed)`
      : `Dead letters waiting (${waiting.length})`;
    listBox.replaceChildren(lettersTable(shown, replay));
    root.dataset.ready = "true";
  }

  await load();
}

function fillSelect(select, integrations, filter) {
  const ids = integrations.map((i) => i.id).filter(Boolean).sort();
  if (filter && !ids.includes(filter)) ids.unshift(filter);
  select.replaceChildren(h("option", { value: "" }, "All integrations"),
    ...ids.map((id) => h("option", { value: id, selected: id === filter }, id)));
  select.value = filter;
}

function summaryTable(letters, integrations, filter, replay) {
  const byId = new Map();
  const typeOf = new Map(integrations.map((i) => [i.id, i.type_id]));
  for (const d of letters) {
    const s = byId.get(d.integration_id) ?? { id: d.integration_id, waiting: 0, replayed: 0, newest: null };
    if (d.replayed_at_ms === null || d.replayed_at_ms === undefined) {
      s.waiting += 1;
      if (!s.newest || d.created_at_ms > s.newest.created_at_ms) s.newest = d;
    } else {
      s.replayed += 1;
    }
    byId.set(d.integration_id, s);
  }
  // A filtered integration shows even without dead letters, so it can be replayed from here.
  if (filter && !byId.has(filter)) byId.set(filter, { id: filter, waiting: 0, replayed: 0, newest: null });
  const rows = [...byId.values()].sort((a, b) => b.waiting - a.waiting || a.id.localeCompare(b.id));
  return tableWrap(table([
    { key: "integration_id", label: "Integration", render: (r) => [
      h("a", { href: `#/integrations/${encodeURIComponent(r.id)}` }, r.id),
      typeOf.has(r.id) ? h("span", { class: "muted" }, ` ${typeOf.get(r.id)}`) : h("span", { class: "muted" }, " (deleted)")] },
    { key: "waiting", label: "Waiting", numeric: true },
    { key: "replayed", label: "Replayed", numeric: true },
    { key: "last_error", label: "Latest error", render: (r) => (r.newest ? [h("span", { class: "muted" }, `${fmtTime(r.newest.created_at_ms)} `), r.newest.last_error] : null) },
    { key: "actions", label: "Actions", render: (r) => h("button", {
      type: "button", class: "primary small", "data-action": "replay-all", "data-integration": r.id,
      disabled: r.waiting === 0 || !typeOf.has(r.id),
      "aria-label": `Replay all ${r.waiting} dead letters of ${r.id}`,
      onclick: (e) => replay(e.currentTarget, `/v1/integrations/${encodeURIComponent(r.id)}/dead-letters/replay`, `all of ${r.id}`),
    }, `Replay all (${r.waiting})`) },
  ], rows, { id: "dead-letter-integrations", label: "Dead letters by integration", empty: "No dead letters: every delivery went through or is still being retried." }));
}

function lettersTable(letters, replay) {
  return tableWrap(table([
    { key: "id", label: "#", numeric: true },
    { key: "integration_id", label: "Integration" },
    { key: "organization_user_id", label: "User", render: (r) => h("a", { href: `#/users/${encodeURIComponent(r.organization_user_id)}` }, r.organization_user_id) },
    { key: "created_at_ms", label: "Dead-lettered", render: (r) => fmtTime(r.created_at_ms) },
    { key: "attempts", label: "Attempts", numeric: true },
    { key: "version", label: "State version", numeric: true },
    { key: "last_error", label: "Last error", class: "error-text" },
    { key: "replayed_at_ms", label: "Status", render: (r) => (r.replayed_at_ms
      ? [h("span", { class: "badge badge-off" }, "replayed"), " ", h("span", { class: "muted" }, fmtTime(r.replayed_at_ms))]
      : h("span", { class: "badge badge-warn" }, "waiting")) },
    { key: "actions", label: "Actions", render: (r) => (r.replayed_at_ms ? null : h("button", {
      type: "button", class: "small", "data-action": "replay",
      "aria-label": `Replay dead letter ${r.id} (${r.integration_id}, user ${r.organization_user_id})`,
      onclick: (e) => replay(e.currentTarget, `/v1/dead-letters/${encodeURIComponent(r.id)}/replay`, `dead letter ${r.id}`),
    }, "Replay")) },
  ], letters, { id: "dead-letters", label: "Dead letters", empty: "No dead letters here." }));
}
