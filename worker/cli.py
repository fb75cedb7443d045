"""The ``memlane`` command line: a process entry point like the worker itself."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from memlane.buffer.status import TaskStatus
from memlane.client import MemoryClient
from memlane.config import Settings, load_settings
from memlane.constants import ALL_QUEUES, QUEUE_CONSOLIDATE
from memlane.errors import MemlaneError
from memlane.llm.openmp import configure_openmp
from memlane.logging import configure_logging, get_logger
from memlane.redaction import Redactor
from worker.terminal import safe

log = get_logger(__name__)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="memlane", description="Long-term memory for chatbots.")
    p.add_argument("--config", help="settings YAML (default: $MEMLANE_CONFIG)")
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="embedded Redis + worker + beat, supervised")
    up.add_argument("--concurrency", type=int, default=2)
    up.add_argument(
        "--no-api", action="store_true", help="do not start the HTTP API (memlane serve)"
    )
    up.add_argument(
        "--grace",
        type=float,
        default=None,
        help="seconds a running batch may take to finish on stop (default 30)",
    )
    w = sub.add_parser("worker", help="run a Celery worker")
    w.add_argument("--concurrency", type=int, default=None)
    w.add_argument(
        "--queues",
        default=",".join(ALL_QUEUES),
        help="queues to consume (default: all; memlane up runs the control queue apart)",
    )
    w.add_argument("--pool", default="prefork")
    w.add_argument("--hostname", default="memlane@%h")
    sub.add_parser("beat", help="run the beat scheduler")
    sub.add_parser("demo", help="run the seed scenario on the embedded default")
    push = sub.add_parser("push", help="push one turn")
    push.add_argument("user_id")
    push.add_argument("text")
    push.add_argument("--role", default="user")
    push.add_argument("--session", default=None)
    imp = sub.add_parser("import", help="push a JSONL file of turns")
    imp.add_argument("file", type=Path)
    sub.add_parser("stats", help="pending counts, watermark lag, dead letters")
    rep = sub.add_parser("replay", help="re-run dead-lettered batches")
    rep.add_argument("--batch", default=None, help="one batch id (default: all)")
    rep.add_argument("--timeout", type=float, default=120.0)
    rf = sub.add_parser("reflect", help="reflect a user's observations into insights")
    rf.add_argument("user_id")
    mt = sub.add_parser("maintain", help="dedup/contradiction sweep (no user: housekeeping)")
    mt.add_argument("user_id", nargs="?", default=None)
    for lifecycle in (rf, mt):
        lifecycle.add_argument("--wait", action="store_true", help="wait for a worker to finish")
        lifecycle.add_argument("--timeout", type=float, default=300.0)
    fg = sub.add_parser("forget", help="delete everything about a user")
    fg.add_argument("user_id")
    ret = sub.add_parser("retrieve", help="print the memories recalled for a query")
    ret.add_argument("user_id")
    ret.add_argument("query")
    ret.add_argument("--top-k", type=int, default=5)
    ret.add_argument("--pending", action="store_true")
    sub.add_parser(
        "migrate-index",
        help="copy the Elasticsearch index into the current index version (stop workers first)",
    )
    chat = sub.add_parser("chat", help="chat with memory (interactive REPL)")
    chat.add_argument("--user", required=True)
    _service_parsers(sub)
    return p


def _service_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``serve``, ``keys`` and ``mcp``: the HTTP and MCP service (package ``service``)."""
    sv = sub.add_parser("serve", help="run the HTTP API (FastAPI + uvicorn)")
    sv.add_argument("--host", default=None, help="default: service.host (127.0.0.1)")
    sv.add_argument("--port", type=int, default=None, help="default: service.port (8765)")
    sv.add_argument(
        "--local-key",
        action="store_true",
        help="create (once) an admin key in <data_dir>/api_key, mode 0600 (memlane up does)",
    )
    keys = sub.add_parser("keys", help="API keys of the HTTP service")
    ksub = keys.add_subparsers(dest="keys_command", required=True)
    kc = ksub.add_parser("create", help="create a key and show it once")
    who = kc.add_mutually_exclusive_group(required=True)
    who.add_argument("--tenant", help="the tenant the key belongs to")
    who.add_argument("--admin", action="store_true", help="a key for every user (operators)")
    kc.add_argument("--label", default="", help="a note shown by keys list")
    kc.add_argument("--rate", type=float, default=None, help="requests/s (service.rate_per_s)")
    kc.add_argument("--burst", type=int, default=None, help="bucket size (service.rate_burst)")
    ksub.add_parser("list", help="list keys (never the keys themselves)")
    kr = ksub.add_parser("revoke", help="revoke a key by its id")
    kr.add_argument("key_id")
    mcp = sub.add_parser("mcp", help="run the MCP server (stdio or streamable HTTP)")
    mcp.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    mcp.add_argument("--user", default=None, help="the user every tool works on")
    mcp.add_argument(
        "--api-key-env",
        default="MEMLANE_API_KEY",
        help="stdio: variable holding a tenant key that scopes --user (default %(default)s)",
    )
    mcp.add_argument("--host", default="127.0.0.1")
    mcp.add_argument("--port", type=int, default=8766)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``memlane`` command."""
    args = _parser().parse_args(argv)
    redactor = Redactor()  # secret shapes only, until the settings are known
    try:
        settings = load_settings(args.config)
        redactor = Redactor.from_settings(settings)
        configure_logging(settings.log, redactor=redactor)
        return _run(args, settings)
    except MemlaneError as e:
        print(safe(f"memlane: {type(e).__name__}: {e}", redactor), file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, settings: Settings) -> int:
    cmd = args.command
    if cmd in {"up", "worker", "beat", "demo", "replay"}:
        return _run_process(args, settings)
    if cmd in {"reflect", "maintain"}:
        return _lifecycle(settings, cmd, args.user_id, args.wait, args.timeout)
    if cmd == "migrate-index":
        return _migrate_index(settings)
    if cmd == "chat":
        from worker.chat_repl import run_repl

        return run_repl(settings, args.user)
    if cmd in {"serve", "keys", "mcp"}:
        from worker.service_cli import run_service_command

        return run_service_command(args, settings)
    from worker import commands

    with MemoryClient(settings) as client:
        if cmd == "push":
            commands.push(client, args.user_id, args.text, args.role, args.session)
        elif cmd == "import":
            stats = commands.import_jsonl(client, args.file)
            return 1 if stats["bad"] else 0
        elif cmd == "stats":
            print(commands.stats_text(client))
        elif cmd == "forget":
            print(f"deleted {client.forget_user(args.user_id)} memories of {args.user_id!r}")
        elif cmd == "retrieve":
            for line in commands.retrieve(
                client, args.user_id, args.query, args.top_k, args.pending
            ):
                print(line)
    return 0


def _run_process(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "up":
        from worker.supervisor import STOP_GRACE_S, Supervisor

        grace = STOP_GRACE_S if args.grace is None else args.grace
        sup = Supervisor(settings, concurrency=args.concurrency, grace_s=grace, api=not args.no_api)
        return sup.run_forever()
    if args.command == "demo":
        from worker.demo import run_demo

        return run_demo(settings)
    if args.command == "replay":
        return _replay(settings, args.batch, args.timeout)
    from tasks.app import wiring_of
    from worker.app import create_app
    from worker.lifecycle import QuietScheduler, connect_worker_signals, hold_a_core_per_task

    app = create_app(settings)
    if args.command == "worker":
        if QUEUE_CONSOLIDATE in args.queues.split(","):
            _log_mode(settings)  # once per consolidating worker, not by beat or a control worker
            # One worker embedding alone (one user's backlog) borrows the idle cores.
            hold_a_core_per_task(settings)
        connect_worker_signals(settings, wiring_of(app).worker_id)
        from worker.metrics import setup_worker_metrics, setup_worker_tracing

        setup_worker_metrics(settings)  # before the pool forks: its processes inherit the dir
        setup_worker_tracing(settings)
        concurrency = args.concurrency or settings.worker.concurrency
        # Each pool child embeds with OpenMP; several children each spinning a thread per core
        # oversubscribe the CPU (measured: a 5-turn batch took 1.6 s instead of 0.18 s with two
        # children on two cores), and spinning workers slow the bot's query embedding on the
        # same host 2-5x (issue 14). The children inherit this before libgomp loads.
        configure_openmp(settings.embedding.worker_threads)
        app.worker_main(
            [
                "--quiet",  # no banner: `memlane up` prints a summary, the worker one line
                "worker",
                "-Q",
                args.queues,
                "-c",
                str(concurrency),
                "-P",
                args.pool,
                "-n",
                args.hostname,
                "--loglevel",
                settings.log.level,
                "--without-gossip",
                "--without-mingle",
            ]
        )
        return 0
    schedule = settings.data_path / "celerybeat-schedule"
    schedule.parent.mkdir(parents=True, exist_ok=True)
    app.Beat(
        schedule=str(schedule),
        scheduler=QuietScheduler,
        loglevel=settings.log.level,
        quiet=True,  # no banner; Celery's "beat: Starting..." line remains
    ).run()
    return 0


def _log_mode(settings: Settings) -> None:
    """Say once at start-up whether a chat model is configured (DESIGN: raw mode is logged)."""
    if settings.llm.configured:
        log.info("llm_mode", model=settings.llm.model, base_url=settings.llm.base_url)
    else:
        log.info("no LLM configured: raw mode")


def _replay(settings: Settings, batch: str | None, timeout: float) -> int:
    """Enqueue replays of dead letters and wait until they are gone (needs a worker)."""
    from tasks.consolidation import replay
    from worker.app import create_app

    create_app(settings)
    with MemoryClient(settings) as client:
        buf = client.services.buffer
        wanted = [d["batch_id"] for d in buf.dead_letters() if batch in (None, d["batch_id"])]
        for batch_id in wanted:
            replay.apply_async((batch_id,))
        print(f"replaying {len(wanted)} dead-lettered batches")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            left = {d["batch_id"] for d in buf.dead_letters()} & set(wanted)
            if not left:
                print("all replayed")
                return 0
            time.sleep(0.2)
        print(f"{len(left)} batches still dead-lettered after {timeout:.0f} s", file=sys.stderr)
        return 1


def _migrate_index(settings: Settings) -> int:
    """Copy the memories into ``<alias>-v<ES_INDEX_VERSION>`` and move the alias there."""
    from memlane.config_sections import StoreBackend
    from memlane.constants import ES_INDEX_VERSION
    from memlane.store.elasticsearch import ElasticsearchStore
    from memlane.store.es_mapping import index_name

    if settings.store.backend != StoreBackend.ELASTICSEARCH:
        print("the store is not Elasticsearch: nothing to migrate")
        return 0
    store = ElasticsearchStore(settings)  # not via Services: that would refuse the old index
    try:
        old = store.current_index()
        new = index_name(store.alias, ES_INDEX_VERSION)
        if old == new:
            print(f"{store.alias} already points at {new}: nothing to migrate")
            return 0
        copied = store.migrate(ES_INDEX_VERSION)
    finally:
        store.close()
    print(f"copied {copied} memories from {old} into {new}; {store.alias} now points at {new}")
    print(f"{old} was kept: delete it once you are satisfied")
    return 0


def _lifecycle(
    settings: Settings, command: str, user_id: str | None, wait: bool, timeout: float
) -> int:
    """Enqueue ``reflect USER``, ``maintain USER`` or (no user) the hourly housekeeping; with
    ``wait``, print the task's status record once a worker has finished it."""
    import uuid

    from tasks.maintenance import housekeeping, maintain
    from tasks.reflection import reflect
    from worker.app import create_app

    create_app(settings)
    task_id = f"cli-{uuid.uuid4().hex}"
    if command == "reflect":
        reflect.apply_async((user_id,), task_id=task_id)
    elif user_id is not None:
        maintain.apply_async((user_id,), task_id=task_id)
    else:
        housekeeping.apply_async((), task_id=task_id)
    print(f"enqueued {command}({user_id or ''}) as {task_id}")
    if not wait:
        return 0
    with MemoryClient(settings) as client:
        status = TaskStatus(client.services.redis, client.services.keys)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = status.get(task_id)
            if done is not None:
                print(json.dumps(done, ensure_ascii=False, indent=2))
                return 0
            time.sleep(0.2)
    print(f"{command} not finished after {timeout:.0f} s (is a worker running?)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
