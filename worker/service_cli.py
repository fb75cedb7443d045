"""``memlane serve``, ``memlane keys`` and ``memlane mcp``: entry points of package ``service``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import redis

from memlane import MemoryClient, Settings
from memlane.constants import QUEUE_CONSOLIDATE, TASK_REPLAY
from memlane.errors import RedisUnavailable
from memlane.llm.openmp import short_spin_openmp
from memlane.redaction import Redactor
from worker.terminal import safe

if TYPE_CHECKING:
    from celery import Celery


def run_service_command(args: argparse.Namespace, settings: Settings) -> int:
    """Dispatch one of the service commands."""
    if args.command in {"serve", "mcp"}:
        # Searches embed the query in this process while other requests (and, on one host, the
        # workers) run: OpenMP threads that spin only briefly before they sleep. Set before the
        # model loads; an explicit setting wins.
        short_spin_openmp()
    if args.command == "serve":
        from service.server import serve

        host = args.host or settings.service.host
        port = settings.service.port if args.port is None else args.port
        code: int = serve(
            settings, host, port, local_key=args.local_key, replay=replay_sender(settings)
        )
        return code
    if args.command == "mcp":
        from service.mcp_server import run_mcp

        key = os.environ.get(args.api_key_env) or None
        return run_mcp(settings, args.transport, args.user, key, args.host, args.port)
    return _keys(args, settings)


def replay_sender(settings: Settings) -> Callable[[str], None]:
    """``replay(batch_id)``: enqueue the replay task of a dead letter, as ``memlane replay``
    does. The Celery app is built on first use (a service that never replays never needs it)."""
    lock = threading.Lock()
    apps: list[Celery] = []

    def replay(batch_id: str) -> None:
        from kombu.exceptions import OperationalError

        from tasks.app import send
        from worker.app import create_app

        with lock:
            if not apps:
                apps.append(create_app(settings))
        try:
            send(apps[0], TASK_REPLAY, (batch_id,), QUEUE_CONSOLIDATE)
        except (OperationalError, redis.RedisError, OSError) as e:
            raise RedisUnavailable(f"could not queue the replay of {batch_id!r}: {e}") from e

    return replay


def _keys(args: argparse.Namespace, settings: Settings) -> int:
    from service.apikeys import KeyStore

    with MemoryClient(settings) as client:
        store = KeyStore(client.services.redis, settings.redis.key_prefix)
        if args.keys_command == "create":
            rate = settings.service.rate_per_s if args.rate is None else args.rate
            burst = settings.service.rate_burst if args.burst is None else args.burst
            tenant = None if args.admin else args.tenant
            info, key = store.create(tenant, rate, burst, label=args.label)
            print(key)
            owner = "admin" if tenant is None else f"tenant {tenant!r}"
            print(
                f"key {info.key_id} for {owner}: shown once, only its SHA-256 is stored",
                file=sys.stderr,
            )
        elif args.keys_command == "list":
            redactor = Redactor.from_settings(settings)
            for info in store.list():
                print(safe(json.dumps(info.as_dict(), ensure_ascii=False), redactor, json=True))
        elif not store.revoke(args.key_id):
            print(f"no key with id {args.key_id!r}", file=sys.stderr)
            return 1
        else:
            print(f"revoked {args.key_id}")
    return 0
