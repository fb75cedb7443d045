"""Versioned prompts (YAML package data, zh and en) and the pure functions that build messages.

Every prompt memlane sends is rendered here: extraction and arbitration (consolidation),
reflection, and the maintenance sweep's pairs. Each call is the system prompt, the few-shot
examples as user/assistant turns (:func:`with_examples`), then the filled template.

Each ``<name>.<language>.yaml`` holds ``version``, ``system``, few-shot ``examples`` (an input
text and the JSON output it should give) and a ``template`` with ``{placeholders}``. Turns are
rendered one per line inside a ``<turns>`` block, numbered from 1, with their local time and
speaker: ``[#3 2024-10-26 21:26 周六] user(小林): 我的爱好是吉他。`` The prompts say that the block
is quoted data, and turn text can neither close the block nor break out of its line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from memlane.buffer.turns import BufferedTurn
from memlane.models import Memory, Role, memory_time
from memlane.retrieval.context import WEEKDAYS, format_time
from memlane.text.tokens import detect_language
from pipelines.pairs import Pair

Message = dict[str, str]
LANGUAGES = ("zh", "en")
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
_TAG = re.compile(r"<\s*/?\s*turns\s*>", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Prompt:
    """One loaded prompt file."""

    name: str
    language: str
    version: int
    system: str
    examples: tuple[tuple[str, str], ...]
    template: str
    extras: dict[str, str]

    @property
    def label(self) -> str:
        """``extract.zh@1``: what is recorded on the memories it produced."""
        return f"{self.name}.{self.language}@{self.version}"


@lru_cache(maxsize=16)
def load_prompt(name: str, language: str) -> Prompt:
    """Load ``pipelines/prompts/<name>.<language>.yaml`` from the package data."""
    lang = language if language in LANGUAGES else "en"
    text = resources.files(__name__).joinpath(f"{name}.{lang}.yaml").read_text(encoding="utf-8")
    raw: dict[str, Any] = yaml.safe_load(text)
    examples = tuple(
        (str(ex["input"]).strip(), json.dumps(ex["output"], ensure_ascii=False))
        for ex in raw.get("examples", [])
    )
    known = {"version", "name", "language", "system", "examples", "template"}
    return Prompt(
        name=name,
        language=lang,
        version=int(raw["version"]),
        system=str(raw["system"]).strip(),
        examples=examples,
        template=str(raw["template"]),
        extras={k: str(v) for k, v in raw.items() if k not in known},
    )


def batch_language(entries: Sequence[BufferedTurn]) -> str:
    """The language of a batch: what its user turns are written in (all turns if none)."""
    said = [e.turn.content for e in entries if e.turn.role is Role.USER]
    return detect_language(" ".join(said or [e.turn.content for e in entries]))


def fill(template: str, **values: str) -> str:
    """Replace ``{name}`` placeholders in one pass; unknown braces (JSON) are left alone.

    One pass means text inserted for one placeholder is never scanned for another.
    """
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group()), template)


def quote_line(text: str) -> str:
    """Turn text made safe for one line of the ``<turns>`` block."""
    flat = " ⏎ ".join(part.strip() for part in text.strip().splitlines() if part.strip())
    return _TAG.sub(lambda m: m.group().replace("<", "‹").replace(">", "›"), flat)


def local_time(ts: datetime, tz: tzinfo, language: str) -> str:
    """``2024-10-26 21:26 周六`` (or ``Sat``) in the configured timezone."""
    when = ts.astimezone(tz)
    return f"{when:%Y-%m-%d %H:%M} {WEEKDAYS[language][when.weekday()]}"


def turn_line(number: int, entry: BufferedTurn, tz: tzinfo, language: str) -> str:
    """``[#3 2024-10-26 21:26 周六] user(name): text``."""
    turn = entry.turn
    who = f"{turn.role.value}({quote_line(turn.name)})" if turn.name else turn.role.value
    return f"[#{number} {local_time(turn.ts, tz, language)}] {who}: {quote_line(turn.content)}"


def memory_line(memory: Memory, tz: tzinfo, language: str) -> str:
    """``- [id=o-...] (2024-10-26, hobby) 用户爱好是吉他。``."""
    facets = format_time(memory, language, tz)
    if memory.subject:
        facets += f", {memory.subject}"
    return f"- [id={memory.id}] ({facets}) {quote_line(memory.content)}"


def timezone_label(tz: tzinfo, at: datetime) -> str:
    """``Asia/Shanghai (UTC+08:00)``."""
    offset = at.astimezone(tz).strftime("%z") or "+0000"
    return f"{getattr(tz, 'key', str(tz))} (UTC{offset[:3]}:{offset[3:]})"


def with_examples(prompt: Prompt, user_text: str) -> list[Message]:
    """The system prompt, the few-shot examples as user/assistant turns, then ``user_text``."""
    messages: list[Message] = [{"role": "system", "content": prompt.system}]
    for example_input, example_output in prompt.examples:
        messages.append({"role": "user", "content": example_input})
        messages.append({"role": "assistant", "content": example_output})
    messages.append({"role": "user", "content": user_text})
    return messages


def extraction_messages(
    prompt: Prompt,
    entries: Sequence[BufferedTurn],
    related: Sequence[Memory],
    tz: tzinfo,
    hints: Sequence[str] = (),
) -> list[Message]:
    """The extraction call: numbered turns plus the related existing memories with their ids,
    and ``hints``, the turns' time expressions already resolved (``#1 上周一 = 2024-10-14``)."""
    lang = prompt.language
    turns = "\n".join(turn_line(i, e, tz, lang) for i, e in enumerate(entries, 1))
    memories = "\n".join(memory_line(m, tz, lang) for m in related) or prompt.extras.get(
        "no_memories", "(none)"
    )
    text = fill(
        prompt.template,
        timezone=timezone_label(tz, entries[0].turn.ts),
        memories=memories,
        turns=turns,
        hints="\n".join(quote_line(h) for h in hints) or prompt.extras.get("no_hints", "(none)"),
    )
    return with_examples(prompt, text.strip())


def split_messages(
    extraction: list[Message], reply: dict[str, Any], prompt: Prompt, packed: Sequence[str]
) -> list[Message]:
    """The targeted retry: the extraction call, the model's reply, and the request to split
    the ``packed`` observations."""
    listed = "\n".join(f"- {quote_line(text)}" for text in packed)
    request = fill(prompt.extras["split_request"], observations=listed).strip()
    answer = json.dumps(reply, ensure_ascii=False)
    return [
        *extraction,
        {"role": "assistant", "content": answer},
        {"role": "user", "content": request},
    ]


@dataclass(frozen=True, slots=True)
class PairText:
    """One ambiguous pair as the arbitration prompt shows it."""

    new: str
    new_time: datetime
    old: str
    old_time: datetime


def arbitration_messages(prompt: Prompt, pairs: Sequence[PairText], tz: tzinfo) -> list[Message]:
    """The arbitration call: every ambiguous pair of the batch, numbered from 0."""
    pair_template = prompt.extras["pair_template"]
    lines = [
        fill(
            pair_template,
            index=str(i),
            new_time=local_time(p.new_time, tz, prompt.language)[:16],
            new=quote_line(p.new),
            old_time=local_time(p.old_time, tz, prompt.language)[:16],
            old=quote_line(p.old),
        ).rstrip()
        for i, p in enumerate(pairs)
    ]
    return with_examples(prompt, fill(prompt.template, pairs="\n".join(lines)).strip())


def reflection_messages(
    prompt: Prompt, insights: Sequence[tuple[str, str]], chunk: Sequence[Memory], tz: tzinfo
) -> list[Message]:
    """The reflection call: each subject's current insight, then the numbered observations.

    ``insights`` is ``(subject, text)`` per known subject, in the order to show them.
    """
    lines = [f"- {quote_line(subject)}: {quote_line(text)}" for subject, text in insights]
    shown = "\n".join(lines) or prompt.extras.get("no_insights", "(none)")
    numbered = enumerate(chunk, 1)
    observations = "\n".join(observation_line(i, m, tz, prompt.language) for i, m in numbered)
    text = fill(prompt.template, insights=shown, observations=observations)
    return with_examples(prompt, text.strip())


def observation_line(number: int, memory: Memory, tz: tzinfo, language: str) -> str:
    """``[#3 2024-10-26] (hobby) 用户爱好是吉他。``."""
    day = local_time(memory_time(memory), tz, language)[:10]
    facet = f" ({quote_line(memory.subject)})" if memory.subject else ""
    return f"[#{number} {day}]{facet} {quote_line(memory.content)}"


def maintenance_messages(
    prompt: Prompt, memories: Sequence[Memory], pairs: Sequence[Pair], tz: tzinfo
) -> list[Message]:
    """The maintenance call: every ambiguous pair, numbered from 0, older memory first."""
    lines = []
    for i, pair in enumerate(pairs):
        old, new = memories[pair.old], memories[pair.new]
        lines.append(
            fill(
                prompt.extras["pair_template"],
                index=str(i),
                old_time=local_time(old.recorded_at, tz, prompt.language)[:10],
                old=quote_line(old.content),
                new_time=local_time(new.recorded_at, tz, prompt.language)[:10],
                new=quote_line(new.content),
            ).rstrip()
        )
    # Not stripped, unlike the other calls: the request is byte for byte what it always was.
    return with_examples(prompt, fill(prompt.template, pairs="\n".join(lines)))
