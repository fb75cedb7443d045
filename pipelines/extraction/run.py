"""``LLMExtractor``: the consolidation extractor port backed by a chat model.

For one batch it makes at most two LLM calls:

1. extraction: the numbered turns, their time expressions resolved by memlane's own parser
   (hints), plus the user's most related existing observations (found by embedding the batch)
   -> observations and links. The validated result is cached in Redis under the batch id
   *before* anything else happens, so a retried batch never pays for it twice and derives the
   same memory ids;
2. then :mod:`pipelines.extraction.checks` decides what of it memlane believes (speaker,
   grounding, copies, atomicity, event times, the model's links). An observation that packs
   several facts is sent back once with a targeted retry, which is then the batch's second
   call; otherwise the second call is arbitration, only when the embedding check leaves
   ambiguous near-duplicate pairs: one call for all of them (with a split retry they stay
   distinct). The checked result, its links and its rejections are cached together, and the
   rejections are counted per model (``CheckCounter``) once.

The cache also keeps the ids of the candidate memories shown to the model: a retry checks links
against exactly the same set, and never re-searches a store it may already have written to.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, Protocol

from memlane.buffer.turns import BufferedTurn
from memlane.buffer.usage import UsageRecorder
from memlane.errors import LLMBadOutput
from memlane.llm.chat import ChatModel, Message, Usage
from memlane.llm.embeddings import Embedder, embed_missing
from memlane.logging import get_logger
from memlane.models import Memory, MemoryFilter, MemoryKind, Role, memory_time
from memlane.store.base import MemoryStore, SearchQuery
from memlane.store.fusion import Fusion
from pipelines.extraction.checks import (
    Check,
    Checked,
    Tally,
    believed,
    check_drafts,
    evidence,
    renumber,
)
from pipelines.extraction.rules import (
    Extraction,
    ObservationDraft,
    PairLimits,
    arbitration_links,
    classify,
    draft_memory,
    extraction_to_json,
    parse_extraction,
)
from pipelines.extraction.timehints import time_hints
from pipelines.pairs import Pair, Relation
from pipelines.plan import ExtractionPlan, Link, build_plan
from pipelines.prompts import (
    PairText,
    arbitration_messages,
    batch_language,
    extraction_messages,
    load_prompt,
    split_messages,
)

log = get_logger(__name__)


class ExtractionCache(Protocol):
    """Where a batch's extraction is kept between attempts."""

    def get(self, batch_id: str) -> dict[str, Any] | None:
        """The cached document of a batch, if any."""

    def put(self, batch_id: str, doc: dict[str, Any]) -> None:
        """Save (or overwrite) the document of a batch."""

    def drop(self, batch_id: str) -> None:
        """Forget a batch that was committed (its extraction can never be needed again)."""


class CheckCounter(Protocol):
    """Where the checks' rejections are counted (``memlane.buffer.checks.CheckCounts``)."""

    def record(self, model: str, counts: dict[str, int]) -> None:
        """Add one batch's rejections and repairs of ``model``."""


@dataclass(frozen=True, slots=True)
class ExtractorOptions:
    """How many related memories to show the model, how they are found, and the near-duplicate
    check (:class:`PairLimits`). ``fusion`` is the configured retrieval fusion (the wiring passes
    ``Fusion.of(settings.retrieval)``), so related memories rank as a bot's retrieval ranks them.
    """

    related_k: int = 8
    query_chars: int = 2000
    pairs: PairLimits = field(default_factory=PairLimits)
    fusion: Fusion = field(default_factory=Fusion)


class LLMExtractor:
    """The consolidation ``Extractor`` port: a batch in, an :class:`ExtractionPlan` out."""

    def __init__(
        self,
        chat: ChatModel,
        store: MemoryStore,
        embedder: Embedder,
        cache: ExtractionCache,
        tz: tzinfo,
        usage: UsageRecorder | None = None,
        options: ExtractorOptions | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        checks: CheckCounter | None = None,
    ) -> None:
        self.chat = chat
        self.store = store
        self.embedder = embedder
        self.cache = cache
        self.tz = tz
        self.usage = usage
        self.options = options or ExtractorOptions()
        self.clock = clock
        self.checks = checks

    def __call__(
        self, user_id: str, batch_id: str, entries: Sequence[BufferedTurn]
    ) -> ExtractionPlan:
        """The plan of one batch (memories embedded), from the cache when there is one."""
        doc = self.cache.get(batch_id)
        if doc is None:
            candidates = self._related(user_id, entries)
            doc = self._extract(user_id, batch_id, entries, candidates)
        else:
            candidates = self._with_vectors(self.store.get(user_id, doc["candidates"]))
            log.info("extraction_cache_hit", user_id=user_id, batch_id=batch_id)
        context = {"user_id": user_id, "batch_id": batch_id}
        ids = doc["candidates"]
        extraction = parse_extraction(doc["extraction"], len(entries), ids, self.tz, context)
        if "links" not in doc:
            tally = Tally()
            extraction = self._check(user_id, entries, extraction, candidates, doc, tally)
            memories = self._memories(user_id, batch_id, entries, extraction, doc)
            doc["links"] = self._resolve(user_id, extraction, memories, candidates, doc, tally)
            doc["extraction"] = extraction_to_json(extraction)
            doc["checks"] = dict(tally.counts)
            self.cache.put(batch_id, doc)
            self._count(user_id, batch_id, doc)
        else:
            memories = self._memories(user_id, batch_id, entries, extraction, doc)
        links = [
            Link(k["observation"], k["memory_id"], Relation(k["relation"])) for k in doc["links"]
        ]
        plan = build_plan(memories, links, candidates)
        plan.keep_raw = sorted(doc.get("raw_turns", []))
        plan.after_commit.append(lambda: self.cache.drop(batch_id))
        return plan

    def _related(self, user_id: str, entries: Sequence[BufferedTurn]) -> list[Memory]:
        """The user's existing observations most related to the batch (with vectors)."""
        said = [e.turn.content for e in entries if e.turn.role is Role.USER] or [
            e.turn.content for e in entries
        ]
        text = " ".join(said)[: self.options.query_chars]
        k = self.options.related_k
        query = SearchQuery(
            text=text,
            vector=self.embedder.embed_query(text),
            k=k,
            filter=MemoryFilter(kinds=(MemoryKind.OBSERVATION,)),
            candidates=max(4 * k, 20),
            with_vectors=True,  # arbitration compares the candidates' embeddings
            fusion=self.options.fusion,
        )
        hits = self.store.search(user_id, query)[:k]
        return self._with_vectors([h.memory for h in hits if h.memory.user_id == user_id])

    def _with_vectors(self, memories: list[Memory]) -> list[Memory]:
        missing = [m for m in memories if m.embedding is None]
        if missing:
            stored = {m.id: m for m in self.store.get(missing[0].user_id, [m.id for m in missing])}
            for memory in missing:
                memory.embedding = (stored.get(memory.id) or memory).embedding
        embed_missing(self.embedder, memories)
        return memories

    def _extract(
        self,
        user_id: str,
        batch_id: str,
        entries: Sequence[BufferedTurn],
        candidates: Sequence[Memory],
    ) -> dict[str, Any]:
        """LLM call #1; the validated result is cached before this returns."""
        prompt = load_prompt("extract", batch_language(entries))
        raw = self._call(user_id, self._messages(prompt.language, entries, candidates), "extract")
        ids = [m.id for m in candidates]
        context = {"user_id": user_id, "batch_id": batch_id}
        extraction = parse_extraction(raw, len(entries), ids, self.tz, context)
        doc = {
            "language": prompt.language,
            "prompt_version": prompt.label,
            "model": self.chat.model,
            "candidates": ids,
            "extraction": extraction_to_json(extraction),
            "reply": raw,  # the targeted retry shows the model its own answer
        }
        self.cache.put(batch_id, doc)
        log.info(
            "observations_extracted",
            user_id=user_id,
            batch_id=batch_id,
            observations=len(extraction.observations),
            links=len(extraction.links),
            language=prompt.language,
        )
        return doc

    def _memories(
        self,
        user_id: str,
        batch_id: str,
        entries: Sequence[BufferedTurn],
        extraction: Extraction,
        doc: dict[str, Any],
    ) -> list[Memory]:
        metadata = {"prompt_version": doc["prompt_version"], "model": doc["model"]}
        now = self.clock()
        memories = [
            draft_memory(user_id, batch_id, entries, d, metadata, now)
            for d in extraction.observations
        ]
        embed_missing(self.embedder, memories)
        return memories

    def _resolve(
        self,
        user_id: str,
        extraction: Extraction,
        memories: Sequence[Memory],
        candidates: Sequence[Memory],
        doc: dict[str, Any],
        tally: Tally,
    ) -> list[dict[str, Any]]:
        """The model's links that pass the checks, plus embedding duplicates, plus arbitrated
        ambiguous pairs (unless the split retry used the batch's second call)."""
        links = believed(extraction.links, memories, candidates, tally)
        linked = {k.observation for k in links}
        auto, pairs = classify(memories, candidates, linked, self.options.pairs)
        links += auto
        if pairs and not doc.get("retried"):
            found = self._arbitrate(user_id, pairs, memories, candidates, doc["language"])
            links += believed(found, memories, candidates, tally)
        return [
            {"observation": k.observation, "memory_id": k.memory_id, "relation": k.relation}
            for k in links
        ]

    def _arbitrate(
        self,
        user_id: str,
        pairs: Sequence[Pair],
        memories: Sequence[Memory],
        candidates: Sequence[Memory],
        language: str,
    ) -> list[Link]:
        """LLM call #2: one decision per ambiguous pair."""
        texts = [
            PairText(
                new=memories[p.new].content,
                new_time=memories[p.new].recorded_at,
                old=candidates[p.old].content,
                old_time=memory_time(candidates[p.old]),
            )
            for p in pairs
        ]
        prompt = load_prompt("arbitrate", language)
        raw = self._call(user_id, arbitration_messages(prompt, texts, self.tz), "arbitrate")
        links = arbitration_links(raw, pairs, candidates)
        log.info("pairs_arbitrated", user_id=user_id, pairs=len(pairs), links=len(links))
        return links

    # -- the checks -----------------------------------------------------------------------------

    def _messages(
        self, language: str, entries: Sequence[BufferedTurn], candidates: Sequence[Memory]
    ) -> list[Message]:
        hints = [h.label() for h in time_hints(entries, self.tz)]
        prompt = load_prompt("extract", language)
        return extraction_messages(prompt, entries, candidates, self.tz, hints)

    def _check(
        self,
        user_id: str,
        entries: Sequence[BufferedTurn],
        extraction: Extraction,
        candidates: Sequence[Memory],
        doc: dict[str, Any],
        tally: Tally,
    ) -> Extraction:
        """The observations memlane believes (links re-pointed); a packed one is retried once."""
        hints = time_hints(entries, self.tz)
        ev = evidence(
            entries,
            self.embedder.embed_passages([e.turn.content for e in entries]),
            [m.content for m in candidates],
            [m.embedding for m in candidates if m.embedding is not None],
        )
        drafts = extraction.observations
        checked = check_drafts(drafts, self._vectors(drafts), ev, hints)
        kept = list(checked.drafts)
        if checked.packed:
            doc["retried"] = True
            parts = self._split(user_id, entries, candidates, doc, checked.packed)
            again = check_drafts(parts, self._vectors(parts), ev, hints)
            kept += again.drafts
            _merge(checked, again)
            fixed = Check.SPLIT if again.drafts else Check.PACKED
            checked.tally.add(fixed, len(checked.packed))
        tally.counts.update(checked.tally.counts)
        doc["raw_turns"] = sorted(checked.raw_turns)
        links = tuple(renumber(extraction.links, checked.kept))
        return Extraction(tuple(kept), links)

    def _vectors(self, drafts: Sequence[ObservationDraft]) -> list[list[float]]:
        return self.embedder.embed_passages([d.content for d in drafts]) if drafts else []

    def _split(
        self,
        user_id: str,
        entries: Sequence[BufferedTurn],
        candidates: Sequence[Memory],
        doc: dict[str, Any],
        packed: Sequence[ObservationDraft],
    ) -> tuple[ObservationDraft, ...]:
        """The targeted retry (the batch's second call); a bad answer splits nothing."""
        prompt = load_prompt("extract", doc["language"])
        messages = split_messages(
            self._messages(doc["language"], entries, candidates),
            doc.get("reply") or doc["extraction"],
            prompt,
            [d.content for d in packed],
        )
        raw = self._call(user_id, messages, "extract")
        try:
            return parse_extraction(raw, len(entries), (), self.tz).observations
        except LLMBadOutput as e:
            log.warning("split_refused", user_id=user_id, error=str(e)[:200])
            return ()

    def _count(self, user_id: str, batch_id: str, doc: dict[str, Any]) -> None:
        counts = {k: int(v) for k, v in doc.get("checks", {}).items() if v}
        if not counts:
            return
        log.warning("extraction_checked", user_id=user_id, batch_id=batch_id, **counts)
        if self.checks is not None:
            self.checks.record(str(doc.get("model") or self.chat.model), counts)

    def _call(self, user_id: str, messages: list[Message], purpose: str) -> dict[str, Any]:
        raw, usage = self.chat.complete_json(messages, purpose)
        self._record(user_id, usage)
        return raw

    def _record(self, user_id: str, usage: Usage) -> None:
        if self.usage is not None:
            self.usage.record(user_id, usage)


def _merge(into: Checked, other: Checked) -> None:
    into.tally.counts.update(other.tally.counts)
    into.raw_turns |= other.raw_turns
