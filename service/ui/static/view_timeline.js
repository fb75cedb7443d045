// One user: the timeline of memories (newest first) with kind badges, event times at their
// granularity and status; superseded versions greyed with a link to their successor.
import { call, query, seg } from "./api.js";
import { errorBox, field, h, show } from "./dom.js";
import { kindBadge, statusBadge, when } from "./format.js";

const PAGE = 100;
const KINDS = ["", "raw", "observation", "insight", "custom"];
const STATUSES = ["active", "superseded", "deleted", "all"];

function select(name, options, value, labels) {
  const el = h("select", { name });
  for (const option of options) {
    el.append(h("option", { value: option, selected: option === value }, labels[option] || option));
  }
  return el;
}

export function memoryItem(user, m) {
  const base = `#/u/${seg(user)}`;
  const successor = m.superseded_by && m.superseded_by !== "archived"
    ? h("a", { href: `${base}/m/${seg(m.superseded_by)}`, class: "successor" }, "see the version that replaced it →")
    : m.superseded_by === "archived" ? h("span", { class: "muted" }, "archived (replaced by nothing)") : null;
  return h("li", { class: `memory status-${m.status}` },
    h("div", { class: "meta" }, kindBadge(m.kind), when(m), m.status !== "active" ? statusBadge(m.status) : null,
      m.reason ? h("span", { class: "muted" }, `reason: ${m.reason}`) : null),
    h("a", { class: "content", href: `${base}/m/${seg(m.id)}`, lang: m.language || null }, m.content),
    successor ? h("p", { class: "small" }, successor) : null);
}

export async function renderTimeline(ctx) {
  const p = ctx.params;
  const kind = p.get("kinds") || "", status = p.get("status") || "active";
  const since = p.get("since") || "", until = p.get("until") || "";
  const kindEl = select("kinds", KINDS, kind, { "": "all kinds" });
  const statusEl = select("status", STATUSES, status, { all: "all statuses" });
  const sinceEl = h("input", { type: "date", name: "since", value: since });
  const untilEl = h("input", { type: "date", name: "until", value: until });
  const form = h("form", { class: "toolbar filters", "aria-label": "Filter memories" },
    field("Kind", kindEl), field("Status", statusEl), field("Recorded from", sinceEl), field("Recorded until", untilEl),
    h("button", { type: "submit" }, "Apply"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    ctx.go(`#/u/${seg(ctx.user)}${query({ kinds: kindEl.value, status: statusEl.value, since: sinceEl.value, until: untilEl.value })}`);
  });
  const list = h("ol", { class: "timeline", "aria-label": "Memories, newest recorded first" });
  const status_ = h("p", { class: "muted", role: "status" }, "Loading…");
  const more = h("div", { class: "more" });
  show(ctx.root, h("h1", {}, h("span", { class: "muted" }, "Memories of "), ctx.user), form, status_, list, more);

  const load = async (cursor) => {
    const params = { kinds: kind, status, since, until, cursor, limit: PAGE };
    const page = await call("GET", `/v1/users/${seg(ctx.user)}/memories${query(params)}`);
    list.append(...page.memories.map((m) => memoryItem(ctx.user, m)));
    const n = list.children.length;
    status_.textContent = n ? `${n} memor${n === 1 ? "y" : "ies"}, newest recorded first` : "No memories match these filters.";
    show(more);
    if (page.cursor) {
      const button = h("button", { type: "button" }, "Show older memories");
      button.addEventListener("click", async () => {
        button.disabled = true;
        try { await load(page.cursor); } catch (err) { show(more, errorBox(err)); }
      });
      more.append(button);
    }
  };
  await load(null);
}

