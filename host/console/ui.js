// ui.js: the helpers every console page uses (see /tmp/console/CONTRACT.md).
//
// Contract exports (names and signatures are stable): api, ApiError, h, table,
// fmtTime, fmtAge, notice, confirmDialog, download.
// Extras: svg, tableWrap, errorText, showError, ready, getToken, setToken, clearToken.
//
// Never put data into innerHTML: build nodes with h(), whose string children
// become text nodes.

const TOKEN_KEY = "prefsync.token";

/** The admin token of this tab (sessionStorage only), or null. */
export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/** Keeps the admin token for this tab only. */
export function setToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

/** Forgets the admin token. */
export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/**
 * A non-2xx answer of the API. `body` is the parsed JSON error
 * (`{error, message, problems?: [{path, message}], ...}`); `message` is
 * always set (copied from `error` when the API sent none).
 */
export class ApiError extends Error {
  constructor(status, body) {
    const b = body && typeof body === "object" ? body : { error: String(body ?? "") };
    if (b.message === undefined) b.message = b.error ?? `HTTP ${status}`;
    if (b.error === undefined) b.error = b.message;
    super(b.message);
    this.name = "ApiError";
    this.status = status;
    this.body = b;
  }
}

/**
 * Calls the API: `fetch` with the bearer token, JSON in and out.
 * With `{raw: true}`, `body` (a Uint8Array, ArrayBuffer or Blob) is sent as
 * `application/wasm`. `{token}` overrides the stored token (sign-in check).
 * A non-2xx answer throws ApiError; a 401 also forgets the token and sends
 * the tab back to sign-in (unless `{token}` was given).
 */
export async function api(method, path, body, { raw = false, token } = {}) {
  const bearer = token ?? getToken() ?? "";
  const headers = { Accept: "application/json", Authorization: `Bearer ${bearer}` };
  const init = { method, headers, cache: "no-store", credentials: "omit", redirect: "error" };
  if (body !== undefined && body !== null) {
    if (raw) {
      headers["Content-Type"] = "application/wasm";
      init.body = body;
    } else {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, { error: `the server could not be reached (${e.message})` });
  }
  const text = await response.text();
  let parsed = null;
  if (text !== "") {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = response.ok ? text : { error: text };
    }
  }
  if (!response.ok) {
    const err = new ApiError(response.status, parsed ?? { error: `HTTP ${response.status}` });
    if (response.status === 401 && token === undefined) {
      clearToken();
      sessionStorage.setItem("prefsync.signin-reason", err.body.message);
      window.dispatchEvent(new CustomEvent("prefsync:unauthorized", { detail: err }));
      if (location.hash !== "#/signin") location.hash = "#/signin";
    }
    throw err;
  }
  return parsed;
}

const PROPERTY_ATTRS = new Set([
  "value", "checked", "disabled", "selected", "hidden", "multiple", "required",
  "readOnly", "indeterminate", "textContent", "open",
]);

function setAttrs(el, attrs, isSvg) {
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === "class" || key === "className") {
      el.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    } else if (key === "for" || key === "htmlFor") {
      el.setAttribute("for", value);
    } else if (key === "style" && typeof value === "object") {
      Object.assign(el.style, value); // from script: allowed by the CSP
    } else if (key === "dataset" && typeof value === "object") {
      for (const [k, v] of Object.entries(value)) if (v !== undefined && v !== null) el.dataset[k] = v;
    } else if (!isSvg && PROPERTY_ATTRS.has(key)) {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
}

function appendChildren(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false || child === true) continue;
    if (Array.isArray(child)) appendChildren(el, child);
    else if (child instanceof Node) el.append(child);
    else el.append(document.createTextNode(String(child)));
  }
}

/**
 * A DOM element. `attrs`: `class` (string or array), `for`, `id`, `data-*`,
 * `aria-*`, `role`, `type`, `href`, … as attributes; `value`, `checked`,
 * `disabled`, `selected`, `hidden`, `required`, `readOnly` as properties;
 * `onclick`, `onsubmit`, … (functions) as listeners; `null`/`false` skipped.
 * Children: nodes, strings/numbers (text nodes), arrays, null (skipped).
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  appendChildren(el, children); // first, so `value` can pick a <select>'s option
  setAttrs(el, attrs, false);
  return el;
}

/** Like h(), for SVG elements (`svg`, `rect`, `g`, `text`, `title`, …). */
export function svg(tag, attrs, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  appendChildren(el, children);
  setAttrs(el, attrs, true);
  return el;
}

function cellContent(value) {
  if (value === undefined || value === null || value === "") return "—";
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (typeof value === "object" && !(value instanceof Node) && !Array.isArray(value)) {
    return JSON.stringify(value);
  }
  return value;
}

/**
 * A table: `<table data-table="<id>">`, one `<tr data-id>` per row, cells
 * `<td data-col="<key>">`.
 * - `columns`: `[{key, label?, render?(row) → node|string|array, class?, numeric?}]`
 *   (a plain string is `{key: s, label: s}`).
 * - `rows`: objects; a row's id is `row.id` unless `rowId(row)` says otherwise.
 * - options: `id` (the data-table name), `rowId`, `caption`, `empty` (text when
 *   there are no rows), `label` (aria-label when there is no caption).
 * Returns the `<table>` element.
 */
export function table(columns, rows, { id, rowId, caption, empty = "Nothing to show.", label } = {}) {
  const cols = columns.map((c) => (typeof c === "string" ? { key: c, label: c } : c));
  const idOf = typeof rowId === "function" ? rowId : (typeof id === "function" ? id : (r) => r.id);
  const name = typeof id === "string" ? id : undefined;
  const head = h("thead", null,
    h("tr", null, cols.map((c) => h("th", {
      scope: "col", "data-col": c.key, class: c.numeric ? "num" : null,
    }, c.label ?? c.key))));
  const body = h("tbody");
  for (const row of rows ?? []) {
    const rid = idOf(row);
    body.append(h("tr", { "data-id": rid === undefined || rid === null ? null : String(rid) },
      cols.map((c) => h("td", {
        "data-col": c.key,
        class: [c.class, c.numeric ? "num" : null].filter(Boolean).join(" ") || null,
      }, cellContent(c.render ? c.render(row) : row[c.key])))));
  }
  if (!rows || rows.length === 0) {
    body.append(h("tr", { class: "empty" }, h("td", { colspan: String(cols.length) }, empty)));
  }
  return h("table", { "data-table": name, "aria-label": caption ? null : label },
    caption ? h("caption", null, caption) : null, head, body);
}

/**
 * A table in a horizontally scrollable box (for narrow screens): a
 * keyboard-focusable region named like the table.
 */
export function tableWrap(tableElement) {
  const name = tableElement.getAttribute("aria-label") ?? tableElement.caption?.textContent ?? "Table";
  return h("div", { class: "table-wrap", role: "region", tabindex: "0", "aria-label": name }, tableElement);
}

const pad = (n, w = 2) => String(n).padStart(w, "0");

/** A time in ms since the epoch as `YYYY-MM-DD HH:MM:SS UTC`; null → "—". */
export function fmtTime(ms) {
  if (ms === undefined || ms === null || Number.isNaN(Number(ms))) return "—";
  const d = new Date(Number(ms));
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} `
    + `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
}

/** An age in seconds as `42 s`, `5 min`, `3 h 5 min`, `2 d 3 h`; null → "—". */
export function fmtAge(seconds) {
  if (seconds === undefined || seconds === null || Number.isNaN(Number(seconds))) return "—";
  const s = Math.max(0, Math.floor(Number(seconds)));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) {
    const m = Math.floor((s % 3600) / 60);
    return `${Math.floor(s / 3600)} h${m ? ` ${m} min` : ""}`;
  }
  const hrs = Math.floor((s % 86400) / 3600);
  return `${Math.floor(s / 86400)} d${hrs ? ` ${hrs} h` : ""}`;
}

/**
 * Appends a notice to `root`: `<p class="notice notice-<kind>">` where kind
 * is `error` (role=alert), `warning`, `success` or `info` (role=status).
 * Returns the element (remove it with `.remove()`).
 */
export function notice(root, kind, text) {
  const el = h("p", {
    class: `notice notice-${kind}`,
    role: kind === "error" ? "alert" : "status",
  }, text);
  root.append(el);
  return el;
}

/** The text of an error for a person: the message, then each `path: message` problem. */
export function errorText(err) {
  if (err instanceof ApiError) {
    const problems = Array.isArray(err.body.problems) ? err.body.problems : [];
    const lines = [err.body.message];
    for (const p of problems) lines.push(p.path ? `${p.path}: ${p.message}` : p.message);
    if (err.body.line !== undefined) lines.push(`at line ${err.body.line}, column ${err.body.column ?? "?"}`);
    return lines.join("\n");
  }
  return err?.message ?? String(err);
}

/** notice(root, "error", errorText(err)), for catch blocks. */
export function showError(root, err) {
  return notice(root, "error", errorText(err));
}

/** Marks a page as drawn (the browser test waits on `data-ready="true"`). */
export function ready(root) {
  root.dataset.ready = "true";
}

/**
 * An in-page modal dialog with `text`, a `data-action="confirm"` and a
 * `data-action="cancel"` button; resolves true on confirm, false on cancel
 * or Escape.
 */
export function confirmDialog(text, { confirmLabel = "Confirm", cancelLabel = "Cancel" } = {}) {
  return new Promise((resolve) => {
    const opener = document.activeElement;
    const dialog = h("dialog", { class: "confirm", "aria-labelledby": "confirm-text" },
      h("p", { id: "confirm-text" }, text));
    const finish = (answer) => {
      if (dialog.open) dialog.close();
      dialog.remove();
      if (opener && typeof opener.focus === "function" && opener.isConnected) opener.focus();
      resolve(answer);
    };
    const cancel = h("button", { type: "button", "data-action": "cancel", onclick: () => finish(false) }, cancelLabel);
    const ok = h("button", { type: "button", class: "danger", "data-action": "confirm", onclick: () => finish(true) }, confirmLabel);
    dialog.append(h("div", { class: "actions" }, cancel, ok));
    dialog.addEventListener("cancel", (e) => { e.preventDefault(); finish(false); });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}

/** Offers `text` as a file named `filename` of type `mime` (Blob + object URL). */
export function download(filename, mime, text) {
  const url = URL.createObjectURL(new Blob([text], { type: mime }));
  const a = h("a", { href: url, download: filename, class: "visually-hidden" }, filename);
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** Takes every problem `placeProblems` put in `scope` away again. */
export function clearFieldProblems(scope) {
  scope.querySelectorAll(".problem").forEach((p) => p.remove());
  scope.querySelectorAll("[aria-invalid]").forEach((el) => {
    el.removeAttribute("aria-invalid");
    const ids = (el.getAttribute("aria-describedby") ?? "").split(" ").filter((x) => x && !x.startsWith("problem-"));
    if (ids.length) el.setAttribute("aria-describedby", ids.join(" ")); else el.removeAttribute("aria-describedby");
  });
}

/** The problem beside the field (or fieldset) it names; returns those with no place. */
export function placeProblems(scope, problems) {
  const loose = [];
  for (const p of problems) {
    const path = String(p.path ?? "");
    const target = path ? findTarget(scope, path) : null;
    if (!target) { loose.push(p); continue; }
    const pid = `problem-${target.path}`;
    let el = document.getElementById(pid);
    if (el) {
      el.textContent = `${el.textContent}; ${p.message}`;
      continue;
    }
    el = h("p", { class: "problem", id: pid, role: "alert" },
      target.path === path ? p.message : `${path}: ${p.message}`);
    const node = target.node;
    if (node.tagName === "FIELDSET") {
      const legend = node.querySelector(":scope > legend");
      if (legend) legend.after(el); else node.prepend(el);
    } else {
      node.after(el);
    }
    const closed = node.closest("details");
    if (closed) closed.open = true;
    node.setAttribute("aria-invalid", "true");
    const described = (node.getAttribute("aria-describedby") ?? "").split(" ").filter(Boolean);
    node.setAttribute("aria-describedby", [...described, pid].join(" "));
  }
  return loose;
}

/** The field for `path`, else the nearest enclosing field or fieldset. */
function findTarget(scope, path) {
  let p = path;
  while (p) {
    const node = document.getElementById(`field-${p}`);
    if (node && scope.contains(node)) return { node, path: p };
    const cut = Math.max(p.lastIndexOf("."), p.lastIndexOf("["));
    if (cut <= 0) break;
    p = p.slice(0, cut);
  }
  return null;
}
