"""What the LLM quality bench observes around one batch: the model calls, memlane's warnings, and
the embeddings the scores compare.

- :class:`CallLog` wraps the extractor's chat model (its public ``complete_json``) and records
  each call: purpose, the parsed reply, tokens as the provider reported them, seconds, error.
- :class:`WarningTally` is a structlog processor counting memlane's warning events by name
  (``foreign_memory_id_refused``, ``link_ignored``, ... and whatever later checks log), so new
  refusals show up in the results without the bench knowing their names.
- :class:`Vectors` embeds texts once (local multilingual-e5-small, passage side) and gives cosines;
  :func:`calibration` measures on the set itself how the matching threshold separates accepted
  wordings from unrelated facts.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Iterable, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any, cast

import numpy as np
import structlog

from benchmarks.llm_casefile import Case
from memlane.llm.chat import ChatModel, Message, Usage
from memlane.llm.embeddings import Embedder


@dataclass(frozen=True, slots=True)
class Call:
    """One chat call made by the extractor."""

    purpose: str
    reply: dict[str, Any] | None
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    error: str | None = None


class CallLog:
    """The calls of one batch (across its retries)."""

    def __init__(self) -> None:
        self.calls: list[Call] = []

    def wrap(self, chat: ChatModel) -> ChatModel:
        """A stand-in for ``chat`` that records every ``complete_json`` call here."""
        return cast(ChatModel, _RecordingChat(chat, self))

    def replies(self, purpose: str) -> list[dict[str, Any]]:
        """The parsed replies of the calls made for ``purpose`` (``extract``, ``arbitrate``)."""
        return [c.reply for c in self.calls if c.purpose == purpose and c.reply is not None]


class _RecordingChat:
    """Delegates to the real chat model; records ``complete_json`` calls in a :class:`CallLog`."""

    def __init__(self, inner: ChatModel, log: CallLog) -> None:
        self._inner = inner
        self._log = log
        self.model = inner.model
        self.settings = inner.settings

    def complete_json(
        self, messages: Sequence[Message], schema_name: str
    ) -> tuple[dict[str, Any], Usage]:
        started = time.monotonic()
        try:
            raw, usage = self._inner.complete_json(messages, schema_name)
        except Exception as e:  # recorded, then re-raised unchanged
            elapsed = time.monotonic() - started
            self._log.calls.append(Call(schema_name, None, 0, 0, elapsed, type(e).__name__))
            raise
        elapsed = time.monotonic() - started
        call = Call(schema_name, raw, usage.prompt_tokens, usage.completion_tokens, elapsed)
        self._log.calls.append(call)
        return raw, usage

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class WarningTally:
    """Counts warning (and worse) log events by event name; :meth:`install` puts it in front."""

    LEVELS = frozenset({"warning", "warn", "error", "critical", "exception"})

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def __call__(
        self, logger: Any, method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if method in self.LEVELS:
            self.counts[str(event_dict.get("event"))] += 1
        return event_dict

    def reset(self) -> None:
        """Start counting a new batch."""
        self.counts.clear()

    @classmethod
    def install(cls) -> WarningTally:
        """Add a tally in front of the configured processors (call before anything logs)."""
        tally = cls()
        processors = list(structlog.get_config()["processors"])
        structlog.configure(processors=[tally, *processors])
        return tally


class Vectors:
    """Unit passage vectors of texts, embedded once; cosines between them."""

    def __init__(self, embedder: Embedder, tz: tzinfo) -> None:
        self._embedder = embedder
        self._vectors: dict[str, np.ndarray] = {}
        self.tz = tz

    def add(self, texts: Iterable[str]) -> None:
        """Embed the texts not seen yet."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if not missing:
            return
        for text, vector in zip(missing, self._embedder.embed_passages(missing), strict=True):
            v = np.asarray(vector, dtype=np.float64)
            self._vectors[text] = v / (np.linalg.norm(v) or 1.0)

    def cosine(self, a: str, b: str) -> float:
        """The cosine of two texts (embedding them if needed)."""
        self.add((a, b))
        return float(self._vectors[a] @ self._vectors[b])


def case_texts(cases: Sequence[Case]) -> list[str]:
    """Every text of the set the scores compare: expectations, alternatives, turns, seeds."""
    texts: list[str] = []
    for case in cases:
        for exp in (*case.expect, *case.optional, *case.forbid):
            texts += exp.texts
        texts += [t.content for t in case.turns] + [s.text for s in case.existing]
    return texts


def calibration(cases: Sequence[Case], vectors: Vectors, threshold: float) -> dict[str, Any]:
    """Per language: cosines of accepted alternative wordings vs. pairs of unrelated facts."""
    out: dict[str, Any] = {}
    for language in sorted({c.language for c in cases}, reverse=True):
        chosen = [c for c in cases if c.language == language]
        alts = [
            vectors.cosine(e.text, a)
            for c in chosen
            for e in (*c.expect, *c.optional)
            for a in e.alts
        ]
        facts = [(c.id, e.text) for c in chosen for e in c.expect]
        unrelated = [
            vectors.cosine(a, b) for (i, a), (j, b) in itertools.combinations(facts, 2) if i != j
        ]
        out[language] = {
            "alternatives": len(alts),
            "alternative_cosine_min": _round(min(alts, default=0.0)),
            "alternative_cosine_p50": _round(float(np.median(alts)) if alts else 0.0),
            "alternatives_accepted": _share(alts, threshold),
            "unrelated_pairs": len(unrelated),
            "unrelated_cosine_p50": _round(float(np.median(unrelated)) if unrelated else 0.0),
            "unrelated_at_or_above_threshold": _share(unrelated, threshold),
        }
    return out


def _round(value: float) -> float:
    return round(value, 3)


def _share(values: Sequence[float], threshold: float) -> float | None:
    return round(sum(v >= threshold for v in values) / len(values), 3) if values else None
