// A bot's memory calls in plain Node (18+) fetch: push the turns of an exchange, then search
// before the next reply. Run: MEMLANE_API_KEY=$(cat .memlane/api_key) node bot.mjs
const BASE = process.env.MEMLANE_URL ?? "http://127.0.0.1:8765";
const KEY = process.env.MEMLANE_API_KEY;
const USER = encodeURIComponent(process.env.MEMLANE_USER ?? "alice");

async function call(method, path, body, attempts = 5) {
  const res = await fetch(BASE + path, {
    method,
    headers: { Authorization: `Bearer ${KEY}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await res.json();
  if ((res.status === 429 || res.status === 503) && attempts > 1) {
    // Rate limited, or Redis/the store is briefly away: wait as told, then try again.
    const wait = Number(res.headers.get("retry-after") ?? "1");
    await new Promise((resolve) => setTimeout(resolve, wait * 1000));
    return call(method, path, body, attempts - 1);
  }
  if (!res.ok) {
    const { type, field, message } = data.error; // 422 names the field, like the Python client
    throw new Error(`${res.status} ${type}: ${field ? field + ": " : ""}${message}`);
  }
  return data;
}

// 1. After each exchange: push its turns. Returns at once (202); workers consolidate later.
const pushed = await call("POST", `/v1/users/${USER}/turns`, {
  turns: [
    { role: "user", content: "My hobby is playing the guitar." },
    { role: "assistant", content: "Nice! How long have you been playing?" },
  ],
});
console.log(`pushed ${pushed.turn_ids.length} turns`);

// 2. Only for this demo: wait until the workers have stored them.
const { flushed } = await call("POST", `/v1/users/${USER}/flush`, { wait: true, timeout: 60 });
console.log(`consolidated: ${flushed}`);

// 3. Before the next reply: recall what matters, with why each memory ranked where it did.
const { results } = await call("POST", `/v1/users/${USER}/search`, {
  query: "What instrument do I play?",
  top_k: 3,
});
for (const r of results) {
  const { knn_rank, bm25_rank } = r.explanation;
  console.log(`${r.score.toFixed(3)} ${r.memory.content} (knn #${knn_rank}, bm25 #${bm25_rank})`);
}
