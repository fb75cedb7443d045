"""What the command line prints from stored text: escapes shown not obeyed, times in local time."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from memlane.client import MemoryClient
from memlane.config import Settings
from tests.support.llm_server import LLMServer
from tests.support.worker_proc import ROOT, child_env
from worker.chat_repl import run_repl

ANSI = "\x1b[31mI play the guitar\x1b[0m\x1b]0;pwned\x07\x9b2J"


@pytest.fixture
def settings(make_settings: Callable[..., Settings], llm_server: LLMServer) -> Settings:
    """Hash embeddings from the fake endpoint: no local model in the CLI subprocesses."""
    return make_settings(embedding={"base_url": llm_server.url, "model": "fake-embed"})


def _cli(
    settings: Settings, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", *args],
        env=env or child_env(settings),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _no_raw_controls(text: str) -> bool:
    return not any(ch in text for ch in ("\x1b", "\x07", "\x9b", "\u202e"))


def test_retrieve_shows_escape_sequences_instead_of_sending_them(settings: Settings) -> None:
    """A memory holding ANSI/OSC/C1 sequences prints as visible escapes, stored and pending."""
    with MemoryClient(settings) as client:
        client.import_memories("u-ansi", [{"content": ANSI}])
        client.add_turns("u-ansi", [{"role": "user", "content": f"pending {ANSI}"}])
    out = _cli(settings, "retrieve", "u-ansi", "guitar", "--pending", "--top-k", "5")
    assert out.returncode == 0, out.stderr
    assert _no_raw_controls(out.stdout)
    assert out.stdout.count("\\x1b[31mI play the guitar\\x1b[0m\\x1b]0;pwned\\x07\\x9b2J") == 2
    assert "(pending)" in out.stdout


def test_stats_shows_bidi_controls_in_user_ids_as_escapes(settings: Settings) -> None:
    """A user id with a right-to-left override is printed escaped; the JSON reads it back."""
    user = "evil\u202egnp.exe"
    with MemoryClient(settings) as client:
        client.add_turns(user, [{"role": "user", "content": "hello"}])
    out = _cli(settings, "stats")
    assert out.returncode == 0, out.stderr
    assert _no_raw_controls(out.stdout) and "evil\\u202egnp.exe" in out.stdout
    report = json.loads(out.stdout)
    assert [u["user_id"] for u in report["users"]] == [user]


def test_chat_shows_escapes_from_replies_and_memories(
    settings: Settings, llm_server: LLMServer, make_settings: Callable[..., Settings]
) -> None:
    """`memlane chat`: the bot's reply and /memories never send raw control sequences."""
    chat_settings = make_settings(
        embedding={"base_url": llm_server.url, "model": "fake-embed"},
        llm={"base_url": llm_server.url, "model": "fake-llm", "timeout_s": 5},
    )
    llm_server.default_reply = "\x1b[2Jcleared\nsecond line"
    with MemoryClient(chat_settings) as client:
        client.import_memories("u-chat", [{"content": ANSI}])
    lines = iter(["what do I play?", "/memories", "/quit"])
    shown: list[str] = []
    assert run_repl(chat_settings, "u-chat", read=lambda _: next(lines), write=shown.append) == 0
    text = "\n".join(shown)
    assert _no_raw_controls(text)
    assert "bot> \\x1b[2Jcleared\nsecond line" in text  # a multi-line reply keeps its lines
    assert "\\x1b[31mI play the guitar" in text


@pytest.mark.parametrize(
    ("zone", "aware_shown"),
    [("Etc/UTC", "2024-10-26 21:20"), ("America/New_York", "2024-10-26 17:20")],
)
def test_times_are_read_and_printed_in_the_machines_zone(
    settings: Settings, tmp_path: Path, zone: str, aware_shown: str
) -> None:
    """No timezone setting: 21:20Z prints in the machine's zone; a naive ts is local time."""
    env = {k: v for k, v in child_env(settings).items() if k != "MEMLANE_TIMEZONE"}
    env["TZ"] = zone
    lines: list[dict[str, Any]] = [
        {"user_id": "u-tz", "role": "user", "content": "guitar aware", "ts": "2024-10-26T21:20Z"},
        {"user_id": "u-tz", "role": "user", "content": "piano naive", "ts": "2024-10-26T09:05"},
    ]
    path = tmp_path / "tz.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines), encoding="utf-8")
    assert _cli(settings, "import", str(path), env=env).returncode == 0
    out = _cli(settings, "retrieve", "u-tz", "guitar piano", "--pending", env=env)
    assert out.returncode == 0, out.stderr
    assert f"[{aware_shown} Sat] guitar aware (pending)" in out.stdout
    assert "[2024-10-26 09:05 Sat] piano naive (pending)" in out.stdout
    with MemoryClient(settings) as client:
        naive = next(
            e.turn for e in client.services.buffer.read("u-tz", 10) if "naive" in e.turn.content
        )
    assert naive.ts == datetime(2024, 10, 26, 9, 5, tzinfo=ZoneInfo(zone))
