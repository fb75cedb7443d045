// One memory: its facts, source turns, metadata and history chain; edit (a new version) and
// delete (after a confirmation step).
import { ApiError, call, query, seg } from "./api.js";
import { errorBox, facts, field, h, panel, show } from "./dom.js";
import { eventTime, kindBadge, stamp, statusBadge } from "./format.js";

function historyItem(user, v, currentId) {
  const current = v.id === currentId;
  return h("li", { class: `version status-${v.status}${current ? " current" : ""}`, "aria-current": current ? "true" : null },
    h("div", { class: "meta" }, statusBadge(v.status), v.reason ? h("span", { class: "muted" }, `reason: ${v.reason}`) : null,
      h("span", { class: "muted" }, `${stamp(v.valid_from || v.recorded_at)} → ${v.valid_to ? stamp(v.valid_to) : "now"}`)),
    current ? h("p", { class: "content" }, v.content, h("span", { class: "muted" }, " (this version)"))
      : h("a", { class: "content", href: `#/u/${seg(user)}/m/${seg(v.id)}` }, v.content));
}

async function sourceTurns(ctx, m, box) {
  if (!m.source_turn_ids.length) return show(box, h("p", { class: "muted" }, "No source turns (imported or written by hand)."));
  // The buffer keeps a turn's text only until it is consolidated: a turn still there shows
  // its words; the others show their ids (the memory above is what was kept of them).
  const answer = await call("GET", `/v1/users/${seg(ctx.user)}/turns${query({ limit: 1000 })}`);
  const byId = new Map(answer.turns.map((t) => [t.turn_id, t]));
  show(box,
    m.session_id ? h("p", { class: "muted" }, `session ${m.session_id}`) : null,
    h("ol", { class: "turns", "aria-label": "Source turns" }, m.source_turn_ids.map((id) => {
      const t = byId.get(id);
      return t ? h("li", {}, h("span", { class: "badge" }, t.role), " ", h("span", { class: "muted" }, stamp(t.ts)), " ", t.content)
        : h("li", {}, h("code", {}, id));
    })));
}

function editForm(ctx, m, area) {
  const text = h("textarea", { name: "content", rows: 3, required: true }, m.content);
  const form = h("form", { class: "card edit", "aria-label": "Edit memory" },
    field("New content (saved as a new version)", text),
    h("div", { class: "buttons" }, h("button", { type: "submit" }, "Save new version"),
      h("button", { type: "button", class: "secondary", onclick: () => show(area) }, "Cancel")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const next = await call("PATCH", `/v1/users/${seg(ctx.user)}/memories/${seg(m.id)}`, { content: text.value });
      ctx.notify("Saved: this is the new version; the old one is kept in the history.", "info", true);
      ctx.go(`#/u/${seg(ctx.user)}/m/${seg(next.id)}`);
    } catch (err) {
      form.append(errorBox(err));
    }
  });
  show(area, form);
  text.focus();
}

function confirmDelete(ctx, m, area) {
  const yes = h("button", { type: "button", class: "danger" }, "Yes, delete it");
  const box = h("div", { class: "card confirm", role: "alertdialog", "aria-labelledby": "confirm-h" },
    h("p", { id: "confirm-h" }, "Delete this memory? Search will no longer return it; it stays in the history as deleted."),
    h("div", { class: "buttons" }, yes, h("button", { type: "button", class: "secondary", onclick: () => show(area) }, "Cancel")));
  yes.addEventListener("click", async () => {
    yes.disabled = true;
    try {
      await call("DELETE", `/v1/users/${seg(ctx.user)}/memories/${seg(m.id)}`);
      ctx.notify(`Deleted the memory “${m.content.slice(0, 60)}”.`, "info", true);
      ctx.go(`#/u/${seg(ctx.user)}`);
    } catch (err) {
      yes.disabled = false;
      box.append(errorBox(err));
    }
  });
  show(area, box);
  yes.focus();
}

export async function renderMemory(ctx, id) {
  const base = `/v1/users/${seg(ctx.user)}/memories/${seg(id)}`;
  const [m, history] = await Promise.all([call("GET", base), call("GET", `${base}/history`)]);
  const area = h("div", { class: "action-area" });
  const actions = m.status === "active"
    ? h("div", { class: "buttons" },
      h("button", { type: "button", onclick: () => editForm(ctx, m, area) }, "Edit"),
      h("button", { type: "button", class: "danger", onclick: () => confirmDelete(ctx, m, area) }, "Delete…"))
    : h("p", { class: "muted" }, m.superseded_by && m.superseded_by !== "archived"
      ? h("a", { href: `#/u/${seg(ctx.user)}/m/${seg(m.superseded_by)}` }, "An old version: open the version that replaced it →")
      : `This memory is ${m.status}; only active memories can be edited or deleted.`);
  const turns = panel("Source turns", "turns");
  const hist = panel(`History (${history.versions.length} version${history.versions.length === 1 ? "" : "s"})`, "history");
  show(hist.body, h("ol", { class: "history" }, history.versions.map((v) => historyItem(ctx.user, v, m.id))));
  const meta = Object.keys(m.metadata || {}).length ? h("pre", { class: "json" }, JSON.stringify(m.metadata, null, 2)) : h("p", { class: "muted" }, "No metadata.");
  show(ctx.root,
    h("h1", {}, h("span", { class: "muted" }, "Memory of "), ctx.user),
    h("article", { class: `card memory-detail status-${m.status}` },
      h("div", { class: "meta" }, kindBadge(m.kind), statusBadge(m.status)),
      h("p", { class: "content big", lang: m.language || null }, m.content),
      facts([
        ["event time", eventTime(m) ? `${eventTime(m)} (${m.time_granularity || "minute"})` : "—"],
        ["said at", stamp(m.recorded_at)],
        ["batch id", m.batch_id ? h("code", {}, m.batch_id) : "—"],
        ["session", m.session_id],
        ["subject", m.subject],
        ["keywords", (m.keywords || []).join(", ")],
        ["importance", m.importance],
        ["language", m.language],
        ["reason", m.reason],
        ["id", h("code", {}, m.id)],
      ]),
      actions, area),
    hist.section, turns.section,
    h("section", { class: "panel", "aria-labelledby": "meta-h" }, h("h2", { id: "meta-h" }, "Metadata"), h("div", { class: "panel-body" }, meta)));
  try {
    await sourceTurns(ctx, m, turns.body);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) throw err;
    show(turns.body, h("ul", {}, m.source_turn_ids.map((id) => h("li", {}, h("code", {}, id)))), errorBox(err));
  }
}
