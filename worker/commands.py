"""Operator commands behind the CLI: push, import, stats, replay, forget, retrieve."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from memlane.buffer import entry_ms
from memlane.client import MemoryClient
from memlane.errors import InvalidInput
from memlane.retrieval import format_context
from memlane.textproc import detect_language
from memlane.usage import FIELDS, UsageRecorder

IMPORT_CHUNK = 200


def push(client: MemoryClient, user_id: str, text: str, role: str, session: str | None) -> None:
    """Push one turn and print its id."""
    ids = client.add_turns(user_id, [{"role": role, "content": text}], session_id=session)
    print(ids[0])


def import_jsonl(client: MemoryClient, path: Path, out: TextIO = sys.stderr) -> dict[str, int]:
    """Push a JSONL file of turns (each line has ``user_id`` plus turn fields).

    Lines are grouped per user in chunks; a bad line is reported with its line number and
    skipped, and the summary counts it.
    """
    stats = {"lines": 0, "pushed": 0, "bad": 0}
    total = sum(1 for _ in path.open(encoding="utf-8"))
    chunk: dict[str, list[dict[str, Any]]] = {}
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            stats["lines"] += 1
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                user = row.pop("user_id")
                chunk.setdefault(user, []).append(row)
            except (json.JSONDecodeError, KeyError, AttributeError) as e:
                stats["bad"] += 1
                print(f"line {lineno}: {type(e).__name__}: {e}", file=out)
            if sum(len(v) for v in chunk.values()) >= IMPORT_CHUNK:
                _flush_chunk(client, chunk, stats, out)
            if lineno % 500 == 0 or lineno == total:
                print(f"\rimported {lineno}/{total} lines", end="", file=out, flush=True)
    _flush_chunk(client, chunk, stats, out)
    print(f"\ndone: {stats['pushed']} turns pushed, {stats['bad']} bad lines", file=out)
    return stats


def _flush_chunk(
    client: MemoryClient,
    chunk: dict[str, list[dict[str, Any]]],
    stats: dict[str, int],
    out: TextIO,
) -> None:
    for user, rows in chunk.items():
        try:
            stats["pushed"] += len(client.add_turns(user, rows))
        except InvalidInput as e:
            stats["bad"] += len(rows)
            print(f"user {user!r}: refused: {e}", file=out)
    chunk.clear()


def stats(client: MemoryClient, limit: int = 20) -> dict[str, Any]:
    """Pending counts, watermark lag and dead letters, as a dict (printed as JSON)."""
    buf = client.services.buffer
    now_ms = int(time.time() * 1000)
    users = sorted(buf.pending_users(), key=lambda u: u.oldest_ms)
    report: dict[str, Any] = {
        "pending_users": len(users),
        "pending_turns": sum(u.length for u in users),
        "dead_letters": len(buf.dead_letters()),
        "llm_usage_today": _usage_today(client),
        "users": [
            {
                "user_id": u.user_id,
                "pending": u.length,
                "oldest_wait_s": round(max(0, now_ms - u.oldest_ms) / 1000, 1),
                "watermark": buf.watermark(u.user_id),
                "watermark_lag_s": _lag(buf.watermark(u.user_id), now_ms),
            }
            for u in users[:limit]
        ],
    }
    return report


def _usage_today(client: MemoryClient) -> dict[str, Any]:
    """Today's LLM calls and tokens: totals and per (user, model)."""
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    per = UsageRecorder(client.services.redis, client.services.keys).day(day)
    totals = {f: sum(v[f] for v in per.values()) for f in FIELDS}
    rows = [{"user_id": u, "model": m, **v} for (u, m), v in sorted(per.items())]
    return {"day": day, **totals, "by_user": rows[:50]}


def _lag(watermark: str | None, now_ms: int) -> float | None:
    return round((now_ms - entry_ms(watermark)) / 1000, 1) if watermark else None


def retrieve(client: MemoryClient, user_id: str, query: str, top_k: int, pending: bool) -> None:
    """Print the memory lines recalled for ``query``."""
    results = client.retrieve(user_id, query, top_k=top_k, include_pending=pending)
    lang = detect_language(query)
    for result, line in zip(
        results, format_context(results, lang, client.settings.tz), strict=True
    ):
        mark = " (pending)" if result.pending else ""
        print(f"{result.score:6.3f} {line}{mark}")
