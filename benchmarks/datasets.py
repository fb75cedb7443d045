"""Loaders of the recall datasets (LoCoMo, MADial-Bench zh), read where they are; never copied.

LoCoMo evidence ids come in a few malformed spellings (``D8:6; D9:17``, ``D:11:26``,
``D30:05``, space-separated lists, a bare ``D``): :func:`normalise_evidence` turns each into
canonical ``D<session>:<turn>`` ids and drops what cannot be read.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

LOCOMO_FILE = "locomo-dev.json"
MADIAL_DIALOGUE_FILE = "madial-zh-dialogue-dev.jsonl"
MADIAL_MEMORY_FILE = "madial-zh-memory.jsonl"
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}

_EVIDENCE = re.compile(r"D\s*:?\s*(\d+)\s*:\s*(\d+)")
_SESSION = re.compile(r"^session_(\d+)$")
_DATE_FORMATS = ("%I:%M %p on %d %B, %Y", "%I:%M %p on %d %b, %Y", "%I:%M %p on %B %d, %Y")


def normalise_evidence(raw: object) -> list[str]:
    """Canonical ``D<s>:<t>`` ids from one evidence entry or a list of them (order kept)."""
    items = raw if isinstance(raw, list) else [raw]
    out: list[str] = []
    for item in items:
        for s, t in _EVIDENCE.findall(str(item)):
            dia = f"D{int(s)}:{int(t)}"
            if dia not in out:
                out.append(dia)
    return out


def parse_locomo_date(text: str, tz: tzinfo) -> datetime:
    """``1:56 pm on 8 May, 2023`` -> an aware datetime in ``tz``."""
    clean = " ".join(text.replace("\u202f", " ").split())
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(clean, fmt).replace(tzinfo=tz)
        except ValueError:
            continue
    raise ValueError(f"unreadable LoCoMo date {text!r}")


@dataclass
class LocomoTurn:
    """One dialog turn with its timestamp."""

    dia_id: str
    speaker: str
    text: str
    ts: datetime
    session: int


@dataclass
class LocomoQA:
    """One question with its normalised evidence."""

    question: str
    category: int
    evidence: list[str]
    raw_evidence: list[Any]


@dataclass
class LocomoSample:
    """One conversation: its turns (in order), questions and the last session's date."""

    sample_id: str
    speakers: tuple[str, str]
    turns: list[LocomoTurn] = field(default_factory=list)
    qa: list[LocomoQA] = field(default_factory=list)
    last_date: datetime | None = None


def load_locomo(data: Path, tz: tzinfo) -> list[LocomoSample]:
    """The LoCoMo samples; every turn of a session gets the session date plus i seconds."""
    raw = json.loads((data / LOCOMO_FILE).read_text(encoding="utf-8"))
    samples = []
    for item in raw:
        conv = item["conversation"]
        sample = LocomoSample(str(item["sample_id"]), (conv["speaker_a"], conv["speaker_b"]))
        sessions = sorted(
            (int(m.group(1)), key)
            for key in conv
            if (m := _SESSION.match(key)) and isinstance(conv[key], list)
        )
        for number, key in sessions:
            start = parse_locomo_date(conv[f"{key}_date_time"], tz)
            sample.last_date = start if sample.last_date is None else max(sample.last_date, start)
            for i, turn in enumerate(conv[key]):
                ids = normalise_evidence(turn["dia_id"])
                sample.turns.append(
                    LocomoTurn(
                        ids[0] if ids else str(turn["dia_id"]),
                        turn["speaker"],
                        str(turn.get("text", "")),
                        start + timedelta(seconds=i),
                        number,
                    )
                )
        for qa in item["qa"]:
            raw_ev = qa.get("evidence", [])
            sample.qa.append(
                LocomoQA(
                    str(qa["question"]), int(qa["category"]), normalise_evidence(raw_ev), raw_ev
                )
            )
        samples.append(sample)
    return samples


@dataclass
class MadialDialogue:
    """One MADial-Bench dialogue and the memories it should recall."""

    dialogue_id: int
    user_id: int
    lines: list[str]
    test_turn: int
    relevant: list[str]


@dataclass
class MadialMemory:
    """One event memory of a MADial-Bench user."""

    memory_id: str
    user_id: int
    time: str
    event: str


def load_madial(data: Path) -> tuple[list[MadialDialogue], list[MadialMemory]]:
    """The dialogues and the memory archive."""
    dialogues = []
    for line in (data / MADIAL_DIALOGUE_FILE).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        d = json.loads(line)
        dialogues.append(
            MadialDialogue(
                int(d["id"]),
                int(d["user-id"]),
                list(d["dialogue"]),
                int(d["test-turn"][0]),
                [str(r) for r in d["relevant-id"]],
            )
        )
    memories = []
    for line in (data / MADIAL_MEMORY_FILE).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        for m in json.loads(line).values():
            memories.append(
                MadialMemory(str(m["id"]), int(m["user-id"]), str(m["time"]), str(m["event"]))
            )
    return dialogues, memories


_SPEAKER = re.compile(r"^<([^>]+)>\s*[:：]\s*")


def madial_utterances(lines: list[str]) -> list[tuple[str, str]]:
    """``(speaker, text)`` of the dialogue lines, markers (<BOD>, <EOD>) and quotes removed."""
    out = []
    for line in lines:
        text = line.strip()
        if text in {"<BOD>", "<EOD>"} or not text:
            continue
        m = _SPEAKER.match(text)
        speaker = m.group(1) if m else ""
        body = text[m.end() :] if m else text
        body = body.strip().strip('"“”').strip()
        out.append((speaker, body))
    return out
