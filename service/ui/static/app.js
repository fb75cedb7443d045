// The inspector's shell: the login form, hash routing, the nav, and one place for errors.
import { ApiError, call, key, seg } from "./api.js";
import { errorBox, field, h, show } from "./dom.js";
import { renderMemory } from "./view_memory.js";
import { renderSearch } from "./view_search.js";
import { renderTimeline } from "./view_timeline.js";
import { renderUsers } from "./view_users.js";
import { renderWork } from "./view_work.js";

const view = document.getElementById("view");
const nav = document.getElementById("nav");
const banner = document.getElementById("banner");
const logout = document.getElementById("logout");
let loginMessage = null;

let keepBanner = false;

/**
 * A message above the view: "info" for results of actions, "error" for failures. With
 * `survive`, it stays through the next navigation (an action that then moves the page).
 */
export function notify(text, kind = "info", survive = false) {
  keepBanner = survive;
  banner.className = `banner banner-${kind}`;
  show(banner, h("span", {}, text),
    h("button", { type: "button", class: "link", "aria-label": "Dismiss message", onclick: () => { banner.hidden = true; } }, "×"));
  banner.hidden = false;
}

/** The route in the hash: "#/u/alice/search?q=x" -> {parts: ["u", "alice", "search"], params}. */
function route() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, search] = raw.split("?", 2);
  const parts = path ? path.split("/").map(decodeURIComponent) : [];
  return { parts, params: new URLSearchParams(search || "") };
}

function renderNav(user, section) {
  const link = (href, text, current) =>
    h("a", { href, "aria-current": current ? "page" : null }, text);
  const items = [link("#/users", "Users", section === "users")];
  if (user !== null) {
    const base = `#/u/${seg(user)}`;
    items.push(
      h("span", { class: "nav-user", title: user }, user),
      link(base, "Timeline", section === "timeline"),
      link(`${base}/search`, "Search", section === "search"),
      link(`${base}/work`, "Pending & failed", section === "work"),
    );
  }
  show(nav, items);
}

function renderLogin() {
  logout.hidden = true;
  show(nav);
  const input = h("input", { type: "password", name: "key", id: "key", required: true, autocomplete: "off", spellcheck: "false", placeholder: "mlk_…" });
  const status = h("p", { class: "muted", role: "status" });
  const form = h("form", { class: "card login", "aria-labelledby": "login-h" },
    h("h1", { id: "login-h" }, "Open the memory inspector"),
    h("p", {}, "Paste an API key from `memlane keys create`. It stays in this tab only (sessionStorage) and is sent as the Authorization header."),
    loginMessage ? errorBox(loginMessage) : null,
    field("API key", input),
    h("button", { type: "submit" }, "Open"),
    status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    key.set(input.value.trim());
    status.textContent = "Checking the key…";
    try {
      await call("GET", "/v1/users?limit=1");
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return;  // unauthorized() re-renders
      key.clear();
      status.textContent = "";
      form.insertBefore(errorBox(err), input.parentElement);
      return;
    }
    loginMessage = null;
    banner.hidden = true;
    if (!route().parts.length || route().parts[0] === "login") location.hash = "#/users";
    else render();
  });
  show(view, form);
  input.focus();
}

export const describe = (err) => (err instanceof ApiError ? err.describe() : `unexpected error: ${err.message}`);

/** A 401 anywhere: forget the key and show the login form, with no data left on the page. */
function unauthorized(err) {
  generation += 1;
  key.clear();
  loginMessage = `The key was refused (${err.describe()}). Enter a valid key.`;
  banner.hidden = true;
  renderLogin();
}

let generation = 0;

async function render() {
  if (!key.get()) return renderLogin();
  logout.hidden = false;
  const mine = ++generation;
  const { parts, params } = route();
  // Each view draws into its own root; a stale view (the user moved on) writes into nothing.
  const root = h("div", { class: "view-root" });
  show(view, root);
  const ctx = { root, params, go: (hash) => { location.hash = hash; }, notify, describe };
  // ctx.notify(text, "info", true) before ctx.go(...) keeps the message on the next view.
  try {
    if (!parts.length || parts[0] === "users" || parts[0] === "login") {
      renderNav(null, "users");
      await renderUsers(ctx);
    } else if (parts[0] === "u" && parts.length >= 2) {
      const user = parts[1];
      ctx.user = user;
      if (parts.length === 2) { renderNav(user, "timeline"); await renderTimeline(ctx); }
      else if (parts[2] === "search") { renderNav(user, "search"); await renderSearch(ctx); }
      else if (parts[2] === "work") { renderNav(user, "work"); await renderWork(ctx); }
      else if (parts[2] === "m" && parts.length === 4) { renderNav(user, "timeline"); await renderMemory(ctx, parts[3]); }
      else throw new Error(`no such page: ${location.hash}`);
    } else {
      throw new Error(`no such page: ${location.hash}`);
    }
  } catch (err) {
    if (mine !== generation) return;
    if (err instanceof ApiError && err.status === 401) return;  // the login form is up
    const title = err instanceof ApiError ? err.title() : "Something went wrong";
    show(root, h("h1", {}, title), errorBox(err, false),  // the h1 already says it
      h("p", { class: "muted" }, "Nothing was changed. The page stays usable: move on, or try again."),
      h("button", { type: "button", onclick: render }, "Try again"));
  }
}

window.addEventListener("memlane:unauthorized", (event) => unauthorized(event.detail));
window.addEventListener("hashchange", async () => {
  if (keepBanner) keepBanner = false;
  else banner.hidden = true;
  await render();
  // Keyboard users continue from the new content, not from a link that was replaced.
  if (!document.activeElement || document.activeElement === document.body) view.focus({ preventScroll: true });
});
logout.addEventListener("click", () => {
  key.clear();
  loginMessage = null;
  location.hash = "#/login";
  renderLogin();
});
render();
