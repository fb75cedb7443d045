"""docker-compose.yml: no Docker engine here, so check its shape and its MEMLANE_* variables."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from memlane.config import load_settings
from memlane.constants import ALL_QUEUES, QUEUE_CONTROL

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
_SUBST = re.compile(r"\$\{[A-Z0-9_]+:-([^}]*)\}")


def _env(service: str) -> dict[str, str]:
    env: dict[str, Any] = COMPOSE["services"][service].get("environment") or {}
    return {k: _SUBST.sub(r"\1", str(v)) for k, v in env.items()}


def test_services_are_all_there() -> None:
    """Redis, Elasticsearch, worker, the control worker, beat and the HTTP API."""
    assert set(COMPOSE["services"]) == {
        "redis",
        "elasticsearch",
        "worker",
        "control",
        "beat",
        "api",
    }


def test_the_control_queue_has_a_worker_of_its_own() -> None:
    """The control worker consumes only the control queue and the workers never do, so
    dispatch cannot wait behind a consolidation; between them every queue is consumed."""

    def queues(service: str) -> set[str]:
        cmd = COMPOSE["services"][service]["command"]
        return set(cmd[cmd.index("--queues") + 1].split(","))

    assert queues("control") == {QUEUE_CONTROL}
    assert QUEUE_CONTROL not in queues("worker")
    assert queues("worker") | queues("control") == set(ALL_QUEUES)


def test_redis_has_aof_and_noeviction() -> None:
    """Buffered turns must survive restarts and never be evicted."""
    cmd = " ".join(COMPOSE["services"]["redis"]["command"])
    assert "--appendonly yes" in cmd and "--maxmemory-policy noeviction" in cmd


def test_elasticsearch_is_8x_single_node() -> None:
    """The Elasticsearch service matches what the tests run against."""
    es = COMPOSE["services"]["elasticsearch"]
    assert re.search(r":8\.\d+\.\d+$", es["image"])
    assert es["environment"]["discovery.type"] == "single-node"


def test_every_memlane_variable_is_a_real_setting() -> None:
    """Each MEMLANE_* variable of worker and beat validates as a setting (typos fail)."""
    for service in ("worker", "control", "beat", "api"):
        env = {k: v for k, v in _env(service).items() if k.startswith("MEMLANE_")}
        assert env, service
        for name, value in env.items():
            load_settings(environ={name: value})  # raises ConfigError on an unknown setting
        settings = load_settings(environ=env)
        assert settings.store.backend == "elasticsearch"
        assert settings.redis.url == "redis://redis:6379/0"


def test_no_secret_values_in_the_file() -> None:
    """Keys come from the caller's environment; the file only forwards them."""
    for service in ("worker", "control", "beat", "api"):
        for name, raw in (COMPOSE["services"][service]["environment"] or {}).items():
            if name.endswith(("API_KEY", "PASSWORD")):
                assert str(raw).startswith("${"), name


def test_api_serves_memlane_serve_on_loopback_with_a_readiness_check() -> None:
    """The api service runs `memlane serve`, is published on the host's loopback only, and its
    health check is /readyz (Redis and the store answer)."""
    api = COMPOSE["services"]["api"]
    assert api["command"][:2] == ["memlane", "serve"]
    port = api["command"][api["command"].index("--port") + 1]
    assert api["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert "/readyz" in " ".join(api["healthcheck"]["test"])
    assert set(api["depends_on"]) == {"redis", "elasticsearch"}
