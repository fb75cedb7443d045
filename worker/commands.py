"""Operator commands behind the CLI: push, import, stats, replay, forget, retrieve."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from memlane.buffer.rejections import RejectionCounter
from memlane.buffer.turns import entry_ms
from memlane.buffer.usage import FIELDS, UsageRecorder
from memlane.client import MemoryClient
from memlane.errors import InvalidInput
from memlane.redaction import Redactor
from memlane.retrieval.context import format_context
from memlane.text.tokens import detect_language
from memlane.validation import validate_turns
from worker.terminal import printable, safe

IMPORT_CHUNK = 200


def push(client: MemoryClient, user_id: str, text: str, role: str, session: str | None) -> None:
    """Push one turn and print its id."""
    ids = client.add_turns(user_id, [{"role": role, "content": text}], session_id=session)
    print(ids[0])


def import_jsonl(client: MemoryClient, path: Path, out: TextIO = sys.stderr) -> dict[str, int]:
    """Push a JSONL file of turns (each line has ``user_id`` plus turn fields).

    Each line is validated on its own, with the rules of ``add_turns``; a bad line is reported
    by its line number with the field and the reason, and skipped. Good lines are pushed per
    user in chunks. Returns the counts (``lines``, ``pushed``, ``bad``). A file that cannot be
    read, or is not UTF-8, raises :class:`InvalidInput` (field: the path) before anything is
    pushed.
    """
    total = _count_lines(path)
    run = _Import(client, out)
    with _open(path) as fh:
        for lineno, line in enumerate(fh, 1):  # split on \n only, as JSONL is
            run.take(lineno, line.decode("utf-8"))
            if lineno % 500 == 0 or lineno == total:
                run.progress(f"imported {lineno}/{total} lines")
    run.flush()
    run.say(f"done: {run.stats['pushed']} turns pushed, {run.stats['bad']} bad lines")
    return run.stats


def _open(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except OSError as e:
        raise InvalidInput(str(path), f"cannot read: {e.strerror or e}") from e


def _count_lines(path: Path) -> int:
    """The number of lines; refuses an unreadable or non-UTF-8 file before anything is pushed."""
    count = 0
    try:
        with _open(path) as fh:
            for raw in fh:
                count += 1
                raw.decode("utf-8")
    except UnicodeDecodeError as e:
        where = f"line {count}, byte {e.start + 1}: {e.reason}"
        raise InvalidInput(str(path), f"not UTF-8 text ({where}); nothing pushed") from e
    except OSError as e:
        raise InvalidInput(str(path), f"cannot read: {e.strerror or e}") from e
    return count


class _Import:
    """One import run: validates lines one by one, pushes good ones per user in chunks."""

    def __init__(self, client: MemoryClient, out: TextIO) -> None:
        self.client = client
        self.out = out
        self.stats = {"lines": 0, "pushed": 0, "bad": 0}
        self.chunk: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        self.chunk_size = max(1, min(IMPORT_CHUNK, client.settings.limits.max_turns_per_call))
        self._progress_shown = False

    def take(self, lineno: int, line: str) -> None:
        """Validate one line as a turn; queue it for its user's chunk, or report it."""
        self.stats["lines"] += 1
        if not line.strip():
            return
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            return self.bad(lineno, f"not valid JSON: {e.msg} (column {e.colno})")
        if not isinstance(row, dict):
            return self.bad(lineno, f"must be a JSON object, got {type(row).__name__}")
        if "user_id" not in row:
            return self.bad(lineno, "user_id: missing")
        user = row.pop("user_id")
        settings = self.client.settings
        try:
            valid = validate_turns(user, [row], None, settings.limits, settings.tz)
        except InvalidInput as e:
            return self.bad(lineno, _line_error(e))
        self.chunk.setdefault(valid[0].user_id, []).append((lineno, row))
        if sum(len(rows) for rows in self.chunk.values()) >= self.chunk_size:
            self.flush()

    def flush(self) -> None:
        """Push each user's queued lines in one call; if refused anyway, line by line."""
        for user, rows in self.chunk.items():
            try:
                self.stats["pushed"] += len(self.client.add_turns(user, [r for _, r in rows]))
            except InvalidInput:
                for lineno, row in rows:
                    try:
                        self.stats["pushed"] += len(self.client.add_turns(user, [row]))
                    except InvalidInput as e:
                        self.bad(lineno, _line_error(e))
        self.chunk.clear()

    def bad(self, lineno: int, message: str) -> None:
        """Count and report one bad line."""
        self.stats["bad"] += 1
        self.say(f"line {lineno}: {printable(message)}")

    def say(self, message: str) -> None:
        """A line of the report (ending an open progress line first)."""
        if self._progress_shown:
            print(file=self.out)
            self._progress_shown = False
        print(message, file=self.out)

    def progress(self, message: str) -> None:
        """Rewrite the progress line in place."""
        print(f"\r{message}", end="", file=self.out, flush=True)
        self._progress_shown = True


def _line_error(err: InvalidInput) -> str:
    """``content: must not be empty`` for the one turn of a line (not ``turns[0].content``)."""
    field = err.field.removeprefix("turns[0]").lstrip(".") or "turn"
    return f"{field}: {err.reason}"


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
        # What the extraction checks refused or repaired, per model: a model not good enough.
        "llm_checks": RejectionCounter(client.services.redis, client.services.keys).by_model(),
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


def retrieve(
    client: MemoryClient, user_id: str, query: str, top_k: int, pending: bool
) -> list[str]:
    """The memory lines recalled for ``query``, one line each, safe for a terminal."""
    results = client.retrieve(user_id, query, top_k=top_k, include_pending=pending)
    lang = detect_language(query)
    redactor = Redactor.from_settings(client.settings)
    lines = []
    for result, line in zip(
        results, format_context(results, lang, client.settings.tz), strict=True
    ):
        mark = " (pending)" if result.pending else ""
        lines.append(f"{result.score:6.3f} {safe(line, redactor)}{mark}")
    return lines


def stats_text(client: MemoryClient) -> str:
    """:func:`stats` as indented JSON, safe for a terminal."""
    text = json.dumps(stats(client), ensure_ascii=False, indent=2)
    return safe(text, Redactor.from_settings(client.settings), json=True)
