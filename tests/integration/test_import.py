"""Imports: MemoryClient.import_memories (memories from another system) and `memlane import`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from memlane.client import MemoryClient
from memlane.config import Settings
from memlane.errors import InvalidInput
from memlane.models import MemoryKind
from tests.support.worker_proc import ROOT, child_env

NOW = datetime(2024, 10, 26, 21, 26, tzinfo=ZoneInfo("Asia/Shanghai"))


def test_imported_memories_are_searchable_and_idempotent(make_settings: Any) -> None:
    """Imported items get embeddings and deterministic ids; a second import adds nothing."""
    items = [
        {
            "content": "用户养了一只橘猫。",
            "kind": "observation",
            "source_turn_ids": ["D1:3"],
            "recorded_at": "2024-10-01T10:00:00+08:00",
            "subject": "pets",
        },
        {"content": "The user works as a nurse.", "external_id": "crm-42", "importance": 0.9},
    ]
    with MemoryClient(make_settings()) as client:
        ids = client.import_memories("u", items, now=NOW)
        again = client.import_memories("u", items, now=NOW)
        assert ids == again and len(set(ids)) == 2
        assert client.services.store.count("u") == 2
        top = client.retrieve("u", "我的猫", now=NOW)[0]
        assert top.memory.kind is MemoryKind.OBSERVATION
        assert top.memory.source_turn_ids == ["D1:3"]
        assert client.retrieve("u", "what is my job?", now=NOW)[0].memory.content.endswith("nurse.")


def test_one_bad_item_writes_nothing(make_settings: Any) -> None:
    """A bad item is refused naming its field, and none of the others is written."""
    with MemoryClient(make_settings()) as client:
        with pytest.raises(InvalidInput) as err:
            client.import_memories("u", [{"content": "ok"}, {"content": ""}])
        assert err.value.field == "memories[1].content"
        assert client.services.store.count("u") == 0


# -- `memlane import FILE`: JSONL turns through the real command line -----------------------


def _cli_import(settings: Settings, path: Path) -> subprocess.CompletedProcess[str]:
    """Run `memlane import path` in a subprocess with these settings."""
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", "import", str(path)],
        env=child_env(settings),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _line(user: object, content: object, i: int) -> str:
    return json.dumps({"user_id": user, "role": "user", "content": content, "turn_id": f"t{i}"})


def test_one_bad_line_among_good_ones_costs_only_itself(make_settings: Any, tmp_path: Path) -> None:
    """1 bad line in 21: the 20 good ones are pushed, line 11 is reported, exit status 1."""
    settings = make_settings()
    lines = [_line("imp", f"fact {i}", i) for i in range(1, 22)]
    lines[10] = _line("imp", "", 11)  # line 11: empty content
    path = tmp_path / "turns.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = _cli_import(settings, path)
    assert out.returncode == 1, out.stderr
    assert "line 11: content: must not be empty" in out.stderr
    assert "turns[" not in out.stderr and "Traceback" not in out.stderr
    assert "20 turns pushed, 1 bad lines" in out.stderr
    with MemoryClient(settings) as client:
        assert client.pending("imp") == 20
        pushed = {e.turn.turn_id for e in client.services.buffer.read("imp", 100)}
    assert pushed == {f"t{i}" for i in range(1, 22) if i != 11}


def test_each_kind_of_bad_line_is_reported_by_number_and_the_rest_pushed(
    make_settings: Any, tmp_path: Path
) -> None:
    """A list user_id, bad JSON, a non-object, no user_id, a bad role: one report line each."""
    settings = make_settings()
    lines = [
        _line("imp2", "good 1", 1),
        _line(["a", "b"], "list user", 2),
        '{"user_id": "imp2", "content": ',
        "[1, 2]",
        json.dumps({"role": "user", "content": "no user"}),
        json.dumps({"user_id": "imp2", "role": "robot", "content": "x"}),
        "",
        _line("imp2", "good 2", 8),
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = _cli_import(settings, path)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert "line 2: user_id: must be a string, got list" in out.stderr
    assert "line 3: not valid JSON" in out.stderr
    assert "line 4: must be a JSON object, got list" in out.stderr
    assert "line 5: user_id: missing" in out.stderr
    assert "line 6: role: unknown role 'robot'" in out.stderr
    assert "line 7" not in out.stderr  # a blank line is not a bad line
    assert "2 turns pushed, 5 bad lines" in out.stderr
    with MemoryClient(settings) as client:
        assert client.pending("imp2") == 2


def test_a_clean_file_exits_zero(make_settings: Any, tmp_path: Path) -> None:
    """Every line good: everything pushed (over several chunks and users), exit status 0."""
    settings = make_settings()
    lines = [_line(f"u{i % 3}", f"fact {i}", i) for i in range(450)]
    path = tmp_path / "ok.jsonl"
    path.write_text("\n".join(lines), encoding="utf-8")
    out = _cli_import(settings, path)
    assert out.returncode == 0, out.stderr
    assert "450 turns pushed, 0 bad lines" in out.stderr
    with MemoryClient(settings) as client:
        assert [client.pending(f"u{i}") for i in range(3)] == [150, 150, 150]


@pytest.mark.parametrize("case", ["missing", "directory", "not-utf8", "unreadable"])
def test_an_unreadable_file_is_one_clear_line_and_pushes_nothing(
    make_settings: Any, tmp_path: Path, case: str
) -> None:
    """Missing, a directory, not UTF-8, no permission: one line, non-zero exit, no traceback."""
    settings = make_settings()
    path = tmp_path / f"{case}.jsonl"
    if case == "directory":
        path.mkdir()
    elif case == "not-utf8":
        path.write_bytes(_line("imp3", "ok", 1).encode() + b"\n" + b'{"user_id": "imp3", "\xff"}\n')
    elif case == "unreadable":
        path.write_text(_line("imp3", "ok", 1), encoding="utf-8")
        path.chmod(0)
        if os.access(path, os.R_OK):  # root reads anything: make it unreadable another way
            path.unlink()
            path.symlink_to(path)  # a symlink loop cannot be opened
    out = _cli_import(settings, path)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert str(path) in lines[0]
    if case == "not-utf8":
        assert "not UTF-8" in lines[0] and "line 2" in lines[0]
    with MemoryClient(settings) as client:
        assert client.pending("imp3") == 0
