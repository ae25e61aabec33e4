// console.js: the console's entry: sign-in, the hash router, the nav and
// sign-out. Pages are ES modules `pages/<name>.js` exporting
// `render(root, params)`; see /tmp/console/CONTRACT.md.

import { api, clearToken, errorText, getToken, h, notice, setToken } from "./ui.js";

/** Top-level routes: the page module and the title of each. */
const PAGES = {
  overview: { title: "Overview", load: () => import("./pages/overview.js") },
  integrations: { title: "Integrations", load: () => import("./pages/integrations.js") },
  users: { title: "Users", load: () => import("./pages/users.js") },
  "dead-letters": { title: "Dead letters", load: () => import("./pages/dead-letters.js") },
  connectors: { title: "Connectors", load: () => import("./pages/connectors.js") },
  activations: { title: "Activations", load: () => import("./pages/activations.js") },
};

const DEFAULT_ROUTE = "#/overview";
const AFTER_SIGNIN = "prefsync.after-signin";
const SIGNIN_REASON = "prefsync.signin-reason";

/** Increases with every navigation: a render that is no longer current draws nothing more. */
let generation = 0;

/**
 * The route of a hash: `#/users/ann` → `{name: "users", params: {id: "ann"}}`;
 * `#/integrations/new?type=dotdigital` → `{name: "integrations",
 * params: {action: "new", new: true, type: "dotdigital"}}`. Query parameters
 * become params; the second part is `id` (decoded), or `action: "new"`.
 */
export function parseRoute(hash) {
  const raw = hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?", 2);
  const parts = path.split("/").filter((p) => p !== "");
  const params = Object.fromEntries(new URLSearchParams(query));
  const name = parts[0] ?? "";
  if (parts.length > 1) {
    const second = safeDecode(parts[1]);
    if (second === "new") {
      params.action = "new";
      params.new = true;
    } else {
      params.id = second;
    }
    if (parts.length > 2) params.rest = parts.slice(2).map(safeDecode);
  }
  return { name, params };
}

function safeDecode(text) {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** A fresh, empty `<main id="page">` in place of the current one. */
function freshPage(name) {
  const old = document.getElementById("page");
  const main = h("main", { id: "page", tabindex: "-1", "data-page": name });
  old.replaceWith(main);
  return main;
}

function setNav(name) {
  const nav = document.getElementById("nav");
  const signedIn = getToken() !== null;
  nav.hidden = !signedIn;
  for (const link of nav.querySelectorAll("a[href]")) {
    if (link.getAttribute("href") === `#/${name}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

/** Draws the page of the current hash. */
async function route() {
  const mine = ++generation;
  const hash = location.hash || DEFAULT_ROUTE;
  if (hash === "#/signin") return renderSignin(mine);
  if (getToken() === null) {
    sessionStorage.setItem(AFTER_SIGNIN, hash);
    location.replace("#/signin");
    return undefined;
  }
  const { name, params } = parseRoute(hash);
  const page = PAGES[name];
  if (!page) {
    location.replace(DEFAULT_ROUTE);
    return undefined;
  }
  setNav(name);
  document.title = `${page.title} · prefsync console`;
  const root = freshPage(name);
  window.scrollTo(0, 0);
  try {
    const module = await page.load();
    if (mine !== generation) return undefined;
    await module.render(root, params);
  } catch (err) {
    if (mine !== generation) return undefined;
    notice(root, "error", `This page could not be shown: ${errorText(err)}`);
  }
  if (mine !== generation) return undefined;
  if (root.dataset.ready !== "true") root.dataset.ready = "true";
  focusHeading(root);
  return undefined;
}

/** Focus moves to the new page's heading, unless the page focused something itself. */
function focusHeading(root) {
  const active = document.activeElement;
  if (active && active !== document.body && root.contains(active)) return; // the page chose
  const heading = root.querySelector("h1");
  if (heading) {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true });
  } else {
    root.focus({ preventScroll: true });
  }
}

function renderSignin(mine) {
  setNav("signin");
  document.getElementById("nav").hidden = true;
  document.title = "Sign in · prefsync console";
  const root = freshPage("signin");
  const reason = sessionStorage.getItem(SIGNIN_REASON);
  sessionStorage.removeItem(SIGNIN_REASON);
  const input = h("input", {
    id: "token", name: "token", type: "password", required: true,
    autocomplete: "off", spellcheck: "false", "aria-describedby": "token-help signin-error",
  });
  const error = h("p", { id: "signin-error", class: "problem", role: "alert" });
  const submit = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h("form", { id: "signin", class: "card signin", novalidate: true },
    h("h1", null, "Sign in"),
    h("p", { class: "lead" }, "The prefsync admin console. Sign in with the server's admin token."),
    h("div", { class: "field" },
      h("label", { for: "token" }, "Admin token"),
      input,
      h("p", { id: "token-help", class: "help" },
        "Kept in this browser tab only, until you sign out or close the tab. "
        + "It is the server's PREFSYNC_ADMIN_TOKEN or [server] admin_token, "
        + "or the one it generated into <data_dir>/admin-token."),
      error),
    h("div", { class: "actions" }, submit));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = input.value.trim();
    error.textContent = "";
    if (token === "") {
      error.textContent = "Admin token: enter the token.";
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    submit.disabled = true;
    try {
      await api("GET", "/v1/integrations", undefined, { token });
    } catch (err) {
      submit.disabled = false;
      error.textContent = errorText(err);
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    setToken(token);
    input.value = "";
    const next = sessionStorage.getItem(AFTER_SIGNIN);
    sessionStorage.removeItem(AFTER_SIGNIN);
    location.hash = next && next !== "#/signin" ? next : DEFAULT_ROUTE;
  });
  if (reason) root.append(h("p", { class: "notice notice-warning", role: "status", id: "signin-reason" },
    `Signed out: ${reason}`));
  root.append(form);
  root.dataset.ready = "true";
  if (mine === generation) input.focus();
}

function signOut() {
  clearToken();
  sessionStorage.removeItem(AFTER_SIGNIN);
  location.hash = "#/signin";
}

function start() {
  document.getElementById("signout").addEventListener("click", signOut);
  document.getElementById("skip-link").addEventListener("click", (event) => {
    event.preventDefault();
    const main = document.getElementById("page");
    const target = main.querySelector("h1") ?? main;
    if (target !== main) target.tabIndex = -1;
    target.focus();
  });
  window.addEventListener("hashchange", () => { route(); });
  if (!location.hash) location.replace(DEFAULT_ROUTE); // its hashchange draws the page
  else route();
}

start();
