// Search as the bot sees it: what `retrieve` returns for a question, and why each result ranks.
import { call, query, seg } from "./api.js";
import { facts, field, h, show } from "./dom.js";
import { kindBadge, num, rank, when } from "./format.js";

function why(result) {
  const e = result.explanation;
  const boosts = Object.entries(e.boosts || {});
  const time = e.boosts && e.boosts.time !== undefined;
  return facts([
    ["kNN rank", rank(e.knn_rank)],
    ["BM25 rank", rank(e.bm25_rank)],
    ["fused", num(e.fused)],
    ["boosts", boosts.length ? boosts.map(([name, v]) => `${name} +${num(v)}`).join(", ") : "none"],
    ["time match", time ? `yes (+${num(e.boosts.time)})` : "no"],
    ["rerank", e.rerank_score === null || e.rerank_score === undefined ? null : num(e.rerank_score)],
    ["pending", result.pending ? "yes — a buffered turn, not consolidated yet" : "no — stored"],
  ]);
}

function resultItem(user, result, index) {
  const m = result.memory;
  const content = result.pending
    ? h("p", { class: "content", lang: m.language || null }, m.content)
    : h("a", { class: "content", href: `#/u/${seg(user)}/m/${seg(m.id)}`, lang: m.language || null }, m.content);
  return h("li", { class: "card result" },
    h("div", { class: "meta" },
      h("span", { class: "rank" }, `${index + 1}.`), kindBadge(m.kind),
      result.pending ? h("span", { class: "badge pending" }, "pending") : null,
      when(m), h("span", { class: "score", title: "score = fused + boosts (or rerank + boosts)" }, `score ${num(result.score)}`)),
    content,
    h("details", { class: "why", open: true }, h("summary", {}, "Why this result"), why(result)));
}

export async function renderSearch(ctx) {
  const q = ctx.params.get("q") || "", now = ctx.params.get("now") || "";
  const pending = ctx.params.get("pending") !== "0";
  const qEl = h("input", { type: "search", name: "q", value: q, required: true, autocomplete: "off", placeholder: "你知道我的爱好吗? / What do I play?" });
  const nowEl = h("input", { type: "text", name: "now", value: now, autocomplete: "off", placeholder: "2024-05-08T20:00:00+08:00" });
  const pendingEl = h("input", { type: "checkbox", name: "pending", checked: pending });
  const form = h("form", { class: "toolbar search", role: "search", "aria-label": "Search memories" },
    field("Question", qEl), field("Now (optional, ISO time)", nowEl),
    h("label", { class: "check" }, pendingEl, " include pending turns"),
    h("button", { type: "submit" }, "Search"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    ctx.go(`#/u/${seg(ctx.user)}/search${query({ q: qEl.value.trim(), now: nowEl.value.trim(), pending: pendingEl.checked ? "" : "0" })}`);
  });
  const out = h("div", { class: "results-box" });
  show(ctx.root, h("h1", {}, h("span", { class: "muted" }, "Search as the bot sees it: "), ctx.user), form, out);
  if (!q) {
    show(out, h("p", { class: "muted" }, "Type a question the bot might get; the results are what retrieve() would give it."));
    qEl.focus();
    return;
  }
  show(out, h("p", { class: "muted", role: "status" }, "Searching…"));
  const body = { query: q, include_pending: pending };
  if (now) body.now = now;
  const answer = await call("POST", `/v1/users/${seg(ctx.user)}/search`, body);
  const n = answer.results.length;
  show(out,
    h("p", { class: "muted", role: "status" }, n ? `${n} result${n === 1 ? "" : "s"}, best first` : "Nothing found: retrieve() would return no memory."),
    h("ol", { class: "results", "aria-label": "Search results" }, answer.results.map((r, i) => resultItem(ctx.user, r, i))));
}
