// Users: find a user by id prefix; each with memory count, pending turns, dead letters, activity.
import { call, query, seg } from "./api.js";
import { errorBox, facts, field, h, show } from "./dom.js";
import { count, stamp } from "./format.js";

const PAGE = 50;

function userCard(u) {
  const base = `#/u/${seg(u.user_id)}`;
  return h("li", { class: "card user" },
    h("a", { class: "user-id", href: base }, u.user_id),
    facts([
      ["memories", count(u.memories)],
      ["pending turns", count(u.pending)],
      ["dead letters", u.dead_letters === undefined ? "—" : count(u.dead_letters)],
      ["last activity", u.last_activity ? stamp(u.last_activity) : "—"],
    ]),
    h("p", { class: "links" },
      h("a", { href: `${base}/search`, "aria-label": `Search ${u.user_id}'s memories` }, "Search"),
      h("a", { href: `${base}/work`, "aria-label": `Pending and failed work of ${u.user_id}` }, "Pending & failed")));
}

export async function renderUsers(ctx) {
  const prefix = ctx.params.get("prefix") || "";
  const input = h("input", { type: "search", name: "prefix", value: prefix, autocomplete: "off", placeholder: "e.g. alice" });
  const form = h("form", { class: "toolbar", role: "search", "aria-label": "Find users" },
    field("User id starts with", input), h("button", { type: "submit" }, "Find"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    ctx.go(`#/users${query({ prefix: input.value.trim() })}`);
  });
  const list = h("ul", { class: "users", "aria-label": "Users" });
  const status = h("p", { class: "muted", role: "status" }, "Loading…");
  const more = h("div", { class: "more" });
  show(ctx.root, h("h1", {}, "Users"), form, status, list, more);

  const load = async (cursor) => {
    const page = await call("GET", `/v1/users${query({ prefix, cursor, limit: PAGE })}`);
    // The prefix is applied here too, so the page is right even on a server that ignores it.
    const users = page.users.filter((u) => u.user_id.startsWith(prefix));
    list.append(...users.map(userCard));
    const shown = list.children.length;
    status.textContent = shown
      ? `${shown} user${shown === 1 ? "" : "s"}${prefix ? ` starting with “${prefix}”` : ""}`
      : prefix ? `No user id starts with “${prefix}”.` : "No users yet.";
    show(more);
    if (page.cursor) {
      const button = h("button", { type: "button" }, "Show more users");
      button.addEventListener("click", async () => {
        button.disabled = true;
        try { await load(page.cursor); } catch (err) { show(more, errorBox(err)); }
      });
      more.append(button);
    }
  };
  await load(null);
}
