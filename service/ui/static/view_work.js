// Pending and failed work of one user: buffered turns, dead letters (with Replay), LLM usage.
// Each panel loads on its own, so one failing part still leaves the others readable.
import { ApiError, call, query, seg } from "./api.js";
import { fitChart } from "./chart.js";
import { errorBox, facts, h, panel, show } from "./dom.js";
import { count, stamp } from "./format.js";

const REPLAY_WAIT_MS = 90000;

/** Run fill(body); show its error inside the panel (a 401 goes to the login form instead). */
async function guarded(ctx, body, fill) {
  try {
    await fill();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) throw err;
    show(body, errorBox(err));
  }
}

const turnItem = (t) => h("li", {}, h("span", { class: "badge" }, t.role), " ",
  h("span", { class: "muted" }, stamp(t.ts)), " ", h("span", { class: "content" }, t.content));

async function buffered(ctx, body) {
  const user = seg(ctx.user);
  const [pending, turns] = await Promise.all([
    call("GET", `/v1/users/${user}/pending`),
    call("GET", `/v1/users/${user}/turns${query({ limit: 50 })}`),
  ]);
  show(body,
    facts([["pending turns", count(pending.pending)], ["watermark", pending.watermark ? String(pending.watermark) : "—"]]),
    turns.turns.length ? h("ol", { class: "turns", "aria-label": "Buffered turns" }, turns.turns.map(turnItem))
      : h("p", { class: "muted" }, "No buffered turns: everything pushed has been consolidated."));
}

function letterItem(ctx, letter, reload) {
  const replay = h("button", { type: "button", "aria-label": `Replay batch ${letter.batch_id}` }, "Replay");
  const state = h("span", { class: "muted", role: "status" });
  replay.addEventListener("click", async () => {
    replay.disabled = true;
    try {
      await call("POST", `/v1/users/${seg(ctx.user)}/dead-letters/${seg(letter.batch_id)}/replay`);
      state.textContent = "Queued for replay; waiting for a worker…";
      const deadline = Date.now() + REPLAY_WAIT_MS;
      // Poll until the letter is gone (the workers consolidated it) or the wait runs out.
      while (Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 1500));
        const answer = await call("GET", `/v1/users/${seg(ctx.user)}/dead-letters`);
        if (!answer.dead_letters.some((d) => d.batch_id === letter.batch_id)) {
          ctx.notify(`Batch ${letter.batch_id} was replayed: its turns are consolidated.`);
          return reload();
        }
      }
      state.textContent = "Still queued: is a worker running? Refresh later.";
    } catch (err) {
      replay.disabled = false;
      state.replaceChildren(errorBox(err));
    }
  });
  return h("li", { class: "card letter" },
    h("div", { class: "meta" }, h("code", {}, letter.batch_id), h("span", { class: "muted" }, stamp(letter.at))),
    h("p", { class: "reason" }, h("strong", {}, "Reason: "), letter.reason),
    h("details", {}, h("summary", {}, `${letter.turns.length} turn${letter.turns.length === 1 ? "" : "s"}`),
      h("ol", { class: "turns" }, letter.turns.map(turnItem))),
    h("div", { class: "buttons" }, replay, state));
}

async function deadLetters(ctx, body) {
  const answer = await call("GET", `/v1/users/${seg(ctx.user)}/dead-letters`);
  const reload = () => guarded(ctx, body, () => deadLetters(ctx, body));
  show(body, answer.dead_letters.length
    ? h("ul", { class: "letters", "aria-label": "Dead letters" }, answer.dead_letters.map((d) => letterItem(ctx, d, reload)))
    : h("p", { class: "muted" }, "No dead letters: no batch of this user has failed for good."));
}

const tokens = (d) => (d.prompt_tokens || 0) + (d.completion_tokens || 0);

async function usage(ctx, body) {
  const answer = await call("GET", `/v1/users/${seg(ctx.user)}/usage${query({ days: 30 })}`);
  const days = answer.days || [];
  const today = new Date().toISOString().slice(0, 10);
  const t = days.find((d) => d.day === today) || { calls: 0, prompt_tokens: 0, completion_tokens: 0, by_model: {} };
  const models = Object.entries(t.by_model || {}).map(([name, v]) =>
    `${name}: ${count(v.calls)} call${v.calls === 1 ? "" : "s"}, ${count(v.prompt_tokens)} + ${count(v.completion_tokens)} tokens`);
  show(body,
    h("h3", {}, `Today (${today}, UTC)`),
    facts([["LLM calls", count(t.calls)], ["prompt tokens", count(t.prompt_tokens)],
      ["completion tokens", count(t.completion_tokens)], ["by model", models.join("; ") || "—"]]),
    h("h3", {}, "Tokens per day, last 30 days"),
    days.length ? h("div", { class: "chart-box" }) : h("p", { class: "muted" }, "No LLM usage recorded."));
  const box = body.querySelector(".chart-box");
  if (box) fitChart(box, days, tokens, "tokens (prompt + completion)");
}

export async function renderWork(ctx) {
  const parts = [
    [panel("Buffered turns", "buffered"), buffered],
    [panel("Dead letters", "dead-letters"), deadLetters],
    [panel("LLM usage", "usage"), usage],
  ];
  show(ctx.root, h("h1", {}, h("span", { class: "muted" }, "Pending and failed work of "), ctx.user),
    parts.map(([p]) => p.section));
  await Promise.all(parts.map(([p, fill]) => guarded(ctx, p.body, () => fill(ctx, p.body))));
}
